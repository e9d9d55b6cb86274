package uki

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/pe"
	"github.com/imago-os/imago/format/pe/petest"
)

// synthInput is the content the ukify comparison below was made with.
func synthInput() *Input {
	return &Input{
		Linux:      synthKernel(),
		Initrds:    [][]byte{[]byte("first-initrd"), []byte("second")},
		Cmdline:    []byte("quiet console=ttyS0"),
		OSRelease:  []byte("ID=synth\nVERSION_ID=1\n"),
		Uname:      []byte("6.1.0-synth"),
		Splash:     []byte("BM fake splash"),
		Devicetree: []byte("\xd0\x0d\xfe\xed fake dtb"),
		PCRPKey:    []byte("-----BEGIN PUBLIC KEY-----\nfake\n-----END PUBLIC KEY-----\n"),
	}
}

// TestBuildMatchesUkify compares with the UKI systemd's ukify wrote for the
// same stub, kernel and contents (`ukify build --linux=… --initrd=…
// --initrd=… --cmdline=… --os-release=@… --uname=… --splash=… --devicetree=…
// --pcrpkey=… --stub=…`): ukify 254.19, 255.13 and 256 all gave these bytes.
func TestBuildMatchesUkify(t *testing.T) {
	out, err := Build(synthStub(), synthInput())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out)
	if got := hex.EncodeToString(sum[:]); got != "0419f90cf0d074f5dca0c1de28a0721209665048be6e30e54225a4c8b1a6ec7b" {
		t.Errorf("UKI sha256 %s differs from ukify's", got)
	}
	f, err := pe.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name              string
		va, vs, off, size uint32
		ch                uint32
	}
	// The stub's symbol table is gone and .sdmagic's raw size aligned; the
	// new sections follow at 4 KiB steps in memory and 512-byte steps in
	// the file; .sbat was rewritten in place.
	want := []row{
		{".text", 0x1000, 0x123, 0x400, 0x200, 0x60000020},
		{".sbat", 0x2000, 0x119, 0x600, 0x200, 0x40000040},
		{".sdmagic", 0x3000, 0x22, 0x800, 0x200, 0x40000040},
		{".osrel", 0x4000, 0x16, 0xa00, 0x200, 0x40000040},
		{".cmdline", 0x5000, 0x13, 0xc00, 0x200, 0x40000040},
		{".dtb", 0x6000, 0xd, 0xe00, 0x200, 0x40000040},
		{".uname", 0x7000, 0xb, 0x1000, 0x200, 0x40000040},
		{".splash", 0x8000, 0xe, 0x1200, 0x200, 0x40000040},
		{".pcrpkey", 0x9000, 0x39, 0x1400, 0x200, 0x40000040},
		{".initrd", 0xa000, 0x14, 0x1600, 0x200, 0x40000040},
		{".linux", 0xb000, 0x608, 0x1800, 0x800, 0x40000020},
	}
	var got []row
	for _, s := range f.Sections {
		got = append(got, row{s.NameString(), s.VirtualAddress, s.VirtualSize, s.PointerToRawData, s.SizeOfRawData, s.Characteristics})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layout\n got %x\nwant %x", got, want)
	}
	oh := f.OptionalHeader
	if oh.SizeOfImage != 0xc000 || oh.CheckSum != 0 || f.FileHeader.PointerToSymbolTable != 0 || f.FileHeader.NumberOfSymbols != 0 || f.Len() != 0x2000 {
		t.Errorf("headers: %+v %+v, %d bytes", oh, f.FileHeader, f.Len())
	}
	if err := f.CheckLayout(); err != nil {
		t.Error(err)
	}
}

