package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// header is a decoded GPT header.
type header struct {
	myLBA, alternateLBA     uint64
	firstUsable, lastUsable uint64
	diskGUID                GUID
	entriesLBA              uint64
	entryCount, entrySize   uint32
	entriesCRC              uint32
	entries                 []byte // the entry array, checked against entriesCRC
	entrySectors            uint64
}

// Read reads the GPT of a disk of diskSize bytes. sectorSize is the logical
// sector size, or 0 to detect it with DetectSectorSize. It returns an error
// wrapping ErrNoTable if the disk has no GPT, and one wrapping ErrCorrupt,
// naming the problem, if neither the primary nor the backup table is valid.
func Read(r io.ReaderAt, diskSize int64, sectorSize int) (*Table, error) {
	if sectorSize == 0 {
		ss, err := DetectSectorSize(r, diskSize)
		if err != nil {
			return nil, err
		}
		sectorSize = ss
	}
	if err := checkSectorSize(sectorSize); err != nil {
		return nil, err
	}
	ss := int64(sectorSize)
	if diskSize < 3*ss {
		return nil, fmt.Errorf("gpt: a disk of %d bytes is too small to hold a GPT: %w", diskSize, ErrNoTable)
	}
	lastLBA := uint64(diskSize/ss) - 1

	primary, errPrimary := readHeader(r, sectorSize, lastLBA, headerLBA)
	if errPrimary == nil {
		t, err := tableFrom(primary, sectorSize, primary.entriesLBA, diskSize)
		if err == nil {
			t.checkBackup(r, primary, lastLBA)
			t.checkMBR(r, lastLBA)
			return t, nil
		}
		errPrimary = err
	}

	backup, errBackup := readHeader(r, sectorSize, lastLBA, lastLBA)
	if errBackup == nil {
		t, err := tableFrom(backup, sectorSize, entriesLBA, diskSize)
		if err == nil {
			t.UsedBackup = true
			t.Warnings = append([]string{fmt.Sprintf("the primary GPT is unusable, so the backup was used: %v", errPrimary)}, t.Warnings...)
			t.checkMBR(r, lastLBA)
			return t, nil
		}
		errBackup = err
	}
	if errors.Is(errPrimary, ErrNoTable) && errors.Is(errBackup, ErrNoTable) {
		return nil, fmt.Errorf("gpt: no GPT signature at LBA 1 or at the last LBA %d (sector size %d): %w", lastLBA, sectorSize, ErrNoTable)
	}
	return nil, fmt.Errorf("%w; and the backup: %w", errPrimary, errBackup)
}

// DetectSectorSize finds the logical sector size of a disk image by looking
// for a valid GPT header at LBA 1 for sector sizes 512, 4096, 1024 and 2048,
// in that order, and then for a valid backup header at the last LBA. It
// returns an error wrapping ErrNoTable if there is none.
func DetectSectorSize(r io.ReaderAt, diskSize int64) (int, error) {
	sizes := []int{512, 4096, 1024, 2048}
	for _, backup := range []bool{false, true} {
		for _, ss := range sizes {
			if diskSize/int64(ss) < 3 {
				continue
			}
			lba := uint64(headerLBA)
			if backup {
				lba = uint64(diskSize/int64(ss)) - 1
			}
			buf := make([]byte, ss)
			if _, err := r.ReadAt(buf, int64(lba)*int64(ss)); err != nil {
				return 0, fmt.Errorf("gpt: reading LBA %d: %w", lba, err)
			}
			if _, err := parseHeader(buf, lba); err == nil {
				return ss, nil
			}
		}
	}
	return 0, fmt.Errorf("gpt: no valid GPT header for any sector size: %w", ErrNoTable)
}

