package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

const testRootHash = "c67d57c29a5ff038b81a5a3824cff717cfaae73c7eafdf3caf530e09a626ca3c"

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, kind := range []string{"rsa2048", "p256", "p384"} {
		t.Run(kind, func(t *testing.T) {
			s := newTestSigner(t, kind)
			content := []byte(testRootHash)
			for _, opts := range []SignOptions{
				{Detached: true},
				{},
				{Detached: true, SignedAttributes: true},
				{SignedAttributes: true, Hash: crypto.SHA384},
				{Detached: true, Hash: crypto.SHA512},
			} {
				der, err := Sign(content, s.cert, s.key, opts)
				if err != nil {
					t.Fatal(err)
				}
				sd := mustParse(t, der)
				if !bytes.Equal(sd.Raw, der) {
					t.Error("Raw differs from the input")
				}
				var signers []*x509.Certificate
				if opts.Detached {
					if sd.Content != nil {
						t.Error("detached message carries content")
					}
					signers, err = sd.VerifyDetached(content, []*x509.Certificate{s.cert})
				} else {
					if got := sd.ContentBytes(); !bytes.Equal(got, content) {
						t.Errorf("ContentBytes = %q", got)
					}
					signers, err = sd.Verify([]*x509.Certificate{s.cert})
				}
				if err != nil {
					t.Fatalf("%+v: %v", opts, err)
				}
				if len(signers) != 1 || signers[0] != s.cert {
					t.Errorf("signers = %v", signers)
				}
				certs, err := sd.Certificates()
				if err != nil || len(certs) != 1 || !certs[0].Equal(s.cert) {
					t.Errorf("embedded certificates = %v, %v", certs, err)
				}
			}
		})
	}
}

func TestSignEncodingRSA(t *testing.T) {
	// The fixed parts of the encoding OpenSSL writes; the interop tests
	// compare whole messages byte for byte.
	s := newTestSigner(t, "rsa2048")
	der, err := Sign([]byte(testRootHash), s.cert, s.key, SignOptions{Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	sd := mustParse(t, der)
	wantNull := []byte{tagNull, 0}
	if sd.Version != 1 || len(sd.DigestAlgorithms) != 1 || !sd.DigestAlgorithms[0].Algorithm.Equal(oidSHA256) ||
		!bytes.Equal(sd.DigestAlgorithms[0].Parameters.FullBytes, wantNull) {
		t.Errorf("SignedData header: version %d, digestAlgorithms %+v", sd.Version, sd.DigestAlgorithms)
	}
	if !IsData(sd.ContentType) {
		t.Errorf("content type %v", sd.ContentType)
	}
	si := sd.Signers[0]
	if si.Version != 1 || !bytes.Equal(si.RawIssuer, s.cert.RawIssuer) || si.SerialNumber.Cmp(s.cert.SerialNumber) != 0 {
		t.Errorf("signer identifier: %+v", si)
	}
	if !si.SignatureAlgorithm.Algorithm.Equal(oidRSAEncryption) || !bytes.Equal(si.SignatureAlgorithm.Parameters.FullBytes, wantNull) {
		t.Errorf("signature algorithm %+v", si.SignatureAlgorithm)
	}
	if si.SignedAttributes != nil || si.UnsignedAttributes != nil {
		t.Error("attributes present")
	}
	// The detached encapsulated content is exactly SEQUENCE { id-data }.
	if !bytes.Contains(der, []byte{0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0}) {
		t.Error("encapsulated content info is not SEQUENCE { id-data } followed by certificates")
	}
}

func TestSignedAttributesSortedAndChecked(t *testing.T) {
	s := newTestSigner(t, "p256")
	extra, err := NewAttribute(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}, asn1.RawValue{Tag: asn1.TagUTCTime, Bytes: []byte("260101000000Z")})
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("hello")
	der, err := Sign(content, s.cert, s.key, SignOptions{Detached: true, SignedAttributes: true, ExtraSignedAttributes: []Attribute{extra}})
	if err != nil {
		t.Fatal(err)
	}
	si := mustParse(t, der).Signers[0]
	var types []string
	for _, a := range si.SignedAttributes {
		types = append(types, a.Type.String())
	}
	// DER order: by encoding, here by length (25-, 28- and 47-byte SEQUENCEs).
	want := "1.2.840.113549.1.9.3 1.2.840.113549.1.9.5 1.2.840.113549.1.9.4"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("attribute order %q, want %q", got, want)
	}
	digest := sha256.Sum256(content)
	for _, a := range si.SignedAttributes {
		if a.Type.Equal(oidAttributeMessageDigest) && !bytes.Equal(a.Values[0], append([]byte{tagOctetString, 32}, digest[:]...)) {
			t.Errorf("messageDigest %x", a.Values[0])
		}
	}
	if _, err := Sign(content, s.cert, s.key, SignOptions{ExtraSignedAttributes: []Attribute{extra}}); err == nil {
		t.Error("extra signed attributes without SignedAttributes accepted")
	}
	md := Attribute{Type: oidAttributeMessageDigest, Values: [][]byte{{tagOctetString, 0}}}
	if _, err := Sign(content, s.cert, s.key, SignOptions{SignedAttributes: true, ExtraSignedAttributes: []Attribute{md}}); err == nil {
		t.Error("caller-supplied messageDigest accepted")
	}
}

