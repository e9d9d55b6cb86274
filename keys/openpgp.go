package keys

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// openpgpConfig is the configuration of every OpenPGP operation here:
// SHA-256, and no random salt notation in signatures, so that an Ed25519
// signature of the same manifest at the same time is the same bytes (a
// reproducible build signs reproducibly). now is the signature and key
// creation time.
func openpgpConfig(now time.Time) *packet.Config {
	deterministic := false
	return &packet.Config{
		Algorithm:                             packet.PubKeyAlgoEdDSA,
		Curve:                                 packet.Curve25519,
		DefaultHash:                           crypto.SHA256,
		Time:                                  func() time.Time { return now },
		NonDeterministicSignaturesViaNotation: &deterministic,
	}
}

// newUpdateKey generates the update signing key: a v4 OpenPGP key with an
// Ed25519 (EdDSA) primary key that certifies and signs, one user ID, no
// subkeys and no expiry. v4 EdDSA is what gpg 2.2 (Debian 12), which
// systemd-sysupdate 252 runs, verifies.
func newUpdateKey(userID string, now time.Time) (*openpgp.Entity, error) {
	e, err := openpgp.NewEntity(userID, "", "", openpgpConfig(now))
	if err != nil {
		return nil, fmt.Errorf("keys: OpenPGP key: %w", err)
	}
	// NewEntity adds an encryption subkey; manifests are only signed.
	e.Subkeys = nil
	return e, nil
}

// encodeUpdateSecretKey returns the ASCII-armored transferable secret key.
func encodeUpdateSecretKey(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, fmt.Errorf("keys: OpenPGP secret key: %w", err)
	}
	// The self-signatures made at generation are kept, so the public
	// keyring and the secret key carry the same ones.
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, fmt.Errorf("keys: OpenPGP secret key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("keys: OpenPGP secret key: %w", err)
	}
	return buf.Bytes(), nil
}

// encodeUpdateKeyring returns the public key as binary OpenPGP packets:
// public key, user ID, self-signature, what `gpg --export` writes.
func encodeUpdateKeyring(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("keys: OpenPGP public key: %w", err)
	}
	return buf.Bytes(), nil
}

func (s *Set) loadUpdateKey() (*openpgp.Entity, error) {
	secretPath, keyringPath := s.Path(UpdateKeyFile), s.Path(UpdateKeyringFile)
	f, err := os.Open(secretPath)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	secret, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", secretPath, err)
	}
	if len(secret) != 1 || secret[0].PrivateKey == nil {
		return nil, fmt.Errorf("keys: %s: want one OpenPGP secret key, got %d keys", secretPath, len(secret))
	}
	if secret[0].PrivateKey.Encrypted {
		return nil, fmt.Errorf("keys: %s: the OpenPGP secret key is protected by a passphrase", secretPath)
	}
	data, err := os.ReadFile(keyringPath)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	public, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", keyringPath, err)
	}
	found := false
	for _, e := range public {
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("keys: %s holds secret key material", keyringPath)
		}
		found = found || bytes.Equal(e.PrimaryKey.Fingerprint, secret[0].PrimaryKey.Fingerprint)
	}
	if !found {
		return nil, fmt.Errorf("keys: %s does not hold the public key of %s", keyringPath, secretPath)
	}
	return secret[0], nil
}

// UpdateKeyFingerprint returns the OpenPGP fingerprint of the update
// signing key, in uppercase hex as gpg prints it.
func (s *Set) UpdateKeyFingerprint() string {
	if s.update == nil {
		return ""
	}
	return (&UpdateSigner{s.update}).Fingerprint()
}

// UpdateKeyring returns the binary public keyring of the update signing
// key, the content of import-pubring.gpg.
func (s *Set) UpdateKeyring() ([]byte, error) {
	u, err := s.UpdateSigner()
	if err != nil {
		return nil, err
	}
	return u.Keyring()
}

// errNoUpdateKey is returned for a Set made neither by Load nor Generate.
var errNoUpdateKey = errors.New("keys: the set has no OpenPGP update signing key")

// SignUpdateManifest signs manifest with the set's update key (see
// UpdateSigner.Sign).
func (s *Set) SignUpdateManifest(manifest io.Reader, at time.Time) ([]byte, error) {
	u, err := s.UpdateSigner()
	if err != nil {
		return nil, err
	}
	return u.Sign(manifest, at)
}

// UpdateSigner signs update manifests with an OpenPGP secret key: the key
// set's or one a build definition names (mkosi's Key=).
type UpdateSigner struct {
	entity *openpgp.Entity
}