// readHeader reads and checks the header at lba and its entry array.
func readHeader(r io.ReaderAt, sectorSize int, lastLBA, lba uint64) (*header, error) {
	which := "primary"
	if lba != headerLBA {
		which = "backup"
	}
	where := fmt.Sprintf("%s header at LBA %d", which, lba)
	buf := make([]byte, sectorSize)
	if _, err := r.ReadAt(buf, int64(lba)*int64(sectorSize)); err != nil {
		return nil, fmt.Errorf("gpt: %s: %w", where, err)
	}
	h, err := parseHeader(buf, lba)
	if err != nil {
		return nil, fmt.Errorf("gpt: %s: %w", where, err)
	}
	ss := uint64(sectorSize)
	arrayBytes, err := entryArrayBytes(h.entryCount, h.entrySize)
	if err != nil {
		return nil, corrupt(where, "%v", err)
	}
	h.entrySectors = (arrayBytes + ss - 1) / ss
	if h.lastUsable > lastLBA {
		return nil, corrupt(where, "last usable LBA %d is past the end of the disk (last LBA %d)", h.lastUsable, lastLBA)
	}
	if h.firstUsable > h.lastUsable {
		return nil, corrupt(where, "first usable LBA %d is after last usable LBA %d", h.firstUsable, h.lastUsable)
	}
	// The entry array must lie between this header and the usable area.
	if lba == headerLBA {
		if h.entriesLBA < entriesLBA || h.entriesLBA > h.firstUsable || h.firstUsable-h.entriesLBA < h.entrySectors {
			return nil, corrupt(where, "entry array at LBA %d (%d sectors) does not lie between the header and the first usable LBA %d",
				h.entriesLBA, h.entrySectors, h.firstUsable)
		}
	} else {
		if h.entriesLBA <= h.lastUsable || h.entriesLBA > lba || lba-h.entriesLBA < h.entrySectors {
			return nil, corrupt(where, "entry array at LBA %d (%d sectors) does not lie between the last usable LBA %d and the header",
				h.entriesLBA, h.entrySectors, h.lastUsable)
		}
	}
	h.entries = make([]byte, arrayBytes)
	if _, err := r.ReadAt(h.entries, int64(h.entriesLBA)*int64(sectorSize)); err != nil {
		return nil, fmt.Errorf("gpt: %s: reading entry array at LBA %d: %w", where, h.entriesLBA, err)
	}
	if sum := crc32.ChecksumIEEE(h.entries); sum != h.entriesCRC {
		return nil, corrupt(where, "entry array CRC32 is 0x%08x but the header records 0x%08x", sum, h.entriesCRC)
	}
	return h, nil
}

// parseHeader decodes a header sector and checks what can be checked
// without the rest of the disk.
func parseHeader(buf []byte, lba uint64) (*header, error) {
	le := binary.LittleEndian
	if string(buf[0:8]) != signatureValue {
		return nil, fmt.Errorf("no \"EFI PART\" signature: %w", ErrNoTable)
	}
	if rev := le.Uint32(buf[8:]); rev != revision10 {
		return nil, fmt.Errorf("unsupported revision 0x%08x (want 0x%08x): %w", rev, revision10, ErrCorrupt)
	}
	size := le.Uint32(buf[12:])
	if size < headerSize || int(size) > len(buf) {
		return nil, fmt.Errorf("header size %d is outside %d-%d: %w", size, headerSize, len(buf), ErrCorrupt)
	}
	stored := le.Uint32(buf[16:])
	hdr := bytes.Clone(buf[:size])
	clear(hdr[16:20])
	if sum := crc32.ChecksumIEEE(hdr); sum != stored {
		return nil, fmt.Errorf("header CRC32 is 0x%08x but the header records 0x%08x: %w", sum, stored, ErrCorrupt)
	}
	h := &header{
		myLBA:        le.Uint64(buf[24:]),
		alternateLBA: le.Uint64(buf[32:]),
		firstUsable:  le.Uint64(buf[40:]),
		lastUsable:   le.Uint64(buf[48:]),
		diskGUID:     getGUID(buf[56:]),
		entriesLBA:   le.Uint64(buf[72:]),
		entryCount:   le.Uint32(buf[80:]),
		entrySize:    le.Uint32(buf[84:]),
		entriesCRC:   le.Uint32(buf[88:]),
	}
	if h.myLBA != lba {
		return nil, fmt.Errorf("header says it is at LBA %d: %w", h.myLBA, ErrCorrupt)
	}
	return h, nil
}

