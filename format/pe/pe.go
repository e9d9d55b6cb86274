package pe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Machine types of the COFF file header that UEFI images use.
const (
	MachineI386    = 0x014c
	MachineAMD64   = 0x8664
	MachineARM     = 0x01c2
	MachineARM64   = 0xaa64
	MachineRISCV64 = 0x5064
)

// Optional header magic numbers.
const (
	MagicPE32     = 0x10b
	MagicPE32Plus = 0x20b
)

// Subsystem values of the optional header for EFI images.
const (
	SubsystemEFIApplication   = 10
	SubsystemEFIBootDriver    = 11
	SubsystemEFIRuntimeDriver = 12
)

// Section characteristics.
const (
	SectionCntCode              = 0x00000020
	SectionCntInitializedData   = 0x00000040
	SectionCntUninitializedData = 0x00000080
	SectionMemDiscardable       = 0x02000000
	SectionMemExecute           = 0x20000000
	SectionMemRead              = 0x40000000
	SectionMemWrite             = 0x80000000
)

// Indexes into OptionalHeader.DataDirectories.
const (
	DirectoryExport           = 0
	DirectoryImport           = 1
	DirectoryResource         = 2
	DirectoryException        = 3
	DirectoryCertificateTable = 4
	DirectoryBaseRelocation   = 5
	DirectoryDebug            = 6
)

// Layout constants of the PE/COFF format.
const (
	dosHeaderSize        = 0x40
	lfanewOffset         = 0x3c
	signatureSize        = 4
	fileHeaderSize       = 20
	sectionHeaderSize    = 40
	dataDirectorySize    = 8
	symbolSize           = 18 // one COFF symbol table record
	pe32FixedSize        = 96
	pe32PlusFixedSize    = 112
	checksumFieldOffset  = 64 // from the start of the optional header, PE32 and PE32+ alike
	maxDataDirectories   = 16
	maxImageSize         = 1<<32 - 1 // file offsets and RVAs are 32 bits
	sectionNameSize      = 8
	windowsSectionsLimit = 96 // the PE/COFF specification's loader limit, also systemd-stub's
)

// MaxSections is the largest number of sections AddSection creates: the
// limit of the Windows loader in the PE/COFF specification, which
// systemd-stub 252 also enforces when it looks up its sections.
const MaxSections = windowsSectionsLimit

// FileHeader is the COFF file header that follows the "PE\0\0" signature.
type FileHeader struct {
	Machine              uint16
	NumberOfSections     uint16
	TimeDateStamp        uint32
	PointerToSymbolTable uint32
	NumberOfSymbols      uint32
	SizeOfOptionalHeader uint16
	Characteristics      uint16
}

// DataDirectory is one entry of the optional header's data directory table.
// For the certificate table (index 4) VirtualAddress is a file offset, not
// an RVA.
type DataDirectory struct {
	VirtualAddress uint32
	Size           uint32
}

// OptionalHeader is the PE32 or PE32+ optional header. Fields that are 32
// bits wide in PE32 and 64 bits wide in PE32+ are held as uint64; BaseOfData
// exists only in PE32.
type OptionalHeader struct {
	Magic                       uint16
	MajorLinkerVersion          uint8
	MinorLinkerVersion          uint8
	SizeOfCode                  uint32
	SizeOfInitializedData       uint32
	SizeOfUninitializedData     uint32
	AddressOfEntryPoint         uint32
	BaseOfCode                  uint32
	BaseOfData                  uint32
	ImageBase                   uint64
	SectionAlignment            uint32
	FileAlignment               uint32
	MajorOperatingSystemVersion uint16
	MinorOperatingSystemVersion uint16
	MajorImageVersion           uint16
	MinorImageVersion           uint16
	MajorSubsystemVersion       uint16
	MinorSubsystemVersion       uint16
	Win32VersionValue           uint32
	SizeOfImage                 uint32
	SizeOfHeaders               uint32
	CheckSum                    uint32
	Subsystem                   uint16
	DllCharacteristics          uint16
	SizeOfStackReserve          uint64
	SizeOfStackCommit           uint64
	SizeOfHeapReserve           uint64
	SizeOfHeapCommit            uint64
	LoaderFlags                 uint32
	// DataDirectories has NumberOfRvaAndSizes entries (at most 16).
	DataDirectories []DataDirectory
}

