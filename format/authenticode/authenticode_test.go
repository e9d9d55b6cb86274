package authenticode

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/imago-os/imago/format/measure"
	"github.com/imago-os/imago/format/pe"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testCert(t testing.TB) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(readFile(t, "testdata/db-test.crt"))
	if block == nil {
		t.Fatal("db-test.crt: no PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := measure.ParsePrivateKeyPEM(readFile(t, "testdata/db-test.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signingTimeOf returns the signingTime of an image's first signature.
func signingTimeOf(t testing.TB, image []byte) time.Time {
	t.Helper()
	sigs, err := Signatures(image)
	if err != nil || len(sigs) == 0 {
		t.Fatalf("signatures: %v (%d)", err, len(sigs))
	}
	for _, a := range sigs[len(sigs)-1].Message.Signers[0].SignedAttributes {
		if a.Type.Equal(oidSigningTime) {
			var when time.Time
			if _, err := asn1.Unmarshal(a.Values[0], &when); err != nil {
				t.Fatal(err)
			}
			return when
		}
	}
	t.Fatal("no signingTime")
	return time.Time{}
}

// TestSignMatchesSbsign re-signs the inputs sbsign 0.9.4 signed and compares
// every byte (with sbsign's signing time).
func TestSignMatchesSbsign(t *testing.T) {
	for _, name := range []string{"unsigned", "unsigned-trailer"} {
		t.Run(name, func(t *testing.T) {
			in := readFile(t, "testdata/"+name+".efi")
			want := readFile(t, "testdata/"+name+".signed.efi")
			got, err := SignWithOptions(in, testCert(t), testKey(t), Options{Time: signingTimeOf(t, want)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("output differs from sbsign's (%d vs %d bytes; first difference at %d)", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestVerify(t *testing.T) {
	cert := testCert(t)
	signed := readFile(t, "testdata/unsigned.signed.efi")
	signer, err := Verify(signed, []*x509.Certificate{cert})
	if err != nil {
		t.Fatalf("sbsign's output does not verify: %v", err)
	}
	if !signer.Equal(cert) {
		t.Errorf("signer %v, want %v", signer.Subject, cert.Subject)
	}

	// One changed byte in section data breaks the digest.
	f, err := pe.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(signed)
	tampered[f.Sections[0].PointerToRawData] ^= 1
	if _, err := Verify(tampered, []*x509.Certificate{cert}); err == nil {
		t.Error("tampered image verified")
	}

	// Another certificate is not trusted.
	otherCert, _ := newCert(t, "other", nil, nil)
	if _, err := Verify(signed, []*x509.Certificate{otherCert}); err == nil {
		t.Error("verified against the wrong certificate")
	}

	if _, err := Verify(readFile(t, "testdata/unsigned.efi"), []*x509.Certificate{cert}); !errors.Is(err, ErrNotSigned) {
		t.Errorf("unsigned image: %v, want ErrNotSigned", err)
	}
}

func TestSignTwiceAppends(t *testing.T) {
	cert, key := testCert(t), testKey(t)
	once := readFile(t, "testdata/unsigned.signed.efi")
	twice, err := Sign(once, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(twice[0x200:0xa00+0x648], once[0x200:0xa00+0x648]) {
		t.Error("the first signature or the image changed")
	}
	entries, err := Certificates(twice)
	if err != nil || len(entries) != 2 {
		t.Fatalf("entries %d, %v; want 2", len(entries), err)
	}
	if _, err := Verify(twice, []*x509.Certificate{cert}); err != nil {
		t.Fatal(err)
	}
}

// newCert makes an RSA certificate for name, self-signed when parent is nil.
func newCert(t testing.TB, name string, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  parent == nil,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestVerifyChain: a signature by a leaf certificate verifies against the CA
// that issued it (the leaf is embedded in the signature), as with sbverify,
// and not against an unrelated CA.
func TestVerifyChain(t *testing.T) {
	ca, caKey := newCert(t, "CA", nil, nil)
	leaf, leafKey := newCert(t, "leaf", ca, caKey)
	signed, err := Sign(readFile(t, "testdata/unsigned.efi"), leaf, leafKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := Verify(signed, []*x509.Certificate{ca})
	if err != nil {
		t.Fatalf("leaf-signed image does not verify against its CA: %v", err)
	}
	if !signer.Equal(leaf) {
		t.Errorf("signer %v, want the leaf", signer.Subject)
	}
	other, _ := newCert(t, "other CA", nil, nil)
	if _, err := Verify(signed, []*x509.Certificate{other}); err == nil {
		t.Error("verified against an unrelated CA")
	}
	sigs, err := Signatures(signed)
	if err != nil || len(sigs) != 1 || sigs[0].Signer() == nil || !sigs[0].Signer().Equal(leaf) {
		t.Fatalf("Signatures: %v, %+v", err, sigs)
	}
}