// tableFrom builds a Table from a checked header and checks the entries.
func tableFrom(h *header, sectorSize int, primaryEntriesLBA uint64, diskSize int64) (*Table, error) {
	t := &Table{
		SectorSize:        sectorSize,
		DiskGUID:          h.diskGUID,
		FirstUsableLBA:    h.firstUsable,
		LastUsableLBA:     h.lastUsable,
		EntryCount:        h.entryCount,
		EntrySize:         h.entrySize,
		PrimaryEntriesLBA: primaryEntriesLBA,
	}
	le := binary.LittleEndian
	for i := 0; i < int(h.entryCount); i++ {
		e := h.entries[i*int(h.entrySize):]
		typ := getGUID(e[0:])
		if typ.IsZero() {
			continue
		}
		t.Partitions = append(t.Partitions, Partition{
			Number:     i + 1,
			TypeGUID:   typ,
			UniqueGUID: getGUID(e[16:]),
			FirstLBA:   le.Uint64(e[32:]),
			LastLBA:    le.Uint64(e[40:]),
			Attributes: le.Uint64(e[48:]),
			Name:       decodeName(e[56:128]),
		})
	}
	scope := "primary table"
	if h.myLBA != headerLBA {
		scope = "backup table"
	}
	warnings, err := t.checkPartitions(scope)
	if err != nil {
		return nil, err
	}
	if _, err := t.checkLayout(diskSize, scope); err != nil {
		return nil, err
	}
	t.Warnings = warnings
	return t, nil
}

// checkBackup looks at the backup table a valid primary header points to
// and records in Warnings whatever is wrong with it.
func (t *Table) checkBackup(r io.ReaderAt, primary *header, lastLBA uint64) {
	alt := primary.alternateLBA
	if alt != lastLBA {
		t.Warnings = append(t.Warnings, fmt.Sprintf("the primary header puts the backup header at LBA %d, not at the last LBA %d", alt, lastLBA))
	}
	if alt <= headerLBA || alt > lastLBA {
		return
	}
	backup, err := readHeader(r, t.SectorSize, lastLBA, alt)
	switch {
	case err != nil:
		t.Warnings = append(t.Warnings, fmt.Sprintf("the backup GPT is unusable: %v", err))
	case backup.alternateLBA != headerLBA || backup.diskGUID != primary.diskGUID ||
		backup.firstUsable != primary.firstUsable || backup.lastUsable != primary.lastUsable ||
		backup.entryCount != primary.entryCount || backup.entrySize != primary.entrySize ||
		!bytes.Equal(backup.entries, primary.entries):
		t.Warnings = append(t.Warnings, "the backup GPT differs from the primary")
	}
}

// checkMBR records the boot code and notes in Warnings when LBA 0 does not
// hold a plain protective MBR, without which libblkid and libfdisk ignore
// the GPT.
func (t *Table) checkMBR(r io.ReaderAt, lastLBA uint64) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		t.Warnings = append(t.Warnings, fmt.Sprintf("cannot read the protective MBR: %v", err))
		return
	}
	if !allZero(mbr[:bootCodeSize]) {
		t.BootCode = mbr[:bootCodeSize]
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		t.Warnings = append(t.Warnings, "LBA 0 has no MBR signature, so there is no protective MBR")
		return
	}
	protective, other := -1, 0
	for i := 0; i < 4; i++ {
		switch mbr[mbrPartitionsOffset+16*i+4] {
		case 0xee:
			if protective < 0 {
				protective = i
			}
		case 0:
		default:
			other++
		}
	}
	switch {
	case protective < 0:
		t.Warnings = append(t.Warnings, "the MBR has no 0xEE partition, so it is not a protective MBR")
		return
	case other > 0:
		t.Warnings = append(t.Warnings, "the MBR is a hybrid MBR")
		return
	}
	rec := mbr[mbrPartitionsOffset+16*protective:]
	start, size := binary.LittleEndian.Uint32(rec[8:]), binary.LittleEndian.Uint32(rec[12:])
	if start != headerLBA {
		t.Warnings = append(t.Warnings, fmt.Sprintf("the protective MBR partition starts at LBA %d, not 1", start))
	}
	if want := min(lastLBA, 0xffffffff); uint64(size) != want && size != 0xffffffff {
		t.Warnings = append(t.Warnings, fmt.Sprintf("the protective MBR covers %d sectors, not %d", size, want))
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
