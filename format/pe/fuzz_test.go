package pe

import (
	"bytes"
	"crypto"
	"os"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. Nothing may panic; whatever
// parses must re-encode to exactly its input and re-parse to the same File;
// the digest, checksum and layout checks must cope with it; and the changes
// a UKI build makes (drop signatures, strip symbols, align, append a
// section) must leave an image that parses again with the new section's
// data in place and the old sections' contents unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"unsigned.efi", "unsigned.signed.efi", "unsigned-trailer.efi", "unsigned-trailer.signed.efi"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(synthImage())
	f.Add(withCertificateTable(synthImage()))
	f.Add(withSymbolTable(f, 2))
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = AuthenticodeDigest(data, crypto.SHA256)
		p, err := Parse(data)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Bytes(), data) {
			t.Fatal("Bytes() differs from the parsed input")
		}
		again, err := Parse(p.Bytes())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatal("re-parse differs")
		}
		_ = p.Checksum()
		_ = p.CheckLayout()
		for i := range p.Sections {
			_ = p.Contents(i)
		}

		before := make([][]byte, len(p.Sections))
		for i := range p.Sections {
			before[i] = bytes.Clone(p.Contents(i))
		}
		p.RemoveCertificateTable()
		p.StripSymbolTable()
		if err := p.AlignRawData(); err != nil {
			return
		}
		payload := []byte("fuzz payload")
		if _, err := p.AddSection(".fuzz", payload, SectionMemRead|SectionCntInitializedData); err != nil {
			return
		}
		out, err := Parse(p.Bytes())
		if err != nil {
			t.Fatalf("image with an added section does not parse: %v", err)
		}
		if i := out.Section(".fuzz"); i != len(out.Sections)-1 || !bytes.Equal(out.Contents(i), payload) {
			t.Fatalf("added section: index %d, contents %q", i, out.Contents(i))
		}
		for i := range before {
			if !bytes.Equal(out.Contents(i), before[i]) {
				t.Fatalf("section %d contents changed", i)
			}
		}
		if _, err := AuthenticodeDigest(p.Bytes(), crypto.SHA256); err != nil {
			t.Fatalf("digest of the new image: %v", err)
		}
	})
}
