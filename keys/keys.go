package keys

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/imago-os/imago/format/efisig"
	"github.com/imago-os/imago/format/uuid"
)

// The Secure Boot key database variables a set holds keys for, in the
// names UEFI and systemd-boot use (loader/keys/<name>/PK.auth, ...).
const (
	PK  = "PK"
	KEK = "KEK"
	DB  = "db"
)

// Names of the files in a key directory besides the Secure Boot ones,
// which SecureBootKey's methods name.
const (
	// VerityKeyFile and VerityCertificateFile sign dm-verity root hashes
	// (PEM: PKCS#8 private key, X.509 certificate).
	VerityKeyFile         = "verity.key"
	VerityCertificateFile = "verity.crt"
	// PCRPrivateKeyFile and PCRPublicKeyFile sign PCR 11 policies (PEM:
	// PKCS#8 private key, SubjectPublicKeyInfo public key), named as
	// systemd-measure and ukify name them under /etc/systemd/.
	PCRPrivateKeyFile = "tpm2-pcr-private-key.pem"
	PCRPublicKeyFile  = "tpm2-pcr-public-key.pem"
	// UpdateKeyFile is the OpenPGP secret key that signs update manifests
	// (ASCII-armored transferable secret key, as `gpg --import` takes).
	UpdateKeyFile = "update-signing.key"
	// UpdateKeyringFile is its public key as a binary OpenPGP keyring, the
	// format and name systemd-sysupdate 252 expects for
	// /usr/lib/systemd/import-pubring.gpg.
	UpdateKeyringFile = "import-pubring.gpg"
)

// File is one file of a key directory.
type File struct {
	// Name is the file name inside the directory.
	Name string
	// Private files hold secret keys and are written with mode 0600;
	// the others with 0644.
	Private bool
	// Purpose says what the file is for, in a few words.
	Purpose string
}

// Mode returns the permission bits the file is written with.
func (f File) Mode() fs.FileMode {
	if f.Private {
		return 0o600
	}
	return 0o644
}

// Files lists every file of a key set, in the order Generate writes them.
func Files() []File {
	var files []File
	for _, name := range []string{PK, KEK, DB} {
		k := SecureBootKey{Name: name}
		files = append(files,
			File{k.KeyFile(), true, "Secure Boot " + name + " private key"},
			File{k.CertificateFile(), false, "Secure Boot " + name + " certificate"},
			File{k.ListFile(), false, "Secure Boot " + name + " EFI signature list"},
			File{k.AuthFile(), false, "Secure Boot " + name + " signed update for enrollment"})
	}
	return append(files,
		File{VerityKeyFile, true, "verity root hash signing key"},
		File{VerityCertificateFile, false, "verity root hash signing certificate"},
		File{PCRPrivateKeyFile, true, "PCR 11 policy signing key"},
		File{PCRPublicKeyFile, false, "PCR 11 policy public key (.pcrpkey)"},
		File{UpdateKeyFile, true, "OpenPGP update manifest signing key"},
		File{UpdateKeyringFile, false, "OpenPGP public keyring for systemd-sysupdate"})
}

// SecureBootKey is one of PK, KEK and db with everything enrollment needs.
type SecureBootKey struct {
	// Name is the variable: PK, KEK or DB.
	Name        string
	Certificate *x509.Certificate
	PrivateKey  *rsa.PrivateKey
	// SignatureList is the EFI signature list holding Certificate.
	SignatureList []byte
	// Auth is the time-based authenticated write of SignatureList to the
	// variable, signed by PK (for PK and KEK) or KEK (for db).
	Auth []byte
}

// KeyFile is the name of the private key file, e.g. "PK.key".
func (k SecureBootKey) KeyFile() string { return k.Name + ".key" }

// CertificateFile is the name of the certificate file, e.g. "PK.crt".
func (k SecureBootKey) CertificateFile() string { return k.Name + ".crt" }

// ListFile is the name of the EFI signature list file, e.g. "PK.esl".
func (k SecureBootKey) ListFile() string { return k.Name + ".esl" }

// AuthFile is the name of the authenticated update, e.g. "PK.auth": the
// name systemd-boot looks for in loader/keys/<name>/.
func (k SecureBootKey) AuthFile() string { return k.Name + ".auth" }

// CertifiedKey is a private key and its certificate.
type CertifiedKey struct {
	Certificate *x509.Certificate
	PrivateKey  *rsa.PrivateKey
}

// Set is a loaded or generated key set.
type Set struct {
	// Dir is the directory the set lives in.
	Dir string
	// Owner is the SignatureOwner GUID of the set's signature lists.
	Owner uuid.UUID
	// PK, KEK and DB are the Secure Boot keys.
	PK, KEK, DB SecureBootKey
	// Verity signs dm-verity root hashes.
	Verity CertifiedKey
	// PCRKey signs PCR 11 policies; its public half goes into .pcrpkey.
	PCRKey *rsa.PrivateKey
	// update is the OpenPGP key that signs update manifests.
	update *openpgp.Entity
}

// Path returns the path of one of the set's files.
func (s *Set) Path(name string) string { return filepath.Join(s.Dir, name) }

// SecureBootKeys returns PK, KEK and db in that order.
func (s *Set) SecureBootKeys() []SecureBootKey { return []SecureBootKey{s.PK, s.KEK, s.DB} }

// ErrIncomplete is wrapped by Load's error when some files of the set are
// missing.
var ErrIncomplete = errors.New("incomplete key set")

