package pkcs7

import (
	"bytes"
	"crypto/x509"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse and, for whatever parses, to
// Verify: nothing may panic, a parsed message must be exactly its input, and
// parsing it again must give the same structure.
func FuzzParse(f *testing.F) {
	s := newTestSigner(f, "p256")
	r := newTestSigner(f, "rsa2048")
	for _, signer := range []*testSigner{s, r} {
		for _, opts := range []SignOptions{
			{Detached: true},
			{},
			{Detached: true, SignedAttributes: true},
			{SignedAttributes: true, ExtraCertificates: []*x509.Certificate{s.cert}},
			{Detached: true, NoCertificates: true},
		} {
			der, err := Sign([]byte(testRootHash), signer.cert, signer.key, opts)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(der)
		}
	}
	f.Add(sbsignMessage(f))
	f.Add([]byte{0x30, 0x80, 0, 0})
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	trusted := []*x509.Certificate{s.cert, r.cert}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := Parse(data)
		if err != nil {
			return
		}
		if !bytes.Equal(sd.Raw, data) {
			t.Fatal("Raw is not the whole input")
		}
		again, err := Parse(sd.Raw)
		if err != nil {
			t.Fatalf("re-parse failed: %v", err)
		}
		if describeAll(again) != describeAll(sd) {
			t.Fatal("re-parse differs")
		}
		if (sd.Content == nil) != (sd.ContentBytes() == nil) {
			t.Fatal("ContentBytes disagrees with Content")
		}
		_, _ = sd.Certificates()
		if sd.Content != nil {
			_, _ = sd.Verify(trusted)
		} else {
			_, _ = sd.VerifyDetached([]byte(testRootHash), trusted)
		}
	})
}

// describeAll extends describe with the parts it leaves out.
func describeAll(sd *SignedData) string {
	var b bytes.Buffer
	for _, si := range sd.Signers {
		b.Write(si.SubjectKeyID)
		b.Write(si.Signature)
		b.Write(si.RawSignedAttributes)
		for _, a := range append(append([]Attribute{}, si.SignedAttributes...), si.UnsignedAttributes...) {
			b.WriteString(a.Type.String())
			for _, v := range a.Values {
				b.Write(v)
			}
		}
	}
	return describeSafe(sd) + b.String()
}

// describeSafe is describe for messages whose signers may use a subject key
// identifier (no serial number).
func describeSafe(sd *SignedData) string {
	c := *sd
	c.Signers = nil
	out := describe(&c)
	for _, si := range sd.Signers {
		out += " " + si.DigestAlgorithm.Algorithm.String() + si.SignatureAlgorithm.Algorithm.String()
		if si.SerialNumber != nil {
			out += si.SerialNumber.String()
		}
	}
	return out
}
