// Package petest builds synthetic PE32+ images for the tests of the PE,
// UKI and Authenticode packages. The images are written byte by byte, so
// that tests do not depend on the writer they check.
package petest

import "encoding/binary"

// Section is one section of a synthetic PE image.
type Section struct {
	Name            string
	VA, VirtualSize uint32 // RVA and size in memory
	Offset, RawSize uint32 // PointerToRawData and SizeOfRawData
	Data            []byte // copied to the file at Offset, cut to RawSize
	Characteristics uint32
}

// Build returns a PE32+ x86-64 EFI application with the given section and
// file alignments, SizeOfHeaders and sections, followed by trailer. Its
// checksum field holds a stale value (0x1234), which a writer must reset.
func Build(sectionAlign, fileAlign, headers uint32, secs []Section, trailer []byte) []byte {
	le := binary.LittleEndian
	size := headers
	var imageEnd uint32
	for _, s := range secs {
		size = max(size, s.Offset+s.RawSize)
		imageEnd = max(imageEnd, s.VA+s.VirtualSize)
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
		copy(h[:8], s.Name)
		le.PutUint32(h[8:], s.VirtualSize)
		le.PutUint32(h[12:], s.VA)
		le.PutUint32(h[16:], s.RawSize)
		le.PutUint32(h[20:], s.Offset)
		le.PutUint32(h[36:], s.Characteristics)
		copy(img[s.Offset:s.Offset+s.RawSize], s.Data)
	}
	return append(img, trailer...)
}
