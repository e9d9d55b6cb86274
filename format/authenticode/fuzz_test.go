package authenticode

import (
	"bytes"
	"crypto/x509"
	"os"
	"testing"
)

// FuzzVerify feeds arbitrary bytes as a signed PE image: parsing the
// certificate table and verifying must never panic; whatever Signatures
// accepts must lie inside the image and carry a digest of its hash's size;
// a Verify success is only possible with the digest the image really has,
// and re-signing an image Signatures accepts must keep its table entries.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"unsigned.efi", "unsigned.signed.efi", "unsigned-trailer.signed.efi"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cert, key := testCert(f), testKey(f)
	trusted := []*x509.Certificate{cert}
	f.Fuzz(func(t *testing.T, image []byte) {
		entries, errEntries := Certificates(image)
		sigs, err := Signatures(image)
		if err == nil {
			for _, s := range sigs {
				if len(s.Digest) != s.Hash.Size() {
					t.Fatalf("digest of %d bytes for %v", len(s.Digest), s.Hash)
				}
			}
		}
		signer, err := Verify(image, trusted)
		if err == nil && (signer == nil || !signer.Equal(cert)) {
			t.Fatalf("Verify succeeded with signer %v", signer)
		}
		if errEntries != nil || len(image) > 1<<16 {
			return
		}
		signed, err := Sign(image, cert, key)
		if err != nil {
			return
		}
		after, err := Certificates(signed)
		if err != nil || len(after) != len(entries)+1 {
			t.Fatalf("after signing: %d entries (%v), want %d", len(after), err, len(entries)+1)
		}
		for i := range entries {
			if !bytes.Equal(after[i].Data, entries[i].Data) {
				t.Fatalf("entry %d changed by signing", i)
			}
		}
		if _, err := Verify(signed, trusted); err != nil {
			t.Fatalf("our own signature does not verify: %v", err)
		}
	})
}
