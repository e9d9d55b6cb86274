package pe

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/pkcs7"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, b []byte) *File {
	t.Helper()
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The vectors in testdata were made by a small script following the PE/COFF
// specification (testdata/unsigned*.efi) and signed by sbsign 0.9.4
// (*.signed.efi) with the test certificate db-test.crt.
func TestParseVector(t *testing.T) {
	f := mustParse(t, readFile(t, "testdata/unsigned.efi"))
	if f.PEOffset != 0x40 || f.FileHeader.Machine != MachineAMD64 || f.FileHeader.Characteristics != 0x206 {
		t.Errorf("file header %+v at 0x%x", f.FileHeader, f.PEOffset)
	}
	oh := f.OptionalHeader
	if oh.Magic != MagicPE32Plus || oh.SectionAlignment != 0x1000 || oh.FileAlignment != 0x200 ||
		oh.SizeOfHeaders != 0x200 || oh.SizeOfImage != 0x5000 || oh.Subsystem != SubsystemEFIApplication ||
		len(oh.DataDirectories) != 16 || oh.CheckSum != 0 {
		t.Errorf("optional header %+v", oh)
	}
	type sec struct {
		name                 string
		va, vs, ptr, rawSize uint32
		ch                   uint32
		contents             string
	}
	want := []sec{
		{".text", 0x1000, 16, 0x200, 0x200, 0x60000020, "\xc3" + strings.Repeat("\x90", 15)},
		{".osrel", 0x2000, 25, 0x400, 0x200, 0x40000040, "ID=testos\nVERSION_ID=1.0\n"},
		{".cmdline", 0x3000, 5, 0x600, 0x200, 0x40000040, "quiet"},
		{".linux", 0x4000, 38, 0x800, 0x200, 0x60000020, "MZ-fake-linux-kernel-for-test-vectors\n"},
	}
	if len(f.Sections) != len(want) {
		t.Fatalf("%d sections, want %d", len(f.Sections), len(want))
	}
	for i, w := range want {
		s := f.Sections[i]
		got := sec{s.NameString(), s.VirtualAddress, s.VirtualSize, s.PointerToRawData, s.SizeOfRawData, s.Characteristics, string(f.Contents(i))}
		if got != w {
			t.Errorf("section %d: got %+v, want %+v", i, got, w)
		}
		if len(f.RawData(i)) != int(w.rawSize) {
			t.Errorf("section %d: raw data %d bytes", i, len(f.RawData(i)))
		}
	}
	if i := f.Section(".cmdline"); i != 2 {
		t.Errorf("Section(.cmdline) = %d", i)
	}
	if i := f.Section(".cmd"); i != -1 {
		t.Errorf("Section(.cmd) = %d, want no prefix match", i)
	}
	if _, _, ok := f.CertificateTable(); ok {
		t.Error("unsigned vector has a certificate table")
	}
	if err := f.CheckLayout(); err != nil {
		t.Error(err)
	}
}

func TestBytesRoundTrip(t *testing.T) {
	for _, name := range []string{"unsigned.efi", "unsigned.signed.efi", "unsigned-trailer.efi", "unsigned-trailer.signed.efi"} {
		in := readFile(t, "testdata/"+name)
		f := mustParse(t, in)
		if !bytes.Equal(f.Bytes(), in) {
			t.Errorf("%s: Bytes() differs from the input", name)
		}
		again := mustParse(t, f.Bytes())
		if !reflect.DeepEqual(again, f) {
			t.Errorf("%s: re-parse differs", name)
		}
	}
}

func TestBytesEncodesFields(t *testing.T) {
	f := mustParse(t, readFile(t, "testdata/unsigned.efi"))
	f.FileHeader.TimeDateStamp = 0x01020304
	f.OptionalHeader.ImageBase = 0x1122334455667788
	f.OptionalHeader.DataDirectories[DirectoryBaseRelocation] = DataDirectory{0x5000, 12}
	f.Sections[1].Name = [8]byte{'.', 'o', 's', 'r', 'e', 'l', '2'}
	g := mustParse(t, f.Bytes())
	if !reflect.DeepEqual(g.FileHeader, f.FileHeader) || !reflect.DeepEqual(g.OptionalHeader, f.OptionalHeader) ||
		!reflect.DeepEqual(g.Sections, f.Sections) {
		t.Fatal("changed fields did not survive Bytes and Parse")
	}
	if g.Sections[1].NameString() != ".osrel2" {
		t.Errorf("name %q", g.Sections[1].NameString())
	}
}

