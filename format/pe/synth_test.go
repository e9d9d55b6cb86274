package pe

import "encoding/binary"

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

// synthImage returns a PE32+ image with room for 13 more section headers:
// .text at RVA 0x1000 and .data at RVA 0x2000, 4 KiB apart in memory, 512
// bytes apart in the file.
func synthImage() []byte {
	return synthPE(0x1000, 0x200, 0x400, []synthSection{
		{".text", 0x1000, 0x10, 0x400, 0x200, []byte("\xc3 text section"), 0x60000020},
		{".data", 0x2000, 0x20, 0x600, 0x200, []byte("data section contents, 32 bytes"), 0xc0000040},
	}, nil)
}
