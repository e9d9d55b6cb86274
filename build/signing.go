package build

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imago-os/imago/esp"
	"github.com/imago-os/imago/format/authenticode"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/internal/pemkey"
	"github.com/imago-os/imago/keys"
)

// keySet returns imago's key set for this build (Options.KeysDir, else
// keys.DefaultDir()), generating it on first use. It is loaded once per
// build and only when some key of the definition is left to it.
func (b *builder) keySet() (*keys.Set, error) {
	if b.keys != nil {
		return b.keys, nil
	}
	dir := b.opts.KeysDir
	if dir == "" {
		var err error
		if dir, err = keys.DefaultDir(); err != nil {
			return nil, err
		}
	}
	set, generated, err := keys.LoadOrGenerate(dir)
	if err != nil {
		return nil, err
	}
	if generated {
		b.progress("generated a key set in %s", dir)
	} else {
		b.progress("using the key set in %s", dir)
	}
	b.keys = set
	return set, nil
}

// verityKey returns the certificate and key that sign the root hash: the
// definition's VerityKey=/VerityCertificate=, else imago's key set.
func (b *builder) verityKey() (*x509.Certificate, crypto.Signer, error) {
	v := b.def.Validation
	return b.certifiedKey("Verity", v.VerityKey, v.VerityCertificate, func(s *keys.Set) keys.CertifiedKey { return s.Verity })
}

// secureBootKey returns the certificate and key that sign for Secure Boot,
// or nils without SecureBoot=: the definition's SecureBootKey= and
// SecureBootCertificate=, else the key set's db key.
func (b *builder) secureBootKey() (*x509.Certificate, crypto.Signer, error) {
	v := b.def.Validation
	if !v.SecureBoot {
		return nil, nil, nil
	}
	return b.certifiedKey("SecureBoot", v.SecureBootKey, v.SecureBootCertificate, func(s *keys.Set) keys.CertifiedKey {
		return keys.CertifiedKey{Certificate: s.DB.Certificate, PrivateKey: s.DB.PrivateKey}
	})
}

// certifiedKey returns the definition's NAMEKey= and NAMECertificate=
// (keyPath, certPath) when given, both or neither, else fromSet's pair
// of imago's key set.
func (b *builder) certifiedKey(name, keyPath, certPath string, fromSet func(*keys.Set) keys.CertifiedKey) (*x509.Certificate, crypto.Signer, error) {
	if keyPath != "" || certPath != "" {
		if keyPath == "" || certPath == "" {
			return nil, nil, fmt.Errorf("validation: %sKey= and %sCertificate= must be given together", name, name)
		}
		return loadCertifiedKey(certPath, keyPath)
	}
	set, err := b.keySet()
	if err != nil {
		return nil, nil, err
	}
	k := fromSet(set)
	return k.Certificate, k.PrivateKey, nil
}

