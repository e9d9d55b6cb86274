package pe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Bytes returns the image with the File's header fields encoded into it:
// the COFF file header, the optional header with its data directories and
// the section table. Everything else — the DOS stub, section data, trailing
// data — is the image's own bytes.
func (f *File) Bytes() []byte {
	out := bytes.Clone(f.image)
	f.encodeHeaders(out)
	return out
}

// encodeHeaders writes the header fields into image, which must be at least
// as long as the headers (Parse and the mutating methods guarantee it).
func (f *File) encodeHeaders(image []byte) {
	le := binary.LittleEndian
	le.PutUint32(image[lfanewOffset:], f.PEOffset)
	h := image[uint64(f.PEOffset)+signatureSize:]
	fh := &f.FileHeader
	le.PutUint16(h[0:], fh.Machine)
	le.PutUint16(h[2:], fh.NumberOfSections)
	le.PutUint32(h[4:], fh.TimeDateStamp)
	le.PutUint32(h[8:], fh.PointerToSymbolTable)
	le.PutUint32(h[12:], fh.NumberOfSymbols)
	le.PutUint16(h[16:], fh.SizeOfOptionalHeader)
	le.PutUint16(h[18:], fh.Characteristics)

	o := image[f.optionalHeaderOffset():]
	oh := &f.OptionalHeader
	le.PutUint16(o[0:], oh.Magic)
	o[2] = oh.MajorLinkerVersion
	o[3] = oh.MinorLinkerVersion
	le.PutUint32(o[4:], oh.SizeOfCode)
	le.PutUint32(o[8:], oh.SizeOfInitializedData)
	le.PutUint32(o[12:], oh.SizeOfUninitializedData)
	le.PutUint32(o[16:], oh.AddressOfEntryPoint)
	le.PutUint32(o[20:], oh.BaseOfCode)
	if oh.Magic == MagicPE32 {
		le.PutUint32(o[24:], oh.BaseOfData)
		le.PutUint32(o[28:], uint32(oh.ImageBase))
		le.PutUint32(o[72:], uint32(oh.SizeOfStackReserve))
		le.PutUint32(o[76:], uint32(oh.SizeOfStackCommit))
		le.PutUint32(o[80:], uint32(oh.SizeOfHeapReserve))
		le.PutUint32(o[84:], uint32(oh.SizeOfHeapCommit))
		le.PutUint32(o[88:], oh.LoaderFlags)
		le.PutUint32(o[92:], uint32(len(oh.DataDirectories)))
	} else {
		le.PutUint64(o[24:], oh.ImageBase)
		le.PutUint64(o[72:], oh.SizeOfStackReserve)
		le.PutUint64(o[80:], oh.SizeOfStackCommit)
		le.PutUint64(o[88:], oh.SizeOfHeapReserve)
		le.PutUint64(o[96:], oh.SizeOfHeapCommit)
		le.PutUint32(o[104:], oh.LoaderFlags)
		le.PutUint32(o[108:], uint32(len(oh.DataDirectories)))
	}
	le.PutUint32(o[32:], oh.SectionAlignment)
	le.PutUint32(o[36:], oh.FileAlignment)
	le.PutUint16(o[40:], oh.MajorOperatingSystemVersion)
	le.PutUint16(o[42:], oh.MinorOperatingSystemVersion)
	le.PutUint16(o[44:], oh.MajorImageVersion)
	le.PutUint16(o[46:], oh.MinorImageVersion)
	le.PutUint16(o[48:], oh.MajorSubsystemVersion)
	le.PutUint16(o[50:], oh.MinorSubsystemVersion)
	le.PutUint32(o[52:], oh.Win32VersionValue)
	le.PutUint32(o[56:], oh.SizeOfImage)
	le.PutUint32(o[60:], oh.SizeOfHeaders)
	le.PutUint32(o[64:], oh.CheckSum)
	le.PutUint16(o[68:], oh.Subsystem)
	le.PutUint16(o[70:], oh.DllCharacteristics)
	for i, d := range oh.DataDirectories {
		p := o[f.fixedOptionalSize()+uint64(i)*dataDirectorySize:]
		le.PutUint32(p, d.VirtualAddress)
		le.PutUint32(p[4:], d.Size)
	}

	for i := range f.Sections {
		f.encodeSectionHeader(image, i)
	}
}

