package pe

import (
	"crypto"
	_ "crypto/sha256" // the hash Authenticode uses; linked so crypto.SHA256 is available
	"fmt"
	"sort"
)

// Range is a half-open byte range [Start, End) of an image.
type Range struct {
	Start, End int
}

// AuthenticodeRanges returns the byte ranges of image that its Authenticode
// digest covers, in hashing order:
//
//  1. the headers up to the CheckSum field;
//  2. from after CheckSum to the certificate table's data directory entry;
//  3. from after that entry to SizeOfHeaders (when the image has fewer than
//     five data directories, 2 and 3 are one range from after CheckSum);
//  4. each section's raw data (SizeOfRawData bytes at PointerToRawData;
//     sections without raw data are skipped), in file order;
//  5. whatever follows the last section's raw data, up to the certificate
//     table or, in an unsigned image, the end of the file.
//
// The certificate table is never covered. A signer such as sbsign first pads
// the image with zeros to a multiple of 8 bytes (where it will put the
// table), so the digest of an unsigned image whose length is not a multiple
// of 8 differs from that of its signed copy.
func AuthenticodeRanges(image []byte) ([]Range, error) {
	f, err := parse(image)
	if err != nil {
		return nil, err
	}
	return f.authenticodeRanges()
}

func (f *File) authenticodeRanges() ([]Range, error) {
	headers := int(f.OptionalHeader.SizeOfHeaders)
	csum := int(f.checksumOffset())
	ranges := []Range{{0, csum}}
	if len(f.OptionalHeader.DataDirectories) > DirectoryCertificateTable {
		dir := int(f.dataDirectoryOffset(DirectoryCertificateTable))
		ranges = append(ranges, Range{csum + 4, dir}, Range{dir + dataDirectorySize, headers})
	} else {
		ranges = append(ranges, Range{csum + 4, headers})
	}

	order := make([]int, 0, len(f.Sections))
	for i := range f.Sections {
		if f.Sections[i].SizeOfRawData != 0 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		return f.Sections[order[a]].PointerToRawData < f.Sections[order[b]].PointerToRawData
	})
	hashedEnd := headers
	for _, i := range order {
		s := &f.Sections[i]
		r := Range{int(s.PointerToRawData), int(s.PointerToRawData) + int(s.SizeOfRawData)}
		ranges = append(ranges, r)
		hashedEnd = max(hashedEnd, r.End)
	}

	end := len(f.image)
	if off, size, ok := f.CertificateTable(); ok {
		if int(off)+int(size) != len(f.image) {
			return nil, fmt.Errorf("pe: certificate table 0x%x+0x%x is not at the end of the %d-byte file", off, size, len(f.image))
		}
		if int(off) < hashedEnd {
			return nil, fmt.Errorf("pe: certificate table at 0x%x overlaps section data ending at 0x%x", off, hashedEnd)
		}
		end = int(off)
	}
	if end > hashedEnd {
		ranges = append(ranges, Range{hashedEnd, end})
	}
	return ranges, nil
}

// AuthenticodeDigest returns the Authenticode digest of a PE image with hash
// h: the hash of the ranges AuthenticodeRanges lists, concatenated. It is the
// value a signature's SpcIndirectDataContent carries and that UEFI firmware
// compares against its db and dbx.
func AuthenticodeDigest(image []byte, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("pe: hash function %v is not available", h)
	}
	ranges, err := AuthenticodeRanges(image)
	if err != nil {
		return nil, err
	}
	d := h.New()
	for _, r := range ranges {
		d.Write(image[r.Start:r.End])
	}
	return d.Sum(nil), nil
}
