package uki

import (
	"encoding/binary"
	"testing"
)

// synthSection is one section of a synthetic PE image.
type synthSection struct {
	name            string
	va, vs          uint32
	ptr, rawSize    uint32
	data            []byte
	characteristics uint32
}

// synthPE builds a PE32+ x86-64 EFI application with the given alignments,
// SizeOfHeaders and sections, and appends trailer to the file. It is
// written byte by byte so tests do not depend on the writer they check.
func synthPE(sectionAlign, fileAlign, headers uint32, secs []synthSection, trailer []byte) []byte {
	le := binary.LittleEndian
	size := uint32(headers)
	var imageEnd uint32
	for _, s := range secs {
		size = max(size, s.ptr+s.rawSize)
		imageEnd = max(imageEnd, s.va+s.vs)
	}
	img := make([]byte, size)
	copy(img, "MZ")
	le.PutUint32(img[0x3c:], 0x80)
	copy(img[0x40:], "This program cannot be run in DOS mode.\r\n$")
	copy(img[0x80:], "PE\x00\x00")
	fh := img[0x84:]
	le.PutUint16(fh[0:], 0x8664)
	le.PutUint16(fh[2:], uint16(len(secs)))
	le.PutUint16(fh[16:], 240)
	le.PutUint16(fh[18:], 0x0206)
	oh := img[0x98:]
	le.PutUint16(oh[0:], 0x20b)
	oh[2], oh[3] = 2, 40
	le.PutUint32(oh[4:], 0x1000)
	le.PutUint32(oh[16:], 0x1000)
	le.PutUint32(oh[20:], 0x1000)
	le.PutUint32(oh[32:], sectionAlign)
	le.PutUint32(oh[36:], fileAlign)
	le.PutUint32(oh[56:], (imageEnd+sectionAlign-1)&^(sectionAlign-1))
	le.PutUint32(oh[60:], headers)
	le.PutUint32(oh[64:], 0x1234) // a stale checksum, which a build must reset
	le.PutUint16(oh[68:], 10)
	le.PutUint32(oh[108:], 16)
	table := img[0x98+240:]
	for i, s := range secs {
		h := table[i*40:]
		copy(h[:8], s.name)
		le.PutUint32(h[8:], s.vs)
		le.PutUint32(h[12:], s.va)
		le.PutUint32(h[16:], s.rawSize)
		le.PutUint32(h[20:], s.ptr)
		le.PutUint32(h[36:], s.characteristics)
		copy(img[s.ptr:s.ptr+s.rawSize], s.data)
	}
	return append(img, trailer...)
}

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
	secs := []synthSection{
		{".text", 0x1000, 0x123, 0x400, 0x200, text, 0x60000020},
		{".sbat", 0x2000, uint32(len(testStubSBAT)), 0x600, 0x200, []byte(testStubSBAT), 0x40000040},
		{".sdmagic", 0x3000, uint32(len(magic)), 0x800, uint32(len(magic)), magic, 0x40000040},
	}
	img := synthPE(0x1000, 0x200, 0x400, secs, nil)
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
	secs := []synthSection{
		{".text", 0x1000, uint32(len(code)), 0x200, 0x200, code, 0x60000020},
		{".sbat", 0x2000, uint32(len(testKernelSBAT)), 0x400, 0x200, []byte(testKernelSBAT), 0x40000040},
	}
	return synthPE(0x1000, 0x200, 0x200, secs, []byte("trailing"))
}

func TestSynthStubIsValid(t *testing.T) {
	if _, err := Inspect(synthStub()); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(synthKernel()); err != nil {
		t.Fatal(err)
	}
}