func TestVerifyRejects(t *testing.T) {
	s := newTestSigner(t, "rsa2048")
	other := newTestSigner(t, "rsa2048")
	content := []byte(testRootHash)
	trusted := []*x509.Certificate{s.cert}
	detached, _ := Sign(content, s.cert, s.key, SignOptions{Detached: true})
	withAttrs, _ := Sign(content, s.cert, s.key, SignOptions{Detached: true, SignedAttributes: true})
	embedded, _ := Sign(content, s.cert, s.key, SignOptions{})

	flip := func(der []byte, at int) []byte {
		out := bytes.Clone(der)
		out[at] ^= 1
		return out
	}
	cases := []struct {
		name    string
		der     []byte
		content []byte
		trusted []*x509.Certificate
		want    string
	}{
		{"other content", detached, []byte(strings.ToUpper(testRootHash)), trusted, "signature is invalid"},
		{"content with newline", detached, append(bytes.Clone(content), '\n'), trusted, "signature is invalid"},
		{"untrusted signer", detached, content, []*x509.Certificate{other.cert}, "not among the trusted"},
		{"no trusted certificates", detached, content, nil, "no trusted certificates"},
		{"tampered signature", flip(detached, len(detached)-1), content, trusted, "signature is invalid"},
		{"attributes, other content", withAttrs, []byte("x"), trusted, "messageDigest attribute does not match"},
		{"embedded content given detached", embedded, content, trusted, "carries its content"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sd := mustParse(t, c.der)
			_, err := sd.VerifyDetached(c.content, c.trusted)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if _, err := mustParse(t, detached).Verify(trusted); err == nil || !strings.Contains(err.Error(), "detached") {
		t.Errorf("Verify of detached message: %v", err)
	}

	// A signer whose digest is not listed in digestAlgorithms fails, as in
	// OpenSSL: replace the SET's sha256 by sha384 (same length).
	listed := bytes.Clone(detached)
	i := bytes.Index(listed, []byte{0x31, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01})
	if i < 0 {
		t.Fatal("digestAlgorithms SET not found")
	}
	listed[i+14] = 0x02
	if _, err := mustParse(t, listed).VerifyDetached(content, trusted); err == nil || !strings.Contains(err.Error(), "not listed") {
		t.Errorf("unlisted digest: %v", err)
	}
}

func TestSignRejectsMismatchedKey(t *testing.T) {
	a, b := newTestSigner(t, "p256"), newTestSigner(t, "p256")
	if _, err := Sign([]byte("x"), a.cert, b.key, SignOptions{}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("err = %v", err)
	}
	if _, err := Sign([]byte("x"), a.cert, a.key, SignOptions{Hash: crypto.SHA1}); err == nil {
		t.Error("SHA-1 signing accepted")
	}
	if _, err := Sign([]byte("x"), a.cert, a.key, SignOptions{ContentType: asn1.ObjectIdentifier{1, 2, 3}}); err == nil {
		t.Error("non-DER content of a non-data type accepted")
	}
}

func TestParseRejects(t *testing.T) {
	s := newTestSigner(t, "p256")
	good, _ := Sign([]byte("x"), s.cert, s.key, SignOptions{Detached: true})
	indefinite := bytes.Clone(good)
	indefinite[1] = 0x80
	cases := map[string][]byte{
		"empty":           nil,
		"trailing byte":   append(bytes.Clone(good), 0),
		"truncated":       good[:len(good)-1],
		"indefinite":      indefinite,
		"not signed data": {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0, 0x00},
		"long form short": {0x30, 0x81, 0x01, 0x00},
	}
	for name, der := range cases {
		if _, err := Parse(der); err == nil {
			t.Errorf("%s: parsed", name)
		} else if !strings.HasPrefix(err.Error(), "pkcs7: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

// sbsignMessage returns the PKCS#7 blob of the first WIN_CERTIFICATE of a PE
// signed by sbsign 0.9.4 (a vector produced with the real tool).
func sbsignMessage(t testing.TB) []byte {
	t.Helper()
	pe, err := os.ReadFile("testdata/sbsign-signed.efi")
	if err != nil {
		t.Fatal(err)
	}
	peHeader := binary.LittleEndian.Uint32(pe[0x3c:])
	optional := peHeader + 24
	dirs := optional + 112 // PE32+
	if binary.LittleEndian.Uint16(pe[optional:]) == 0x10b {
		dirs = optional + 96
	}
	certTable := binary.LittleEndian.Uint32(pe[dirs+4*8:])
	length := binary.LittleEndian.Uint32(pe[certTable:])
	return pe[certTable+8 : certTable+length]
}

func TestAuthenticodeFromSbsign(t *testing.T) {
	der := sbsignMessage(t)
	sd := mustParse(t, der)
	if got := sd.ContentType.String(); got != "1.3.6.1.4.1.311.2.1.4" {
		t.Fatalf("content type %s, want SpcIndirectDataContent", got)
	}
	cert, err := x509.ParseCertificate(readPEM(t, "testdata/sbsign-signer.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sd.Verify([]*x509.Certificate{cert}); err != nil {
		t.Fatalf("sbsign's signature does not verify: %v", err)
	}

	// Re-sign the same content with the same key and the attributes sbsign
	// chose (signingTime, S/MIME capabilities): the bytes must be identical.
	keyAny, err := x509.ParsePKCS8PrivateKey(readPEM(t, "testdata/sbsign-signer.key"))
	if err != nil {
		t.Fatal(err)
	}
	var extra []Attribute
	for _, a := range sd.Signers[0].SignedAttributes {
		if !a.Type.Equal(oidAttributeContentType) && !a.Type.Equal(oidAttributeMessageDigest) {
			extra = append(extra, a)
		}
	}
	ours, err := Sign(sd.Content, cert, keyAny.(crypto.Signer), SignOptions{
		ContentType: sd.ContentType, SignedAttributes: true, ExtraSignedAttributes: extra,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, der) {
		t.Errorf("our Authenticode SignedData differs from sbsign's:\nours   %s\nsbsign %s", hex.EncodeToString(ours), hex.EncodeToString(der))
	}
}
