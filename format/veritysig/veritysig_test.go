package veritysig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

// The vector: a signature partition written by systemd-repart 252 for a
// 10 MiB root partition, with the RSA key and certificate beside it.
const (
	vectorPartition   = "testdata/repart252.partition"
	vectorKey         = "testdata/repart252-signer.key"
	vectorCert        = "testdata/repart252-signer.crt"
	vectorRootHash    = "5c3bba5d17871dfb667171f3429b27a11a64a9c25e15f09be1c79b66b70857f5"
	vectorFingerprint = "64e4b92ed076cccb60878d4b6c198f5aec37bf0bcb67db023381da618a732c4f"
	vectorJSONLength  = 1750
)

func readPEMBlock(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return block.Bytes
}

func vectorSigner(t testing.TB) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	cert, err := x509.ParseCertificate(readPEMBlock(t, vectorCert))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(readPEMBlock(t, vectorKey))
	if err != nil {
		t.Fatal(err)
	}
	return cert, key.(crypto.Signer)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRepart252Vector(t *testing.T) {
	part, err := os.ReadFile(vectorPartition)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := vectorSigner(t)
	sig, err := Parse(part)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sig.RootHash); got != vectorRootHash {
		t.Errorf("rootHash %s, want %s", got, vectorRootHash)
	}
	if got := hex.EncodeToString(sig.CertificateFingerprint); got != vectorFingerprint {
		t.Errorf("fingerprint %s, want %s", got, vectorFingerprint)
	}
	if got := hex.EncodeToString(Fingerprint(cert)); got != vectorFingerprint {
		t.Errorf("Fingerprint(cert) %s, want %s", got, vectorFingerprint)
	}
	signers, err := sig.Verify([]*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	if len(signers) != 1 || !signers[0].Equal(cert) {
		t.Errorf("signers %v", signers)
	}
	if err := sig.CheckRootHash(mustHex(t, vectorRootHash)); err != nil {
		t.Error(err)
	}

	// Signing the same root hash with the same RSA key reproduces repart's
	// partition byte for byte: the JSON text and the zeros after it.
	ours, err := Sign(mustHex(t, vectorRootHash), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	text, err := ours.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(text) != vectorJSONLength || !bytes.Equal(text, part[:len(text)]) {
		t.Fatalf("JSON differs from repart's:\nours   %s\nrepart %s", text, bytes.TrimRight(part, "\x00"))
	}
	full, err := ours.MarshalPartition(PartitionSize)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(full, part) {
		t.Error("partition differs from repart's")
	}
}

func TestMarshalFormat(t *testing.T) {
	sig := &Signature{RootHash: []byte{0xab, 0xcd}, CertificateFingerprint: bytes.Repeat([]byte{0x01}, 32), PKCS7: []byte{0xfb, 0xff}}
	text, err := sig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"rootHash":"abcd","certificateFingerprint":"` + strings.Repeat("01", 32) + `","signature":"+/8="}`
	if string(text) != want {
		t.Errorf("got  %s\nwant %s", text, want)
	}
	sig.CertificateFingerprint = nil
	text, _ = sig.Marshal()
	if want := `{"rootHash":"abcd","signature":"+/8="}`; string(text) != want {
		t.Errorf("without fingerprint: got %s, want %s", text, want)
	}
	part, err := sig.MarshalPartition(4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(part) != 4096 || !bytes.Equal(part[:len(text)], text) || bytes.ContainsFunc(part[len(text):], func(r rune) bool { return r != 0 }) {
		t.Error("partition is not the text NUL-padded to 4096 bytes")
	}
	if _, err := sig.MarshalPartition(len(text)); err == nil {
		t.Error("partition without room for a NUL accepted")
	}
	if _, err := sig.MarshalPartition(len(text) + 1); err != nil {
		t.Errorf("partition with exactly one NUL: %v", err)
	}
	if _, err := sig.MarshalPartition(MaxPartitionSize + 4096); err == nil {
		t.Error("partition larger than systemd reads accepted")
	}
	if _, err := (&Signature{PKCS7: []byte{1}}).Marshal(); err == nil {
		t.Error("empty root hash marshalled")
	}
	if _, err := (&Signature{RootHash: []byte{1}}).Marshal(); err == nil {
		t.Error("empty signature marshalled")
	}
}

func TestParseAcceptsWhatSystemdAccepts(t *testing.T) {
	cases := map[string]string{
		"no NUL at all":          `{"rootHash":"abcd","signature":"+/8="}`,
		"uppercase hex":          `{"rootHash":"ABCD","signature":"+/8="}`,
		"whitespace everywhere":  " \n{ \"signature\" : \"+/\\n8=\" ,\t\"rootHash\":\"ab\\tcd\" }\n",
		"unknown keys":           `{"x":[1,{"y":null}],"rootHash":"abcd","signature":"+/8=","z":true}`,
		"null fingerprint":       `{"rootHash":"abcd","certificateFingerprint":null,"signature":"+/8="}`,
		"escaped key and values": `{"root\u0048ash":"ab\u0063d","signature":"+\/8="}`,
	}
	for name, text := range cases {
		sig, err := Parse([]byte(text))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(sig.RootHash, []byte{0xab, 0xcd}) || !bytes.Equal(sig.PKCS7, []byte{0xfb, 0xff}) || sig.CertificateFingerprint != nil {
			t.Errorf("%s: parsed %+v", name, sig)
		}
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	fp := strings.Repeat("00", 32)
	padded := func(s string, extra ...byte) []byte {
		b := make([]byte, 4096)
		copy(b, s)
		for i, c := range extra {
			b[len(s)+10+i] = c
		}
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"embedded NUL", padded(`{"rootHash":"abcd","signature":"+/8="}`, 'x'), "embedded NUL byte at offset 38 followed by data at offset 48"},
		{"too large", make([]byte, MaxPartitionSize+1), "exceed"},
		{"empty", make([]byte, 4096), "no JSON value"},
		{"not an object", []byte(`["rootHash"]`), "not an object"},
		{"missing rootHash", []byte(`{"signature":"+/8="}`), `field "rootHash": missing`},
		{"missing signature", []byte(`{"rootHash":"abcd"}`), `field "signature": missing`},
		{"rootHash not a string", []byte(`{"rootHash":12,"signature":"+/8="}`), `field "rootHash": a number is not a string`},
		{"signature null", []byte(`{"rootHash":"ab","signature":null}`), `field "signature": null is not a string`},
		{"rootHash odd hex", []byte(`{"rootHash":"abc","signature":"+/8="}`), `field "rootHash": invalid hex`},
		{"rootHash not hex", []byte(`{"rootHash":"zz","signature":"+/8="}`), `field "rootHash": invalid hex`},
		{"rootHash empty", []byte(`{"rootHash":"","signature":"+/8="}`), `field "rootHash": empty`},
		{"signature unpadded", []byte(`{"rootHash":"ab","signature":"+/8"}`), `field "signature": invalid base64`},
		{"signature trailing bits", []byte(`{"rootHash":"ab","signature":"+/9="}`), `field "signature": invalid base64`},
		{"signature empty", []byte(`{"rootHash":"ab","signature":""}`), `field "signature": empty`},
		{"fingerprint short", []byte(`{"rootHash":"ab","certificateFingerprint":"00","signature":"+/8="}`), `field "certificateFingerprint": 1 bytes`},
		{"fingerprint object", []byte(`{"rootHash":"ab","certificateFingerprint":{},"signature":"+/8="}`), `field "certificateFingerprint": an object`},
		{"duplicate key", []byte(`{"rootHash":"ab","rootHash":"cd","signature":"+/8="}`), `field "rootHash" occurs twice`},
		{"trailing data", []byte(`{"rootHash":"ab","signature":"+/8="} {}`), "data after the JSON object"},
		{"truncated", []byte(`{"rootHash":"ab","signature":"+/8=`), "JSON"},
		{"fingerprint ok but signature bad", []byte(`{"rootHash":"ab","certificateFingerprint":"` + fp + `","signature":"!"}`), `field "signature"`},
	}
	for _, c := range cases {
		_, err := Parse(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "veritysig: ") {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func newECSigner(t testing.TB) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "imago verity test"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestSignVerifyEC(t *testing.T) {
	cert, key := newECSigner(t)
	other, _ := newECSigner(t)
	rootHash := mustHex(t, vectorRootHash)
	sig, err := Sign(rootHash, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	part, err := sig.MarshalPartition(PartitionSize)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsed.Verify([]*x509.Certificate{other, cert}); err != nil {
		t.Fatal(err)
	}
	if _, err := parsed.Verify([]*x509.Certificate{other}); err == nil || !strings.Contains(err.Error(), "not among the trusted") {
		t.Errorf("untrusted signer: %v", err)
	}
	if _, err := parsed.Verify(nil); err == nil {
		t.Error("verified with no trusted certificates")
	}
	// The signature is bound to the root hash in the JSON.
	parsed.RootHash[0] ^= 1
	if _, err := parsed.Verify([]*x509.Certificate{cert}); err == nil || !strings.Contains(err.Error(), "signature is invalid") {
		t.Errorf("other root hash: %v", err)
	}
	if err := parsed.CheckRootHash(rootHash); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("CheckRootHash: %v", err)
	}
	parsed.PKCS7 = []byte{0x30, 0x00}
	if _, err := parsed.Verify([]*x509.Certificate{cert}); err == nil || !strings.Contains(err.Error(), "signature: pkcs7") {
		t.Errorf("malformed PKCS#7: %v", err)
	}
	if _, err := Sign(nil, cert, key); err == nil {
		t.Error("empty root hash signed")
	}
}
