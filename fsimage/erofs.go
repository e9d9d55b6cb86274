package fsimage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// The erofs on-disk superblock (linux fs/erofs/erofs_fs.h): it starts 1024
// bytes into the image; every integer is little-endian.
const (
	erofsSuperOffset    = 1024
	erofsMagic          = 0xE0F5E1E2
	erofsOffChecksum    = 4  // __le32 checksum: crc32c of the superblock block
	erofsOffFeatCompat  = 8  // __le32 feature_compat
	erofsOffBlkSzBits   = 12 // __u8 blkszbits
	erofsOffVolumeName  = 64 // __u8 volume_name[16]
	erofsVolumeNameSize = 16
	erofsCompatSBChksum = 0x1 // EROFS_FEATURE_COMPAT_SB_CHKSUM
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// erofsChecksum computes the superblock checksum over b, which runs from
// the superblock to the end of the first block, with the checksum field
// read as zero. The kernel seeds crc32c with ~0 and does not invert the
// result, which is the bitwise NOT of the standard CRC-32C.
func erofsChecksum(b []byte) uint32 {
	c := make([]byte, len(b))
	copy(c, b)
	binary.LittleEndian.PutUint32(c[erofsOffChecksum:], 0)
	return ^crc32.Checksum(c, castagnoli)
}

// setErofsLabel writes label into the volume name of the erofs image at
// path and updates the superblock checksum. erofs-utils 1.5, Debian 12's,
// has no option for the label (mkfs.erofs -L came with 1.6).
func setErofsLabel(path, label string) error {
	if len(label) > erofsVolumeNameSize {
		return fmt.Errorf("fsimage: erofs label %q is longer than %d bytes", label, erofsVolumeNameSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("fsimage: %w", err)
	}
	defer f.Close()
	head := make([]byte, erofsSuperOffset+128)
	if _, err := f.ReadAt(head, 0); err != nil {
		return fmt.Errorf("fsimage: erofs superblock of %s: %w", path, err)
	}
	sb := head[erofsSuperOffset:]
	if binary.LittleEndian.Uint32(sb) != erofsMagic {
		return fmt.Errorf("fsimage: %s: no erofs superblock", path)
	}
	bits := sb[erofsOffBlkSzBits]
	if bits < 12 || bits > 16 {
		return fmt.Errorf("fsimage: %s: erofs block size 2^%d not supported", path, bits)
	}
	block := make([]byte, (1<<bits)-erofsSuperOffset)
	if _, err := f.ReadAt(block, erofsSuperOffset); err != nil {
		return fmt.Errorf("fsimage: erofs superblock of %s: %w", path, err)
	}
	name := block[erofsOffVolumeName : erofsOffVolumeName+erofsVolumeNameSize]
	clear(name)
	copy(name, label)
	if binary.LittleEndian.Uint32(block[erofsOffFeatCompat:])&erofsCompatSBChksum != 0 {
		binary.LittleEndian.PutUint32(block[erofsOffChecksum:], erofsChecksum(block))
	}
	if _, err := f.WriteAt(block, erofsSuperOffset); err != nil {
		return fmt.Errorf("fsimage: writing erofs superblock of %s: %w", path, err)
	}
	return f.Sync()
}
