package keys

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/imago-os/imago/format/efisig"
	"github.com/imago-os/imago/format/uuid"
)

// RSABits is the size of every RSA key generated here. RSA-2048 is what
// all UEFI firmware verifies (some takes nothing larger) and what TPM 2.0
// chips load for PolicyAuthorize.
const RSABits = 2048

// DefaultCommonName prefixes the certificates' subjects and the OpenPGP
// user ID when Options.CommonName is empty.
const DefaultCommonName = "imago"

// noExpiry is the notAfter RFC 5280 §4.1.2.5 prescribes for certificates
// without a well-defined expiration. Firmware does not check validity
// periods, and a date would only make sbverify and osslsigncode refuse
// old signatures one day.
var noExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// ErrExists is wrapped by Generate's error when a file of the set exists
// and Options.Force is not set.
var ErrExists = errors.New("already exists")

// Options tune Generate.
type Options struct {
	// Force overwrites the files of an existing set. Without it Generate
	// refuses to run when any of them exists.
	Force bool
	// CommonName starts every certificate subject ("<name> Secure Boot
	// PK", "<name> verity signing", ...) and the OpenPGP user ID; empty
	// means DefaultCommonName.
	CommonName string
	// Now is the creation time of the certificates and the OpenPGP key and
	// the timestamp of the .auth files; zero means the current time.
	Now time.Time
}