// encodeSectionHeader writes section header i into its slot of the table.
func (f *File) encodeSectionHeader(image []byte, i int) {
	le := binary.LittleEndian
	s := &f.Sections[i]
	b := image[f.sectionTableOffset()+uint64(i)*sectionHeaderSize:]
	copy(b[:sectionNameSize], s.Name[:])
	le.PutUint32(b[8:], s.VirtualSize)
	le.PutUint32(b[12:], s.VirtualAddress)
	le.PutUint32(b[16:], s.SizeOfRawData)
	le.PutUint32(b[20:], s.PointerToRawData)
	le.PutUint32(b[24:], s.PointerToRelocations)
	le.PutUint32(b[28:], s.PointerToLinenumbers)
	le.PutUint16(b[32:], s.NumberOfRelocations)
	le.PutUint16(b[34:], s.NumberOfLinenumbers)
	le.PutUint32(b[36:], s.Characteristics)
}

// Checksum computes the optional header's CheckSum of the image as Bytes
// would return it: the 16-bit one's-complement-style sum (add, fold the
// carry) of all little-endian 16-bit words with the CheckSum field taken as
// zero, plus the file length. This is the value sbsign writes.
func (f *File) Checksum() uint32 {
	image := f.Bytes()
	return checksum(image, f.checksumOffset())
}

// UpdateChecksum sets OptionalHeader.CheckSum to Checksum().
func (f *File) UpdateChecksum() { f.OptionalHeader.CheckSum = f.Checksum() }