// pcrSigning returns how the UKI's PCR 11 predictions are signed, or nil
// without SignExpectedPcr=: with the definition's SignExpectedPcrKey= (and
// the public key of SignExpectedPcrCertificate= when given), else the key
// set's PCR key. systemd 252 takes only RSA keys for signed policies.
func (b *builder) pcrSigning() (*uki.PCRSigning, error) {
	v := b.def.Validation
	if !v.SignExpectedPcr {
		return nil, nil
	}
	var key crypto.Signer
	var pub crypto.PublicKey
	if v.SignExpectedPcrKey != "" {
		data, err := os.ReadFile(v.SignExpectedPcrKey)
		if err != nil {
			return nil, fmt.Errorf("validation: SignExpectedPcrKey=: %w", err)
		}
		if key, err = pemkey.ParseSigner(data); err != nil {
			return nil, fmt.Errorf("validation: SignExpectedPcrKey=%s: %w", v.SignExpectedPcrKey, err)
		}
		pub = key.Public()
		if v.SignExpectedPcrCertificate != "" {
			block, err := readPEM(v.SignExpectedPcrCertificate)
			if err != nil {
				return nil, fmt.Errorf("validation: SignExpectedPcrCertificate=: %w", err)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("validation: SignExpectedPcrCertificate=%s: %w", v.SignExpectedPcrCertificate, err)
			}
			if !publicKeysEqual(cert.PublicKey, key.Public()) {
				return nil, fmt.Errorf("validation: SignExpectedPcrCertificate=%s does not certify SignExpectedPcrKey=%s", v.SignExpectedPcrCertificate, v.SignExpectedPcrKey)
			}
			pub = cert.PublicKey
		}
	} else {
		set, err := b.keySet()
		if err != nil {
			return nil, err
		}
		key, pub = set.PCRKey, set.PCRKey.Public()
	}
	if _, ok := pub.(*rsa.PublicKey); !ok {
		return nil, errors.New("validation: SignExpectedPcrKey=: systemd 252 verifies signed PCR policies with RSA keys only")
	}
	pubPEM, err := uki.PublicKeyPEM(pub)
	if err != nil {
		return nil, err
	}
	return &uki.PCRSigning{Key: key, PublicKeyPEM: pubPEM}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// autoEnrollKeys returns the key set's authenticated PK, KEK and db updates
// for loader/keys/auto/, or nil without SecureBootAutoEnroll=. They only
// make sense when the key set's db key is the one that signs, so a
// definition with its own SecureBootKey= cannot auto-enroll.
func (b *builder) autoEnrollKeys() (*esp.SecureBootKeys, error) {
	v := b.def.Validation
	if !v.SecureBoot || !v.SecureBootAutoEnroll {
		return nil, nil
	}
	if v.SecureBootKey != "" {
		return nil, errors.New("validation: SecureBootAutoEnroll=yes enrolls the key set's PK, KEK and db, so it cannot go with SecureBootKey=: set SecureBootAutoEnroll=no and enroll your keys yourself")
	}
	set, err := b.keySet()
	if err != nil {
		return nil, err
	}
	return &esp.SecureBootKeys{
		Name: "auto",
		PK:   set.Path(set.PK.AuthFile()),
		KEK:  set.Path(set.KEK.AuthFile()),
		DB:   set.Path(set.DB.AuthFile()),
	}, nil
}

// updateSigner returns the OpenPGP key that signs SHA256SUMS, or nil
// without Sign=: the definition's Key=, else the key set's update key.
// It is read once per build.
func (b *builder) updateSigner() (*keys.UpdateSigner, error) {
	v := b.def.Validation
	if !v.Sign || b.update != nil {
		return b.update, nil
	}
	if v.Key != "" {
		u, err := keys.ReadUpdateSigner(v.Key)
		if err != nil {
			return nil, fmt.Errorf("validation: Key=: %w", err)
		}
		b.update = u
		return u, nil
	}
	set, err := b.keySet()
	if err != nil {
		return nil, err
	}
	b.update, err = set.UpdateSigner()
	return b.update, err
}

// signBootLoader writes systemd-boot signed for Secure Boot into the work
// directory and returns its path, or returns src unchanged without
// SecureBoot=.
func (b *builder) signBootLoader(src string) (string, error) {
	cert, key, err := b.secureBootKey()
	if err != nil || cert == nil {
		return src, err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("systemd-boot (package systemd-boot-efi): %w", err)
	}
	var opts authenticode.Options
	if b.epoch != nil {
		opts.Time = *b.epoch
	}
	signed, err := authenticode.SignWithOptions(data, cert, key, opts)
	if err != nil {
		return "", fmt.Errorf("signing %s: %w", src, err)
	}
	dst := filepath.Join(b.work, filepath.Base(src)+".signed")
	if err := os.WriteFile(dst, signed, 0o644); err != nil {
		return "", err
	}
	b.progress("esp: %s signed by %s", filepath.Base(src), cert.Subject)
	return dst, nil
}

// loadCertifiedKey reads a PEM certificate and a PEM private key (PKCS#8,
// PKCS#1 or SEC 1) and checks that they belong together.
func loadCertifiedKey(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	block, err := readPEM(certPath)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	signer, err := pemkey.ParseSigner(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !publicKeysEqual(cert.PublicKey, signer.Public()) {
		return nil, nil, fmt.Errorf("%s does not certify the key in %s", certPath, keyPath)
	}
	return cert, signer, nil
}

func readPEM(path string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return block, nil
}
