package uki

import (
	"encoding/binary"
	"testing"

	"github.com/imago-os/imago/format/pe/petest"
)

// testStubSBAT is the synthetic stub's SBAT text, as systemd-stub carries
// it: CSV lines, a newline, then a NUL.
const testStubSBAT = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
	"systemd,1,The systemd Developers,systemd,252,https://systemd.io/\n\x00"

// synthStub returns a small stand-in for systemd-stub with the traits the
// UKI layout must handle: 4 KiB sections in memory, 512-byte file alignment,
// a last section whose raw size is not aligned, an .sbat section with room to
// grow, and a COFF symbol and string table at the end of the file.
func synthStub() []byte {
	text := make([]byte, 0x123)
	for i := range text {
		text[i] = 0xcc
	}
	magic := []byte("#### LoaderInfo: synth-stub 1 ####")
	secs := []petest.Section{
		{Name: ".text", VA: 0x1000, VirtualSize: 0x123, Offset: 0x400, RawSize: 0x200, Data: text, Characteristics: 0x60000020},
		{Name: ".sbat", VA: 0x2000, VirtualSize: uint32(len(testStubSBAT)), Offset: 0x600, RawSize: 0x200, Data: []byte(testStubSBAT), Characteristics: 0x40000040},
		{Name: ".sdmagic", VA: 0x3000, VirtualSize: uint32(len(magic)), Offset: 0x800, RawSize: uint32(len(magic)), Data: magic, Characteristics: 0x40000040},
	}
	img := petest.Build(0x1000, 0x200, 0x400, secs, nil)
	// Two 18-byte symbols, then a string table: its 4-byte size, "abcde\0".
	symbols := make([]byte, 36)
	copy(symbols, "_start")
	strtab := []byte{10, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 0}
	le := binary.LittleEndian
	le.PutUint32(img[0x84+8:], uint32(len(img)))
	le.PutUint32(img[0x84+12:], 2)
	img = append(img, symbols...)
	return append(img, strtab...)
}

// testKernelSBAT is the fake kernel's SBAT text.
const testKernelSBAT = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
	"linux,1,The Linux Developers,linux,6.1,https://linux.org\n\x00"

// synthKernel returns a small PE standing in for a kernel, with its own
// .sbat section.
func synthKernel() []byte {
	code := []byte("fake kernel code\n")
	secs := []petest.Section{
		{Name: ".text", VA: 0x1000, VirtualSize: uint32(len(code)), Offset: 0x200, RawSize: 0x200, Data: code, Characteristics: 0x60000020},
		{Name: ".sbat", VA: 0x2000, VirtualSize: uint32(len(testKernelSBAT)), Offset: 0x400, RawSize: 0x200, Data: []byte(testKernelSBAT), Characteristics: 0x40000040},
	}
	return petest.Build(0x1000, 0x200, 0x200, secs, []byte("trailing"))
}

func TestSynthStubIsValid(t *testing.T) {
	if _, err := Inspect(synthStub()); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(synthKernel()); err != nil {
		t.Fatal(err)
	}
}