// SectionHeader is one entry of the section table.
type SectionHeader struct {
	// Name is the raw 8-byte name, NUL-padded; see NameString.
	Name                 [sectionNameSize]byte
	VirtualSize          uint32
	VirtualAddress       uint32
	SizeOfRawData        uint32
	PointerToRawData     uint32
	PointerToRelocations uint32
	PointerToLinenumbers uint32
	NumberOfRelocations  uint16
	NumberOfLinenumbers  uint16
	Characteristics      uint32
}

// NameString returns the section name up to its first NUL byte.
func (s *SectionHeader) NameString() string {
	if i := bytes.IndexByte(s.Name[:], 0); i >= 0 {
		return string(s.Name[:i])
	}
	return string(s.Name[:])
}

// memoryEnd returns the first RVA after the section in memory. A loader maps
// VirtualSize bytes; a VirtualSize of 0 means SizeOfRawData (as objects have).
func (s *SectionHeader) memoryEnd() uint64 {
	size := s.VirtualSize
	if size == 0 {
		size = s.SizeOfRawData
	}
	return uint64(s.VirtualAddress) + uint64(size)
}

// File is a parsed PE/COFF image. The exported header fields may be read
// freely; change the image through the methods so that headers and data stay
// consistent. Bytes encodes the headers back into the image.
type File struct {
	// PEOffset is e_lfanew: the file offset of the "PE\0\0" signature.
	PEOffset       uint32
	FileHeader     FileHeader
	OptionalHeader OptionalHeader
	// Sections is the section table in table order.
	Sections []SectionHeader

	image []byte // the whole file; header fields above take precedence over its header bytes
}

// ErrNotPE is returned (wrapped) when the input does not start with a DOS
// header pointing at a PE signature.
var ErrNotPE = errors.New("not a PE image")

// Parse reads a PE/COFF image. It copies image, so the caller may reuse it.
// It checks that the headers, the section table, every section's raw data,
// the certificate table and the symbol table lie inside the image.
func Parse(image []byte) (*File, error) {
	return parse(bytes.Clone(image))
}

// parse is Parse without the copy; f.image aliases image.
func parse(image []byte) (*File, error) {
	if len(image) > maxImageSize {
		return nil, fmt.Errorf("pe: image is %d bytes, larger than the 4 GiB a PE image can address", len(image))
	}
	if len(image) < dosHeaderSize || image[0] != 'M' || image[1] != 'Z' {
		return nil, fmt.Errorf("pe: %w: no MZ DOS header", ErrNotPE)
	}
	f := &File{image: image}
	le := binary.LittleEndian
	f.PEOffset = le.Uint32(image[lfanewOffset:])
	if f.PEOffset < dosHeaderSize {
		return nil, fmt.Errorf("pe: %w: e_lfanew 0x%x points into the DOS header", ErrNotPE, f.PEOffset)
	}
	fileHdr := uint64(f.PEOffset) + signatureSize
	if fileHdr+fileHeaderSize > uint64(len(image)) {
		return nil, fmt.Errorf("pe: %w: e_lfanew 0x%x is past the end of the %d-byte file", ErrNotPE, f.PEOffset, len(image))
	}
	if !bytes.Equal(image[f.PEOffset:fileHdr], []byte("PE\x00\x00")) {
		return nil, fmt.Errorf("pe: %w: no PE signature at 0x%x", ErrNotPE, f.PEOffset)
	}
	h := image[fileHdr:]
	f.FileHeader = FileHeader{
		Machine:              le.Uint16(h[0:]),
		NumberOfSections:     le.Uint16(h[2:]),
		TimeDateStamp:        le.Uint32(h[4:]),
		PointerToSymbolTable: le.Uint32(h[8:]),
		NumberOfSymbols:      le.Uint32(h[12:]),
		SizeOfOptionalHeader: le.Uint16(h[16:]),
		Characteristics:      le.Uint16(h[18:]),
	}
	if err := f.parseOptionalHeader(); err != nil {
		return nil, err
	}
	if err := f.parseSections(); err != nil {
		return nil, err
	}
	if err := f.checkTables(); err != nil {
		return nil, err
	}
	return f, nil
}

// optionalHeaderOffset is the file offset of the optional header.
func (f *File) optionalHeaderOffset() uint64 {
	return uint64(f.PEOffset) + signatureSize + fileHeaderSize
}

