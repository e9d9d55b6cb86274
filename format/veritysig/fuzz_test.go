package veritysig

import (
	"bytes"
	"crypto/x509"
	"testing"
)

// FuzzParse feeds arbitrary partition bytes to Parse. Nothing may panic;
// whatever parses must survive Marshal and MarshalPartition unchanged, and
// Verify must not panic on it.
func FuzzParse(f *testing.F) {
	// Seeds are kept short: the fuzzer minimizes every new input, and
	// minimizing the 1750-byte repart text (tested in TestRepart252Vector)
	// takes it most of a short run.
	for _, s := range []string{
		`{"rootHash":"5c3bba5d17871dfb667171f3429b27a11a64a9c25e15f09be1c79b66b70857f5","certificateFingerprint":"64e4b92ed076cccb60878d4b6c198f5aec37bf0bcb67db023381da618a732c4f","signature":"MIIBAA=="}` + "\x00\x00\x00\x00",
		`{"rootHash":"abcd","signature":"+/8="}` + "\x00\x00x",
		`{"rootHash":"abcd","signature":"+/8="}`,
		`{"rootHash":"ABCD","certificateFingerprint":null,"signature":"+/\n8="}`,
		`{"rootHash":"abcd","certificateFingerprint":"0000000000000000000000000000000000000000000000000000000000000000","signature":"MAA="}`,
		`{"x":[1,{"y":null}],"rootHash":"ab cd","signature":"+/8=","z":true}`,
		`{"rootHash":"abcd","rootHash":"abcd","signature":"+/8="}`,
		`{"rootHash":"abcd","signature":"+/8="} x`,
		`[]`, `{}`, ``, `{"rootHash":1}`,
	} {
		f.Add([]byte(s))
	}
	// Verify runs against a certificate that signed none of the seeds:
	// public-key operations under coverage instrumentation are slow enough
	// to stall the fuzzer, and the PKCS#7 parser has its own fuzz target.
	cert, _ := newECSigner(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		sig, err := Parse(data)
		if err != nil {
			return
		}
		text, err := sig.Marshal()
		if err != nil {
			t.Fatalf("parsed signature does not marshal: %v", err)
		}
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("marshalled text does not parse: %v\n%s", err, text)
		}
		if !equal(sig, again) {
			t.Fatalf("round trip changed the signature: %+v vs %+v", sig, again)
		}
		if text2, _ := again.Marshal(); !bytes.Equal(text, text2) {
			t.Fatal("Marshal is not stable")
		}
		// The smallest 4096-byte multiple with room for a NUL keeps the
		// fuzzer fast; MarshalPartition does not care about the size.
		size := (len(text) + 1 + 4095) / 4096 * 4096
		if padded, err := sig.MarshalPartition(size); err == nil {
			fromPartition, err := Parse(padded)
			if err != nil || !equal(sig, fromPartition) {
				t.Fatalf("partition round trip: %v", err)
			}
		} else if size <= MaxPartitionSize {
			t.Fatalf("MarshalPartition refused %d bytes of text in %d bytes: %v", len(text), size, err)
		}
		_, _ = sig.Verify([]*x509.Certificate{cert})
	})
}

func equal(a, b *Signature) bool {
	return bytes.Equal(a.RootHash, b.RootHash) && bytes.Equal(a.PKCS7, b.PKCS7) &&
		bytes.Equal(a.CertificateFingerprint, b.CertificateFingerprint) &&
		(a.CertificateFingerprint == nil) == (b.CertificateFingerprint == nil)
}
