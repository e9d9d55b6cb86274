package measure

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParsePCRSig checks that any document ParsePCRSig accepts encodes, in
// both layouts, to a document that parses back to the same value.
func FuzzParsePCRSig(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/expected/s*.json")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{}`, `{"sha256":[]}`, "{\"sha1\":[{\"pcrs\":[0,23,11,11],\"pkfp\":\"AbCd\",\"pol\":\"\",\"sig\":\"AB==\"}]}\x00",
		`{"sha256":[{"phase":"enter-initrd","pcrs":[11],"x":[{"y":null}],"sig":"AAAA"}],"\u00e9\n":[]}`,
		`{"sha256":[{"pcrs":[1e1]}]}`, `{"a":[{}],"b":[{},{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePCRSig(data)
		if err != nil {
			return
		}
		for _, format := range []JSONFormat{JSONShort, JSONPretty, JSONShortNoNewline} {
			enc := p.Encode(format)
			q, err := ParsePCRSig(enc)
			if err != nil {
				t.Fatalf("re-parse of %q: %v", enc, err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip changed %+v into %+v", p, q)
			}
		}
	})
}

// FuzzParsePublicKeyPEM checks that every public key ParsePublicKeyPEM
// accepts has a fingerprint, and that private keys parse into signers whose
// public half does too.
func FuzzParsePublicKeyPEM(f *testing.F) {
	for _, p := range []string{"testdata/inputs/tpm2-pcr-public.pem", "testdata/inputs/tpm2-pcr-private.pem"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if pub, err := ParsePublicKeyPEM(data); err == nil {
			if _, err := KeyFingerprint(pub); err != nil {
				t.Fatalf("accepted key has no fingerprint: %v", err)
			}
		}
		if key, err := ParsePrivateKeyPEM(data); err == nil {
			if _, err := KeyFingerprint(key.Public()); err != nil {
				t.Fatalf("accepted private key has no fingerprint: %v", err)
			}
		}
	})
}