// sectionTableOffset is the file offset of the first section header.
func (f *File) sectionTableOffset() uint64 {
	return f.optionalHeaderOffset() + uint64(f.FileHeader.SizeOfOptionalHeader)
}

// fixedOptionalSize is the size of the optional header before the data
// directories.
func (f *File) fixedOptionalSize() uint64 {
	if f.OptionalHeader.Magic == MagicPE32 {
		return pe32FixedSize
	}
	return pe32PlusFixedSize
}

// checksumOffset is the file offset of the optional header's CheckSum field.
func (f *File) checksumOffset() uint64 { return f.optionalHeaderOffset() + checksumFieldOffset }

// dataDirectoryOffset is the file offset of data directory entry i.
func (f *File) dataDirectoryOffset(i int) uint64 {
	return f.optionalHeaderOffset() + f.fixedOptionalSize() + uint64(i)*dataDirectorySize
}

func (f *File) parseOptionalHeader() error {
	le := binary.LittleEndian
	off := f.optionalHeaderOffset()
	size := uint64(f.FileHeader.SizeOfOptionalHeader)
	if size < 2 || off+size > uint64(len(f.image)) {
		return fmt.Errorf("pe: optional header (%d bytes at 0x%x) does not fit in the %d-byte file", size, off, len(f.image))
	}
	o := f.image[off : off+size]
	oh := &f.OptionalHeader
	oh.Magic = le.Uint16(o)
	var fixed uint64
	switch oh.Magic {
	case MagicPE32:
		fixed = pe32FixedSize
	case MagicPE32Plus:
		fixed = pe32PlusFixedSize
	default:
		return fmt.Errorf("pe: optional header magic 0x%x is neither PE32 (0x10b) nor PE32+ (0x20b)", oh.Magic)
	}
	if size < fixed {
		return fmt.Errorf("pe: SizeOfOptionalHeader %d is smaller than the %d bytes a %s header needs", size, fixed, magicName(oh.Magic))
	}
	oh.MajorLinkerVersion = o[2]
	oh.MinorLinkerVersion = o[3]
	oh.SizeOfCode = le.Uint32(o[4:])
	oh.SizeOfInitializedData = le.Uint32(o[8:])
	oh.SizeOfUninitializedData = le.Uint32(o[12:])
	oh.AddressOfEntryPoint = le.Uint32(o[16:])
	oh.BaseOfCode = le.Uint32(o[20:])
	var numDirs uint32
	if oh.Magic == MagicPE32 {
		oh.BaseOfData = le.Uint32(o[24:])
		oh.ImageBase = uint64(le.Uint32(o[28:]))
		oh.SizeOfStackReserve = uint64(le.Uint32(o[72:]))
		oh.SizeOfStackCommit = uint64(le.Uint32(o[76:]))
		oh.SizeOfHeapReserve = uint64(le.Uint32(o[80:]))
		oh.SizeOfHeapCommit = uint64(le.Uint32(o[84:]))
		oh.LoaderFlags = le.Uint32(o[88:])
		numDirs = le.Uint32(o[92:])
	} else {
		oh.ImageBase = le.Uint64(o[24:])
		oh.SizeOfStackReserve = le.Uint64(o[72:])
		oh.SizeOfStackCommit = le.Uint64(o[80:])
		oh.SizeOfHeapReserve = le.Uint64(o[88:])
		oh.SizeOfHeapCommit = le.Uint64(o[96:])
		oh.LoaderFlags = le.Uint32(o[104:])
		numDirs = le.Uint32(o[108:])
	}
	oh.SectionAlignment = le.Uint32(o[32:])
	oh.FileAlignment = le.Uint32(o[36:])
	oh.MajorOperatingSystemVersion = le.Uint16(o[40:])
	oh.MinorOperatingSystemVersion = le.Uint16(o[42:])
	oh.MajorImageVersion = le.Uint16(o[44:])
	oh.MinorImageVersion = le.Uint16(o[46:])
	oh.MajorSubsystemVersion = le.Uint16(o[48:])
	oh.MinorSubsystemVersion = le.Uint16(o[50:])
	oh.Win32VersionValue = le.Uint32(o[52:])
	oh.SizeOfImage = le.Uint32(o[56:])
	oh.SizeOfHeaders = le.Uint32(o[60:])
	oh.CheckSum = le.Uint32(o[64:])
	oh.Subsystem = le.Uint16(o[68:])
	oh.DllCharacteristics = le.Uint16(o[70:])
	if numDirs > maxDataDirectories {
		return fmt.Errorf("pe: NumberOfRvaAndSizes %d is more than %d", numDirs, maxDataDirectories)
	}
	if fixed+uint64(numDirs)*dataDirectorySize > size {
		return fmt.Errorf("pe: %d data directories do not fit in SizeOfOptionalHeader %d", numDirs, size)
	}
	oh.DataDirectories = make([]DataDirectory, numDirs)
	for i := range oh.DataDirectories {
		d := o[fixed+uint64(i)*dataDirectorySize:]
		oh.DataDirectories[i] = DataDirectory{VirtualAddress: le.Uint32(d), Size: le.Uint32(d[4:])}
	}
	return nil
}