// UpdateSigner returns the signer of the set's update key.
func (s *Set) UpdateSigner() (*UpdateSigner, error) {
	if s.update == nil {
		return nil, errNoUpdateKey
	}
	return &UpdateSigner{s.update}, nil
}

// ReadUpdateSigner reads an OpenPGP secret key file, ASCII-armored or
// binary as `gpg --export-secret-keys` writes it, holding one key without
// a passphrase.
func ReadUpdateSigner(path string) (*UpdateSigner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		if el, err = openpgp.ReadKeyRing(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("keys: %s: not an OpenPGP secret key: %w", path, err)
		}
	}
	if len(el) != 1 || el[0].PrivateKey == nil {
		return nil, fmt.Errorf("keys: %s: want one OpenPGP secret key, got %d keys", path, len(el))
	}
	if el[0].PrivateKey.Encrypted {
		return nil, fmt.Errorf("keys: %s: the OpenPGP secret key is protected by a passphrase", path)
	}
	return &UpdateSigner{el[0]}, nil
}

// Fingerprint returns the key's fingerprint in uppercase hex, as gpg
// prints it.
func (u *UpdateSigner) Fingerprint() string {
	return strings.ToUpper(hex.EncodeToString(u.entity.PrimaryKey.Fingerprint))
}

// Keyring returns the binary public keyring of the key: the content of
// import-pubring.gpg on the machines that verify its signatures.
func (u *UpdateSigner) Keyring() ([]byte, error) {
	return encodeUpdateKeyring(u.entity)
}

// Sign returns a binary detached OpenPGP signature of manifest
// (SHA256SUMS.gpg for SHA256SUMS), made at time at (the current time if
// zero). A time before the key's creation, such as an old
// SOURCE_DATE_EPOCH, is taken as the creation time, since gpg refuses
// signatures older than their key. The same manifest and time give the
// same bytes.
func (u *UpdateSigner) Sign(manifest io.Reader, at time.Time) ([]byte, error) {
	if at.IsZero() {
		at = time.Now()
	}
	if created := u.entity.PrimaryKey.CreationTime; at.Before(created) {
		at = created
	}
	var buf bytes.Buffer
	if err := openpgp.DetachSign(&buf, u.entity, manifest, openpgpConfig(at.Truncate(time.Second))); err != nil {
		return nil, fmt.Errorf("keys: signing the update manifest: %w", err)
	}
	return buf.Bytes(), nil
}

// VerifyUpdateManifest checks a detached OpenPGP signature (binary or
// ASCII-armored) of manifest against the keys of keyring (binary or
// ASCII-armored) and returns the signer's fingerprint.
func VerifyUpdateManifest(keyring, manifest, signature io.Reader) (string, error) {
	data, err := io.ReadAll(keyring)
	if err != nil {
		return "", fmt.Errorf("keys: reading the keyring: %w", err)
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		if el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data)); err != nil {
			return "", fmt.Errorf("keys: keyring: %w", err)
		}
	}
	sig, err := io.ReadAll(signature)
	if err != nil {
		return "", fmt.Errorf("keys: reading the signature: %w", err)
	}
	if block, aerr := armor.Decode(bytes.NewReader(sig)); aerr == nil {
		if block.Type != openpgp.SignatureType {
			return "", fmt.Errorf("keys: armored %q, want a signature", block.Type)
		}
		if sig, err = io.ReadAll(block.Body); err != nil {
			return "", fmt.Errorf("keys: reading the armored signature: %w", err)
		}
	}
	config := &packet.Config{Time: verificationTime(sig, time.Now())}
	signer, err := openpgp.CheckDetachedSignature(el, manifest, bytes.NewReader(sig), config)
	if err != nil {
		return "", fmt.Errorf("keys: update manifest signature: %w", err)
	}
	if signer == nil {
		return "", errors.New("keys: update manifest signature: no signer")
	}
	return strings.ToUpper(hex.EncodeToString(signer.PrimaryKey.Fingerprint)), nil
}

// verificationTime returns the moment a signature is checked at: now, or
// the signature's creation time when that is later. A machine whose clock
// lags (no battery-backed clock, or not yet synchronized) would otherwise
// refuse a manifest signed moments ago as "expired". The creation time
// proves nothing that the signature itself does not, and an expired key
// or signature is still refused, as every check happens no earlier than
// now.
func verificationTime(sig []byte, now time.Time) func() time.Time {
	at := now
	if p, err := packet.NewReader(bytes.NewReader(sig)).Next(); err == nil {
		if s, ok := p.(*packet.Signature); ok && s.CreationTime.After(at) {
			at = s.CreationTime
		}
	}
	return func() time.Time { return at }
}