func checksum(image []byte, csumOff uint64) uint32 {
	var sum uint64
	for i := 0; i+1 < len(image); i += 2 {
		if uint64(i) >= csumOff && uint64(i) < csumOff+4 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(image[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(image)%2 == 1 {
		sum += uint64(image[len(image)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return uint32(sum + uint64(len(image)))
}

// alignUp rounds x up to a multiple of align, which must be a power of two.
func alignUp(x, align uint64) uint64 { return (x + align - 1) &^ (align - 1) }

// maxFileAlignment is the largest FileAlignment the PE/COFF specification
// allows; larger values would only make appended sections waste space.
const maxFileAlignment = 64 << 10

// validAlignment reports whether a is a usable power-of-two alignment.
func validAlignment(a uint32) bool { return a != 0 && bits.OnesCount32(a) == 1 }

// validFileAlignment reports whether a is a power of two no larger than the
// specification's 64 KiB.
func validFileAlignment(a uint32) bool { return validAlignment(a) && a <= maxFileAlignment }

// RemoveCertificateTable drops the Authenticode signatures: the certificate
// table directory entry is cleared and, when the table is the last thing in
// the file (where signers put it), the file is cut at its start. Any change
// to the image invalidates the signatures, so AddSection calls this first.
// It reports whether there was a table.
func (f *File) RemoveCertificateTable() bool {
	off, size, ok := f.CertificateTable()
	if !ok {
		return false
	}
	if uint64(off)+uint64(size) == uint64(len(f.image)) && uint64(off) >= f.dataEnd() {
		f.image = f.image[:off]
	}
	f.OptionalHeader.DataDirectories[DirectoryCertificateTable] = DataDirectory{}
	return true
}

// StripSymbolTable removes a COFF symbol table (and the string table after
// it) that sits at the very end of the file, as ukify does: image files
// should carry none, and sections appended after it would otherwise have to
// start past it. PointerToSymbolTable and NumberOfSymbols become zero; the
// Characteristics are left as they are (ukify's attempt to set the
// deprecated local-symbols-stripped flag does not reach the file). A symbol
// table elsewhere in the file is left alone. It reports whether it removed
// one.
func (f *File) StripSymbolTable() bool {
	ptr := uint64(f.FileHeader.PointerToSymbolTable)
	if ptr == 0 {
		return false
	}
	end := ptr + uint64(f.FileHeader.NumberOfSymbols)*symbolSize
	if end+4 <= uint64(len(f.image)) {
		// The string table's first 4 bytes are its own size, including them.
		end += uint64(binary.LittleEndian.Uint32(f.image[end:]))
	}
	if end != uint64(len(f.image)) || ptr < f.dataEnd() {
		return false
	}
	if _, _, ok := f.CertificateTable(); ok {
		return false // the table would follow the symbols; it cannot be at the end too
	}
	f.image = f.image[:ptr]
	f.FileHeader.PointerToSymbolTable = 0
	f.FileHeader.NumberOfSymbols = 0
	return true
}

// dataEnd returns the end of the headers and of all sections' raw data.
func (f *File) dataEnd() uint64 {
	end := uint64(f.OptionalHeader.SizeOfHeaders)
	for i := range f.Sections {
		s := &f.Sections[i]
		if s.SizeOfRawData == 0 {
			continue
		}
		end = max(end, uint64(s.PointerToRawData)+uint64(s.SizeOfRawData))
	}
	return end
}

// AlignRawData rounds every section's PointerToRawData and SizeOfRawData up
// to FileAlignment, inserting zero bytes and moving later sections' data, and
// rounds SizeOfHeaders up to FileAlignment when that does not reach into
// section data: what ukify does to stubs that were stripped into unaligned
// layouts, and how it makes room for more section headers. Moving data is
// only done for images whose sections lie in table order with no symbol or
// certificate table to move along; otherwise an unaligned image is an error.
func (f *File) AlignRawData() error {
	fa := f.OptionalHeader.FileAlignment
	if !validFileAlignment(fa) {
		return fmt.Errorf("pe: FileAlignment 0x%x is not a power of two up to 64 KiB", fa)
	}
	align := uint64(fa)
	needsMove := false
	for i := range f.Sections {
		s := &f.Sections[i]
		if s.SizeOfRawData == 0 {
			continue
		}
		if uint64(s.PointerToRawData)%align != 0 || uint64(s.SizeOfRawData)%align != 0 {
			needsMove = true
		}
	}
	if needsMove {
		if err := f.checkMovable(); err != nil {
			return err
		}
		// One pass over the sections in file (= table) order: the bytes
		// between sections are kept, each section's data starts at the next
		// boundary of the output so far and is zero-padded to a multiple of
		// the alignment, exactly as inserting the padding one section at a
		// time would place it.
		var grown []byte
		cursor := uint64(0)
		placed := make([]SectionHeader, len(f.Sections))
		copy(placed, f.Sections)
		for i := range placed {
			s := &placed[i]
			if s.SizeOfRawData == 0 {
				continue
			}
			oldPtr, oldSize := uint64(s.PointerToRawData), uint64(s.SizeOfRawData)
			grown = append(grown, f.image[cursor:oldPtr]...)
			newPtr := alignUp(uint64(len(grown)), align)
			newSize := alignUp(oldSize, align)
			if newPtr+newSize > maxImageSize {
				return fmt.Errorf("pe: aligning section %q makes the image larger than 4 GiB", s.NameString())
			}
			grown = append(grown, make([]byte, newPtr-uint64(len(grown)))...)
			grown = append(grown, f.image[oldPtr:oldPtr+oldSize]...)
			grown = append(grown, make([]byte, newSize-oldSize)...)
			s.PointerToRawData, s.SizeOfRawData = uint32(newPtr), uint32(newSize)
			cursor = oldPtr + oldSize
		}
		grown = append(grown, f.image[cursor:]...)
		if uint64(len(grown)) > maxImageSize {
			return fmt.Errorf("pe: aligning raw data makes the image larger than 4 GiB")
		}
		f.image, f.Sections = grown, placed
	}
	headers := alignUp(uint64(f.OptionalHeader.SizeOfHeaders), align)
	if headers <= f.firstRawData() && headers <= uint64(len(f.image)) {
		f.OptionalHeader.SizeOfHeaders = uint32(headers)
	}
	return nil
}

// checkMovable says why section data cannot be shifted, if it cannot.
func (f *File) checkMovable() error {
	if len(f.Sections) > MaxSections {
		return fmt.Errorf("pe: cannot align the raw data of %d sections (at most %d)", len(f.Sections), MaxSections)
	}
	if _, _, ok := f.CertificateTable(); ok {
		return fmt.Errorf("pe: cannot align the raw data of a signed image")
	}
	if f.FileHeader.PointerToSymbolTable != 0 {
		return fmt.Errorf("pe: cannot align raw data while a COFF symbol table remains at 0x%x", f.FileHeader.PointerToSymbolTable)
	}
	prevEnd := uint64(f.OptionalHeader.SizeOfHeaders)
	for i := range f.Sections {
		s := &f.Sections[i]
		if s.SizeOfRawData == 0 {
			continue
		}
		if uint64(s.PointerToRawData) < prevEnd {
			return fmt.Errorf("pe: cannot align raw data: section %q at 0x%x is not after the data before it in the table", s.NameString(), s.PointerToRawData)
		}
		prevEnd = uint64(s.PointerToRawData) + uint64(s.SizeOfRawData)
	}
	return nil
}

// firstRawData returns the lowest file offset of any section's raw data, or
// the file length when no section has raw data.
func (f *File) firstRawData() uint64 {
	first := uint64(len(f.image))
	for i := range f.Sections {
		s := &f.Sections[i]
		if s.SizeOfRawData != 0 {
			first = min(first, uint64(s.PointerToRawData))
		}
	}
	return first
}

// CheckSectionName reports whether name can be a section name in an image:
// 1 to 8 printable ASCII characters (images have no string table for longer
// names, and systemd-stub compares at most 8 bytes).
func CheckSectionName(name string) error {
	if name == "" || len(name) > sectionNameSize {
		return fmt.Errorf("pe: section name %q must be 1 to %d characters", name, sectionNameSize)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return fmt.Errorf("pe: section name %q has a character that is not printable ASCII", name)
		}
	}
	return nil
}

// AddSection appends a section the way ukify (systemd 254–256) does:
//   - its header goes into the table right after the last one, which must
//     still end within SizeOfHeaders (sections' data is not moved to make
//     room);
//   - VirtualAddress is the end of the highest section in memory rounded up
//     to SectionAlignment, VirtualSize is len(data);
//   - PointerToRawData is the end of the file rounded up to FileAlignment,
//     SizeOfRawData is len(data) rounded up to FileAlignment, zero-padded;
//   - NumberOfSections, SizeOfInitializedData (by len(data)) and SizeOfImage
//     are updated and CheckSum is set to zero, as ukify leaves it.
//
// A certificate table is removed first, since the signatures cannot cover
// the new section. Empty data and duplicate names are refused.
func (f *File) AddSection(name string, data []byte, characteristics uint32) (*SectionHeader, error) {
	if err := CheckSectionName(name); err != nil {
		return nil, err
	}
	if f.Section(name) >= 0 {
		return nil, fmt.Errorf("pe: section %q already exists", name)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("pe: section %q: no data", name)
	}
	oh := &f.OptionalHeader
	if !validFileAlignment(oh.FileAlignment) || !validAlignment(oh.SectionAlignment) {
		return nil, fmt.Errorf("pe: FileAlignment 0x%x and SectionAlignment 0x%x must be powers of two (FileAlignment up to 64 KiB)", oh.FileAlignment, oh.SectionAlignment)
	}
	if len(f.Sections) >= MaxSections {
		return nil, fmt.Errorf("pe: cannot add section %q: the image already has %d sections, the most a loader accepts", name, len(f.Sections))
	}
	headerAt := f.sectionTableOffset() + uint64(len(f.Sections))*sectionHeaderSize
	if headerAt+sectionHeaderSize > uint64(oh.SizeOfHeaders) {
		return nil, fmt.Errorf("pe: not enough header space to add section %q: its header would end at 0x%x, past SizeOfHeaders 0x%x",
			name, headerAt+sectionHeaderSize, oh.SizeOfHeaders)
	}
	if first := f.firstRawData(); headerAt+sectionHeaderSize > first {
		return nil, fmt.Errorf("pe: not enough header space to add section %q: section data starts at 0x%x", name, first)
	}
	f.RemoveCertificateTable()

	var memEnd uint64
	for i := range f.Sections {
		memEnd = max(memEnd, f.Sections[i].memoryEnd())
	}
	va := alignUp(max(memEnd, uint64(oh.SizeOfHeaders)), uint64(oh.SectionAlignment))
	ptr := alignUp(uint64(len(f.image)), uint64(oh.FileAlignment))
	rawSize := alignUp(uint64(len(data)), uint64(oh.FileAlignment))
	imageEnd := alignUp(va+uint64(len(data)), uint64(oh.SectionAlignment))
	if ptr+rawSize > maxImageSize || imageEnd > maxImageSize {
		return nil, fmt.Errorf("pe: adding section %q (%d bytes) makes the image larger than 4 GiB", name, len(data))
	}

	s := SectionHeader{
		VirtualSize:      uint32(len(data)),
		VirtualAddress:   uint32(va),
		SizeOfRawData:    uint32(rawSize),
		PointerToRawData: uint32(ptr),
		Characteristics:  characteristics,
	}
	copy(s.Name[:], name)
	grown := make([]byte, ptr+rawSize)
	copy(grown, f.image)
	copy(grown[ptr:], data)
	f.image = grown
	f.Sections = append(f.Sections, s)
	f.FileHeader.NumberOfSections = uint16(len(f.Sections))
	oh.SizeOfInitializedData += uint32(len(data))
	oh.SizeOfImage = uint32(imageEnd)
	oh.CheckSum = 0
	return &f.Sections[len(f.Sections)-1], nil
}

// CheckReplace reports whether n bytes of contents can replace section i's
// in place: they must fit in its SizeOfRawData, and the section must not
// then reach another section in memory or extend past 4 GiB.
func (f *File) CheckReplace(i, n int) error {
	if i < 0 || i >= len(f.Sections) {
		return fmt.Errorf("pe: no section %d", i)
	}
	s := &f.Sections[i]
	if n < 0 || uint64(n) > uint64(s.SizeOfRawData) {
		return fmt.Errorf("pe: %d bytes do not fit in section %q (SizeOfRawData 0x%x)", n, s.NameString(), s.SizeOfRawData)
	}
	end := uint64(s.VirtualAddress) + uint64(n)
	for j := range f.Sections {
		o := &f.Sections[j]
		if j != i && o.VirtualAddress >= s.VirtualAddress && uint64(o.VirtualAddress) < end {
			return fmt.Errorf("pe: %d bytes in section %q (RVA 0x%x) would overlap section %q at RVA 0x%x",
				n, s.NameString(), s.VirtualAddress, o.NameString(), o.VirtualAddress)
		}
	}
	if end > uint64(f.OptionalHeader.SizeOfImage) {
		if !validAlignment(f.OptionalHeader.SectionAlignment) {
			return fmt.Errorf("pe: SectionAlignment 0x%x is not a power of two", f.OptionalHeader.SectionAlignment)
		}
		if alignUp(end, uint64(f.OptionalHeader.SectionAlignment)) > maxImageSize {
			return fmt.Errorf("pe: section %q would end past 4 GiB", s.NameString())
		}
	}
	return nil
}

// ReplaceContents overwrites section i's contents in place, as ukify does
// for a section the stub already has (.sbat); CheckReplace says whether
// data fits. VirtualSize becomes len(data), the rest of the raw data is
// zeroed, SizeOfImage grows if the section now ends past it, and CheckSum is
// set to zero. A certificate table is removed.
func (f *File) ReplaceContents(i int, data []byte) error {
	if err := f.CheckReplace(i, len(data)); err != nil {
		return err
	}
	s := &f.Sections[i]
	if end := uint64(s.VirtualAddress) + uint64(len(data)); end > uint64(f.OptionalHeader.SizeOfImage) {
		f.OptionalHeader.SizeOfImage = uint32(alignUp(end, uint64(f.OptionalHeader.SectionAlignment)))
	}
	f.RemoveCertificateTable()
	raw := f.RawData(i)
	copy(raw, data)
	clear(raw[len(data):])
	s.VirtualSize = uint32(len(data))
	f.OptionalHeader.CheckSum = 0
	return nil
}
