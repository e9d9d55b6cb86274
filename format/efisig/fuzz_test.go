package efisig

import (
	"bytes"
	"crypto/x509"
	"testing"
)

// FuzzParseESL: any input either fails to parse or parses into lists that
// encode back to exactly the input, and whose X.509 certificates and
// variable checks never panic.
func FuzzParseESL(f *testing.F) {
	for _, name := range []string{"PK.esl", "KEK.esl", "db.esl"} {
		f.Add(readTestdata(f, name))
	}
	f.Add(append(readTestdata(f, "PK.esl"), readTestdata(f, "KEK.esl")...))
	f.Add(rawList(CertSHA256, 28+48, 0, 48, make([]byte, 48)...))
	f.Add(rawList(CertX509, 28+3, 3, 16, 1, 2, 3))
	f.Add(rawList(CertX509, 28, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		lists, err := ParseLists(in)
		if err != nil {
			return
		}
		out, err := EncodeLists(lists)
		if err != nil {
			t.Fatalf("parsed lists do not encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", in, out)
		}
		for _, l := range lists {
			_, _ = l.Certificates()
		}
		for _, name := range []string{"PK", "KEK", "db"} {
			_ = CheckVariable(name, lists)
		}
	})
}

// FuzzParseAuth: any input either fails to parse or encodes back to
// exactly itself; verifying it never panics.
func FuzzParseAuth(f *testing.F) {
	for _, name := range []string{"PK.auth", "KEK.auth", "db.auth"} {
		f.Add(readTestdata(f, name))
	}
	f.Add(readTestdata(f, "db.auth")[:40])
	f.Add(make([]byte, 40))
	cert, _ := vectorKey(f, "KEK")
	f.Fuzz(func(t *testing.T, in []byte) {
		av, err := ParseAuth(in)
		if err != nil {
			return
		}
		out, err := av.Encode()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip: %v", err)
		}
		_, _ = av.Verify("db", ImageSecurityDatabase, Attributes, []*x509.Certificate{cert})
		if lists, err := ParseLists(av.Data); err == nil {
			_ = CheckVariable("db", lists)
		}
	})
}
