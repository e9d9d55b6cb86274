package efisig

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/imago-os/imago/format/uuid"
)

// vectorOwner is the owner GUID the vectors in testdata were made with
// (cert-to-efi-sig-list -g, sign-efi-sig-list -g).
var vectorOwner = mustGUID("11111111-2222-3333-4444-555555555555")

// vectorTime is the timestamp of the vectors (sign-efi-sig-list -t
// "2025-01-01 00:00:00").
var vectorTime = Time{Year: 2025, Month: 1, Day: 1}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pemBlock returns the DER of the only PEM block of file.
func pemBlock(t testing.TB, data []byte, wantType string) []byte {
	t.Helper()
	block, rest := pem.Decode(data)
	if block == nil || block.Type != wantType {
		t.Fatalf("want one PEM block %q", wantType)
	}
	if next, _ := pem.Decode(rest); next != nil {
		t.Fatal("more than one PEM block")
	}
	return block.Bytes
}

// vectorKey loads NAME.crt and NAME.key from testdata.
func vectorKey(t testing.TB, name string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	cert, err := x509.ParseCertificate(pemBlock(t, readTestdata(t, name+".crt"), "CERTIFICATE"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(pemBlock(t, readTestdata(t, name+".key"), "PRIVATE KEY"))
	if err != nil {
		t.Fatal(err)
	}
	return cert, key.(crypto.Signer)
}

// vectorSigner names the key that signed each vector's .auth: PK signs
// itself and KEK, KEK signs db.
var vectorSigner = map[string]string{"PK": "PK", "KEK": "PK", "db": "KEK"}

func mustVendor(t testing.TB, name string) uuid.UUID {
	t.Helper()
	v, ok := VendorOf(name)
	if !ok {
		t.Fatalf("no vendor for %s", name)
	}
	return v
}
