package gpt

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	bootCodeSize        = 440
	mbrPartitionsOffset = 446
)

// syncer is implemented by writers that can flush to stable storage, such
// as *os.File.
type syncer interface{ Sync() error }

// Write writes t to a disk of diskSize bytes: the protective MBR, the
// primary header and entry array, and the backup entry array and header at
// the end of the disk. Unused entries are zeroed. It refuses a table that
// Read would reject, with an error wrapping ErrCorrupt.
//
// The order of writes keeps a valid table on disk throughout (see the
// package documentation); if w has a Sync method it is called after the
// backup, after the primary entries, and at the end.
func Write(w io.WriterAt, diskSize int64, t *Table) error {
	l, err := t.Layout(diskSize)
	if err != nil {
		return err
	}
	if _, err := t.checkPartitions(""); err != nil {
		return err
	}
	if len(t.BootCode) != 0 && len(t.BootCode) != bootCodeSize {
		return fmt.Errorf("gpt: boot code is %d bytes, want %d or none", len(t.BootCode), bootCodeSize)
	}
	ss := t.SectorSize
	count, size := t.entryGeometry()

	entries := make([]byte, l.EntrySectors*uint64(ss))
	le := binary.LittleEndian
	for _, p := range t.Partitions {
		e := entries[(p.Number-1)*int(size):]
		putGUID(e[0:], p.TypeGUID)
		putGUID(e[16:], p.UniqueGUID)
		le.PutUint64(e[32:], p.FirstLBA)
		le.PutUint64(e[40:], p.LastLBA)
		le.PutUint64(e[48:], p.Attributes)
		units, err := encodeName(p.Name)
		if err != nil {
			return fmt.Errorf("gpt: partition %d: %w", p.Number, err)
		}
		putName(e[56:128], units)
	}
	entriesCRC := crc32.ChecksumIEEE(entries[:uint64(count)*uint64(size)])

	primary := t.header(ss, headerLBA, l.LastLBA, l.PrimaryEntriesLBA, count, size, entriesCRC)
	backup := t.header(ss, l.LastLBA, headerLBA, l.BackupEntriesLBA, count, size, entriesCRC)

	sync := func(stage string) error {
		if s, ok := w.(syncer); ok {
			if err := s.Sync(); err != nil {
				return fmt.Errorf("gpt: sync after %s: %w", stage, err)
			}
		}
		return nil
	}
	steps := []struct {
		what string
		lba  uint64
		data []byte
		sync bool
	}{
		{"backup entry array", l.BackupEntriesLBA, entries, false},
		{"backup header", l.LastLBA, backup, true},
		{"primary entry array", l.PrimaryEntriesLBA, entries, true},
		{"primary header", headerLBA, primary, false},
		{"protective MBR", 0, t.protectiveMBR(l.LastLBA), true},
	}
	for _, s := range steps {
		if _, err := w.WriteAt(s.data, int64(s.lba)*int64(ss)); err != nil {
			return fmt.Errorf("gpt: writing %s at LBA %d: %w", s.what, s.lba, err)
		}
		if s.sync {
			if err := sync(s.what); err != nil {
				return err
			}
		}
	}
	return nil
}

// header encodes one header sector.
func (t *Table) header(sectorSize int, my, alternate, entriesAt uint64, count, size, entriesCRC uint32) []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	copy(b, signatureValue)
	le.PutUint32(b[8:], revision10)
	le.PutUint32(b[12:], headerSize)
	le.PutUint64(b[24:], my)
	le.PutUint64(b[32:], alternate)
	le.PutUint64(b[40:], t.FirstUsableLBA)
	le.PutUint64(b[48:], t.LastUsableLBA)
	putGUID(b[56:], t.DiskGUID)
	le.PutUint64(b[72:], entriesAt)
	le.PutUint32(b[80:], count)
	le.PutUint32(b[84:], size)
	le.PutUint32(b[88:], entriesCRC)
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:headerSize]))
	return b
}

// protectiveMBR encodes LBA 0: the boot code, one partition of type 0xEE
// from LBA 1 to the end of the disk (clamped to 32 bits), CHS fields as
// libfdisk writes them, and the 0x55AA signature.
func (t *Table) protectiveMBR(lastLBA uint64) []byte {
	b := make([]byte, t.SectorSize)
	copy(b, t.BootCode)
	rec := b[mbrPartitionsOffset:]
	rec[1], rec[2], rec[3] = 0x00, 0x02, 0x00 // start CHS: cylinder 0, head 0, sector 2
	rec[4] = 0xee
	rec[5], rec[6], rec[7] = 0xff, 0xff, 0xff // end CHS: not representable
	binary.LittleEndian.PutUint32(rec[8:], headerLBA)
	binary.LittleEndian.PutUint32(rec[12:], uint32(min(lastLBA, 0xffffffff)))
	b[510], b[511] = 0x55, 0xaa
	return b
}