// Generate creates a new key set in dir (made with mode 0700 if missing)
// and returns it. Private keys are written with mode 0600, the rest with
// 0644. Without opts.Force it writes nothing if any file of the set
// exists, and never replaces a file; with it, each file is replaced
// atomically.
func Generate(dir string, opts Options) (*Set, error) {
	if !opts.Force {
		for _, f := range Files() {
			path := filepath.Join(dir, f.Name)
			if _, err := os.Lstat(path); err == nil {
				return nil, fmt.Errorf("keys: %s %w", path, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("keys: %w", err)
			}
		}
	}
	s, contents, err := newSet(dir, opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	for _, f := range Files() {
		if err := writeFile(filepath.Join(dir, f.Name), contents[f.Name], f.Mode(), opts.Force); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// checkCommonName refuses names that would make odd certificate subjects
// or OpenPGP user IDs.
func checkCommonName(name string) error {
	if len(name) > 40 {
		return fmt.Errorf("keys: common name %q: longer than 40 bytes", name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || strings.ContainsRune("()<>", r) {
			return fmt.Errorf("keys: common name %q: %q is not allowed", name, r)
		}
	}
	return nil
}

// newSet generates a set in memory and returns it with the content of
// each of its files.
func newSet(dir string, opts Options) (*Set, map[string][]byte, error) {
	cn := opts.CommonName
	if cn == "" {
		cn = DefaultCommonName
	}
	if err := checkCommonName(cn); err != nil {
		return nil, nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	owner, err := uuid.NewRandom(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: owner GUID: %w", err)
	}
	s := &Set{Dir: dir, Owner: owner}
	contents := map[string][]byte{}

	for _, k := range []struct {
		target *SecureBootKey
		name   string
		eku    []x509.ExtKeyUsage
	}{
		{&s.PK, PK, nil},
		{&s.KEK, KEK, nil},
		// db certificates sign boot loaders and UKIs (Authenticode).
		{&s.DB, DB, []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}},
	} {
		ck, err := newCertifiedKey(cn+" Secure Boot "+k.name, k.eku, now)
		if err != nil {
			return nil, nil, err
		}
		*k.target = SecureBootKey{Name: k.name, Certificate: ck.Certificate, PrivateKey: ck.PrivateKey}
		list := efisig.NewX509List(ck.Certificate.Raw, owner)
		if err := efisig.CheckVariable(k.name, []efisig.List{list}); err != nil {
			return nil, nil, fmt.Errorf("keys: %w", err)
		}
		if k.target.SignatureList, err = efisig.EncodeLists([]efisig.List{list}); err != nil {
			return nil, nil, fmt.Errorf("keys: %w", err)
		}
	}
	timestamp := efisig.TimeOf(now)
	for _, k := range []*SecureBootKey{&s.PK, &s.KEK, &s.DB} {
		signer := s.signerOf(k.Name)
		vendor, _ := efisig.VendorOf(k.Name)
		av, err := efisig.Sign(k.Name, vendor, efisig.Attributes, timestamp, k.SignatureList, signer.Certificate, signer.PrivateKey)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: %w", err)
		}
		if k.Auth, err = av.Encode(); err != nil {
			return nil, nil, fmt.Errorf("keys: %w", err)
		}
	}
	for _, k := range s.SecureBootKeys() {
		keyPEM, err := encodePrivateKey(k.PrivateKey)
		if err != nil {
			return nil, nil, err
		}
		contents[k.KeyFile()] = keyPEM
		contents[k.CertificateFile()] = encodeCertificate(k.Certificate)
		contents[k.ListFile()] = k.SignatureList
		contents[k.AuthFile()] = k.Auth
	}

	if s.Verity, err = newCertifiedKey(cn+" verity signing", nil, now); err != nil {
		return nil, nil, err
	}
	if contents[VerityKeyFile], err = encodePrivateKey(s.Verity.PrivateKey); err != nil {
		return nil, nil, err
	}
	contents[VerityCertificateFile] = encodeCertificate(s.Verity.Certificate)

	if s.PCRKey, err = rsa.GenerateKey(rand.Reader, RSABits); err != nil {
		return nil, nil, fmt.Errorf("keys: PCR signing key: %w", err)
	}
	if contents[PCRPrivateKeyFile], err = encodePrivateKey(s.PCRKey); err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&s.PCRKey.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: PCR public key: %w", err)
	}
	contents[PCRPublicKeyFile] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})

	if s.update, err = newUpdateKey(cn+" update signing", now); err != nil {
		return nil, nil, err
	}
	if contents[UpdateKeyFile], err = encodeUpdateSecretKey(s.update); err != nil {
		return nil, nil, err
	}
	if contents[UpdateKeyringFile], err = encodeUpdateKeyring(s.update); err != nil {
		return nil, nil, err
	}
	return s, contents, nil
}

// newCertifiedKey makes an RSA key and a self-signed SHA-256 certificate
// for it with the extensions `openssl req -x509` adds (subject and
// authority key identifiers, critical CA:TRUE), key usage digitalSignature
// and keyCertSign, and the given extended key usages.
func newCertifiedKey(commonName string, eku []x509.ExtKeyUsage, now time.Time) (CertifiedKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, RSABits)
	if err != nil {
		return CertifiedKey{}, fmt.Errorf("keys: %s key: %w", commonName, err)
	}
	// A positive 127-bit random serial, as RFC 5280 §4.1.2.2 allows.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return CertifiedKey{}, fmt.Errorf("keys: %s serial: %w", commonName, err)
	}
	serial.Add(serial, big.NewInt(1))
	// The key identifier of RFC 5280 §4.2.1.2 method 1, as OpenSSL
	// computes it: SHA-1 of the subjectPublicKey bits.
	ski := sha1.Sum(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now,
		NotAfter:              noExpiry,
		SignatureAlgorithm:    x509.SHA256WithRSA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski[:],
		AuthorityKeyId:        ski[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return CertifiedKey{}, fmt.Errorf("keys: %s certificate: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return CertifiedKey{}, fmt.Errorf("keys: %s certificate: %w", commonName, err)
	}
	return CertifiedKey{Certificate: cert, PrivateKey: key}, nil
}

// encodePrivateKey returns key as a PEM PKCS#8 "PRIVATE KEY", the form
// openssl genpkey and req -nodes write and every tool here reads.
func encodePrivateKey(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keys: private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodeCertificate(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// writeFile writes data to path with mode, whatever the umask. Without
// replace it never touches an existing file; with it, the file is
// replaced atomically by a renamed temporary file.
func writeFile(path string, data []byte, mode fs.FileMode, replace bool) error {
	if !replace {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keys: %s %w", path, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		if err := finishFile(f, data, mode); err != nil {
			os.Remove(path)
			return err
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := finishFile(f, data, mode); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// finishFile sets the mode, writes data, syncs and closes f.
func finishFile(f *os.File, data []byte, mode fs.FileMode) error {
	err := f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keys: writing %s: %w", f.Name(), err)
	}
	return nil
}