func (f *File) parseSections() error {
	le := binary.LittleEndian
	n := uint64(f.FileHeader.NumberOfSections)
	start := f.sectionTableOffset()
	end := start + n*sectionHeaderSize
	headers := uint64(f.OptionalHeader.SizeOfHeaders)
	if headers > uint64(len(f.image)) {
		return fmt.Errorf("pe: SizeOfHeaders 0x%x is past the end of the %d-byte file", headers, len(f.image))
	}
	if end > headers {
		return fmt.Errorf("pe: section table of %d entries (0x%x-0x%x) extends past SizeOfHeaders 0x%x", n, start, end, headers)
	}
	f.Sections = make([]SectionHeader, n)
	for i := range f.Sections {
		b := f.image[start+uint64(i)*sectionHeaderSize:]
		s := &f.Sections[i]
		copy(s.Name[:], b[:sectionNameSize])
		s.VirtualSize = le.Uint32(b[8:])
		s.VirtualAddress = le.Uint32(b[12:])
		s.SizeOfRawData = le.Uint32(b[16:])
		s.PointerToRawData = le.Uint32(b[20:])
		s.PointerToRelocations = le.Uint32(b[24:])
		s.PointerToLinenumbers = le.Uint32(b[28:])
		s.NumberOfRelocations = le.Uint16(b[32:])
		s.NumberOfLinenumbers = le.Uint16(b[34:])
		s.Characteristics = le.Uint32(b[36:])
		if s.SizeOfRawData != 0 && uint64(s.PointerToRawData)+uint64(s.SizeOfRawData) > uint64(len(f.image)) {
			return fmt.Errorf("pe: section %d %q: raw data 0x%x+0x%x is past the end of the %d-byte file",
				i, s.NameString(), s.PointerToRawData, s.SizeOfRawData, len(f.image))
		}
	}
	return nil
}

// checkTables checks that the certificate table and the symbol table lie
// inside the file.
func (f *File) checkTables() error {
	if off, size, ok := f.CertificateTable(); ok {
		if uint64(off)+uint64(size) > uint64(len(f.image)) {
			return fmt.Errorf("pe: certificate table 0x%x+0x%x is past the end of the %d-byte file", off, size, len(f.image))
		}
		if uint64(off) < uint64(f.OptionalHeader.SizeOfHeaders) {
			return fmt.Errorf("pe: certificate table at 0x%x lies inside the headers (SizeOfHeaders 0x%x)", off, f.OptionalHeader.SizeOfHeaders)
		}
	}
	if p := f.FileHeader.PointerToSymbolTable; p != 0 {
		end := uint64(p) + uint64(f.FileHeader.NumberOfSymbols)*symbolSize
		if end > uint64(len(f.image)) {
			return fmt.Errorf("pe: COFF symbol table 0x%x with %d symbols is past the end of the %d-byte file",
				p, f.FileHeader.NumberOfSymbols, len(f.image))
		}
	}
	return nil
}

func magicName(m uint16) string {
	if m == MagicPE32 {
		return "PE32"
	}
	return "PE32+"
}

// Len returns the size of the image in bytes.
func (f *File) Len() int { return len(f.image) }

// Section returns the index of the last section whose name is exactly name,
// or -1. (systemd-stub 252 also lets the last match win.)
func (f *File) Section(name string) int {
	for i := len(f.Sections) - 1; i >= 0; i-- {
		if f.Sections[i].NameString() == name {
			return i
		}
	}
	return -1
}

// RawData returns section i's raw data as stored in the file: SizeOfRawData
// bytes from PointerToRawData. The slice aliases the File.
func (f *File) RawData(i int) []byte {
	s := &f.Sections[i]
	if s.SizeOfRawData == 0 {
		return nil
	}
	return f.image[s.PointerToRawData : uint64(s.PointerToRawData)+uint64(s.SizeOfRawData)]
}

