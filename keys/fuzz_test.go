package keys

import (
	"bytes"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// FuzzVerifyUpdateManifest: a downloaded SHA256SUMS.gpg is untrusted.
// Whatever its bytes, verification never panics, and when it succeeds the
// signer is the set's key and the signature is one the key made over the
// manifest.
func FuzzVerifyUpdateManifest(f *testing.F) {
	s := sharedSet(f)
	keyring, err := s.UpdateKeyring()
	if err != nil {
		f.Fatal(err)
	}
	manifest := []byte("0123456789012345678901234567890123456789012345678901234567890123  imago_1.raw\n")
	sig, err := s.SignUpdateManifest(bytes.NewReader(manifest), time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	var armored bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&armored, s.update, bytes.NewReader(manifest), openpgpConfig(time.Now())); err != nil {
		f.Fatal(err)
	}
	f.Add(armored.Bytes())
	f.Add(keyring)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, signature []byte) {
		fpr, err := VerifyUpdateManifest(bytes.NewReader(keyring), bytes.NewReader(manifest), bytes.NewReader(signature))
		if err != nil {
			return
		}
		if fpr != s.UpdateKeyFingerprint() {
			t.Fatalf("verified with signer %s", fpr)
		}
		if _, err := VerifyUpdateManifest(bytes.NewReader(keyring), bytes.NewReader(append(manifest, 'x')), bytes.NewReader(signature)); err == nil {
			t.Fatal("the signature also verifies another manifest")
		}
	})
}