// Load reads the key set in dir and checks that it fits together: every
// private key belongs to its certificate or public key, every signature
// list holds exactly its certificate under the set's owner GUID, every
// .auth carries that list and verifies with its signer (PK for PK and KEK,
// KEK for db), and the OpenPGP keyring holds the public half of the
// OpenPGP secret key.
func Load(dir string) (*Set, error) {
	var missing []string
	for _, f := range Files() {
		if _, err := os.Stat(filepath.Join(dir, f.Name)); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("keys: %s: %w: missing %v", dir, ErrIncomplete, missing)
	}
	s := &Set{Dir: dir}
	var err error
	owners := map[uuid.UUID]bool{}
	if s.PK, err = s.loadSecureBootKey(PK, owners); err != nil {
		return nil, err
	}
	if s.KEK, err = s.loadSecureBootKey(KEK, owners); err != nil {
		return nil, err
	}
	if s.DB, err = s.loadSecureBootKey(DB, owners); err != nil {
		return nil, err
	}
	if len(owners) != 1 {
		return nil, fmt.Errorf("keys: %s: the signature lists have %d different owner GUIDs, want one", dir, len(owners))
	}
	for o := range owners {
		s.Owner = o
	}
	for _, k := range s.SecureBootKeys() {
		if err := s.checkAuth(k); err != nil {
			return nil, err
		}
	}
	if s.Verity, err = s.loadCertifiedKey(VerityKeyFile, VerityCertificateFile); err != nil {
		return nil, err
	}
	if s.PCRKey, err = s.loadPCRKey(); err != nil {
		return nil, err
	}
	if s.update, err = s.loadUpdateKey(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Set) loadSecureBootKey(name string, owners map[uuid.UUID]bool) (SecureBootKey, error) {
	k := SecureBootKey{Name: name}
	ck, err := s.loadCertifiedKey(k.KeyFile(), k.CertificateFile())
	if err != nil {
		return k, err
	}
	k.Certificate, k.PrivateKey = ck.Certificate, ck.PrivateKey
	if k.SignatureList, err = os.ReadFile(s.Path(k.ListFile())); err != nil {
		return k, fmt.Errorf("keys: %w", err)
	}
	lists, err := efisig.ParseLists(k.SignatureList)
	if err != nil {
		return k, fmt.Errorf("keys: %s: %w", s.Path(k.ListFile()), err)
	}
	if len(lists) != 1 || lists[0].Type != efisig.CertX509 || len(lists[0].Signatures) != 1 ||
		!bytes.Equal(lists[0].Signatures[0].Data, k.Certificate.Raw) {
		return k, fmt.Errorf("keys: %s does not hold exactly the certificate of %s", s.Path(k.ListFile()), k.CertificateFile())
	}
	owners[lists[0].Signatures[0].Owner] = true
	if k.Auth, err = os.ReadFile(s.Path(k.AuthFile())); err != nil {
		return k, fmt.Errorf("keys: %w", err)
	}
	return k, nil
}

// signerOf returns the key that signs the enrollment update of k.
func (s *Set) signerOf(name string) SecureBootKey {
	if name == DB {
		return s.KEK
	}
	return s.PK
}

func (s *Set) checkAuth(k SecureBootKey) error {
	path := s.Path(k.AuthFile())
	av, err := efisig.ParseAuth(k.Auth)
	if err != nil {
		return fmt.Errorf("keys: %s: %w", path, err)
	}
	if !bytes.Equal(av.Data, k.SignatureList) {
		return fmt.Errorf("keys: %s does not carry %s", path, k.ListFile())
	}
	vendor, _ := efisig.VendorOf(k.Name)
	signer := s.signerOf(k.Name)
	if _, err := av.Verify(k.Name, vendor, efisig.Attributes, []*x509.Certificate{signer.Certificate}); err != nil {
		return fmt.Errorf("keys: %s is not signed by %s: %w", path, signer.CertificateFile(), err)
	}
	return nil
}

func (s *Set) loadCertifiedKey(keyFile, certFile string) (CertifiedKey, error) {
	key, err := readRSAKey(s.Path(keyFile))
	if err != nil {
		return CertifiedKey{}, err
	}
	der, err := readPEM(s.Path(certFile), "CERTIFICATE")
	if err != nil {
		return CertifiedKey{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return CertifiedKey{}, fmt.Errorf("keys: %s: %w", s.Path(certFile), err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return CertifiedKey{}, fmt.Errorf("keys: %s is not the key of %s", s.Path(keyFile), s.Path(certFile))
	}
	return CertifiedKey{Certificate: cert, PrivateKey: key}, nil
}

func (s *Set) loadPCRKey() (*rsa.PrivateKey, error) {
	key, err := readRSAKey(s.Path(PCRPrivateKeyFile))
	if err != nil {
		return nil, err
	}
	der, err := readPEM(s.Path(PCRPublicKeyFile), "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", s.Path(PCRPublicKeyFile), err)
	}
	if !key.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("keys: %s is not the public key of %s", s.Path(PCRPublicKeyFile), s.Path(PCRPrivateKeyFile))
	}
	return key, nil
}

// readPEM returns the DER of the single PEM block of type blockType in
// path.
func readPEM(path, blockType string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != blockType {
		return nil, fmt.Errorf("keys: %s: want a PEM %q block", path, blockType)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("keys: %s: more than one PEM block", path)
	}
	return block.Bytes, nil
}

// readRSAKey reads an RSA private key in PEM, PKCS#8 (as written here and
// by openssl genpkey) or PKCS#1 (older openssl genrsa).
func readRSAKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("keys: %s: no PEM block", path)
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", path, err)
		}
		rsaKey, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("keys: %s: a %T, want an RSA key", path, key)
		}
		return rsaKey, nil
	case "RSA PRIVATE KEY":
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", path, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("keys: %s: PEM %q is not a private key", path, block.Type)
}