func TestSections(t *testing.T) {
	in := synthInput()
	in.PCRSig = []byte(`{"sha256":[]}`)
	secs, err := Sections(synthStub(), in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		names = append(names, s.Name)
	}
	want := []string{".osrel", ".cmdline", ".dtb", ".uname", ".splash", ".pcrpkey", ".initrd", ".sbat", ".pcrsig", ".linux"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
	sbat := "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
		"systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n" +
		"linux,1,The Linux Developers,linux,6.1,https://linux.org\n" +
		"uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n\x00"
	if got := string(secs[7].Data); got != sbat {
		t.Errorf(".sbat %q, want %q", got, sbat)
	}
	if got := string(secs[6].Data); got != "first-initrd"+"second\x00\x00" {
		t.Errorf(".initrd %q", got)
	}
	// The UKI holds exactly these contents; .pcrsig goes before .linux.
	out, err := Build(synthStub(), in)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := pe.Parse(out)
	for _, s := range secs {
		i := f.Section(s.Name)
		if i < 0 || !bytes.Equal(f.Contents(i), s.Data) {
			t.Errorf("%s: contents differ", s.Name)
		}
	}
	if n := len(f.Sections); f.Sections[n-2].NameString() != ".pcrsig" || f.Sections[n-1].NameString() != ".linux" {
		t.Errorf("last sections %q %q", f.Sections[n-2].NameString(), f.Sections[n-1].NameString())
	}
}

func TestSectionsSkipEmpty(t *testing.T) {
	secs, err := Sections(synthStub(), &Input{Linux: []byte("kernel"), Cmdline: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel is no PE, so .sbat holds the stub's entries and ukify's.
	if len(secs) != 2 || secs[0].Name != ".sbat" || secs[1].Name != ".linux" {
		t.Fatalf("sections %v", secs)
	}
	if !strings.Contains(string(secs[0].Data), "systemd,1,") || strings.Contains(string(secs[0].Data), "linux,1,") {
		t.Errorf(".sbat %q", secs[0].Data)
	}
}

func TestJoinInitrds(t *testing.T) {
	if JoinInitrds(nil) != nil {
		t.Error("no initrds gave data")
	}
	one := []byte("abcde")
	if got := JoinInitrds([][]byte{one}); !bytes.Equal(got, one) {
		t.Errorf("one initrd: %q", got)
	}
	got := JoinInitrds([][]byte{[]byte("abcde"), []byte("1234"), []byte("xy")})
	if string(got) != "abcde\x00\x00\x00"+"1234"+"xy\x00\x00" {
		t.Errorf("joined %q", got)
	}
}

// stubWithLittleRoom is a stub whose headers hold only two more section
// headers and whose .sbat cannot grow.
func stubWithLittleRoom() []byte {
	sbat := []byte(testStubSBAT)
	// Table at 0x188; SizeOfHeaders 0x200 leaves 0x78 bytes: 3 headers in
	// all, 2 taken by .text and .sbat.
	return petest.Build(0x200, 0x200, 0x200, []petest.Section{
		{Name: ".text", VA: 0x200, VirtualSize: 0x10, Offset: 0x200, RawSize: 0x200, Data: []byte("text"), Characteristics: 0x60000020},
		{Name: ".sbat", VA: 0x400, VirtualSize: uint32(len(sbat)), Offset: 0x400, RawSize: 0x200, Data: sbat, Characteristics: 0x40000040},
	}, nil)
}

func TestBuildRefuses(t *testing.T) {
	if _, err := Build(synthStub(), &Input{}); err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Errorf("no kernel: %v", err)
	}
	if _, err := Build([]byte("not a PE"), &Input{Linux: []byte("k")}); !errors.Is(err, pe.ErrNotPE) {
		t.Errorf("bad stub: %v", err)
	}
	uki, err := Build(synthStub(), &Input{Linux: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(uki, &Input{Linux: []byte("k")}); err == nil || !strings.Contains(err.Error(), "already has a .linux") {
		t.Errorf("UKI as stub: %v", err)
	}
	small := stubWithLittleRoom()
	if _, err := Build(small, &Input{Linux: []byte("k")}); err != nil {
		t.Errorf("one section should fit: %v", err)
	}
	_, err = Build(small, &Input{Linux: []byte("k"), Cmdline: []byte("quiet")})
	if err == nil || !strings.Contains(err.Error(), `not enough header space to add section ".linux"`) {
		t.Errorf("two sections: %v", err)
	}
}

func TestSBATKeptWhenNoRoom(t *testing.T) {
	stub := stubWithLittleRoom()
	// .sbat at 0x400 may only grow to 0x200 bytes: the merged text with
	// several kernel entries does not fit, so the stub's stays.
	kernelSBAT := "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
		strings.Repeat("linux,1,The Linux Developers,linux,6.1,https://linux.org\n", 6) + "\x00"
	kernel := petest.Build(0x1000, 0x200, 0x200, []petest.Section{
		{Name: ".sbat", VA: 0x1000, VirtualSize: uint32(len(kernelSBAT)), Offset: 0x200, RawSize: 0x200, Data: []byte(kernelSBAT), Characteristics: 0x40000040},
	}, nil)
	out, err := Build(stub, &Input{Linux: kernel})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := pe.Parse(out)
	if got := string(f.Contents(f.Section(".sbat"))); got != testStubSBAT {
		t.Errorf(".sbat %q, want the stub's", got)
	}
	secs, _ := Sections(stub, &Input{Linux: kernel})
	if string(secs[0].Data) != testStubSBAT {
		t.Errorf("Sections reports .sbat %q", secs[0].Data)
	}
}

func TestBuildDropsStubSignature(t *testing.T) {
	stub := synthStub()
	f, _ := pe.Parse(stub)
	f.StripSymbolTable()
	f.OptionalHeader.DataDirectories[pe.DirectoryCertificateTable] = pe.DataDirectory{VirtualAddress: uint32(f.Len()), Size: 8}
	signed := append(f.Bytes(), 8, 0, 0, 0, 0, 2, 2, 0)
	out, err := Build(signed, &Input{Linux: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	if info.Signed {
		t.Error("the stub's signature survived")
	}
}

func TestInspect(t *testing.T) {
	in := synthInput()
	out, err := Build(synthStub(), in)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	if info.OSRelease != "ID=synth\nVERSION_ID=1\n" || info.Cmdline != "quiet console=ttyS0" || info.Uname != "6.1.0-synth" ||
		!info.HasLinux || info.Signed || len(info.Sections) != 11 {
		t.Errorf("info %+v", info)
	}
	linux := info.Sections[10]
	sum := sha256.Sum256(in.Linux)
	if linux.Name != ".linux" || linux.SHA256 != hex.EncodeToString(sum[:]) || linux.VirtualAddress != 0xb000 ||
		linux.VirtualSize != uint32(len(in.Linux)) || linux.FileOffset != 0x1800 || linux.FileSize != 0x800 {
		t.Errorf(".linux %+v", linux)
	}

	// A NUL-terminated .cmdline reads without the NUL; a signed image says so.
	f, _ := pe.Parse(out)
	if err := f.ReplaceContents(f.Section(".cmdline"), []byte("quiet\x00")); err != nil {
		t.Fatal(err)
	}
	f.OptionalHeader.DataDirectories[pe.DirectoryCertificateTable] = pe.DataDirectory{VirtualAddress: uint32(f.Len()), Size: 8}
	signed := append(f.Bytes(), 8, 0, 0, 0, 0, 2, 2, 0)
	info, err = Inspect(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Signed || info.CertificateTableSize != 8 || info.Cmdline != "quiet" {
		t.Errorf("signed info %+v", info)
	}
	if _, err := Inspect([]byte("MZ")); err == nil {
		t.Error("garbage inspected")
	}
}

// bzImageHeader returns the start of an x86 bzImage whose setup header
// points at version.
func bzImageHeader(version string) []byte {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x20e:], 0x100)
	copy(b[0x300:], version+"\x00")
	return b
}

func TestKernelRelease(t *testing.T) {
	got, err := KernelRelease(bzImageHeader("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-14)"))
	if err != nil || got != "6.1.0-56-amd64" {
		t.Errorf("release %q, %v", got, err)
	}
	for name, b := range map[string][]byte{
		"short":      []byte("MZ"),
		"no magic":   make([]byte, 0x400),
		"no builder": bzImageHeader("6.1.0-56-amd64 #1 SMP"),
		"uppercase":  bzImageHeader("6.1.0-ARCH (builder@host) #1"),
		"past end":   bzImageHeader("x")[:0x210],
	} {
		if _, err := KernelRelease(b); !errors.Is(err, ErrNoKernelRelease) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