func TestChecksumMatchesSbsign(t *testing.T) {
	// sbsign wrote 0xd6af and 0xda29 into the signed vectors.
	for name, want := range map[string]uint32{"unsigned.signed.efi": 0xd6af, "unsigned-trailer.signed.efi": 0xda29} {
		f := mustParse(t, readFile(t, "testdata/"+name))
		if f.OptionalHeader.CheckSum != want {
			t.Fatalf("%s: CheckSum field 0x%x, want 0x%x", name, f.OptionalHeader.CheckSum, want)
		}
		if got := f.Checksum(); got != want {
			t.Errorf("%s: Checksum() = 0x%x, want 0x%x", name, got, want)
		}
		f.OptionalHeader.CheckSum = 0
		f.UpdateChecksum()
		if f.OptionalHeader.CheckSum != want {
			t.Errorf("%s: UpdateChecksum set 0x%x", name, f.OptionalHeader.CheckSum)
		}
	}
}

func TestAuthenticodeVectors(t *testing.T) {
	// Digests recorded with osslsigncode ("Calculated message digest") and
	// found in the SpcIndirectDataContent sbsign wrote.
	for name, want := range map[string]string{
		"unsigned.efi":                "b10f62912ddeffc87de1358651a009ffa6dfff739d5910487e8f51a60fb2f295",
		"unsigned.signed.efi":         "b10f62912ddeffc87de1358651a009ffa6dfff739d5910487e8f51a60fb2f295",
		"unsigned-trailer.efi":        "f32c1cc89767b74a02f65b46d49fde2284a43250ca11c1581ca59bdba5e1216d",
		"unsigned-trailer.signed.efi": "e92469140a89ac9e8f5a36dad14c8dc435240ef890e22a1c2ac9c8022dd739e0",
	} {
		got, err := AuthenticodeDigest(readFile(t, "testdata/"+name), crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != want {
			t.Errorf("%s: digest %x, want %s", name, got, want)
		}
	}
}

func TestAuthenticodeRanges(t *testing.T) {
	got, err := AuthenticodeRanges(readFile(t, "testdata/unsigned-trailer.signed.efi"))
	if err != nil {
		t.Fatal(err)
	}
	// CheckSum at 0x98, the certificate table entry at 0xe8 (PE32+), the
	// 7-byte trailer padded by sbsign to 8, the table itself left out.
	want := []Range{{0, 0x98}, {0x9c, 0xe8}, {0xf0, 0x200}, {0x200, 0x400}, {0x400, 0x600}, {0x600, 0x800}, {0x800, 0xa00}, {0xa00, 0xa08}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ranges %v, want %v", got, want)
	}
}

// spcIndirectDataContent is the Authenticode content type's value; only the
// digest matters here.
type spcIndirectDataContent struct {
	Data          asn1.RawValue
	MessageDigest struct {
		Algorithm asn1.RawValue
		Digest    []byte
	}
}

// signatureDigest returns the image digest recorded in the first signature
// of a signed PE and checks the signature against cert.
func signatureDigest(t testing.TB, image []byte, cert *x509.Certificate) []byte {
	t.Helper()
	f := mustParse(t, image)
	table := f.CertificateTableData()
	if len(table) < 8 {
		t.Fatal("no certificate table")
	}
	le := binary.LittleEndian
	length, revision, typ := le.Uint32(table), le.Uint16(table[4:]), le.Uint16(table[6:])
	if revision != 0x200 || typ != 2 || int(length) > len(table) || length < 8 {
		t.Fatalf("WIN_CERTIFICATE length %d revision 0x%x type %d", length, revision, typ)
	}
	sd, err := pkcs7.Parse(table[8:length])
	if err != nil {
		t.Fatal(err)
	}
	if sd.ContentType.String() != "1.3.6.1.4.1.311.2.1.4" {
		t.Fatalf("content type %s", sd.ContentType)
	}
	if cert != nil {
		if _, err := sd.Verify([]*x509.Certificate{cert}); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
	}
	var idc spcIndirectDataContent
	if rest, err := asn1.Unmarshal(sd.Content, &idc); err != nil || len(rest) != 0 {
		t.Fatalf("SpcIndirectDataContent: %v", err)
	}
	return idc.MessageDigest.Digest
}

func readCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(readFile(t, name))
	if block == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthenticodeDigestInSignature(t *testing.T) {
	cert := readCert(t, "testdata/db-test.crt")
	for _, name := range []string{"unsigned.signed.efi", "unsigned-trailer.signed.efi"} {
		image := readFile(t, "testdata/"+name)
		want := signatureDigest(t, image, cert)
		got, err := AuthenticodeDigest(image, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: digest %x, signature says %x", name, got, want)
		}
	}
}

func TestAuthenticodeOtherHash(t *testing.T) {
	image := readFile(t, "testdata/unsigned.efi")
	got, err := AuthenticodeDigest(image, crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha1.New()
	ranges, _ := AuthenticodeRanges(image)
	for _, r := range ranges {
		h.Write(image[r.Start:r.End])
	}
	if !bytes.Equal(got, h.Sum(nil)) {
		t.Error("SHA-1 digest differs")
	}
	if _, err := AuthenticodeDigest(image, crypto.Hash(0)); err == nil {
		t.Error("hash 0 accepted")
	}
}

func TestRemoveCertificateTable(t *testing.T) {
	signed := readFile(t, "testdata/unsigned.signed.efi")
	unsigned := readFile(t, "testdata/unsigned.efi")
	f := mustParse(t, signed)
	if !f.RemoveCertificateTable() {
		t.Fatal("no table removed")
	}
	if f.RemoveCertificateTable() {
		t.Error("removed twice")
	}
	f.OptionalHeader.CheckSum = 0
	// sbsign changed only the checksum and the directory entry and appended
	// the table (the image was already 8-byte aligned).
	if !bytes.Equal(f.Bytes(), unsigned) {
		t.Error("unsigned copy differs from the original")
	}
}

// withCertificateTable appends a fake certificate table to image.
func withCertificateTable(image []byte) []byte {
	f, err := Parse(image)
	if err != nil {
		panic(err)
	}
	f.OptionalHeader.DataDirectories[DirectoryCertificateTable] = DataDirectory{uint32(len(image)), 16}
	return append(f.Bytes(), "WIN_CERTIFICATE!"...)
}

func TestAddSection(t *testing.T) {
	img := synthImage()
	f := mustParse(t, withCertificateTable(img))
	data := []byte("hello, section")
	s, err := f.AddSection(".test", data, SectionMemRead|SectionCntInitializedData)
	if err != nil {
		t.Fatal(err)
	}
	// .data ends at 0x2020, so the next 4 KiB boundary is 0x3000; the file
	// is cut at the dropped certificate table (0x800), already aligned.
	if s.VirtualAddress != 0x3000 || s.VirtualSize != 14 || s.PointerToRawData != 0x800 || s.SizeOfRawData != 0x200 ||
		s.Characteristics != 0x40000040 || s.NameString() != ".test" {
		t.Errorf("new section %+v", *s)
	}
	oh := f.OptionalHeader
	if oh.SizeOfImage != 0x4000 || oh.CheckSum != 0 || f.FileHeader.NumberOfSections != 3 || f.Len() != 0xa00 {
		t.Errorf("headers after AddSection: %+v, %d sections, %d bytes", oh, f.FileHeader.NumberOfSections, f.Len())
	}
	if _, _, ok := f.CertificateTable(); ok {
		t.Error("certificate table kept")
	}
	// A second section follows in memory and in the file; an unaligned
	// file end is padded first.
	f2 := mustParse(t, append(bytes.Clone(img), "odd"...))
	if _, err := f2.AddSection(".one", make([]byte, 0x1001), SectionMemRead); err != nil {
		t.Fatal(err)
	}
	s2, err := f2.AddSection(".two", []byte("x"), SectionMemRead|SectionCntCode)
	if err != nil {
		t.Fatal(err)
	}
	one := f2.Sections[2]
	if one.VirtualAddress != 0x3000 || one.PointerToRawData != 0xa00 || one.SizeOfRawData != 0x1200 ||
		s2.VirtualAddress != 0x5000 || s2.PointerToRawData != 0x1c00 || f2.OptionalHeader.SizeOfImage != 0x6000 {
		t.Errorf("two sections: %+v %+v, SizeOfImage 0x%x", one, *s2, f2.OptionalHeader.SizeOfImage)
	}
	if got := f2.OptionalHeader.SizeOfInitializedData; got != 0x1001+1 {
		t.Errorf("SizeOfInitializedData 0x%x", got)
	}

	g := mustParse(t, f.Bytes())
	if i := g.Section(".test"); i != 2 || !bytes.Equal(g.Contents(i), data) || !bytes.Equal(g.RawData(i)[len(data):], make([]byte, 0x200-len(data))) {
		t.Errorf("re-parsed section %d: %q", i, g.Contents(i))
	}
	if err := g.CheckLayout(); err != nil {
		t.Error(err)
	}
	orig := mustParse(t, img)
	for i := range orig.Sections {
		if !bytes.Equal(g.RawData(i), orig.RawData(i)) {
			t.Errorf("section %d data changed", i)
		}
	}
}

func TestAddSectionRefuses(t *testing.T) {
	f := mustParse(t, synthImage())
	for _, name := range []string{"", ".toolong!", ".t\x01", ".text"} {
		if _, err := f.AddSection(name, []byte("x"), 0); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, err := f.AddSection(".empty", nil, 0); err == nil {
		t.Error("empty data accepted")
	}
	// The headers end at 0x1d8 with SizeOfHeaders 0x400: 13 more fit.
	for i := range 13 {
		if _, err := f.AddSection(fmt.Sprintf(".s%d", i), []byte{byte(i)}, 0); err != nil {
			t.Fatalf("section %d: %v", i, err)
		}
	}
	_, err := f.AddSection(".last", []byte("x"), 0)
	if err == nil || !strings.Contains(err.Error(), "not enough header space") {
		t.Errorf("14th section: %v", err)
	}
	// The vector has no room at all: its table ends at 0x1e8, SizeOfHeaders 0x200.
	v := mustParse(t, readFile(t, "testdata/unsigned.efi"))
	if _, err := v.AddSection(".x", []byte("x"), 0); err == nil || !strings.Contains(err.Error(), "past SizeOfHeaders 0x200") {
		t.Errorf("full header: %v", err)
	}
	bad := mustParse(t, synthImage())
	bad.OptionalHeader.FileAlignment = 0x300
	if _, err := bad.AddSection(".x", []byte("x"), 0); err == nil {
		t.Error("FileAlignment 0x300 accepted")
	}
}

func TestReplaceContents(t *testing.T) {
	f := mustParse(t, readFile(t, "testdata/unsigned.efi"))
	i := f.Section(".cmdline")
	if err := f.ReplaceContents(i, []byte("console=ttyS0")); err != nil {
		t.Fatal(err)
	}
	g := mustParse(t, f.Bytes())
	if string(g.Contents(i)) != "console=ttyS0" || g.Sections[i].SizeOfRawData != 0x200 {
		t.Errorf("contents %q, raw size 0x%x", g.Contents(i), g.Sections[i].SizeOfRawData)
	}
	if !bytes.Equal(g.RawData(i)[13:], make([]byte, 0x200-13)) {
		t.Error("rest of the raw data not zeroed")
	}
	if err := f.ReplaceContents(i, make([]byte, 0x201)); err == nil {
		t.Error("data larger than the raw size accepted")
	}
	// .cmdline is at 0x3000, .linux at 0x4000: 0x200 bytes fit.
	if err := f.CheckReplace(i, 0x200); err != nil {
		t.Error(err)
	}
	if err := f.CheckReplace(99, 1); err == nil {
		t.Error("section 99 accepted")
	}
}

func TestReplaceContentsRefusesOverlap(t *testing.T) {
	f := mustParse(t, readFile(t, "testdata/unsigned.efi"))
	f.Sections[2].SizeOfRawData = 0x400 // pretend the raw data were bigger
	f.Sections[3].VirtualAddress = 0x3100
	err := f.CheckReplace(2, 0x101)
	if err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlap: %v", err)
	}
}

// withSymbolTable returns the unsigned vector with a COFF symbol table of n
// symbols and a string table appended.
func withSymbolTable(t testing.TB, n int) []byte {
	img := readFile(t, "testdata/unsigned.efi")
	le := binary.LittleEndian
	le.PutUint32(img[0x40+4+8:], uint32(len(img)))
	le.PutUint32(img[0x40+4+12:], uint32(n))
	img = append(img, make([]byte, 18*n)...)
	return append(img, 7, 0, 0, 0, 'a', 'b', 0)
}

func TestStripSymbolTable(t *testing.T) {
	img := withSymbolTable(t, 3)
	f := mustParse(t, img)
	if !f.StripSymbolTable() {
		t.Fatal("not stripped")
	}
	if f.Len() != 0xa00 || f.FileHeader.PointerToSymbolTable != 0 || f.FileHeader.NumberOfSymbols != 0 || f.FileHeader.Characteristics != 0x206 {
		t.Errorf("after strip: %d bytes, %+v", f.Len(), f.FileHeader)
	}
	if f.StripSymbolTable() {
		t.Error("stripped twice")
	}
	// A symbol table followed by other data stays.
	g := mustParse(t, append(img, 0))
	if g.StripSymbolTable() {
		t.Error("stripped a table not at the end")
	}
}

func TestAlignRawData(t *testing.T) {
	img := readFile(t, "testdata/unsigned.efi")
	f := mustParse(t, img)
	// Make .osrel's raw data unaligned: 25 bytes, then .cmdline right after.
	f.Sections[1].SizeOfRawData = 25
	f.Sections[2].PointerToRawData = 0x400 + 25
	f.Sections[2].SizeOfRawData = 5
	f.Sections[3].PointerToRawData = 0x400 + 30
	f.Sections[3].SizeOfRawData = 38
	compact := append(f.Bytes()[:0x400], []byte("ID=testos\nVERSION_ID=1.0\nquietMZ-fake-linux-kernel-for-test-vectors\n")...)
	g := mustParse(t, compact)
	if err := g.AlignRawData(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint32{0x200, 0x400, 0x600, 0x800} {
		s := g.Sections[i]
		if s.PointerToRawData != want || s.SizeOfRawData != 0x200 {
			t.Errorf("section %d at 0x%x+0x%x", i, s.PointerToRawData, s.SizeOfRawData)
		}
	}
	h := mustParse(t, g.Bytes())
	if string(h.Contents(3)) != "MZ-fake-linux-kernel-for-test-vectors\n" || string(h.Contents(1)) != "ID=testos\nVERSION_ID=1.0\n" {
		t.Errorf("contents moved wrongly: %q %q", h.Contents(1), h.Contents(3))
	}
	// The result equals the aligned original.
	if !bytes.Equal(g.Bytes(), img) {
		t.Error("aligned image differs from the original")
	}
}

func TestCheckLayout(t *testing.T) {
	f := mustParse(t, readFile(t, "testdata/unsigned.efi"))
	f.Sections[2].VirtualAddress = 0x2010
	if err := f.CheckLayout(); err == nil || !strings.Contains(err.Error(), "overlap in memory") {
		t.Errorf("memory overlap: %v", err)
	}
	f = mustParse(t, readFile(t, "testdata/unsigned.efi"))
	f.Sections[2].PointerToRawData = 0x500
	if err := f.CheckLayout(); err == nil || !strings.Contains(err.Error(), "overlap in the file") {
		t.Errorf("file overlap: %v", err)
	}
	f = mustParse(t, readFile(t, "testdata/unsigned.efi"))
	f.OptionalHeader.SizeOfImage = 0x4000
	if err := f.CheckLayout(); err == nil || !strings.Contains(err.Error(), "SizeOfImage") {
		t.Errorf("SizeOfImage: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	good := readFile(t, "testdata/unsigned.efi")
	le := binary.LittleEndian
	mutate := func(fn func(b []byte) []byte) []byte { return fn(bytes.Clone(good)) }
	cases := map[string][]byte{
		"empty":        nil,
		"no MZ":        mutate(func(b []byte) []byte { b[0] = 'X'; return b }),
		"lfanew low":   mutate(func(b []byte) []byte { le.PutUint32(b[0x3c:], 0x10); return b }),
		"lfanew past":  mutate(func(b []byte) []byte { le.PutUint32(b[0x3c:], 0xfffffff0); return b }),
		"no PE":        mutate(func(b []byte) []byte { b[0x41] = 'X'; return b }),
		"magic":        mutate(func(b []byte) []byte { le.PutUint16(b[0x58:], 0x107); return b }),
		"opt short":    mutate(func(b []byte) []byte { le.PutUint16(b[0x54:], 100); return b }),
		"dirs":         mutate(func(b []byte) []byte { le.PutUint32(b[0x58+108:], 17); return b }),
		"dirs fit":     mutate(func(b []byte) []byte { le.PutUint16(b[0x54:], 112+8); return b }),
		"headers":      mutate(func(b []byte) []byte { le.PutUint32(b[0x58+60:], 0x10000); return b }),
		"table":        mutate(func(b []byte) []byte { le.PutUint16(b[0x46:], 20); return b }),
		"raw past end": mutate(func(b []byte) []byte { le.PutUint32(b[0x58+240+3*40+16:], 0x400); return b }),
		"cert past": mutate(func(b []byte) []byte {
			le.PutUint32(b[0x58+112+32:], 0x9f0)
			le.PutUint32(b[0x58+112+36:], 0x20)
			return b
		}),
		"cert headers": mutate(func(b []byte) []byte {
			le.PutUint32(b[0x58+112+32:], 0x10)
			le.PutUint32(b[0x58+112+36:], 0x20)
			return b
		}),
		"symbols":   mutate(func(b []byte) []byte { le.PutUint32(b[0x4c:], 0x9f0); le.PutUint32(b[0x50:], 2); return b }),
		"truncated": good[:0x300],
	}
	for name, b := range cases {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: parsed", name)
		} else if !strings.HasPrefix(err.Error(), "pe: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
	if _, err := Parse([]byte("MZ")); !errors.Is(err, ErrNotPE) {
		t.Errorf("short file: %v, want ErrNotPE", err)
	}
}

func TestPE32(t *testing.T) {
	// Turn the PE32+ vector into a PE32 image: the optional header loses 16
	// bytes (BaseOfData replaces the high half of ImageBase; the stack and
	// heap fields shrink), so SizeOfOptionalHeader becomes 224.
	src := readFile(t, "testdata/unsigned.efi")
	le := binary.LittleEndian
	img := make([]byte, len(src))
	copy(img, src[:0x58])
	opt := img[0x58:]
	le.PutUint16(img[0x54:], 224)
	le.PutUint16(img[0x44:], MachineI386)
	le.PutUint16(opt, MagicPE32)
	copy(opt[2:24], src[0x58+2:0x58+24])
	le.PutUint32(opt[24:], 0x1000)     // BaseOfData
	le.PutUint32(opt[28:], 0x00400000) // ImageBase
	copy(opt[32:72], src[0x58+32:0x58+72])
	le.PutUint32(opt[72:], 0x100000) // SizeOfStackReserve
	le.PutUint32(opt[92:], 16)
	copy(img[0x58+224:], src[0x58+240:0x58+240+4*40])
	copy(img[0x200:], src[0x200:])
	f := mustParse(t, img)
	oh := f.OptionalHeader
	if oh.Magic != MagicPE32 || oh.BaseOfData != 0x1000 || oh.ImageBase != 0x400000 || oh.SizeOfStackReserve != 0x100000 ||
		oh.SectionAlignment != 0x1000 || len(oh.DataDirectories) != 16 || len(f.Sections) != 4 {
		t.Fatalf("PE32 header %+v", oh)
	}
	if !bytes.Equal(f.Bytes(), img) {
		t.Error("PE32 Bytes differs from input")
	}
	ranges, err := AuthenticodeRanges(img)
	if err != nil {
		t.Fatal(err)
	}
	// CheckSum at 0x58+64; the certificate entry at 0x58+96+32.
	if ranges[0] != (Range{0, 0x98}) || ranges[1] != (Range{0x9c, 0xd8}) || ranges[2] != (Range{0xe0, 0x200}) {
		t.Errorf("PE32 ranges %v", ranges[:3])
	}
}