// Contents returns what a loader places at section i's address and what
// systemd-stub measures and uses: the first VirtualSize bytes of its raw
// data. When VirtualSize is larger than SizeOfRawData the rest would be
// zero-filled in memory; Contents then returns only the bytes in the file.
// The slice aliases the File.
func (f *File) Contents(i int) []byte {
	raw := f.RawData(i)
	if vs := f.Sections[i].VirtualSize; uint64(vs) < uint64(len(raw)) {
		return raw[:vs]
	}
	return raw
}

// CertificateTable returns the file offset and size of the certificate
// table (the Authenticode signatures), and whether the image has one.
func (f *File) CertificateTable() (offset, size uint32, ok bool) {
	dirs := f.OptionalHeader.DataDirectories
	if len(dirs) <= DirectoryCertificateTable {
		return 0, 0, false
	}
	d := dirs[DirectoryCertificateTable]
	if d.VirtualAddress == 0 && d.Size == 0 {
		return 0, 0, false
	}
	return d.VirtualAddress, d.Size, true
}

// CertificateTableData returns the bytes of the certificate table, or nil
// when there is none. The slice aliases the File.
func (f *File) CertificateTableData() []byte {
	off, size, ok := f.CertificateTable()
	if !ok {
		return nil
	}
	return f.image[off : uint64(off)+uint64(size)]
}

// CheckLayout reports the first inconsistency in the section layout that a
// loader would trip over: sections that overlap in memory or in the file, a
// section that extends past SizeOfImage or lies inside the headers.
func (f *File) CheckLayout() error {
	size := uint64(f.OptionalHeader.SizeOfImage)
	headers := uint64(f.OptionalHeader.SizeOfHeaders)
	for i := range f.Sections {
		s := &f.Sections[i]
		if s.memoryEnd() > size {
			return fmt.Errorf("pe: section %q (0x%x-0x%x) extends past SizeOfImage 0x%x", s.NameString(), s.VirtualAddress, s.memoryEnd(), size)
		}
		if uint64(s.VirtualAddress) < headers {
			return fmt.Errorf("pe: section %q at RVA 0x%x overlaps the headers (SizeOfHeaders 0x%x)", s.NameString(), s.VirtualAddress, headers)
		}
		if s.SizeOfRawData != 0 && uint64(s.PointerToRawData) < headers {
			return fmt.Errorf("pe: section %q raw data at 0x%x lies inside the headers (SizeOfHeaders 0x%x)", s.NameString(), s.PointerToRawData, headers)
		}
	}
	memory := make([]span, 0, len(f.Sections))
	file := make([]span, 0, len(f.Sections))
	for i := range f.Sections {
		s := &f.Sections[i]
		memory = append(memory, span{uint64(s.VirtualAddress), s.memoryEnd(), i})
		if s.SizeOfRawData != 0 {
			file = append(file, span{uint64(s.PointerToRawData), uint64(s.PointerToRawData) + uint64(s.SizeOfRawData), i})
		}
	}
	if a, b, ok := firstOverlap(memory); ok {
		return fmt.Errorf("pe: sections %q (RVA 0x%x-0x%x) and %q (RVA 0x%x-0x%x) overlap in memory",
			f.Sections[a.index].NameString(), a.start, a.end, f.Sections[b.index].NameString(), b.start, b.end)
	}
	if a, b, ok := firstOverlap(file); ok {
		return fmt.Errorf("pe: sections %q (0x%x-0x%x) and %q (0x%x-0x%x) overlap in the file",
			f.Sections[a.index].NameString(), a.start, a.end, f.Sections[b.index].NameString(), b.start, b.end)
	}
	return nil
}

// span is a half-open range [start, end) belonging to section index.
type span struct {
	start, end uint64
	index      int
}

// firstOverlap sorts spans by start and returns two that overlap, if any.
// Empty spans overlap nothing.
func firstOverlap(spans []span) (a, b span, ok bool) {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var widest span
	have := false
	for _, s := range spans {
		if s.start == s.end {
			continue
		}
		if have && s.start < widest.end {
			return widest, s, true
		}
		if !have || s.end > widest.end {
			widest, have = s, true
		}
	}
	return span{}, span{}, false
}
