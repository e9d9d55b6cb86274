package gpt

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Sizes and defaults.
const (
	// DefaultEntryCount is the number of entries a new table has, as with
	// sfdisk and systemd-repart; UEFI requires room for at least 128.
	DefaultEntryCount = 128
	// DefaultEntrySize is the size of one entry in bytes. Tables may use
	// larger entries (128 × 2^n); the bytes past the first 128 are reserved.
	DefaultEntrySize = 128
	// MaxEntrySize is the largest entry size this package reads.
	MaxEntrySize = 4096
	// MaxEntryArrayBytes bounds the entry array this package reads, so that
	// a corrupt header cannot make it allocate without limit.
	MaxEntryArrayBytes = 32 << 20
	// DefaultAlignment is the partition alignment, in bytes, that sfdisk
	// and New use for the first usable LBA on disks larger than 4 MiB.
	DefaultAlignment = 1 << 20

	headerSize     = 92 // the defined part of a header; the rest of its sector is zero
	revision10     = 0x00010000
	headerLBA      = 1
	entriesLBA     = 2 // where the primary entry array normally starts
	signatureValue = "EFI PART"
)

var (
	// ErrNoTable is wrapped by errors for disks that have no GPT signature
	// in either header position.
	ErrNoTable = errors.New("no GPT found")
	// ErrCorrupt is wrapped by errors for tables that are present but
	// invalid, and by Write's errors for tables it refuses to write.
	ErrCorrupt = errors.New("invalid GPT")
)

// corrupt makes an error that names where the problem is and wraps
// ErrCorrupt.
func corrupt(where, format string, args ...any) error {
	return fmt.Errorf("gpt: %s: %s: %w", where, fmt.Sprintf(format, args...), ErrCorrupt)
}

// scoped prefixes where with the table it is in, if any.
func scoped(scope, where string) string {
	if scope == "" {
		return where
	}
	return scope + ", " + where
}

// Partition is one used entry of the table.
type Partition struct {
	// Number is the entry's 1-based position in the entry array: the N in
	// /dev/sdaN and sfdisk's device names. Unused entries have no number
	// taken; numbers need not be contiguous.
	Number int
	// TypeGUID says what the partition holds; see the dps package.
	TypeGUID GUID
	// UniqueGUID identifies the partition (its PARTUUID).
	UniqueGUID GUID
	// FirstLBA and LastLBA are the first and last sector, inclusive.
	FirstLBA, LastLBA uint64
	// Attributes holds the 64 attribute bits.
	Attributes uint64
	// Name is the partition label, at most NameLength UTF-16 code units.
	Name string
}

// Sectors returns the partition's length in sectors.
func (p Partition) Sectors() uint64 { return p.LastLBA - p.FirstLBA + 1 }

// Bytes returns the partition's byte offset and length on a disk with the
// given sector size.
func (p Partition) Bytes(sectorSize int) (offset, size int64) {
	return int64(p.FirstLBA) * int64(sectorSize), int64(p.Sectors()) * int64(sectorSize)
}

// Table is a partition table: what both headers share plus the used
// entries.
type Table struct {
	// SectorSize is the logical sector size in bytes: 512, 1024, 2048 or
	// 4096.
	SectorSize int
	// DiskGUID identifies the disk.
	DiskGUID GUID
	// FirstUsableLBA and LastUsableLBA bound where partitions may lie.
	FirstUsableLBA, LastUsableLBA uint64
	// EntryCount is the number of entries in the array (used or not), and
	// EntrySize the size of each in bytes. Zero means the default.
	EntryCount, EntrySize uint32
	// PrimaryEntriesLBA is where the primary entry array starts; zero means
	// LBA 2. The backup array always ends just before the backup header.
	PrimaryEntriesLBA uint64
	// Partitions are the used entries, in entry order.
	Partitions []Partition
	// BootCode is the first 440 bytes of LBA 0 (the MBR boot code), kept so
	// that rewriting a table preserves it. Nil means zeros.
	BootCode []byte

	// UsedBackup is set by Read when the primary table was unusable and the
	// table came from the backup.
	UsedBackup bool
	// Warnings are problems Read found that did not stop it, one sentence
	// each: a damaged backup, a backup not at the end of the disk, a
	// missing or hybrid protective MBR, duplicate partition GUIDs.
	Warnings []string
}

// New returns an empty table for a disk of diskSize bytes laid out as sfdisk
// lays out a new one: 128 entries of 128 bytes, the primary array at LBA 2,
// the first usable LBA aligned to 1 MiB unless the disk is 4 MiB or smaller,
// and the last usable LBA just before the backup array.
func New(diskSize int64, sectorSize int, diskGUID GUID) (*Table, error) {
	t := &Table{
		SectorSize:        sectorSize,
		DiskGUID:          diskGUID,
		EntryCount:        DefaultEntryCount,
		EntrySize:         DefaultEntrySize,
		PrimaryEntriesLBA: entriesLBA,
	}
	l, err := t.layout(diskSize)
	if err != nil {
		return nil, err
	}
	t.FirstUsableLBA = l.MinFirstUsableLBA
	grain := uint64(DefaultAlignment / sectorSize)
	if l.LastLBA+1 > 4*grain {
		t.FirstUsableLBA = max(grain, AlignUp(l.MinFirstUsableLBA, grain))
	}
	t.LastUsableLBA = l.MaxLastUsableLBA
	if t.LastUsableLBA < t.FirstUsableLBA {
		return nil, corrupt("layout", "a disk of %d bytes has no room for partitions", diskSize)
	}
	return t, nil
}

// Layout says where the parts of a table go on a given disk.
type Layout struct {
	// LastLBA is the disk's last sector, where the backup header goes.
	LastLBA uint64
	// EntrySectors is the length of each entry array in sectors.
	EntrySectors uint64
	// PrimaryEntriesLBA and BackupEntriesLBA are where the arrays start.
	PrimaryEntriesLBA, BackupEntriesLBA uint64
	// MinFirstUsableLBA is the first sector after the primary array, and
	// MaxLastUsableLBA the last sector before the backup array.
	MinFirstUsableLBA, MaxLastUsableLBA uint64
}

// Layout computes where t goes on a disk of diskSize bytes, and checks that
// the table's usable area fits between the arrays. A partition table engine
// uses MaxLastUsableLBA to grow a table onto an enlarged disk.
func (t *Table) Layout(diskSize int64) (Layout, error) { return t.checkLayout(diskSize, "") }

// checkLayout is Layout with a scope ("primary table") for its errors.
func (t *Table) checkLayout(diskSize int64, scope string) (Layout, error) {
	l, err := t.layout(diskSize)
	if err != nil {
		return l, err
	}
	where := scoped(scope, "layout")
	if t.FirstUsableLBA < l.MinFirstUsableLBA {
		return l, corrupt(where, "first usable LBA %d lies inside the primary entry array (LBA %d-%d)",
			t.FirstUsableLBA, l.PrimaryEntriesLBA, l.MinFirstUsableLBA-1)
	}
	if t.LastUsableLBA > l.MaxLastUsableLBA {
		return l, corrupt(where, "last usable LBA %d leaves no room for the backup table (usable area must end by LBA %d on a disk of %d sectors)",
			t.LastUsableLBA, l.MaxLastUsableLBA, l.LastLBA+1)
	}
	if t.LastUsableLBA < t.FirstUsableLBA {
		return l, corrupt(where, "last usable LBA %d is before first usable LBA %d", t.LastUsableLBA, t.FirstUsableLBA)
	}
	return l, nil
}

// layout is Layout without the checks of the usable area.
func (t *Table) layout(diskSize int64) (Layout, error) {
	var l Layout
	if err := checkSectorSize(t.SectorSize); err != nil {
		return l, err
	}
	count, size := t.entryGeometry()
	arrayBytes, err := entryArrayBytes(count, size)
	if err != nil {
		return l, corrupt("layout", "%v", err)
	}
	ss := uint64(t.SectorSize)
	l.EntrySectors = (arrayBytes + ss - 1) / ss
	if diskSize < 0 || uint64(diskSize)/ss < 3+2*l.EntrySectors {
		return l, corrupt("layout", "a disk of %d bytes is too small for a GPT with %d-sector entry arrays", diskSize, l.EntrySectors)
	}
	l.LastLBA = uint64(diskSize)/ss - 1
	l.PrimaryEntriesLBA = t.PrimaryEntriesLBA
	if l.PrimaryEntriesLBA == 0 {
		l.PrimaryEntriesLBA = entriesLBA
	}
	l.BackupEntriesLBA = l.LastLBA - l.EntrySectors
	if l.PrimaryEntriesLBA < entriesLBA || l.PrimaryEntriesLBA > l.BackupEntriesLBA-l.EntrySectors {
		return l, corrupt("layout", "primary entry array LBA %d is outside the disk's table area", l.PrimaryEntriesLBA)
	}
	l.MinFirstUsableLBA = l.PrimaryEntriesLBA + l.EntrySectors
	l.MaxLastUsableLBA = l.BackupEntriesLBA - 1
	return l, nil
}

func (t *Table) entryGeometry() (count, size uint32) {
	count, size = t.EntryCount, t.EntrySize
	if count == 0 {
		count = DefaultEntryCount
	}
	if size == 0 {
		size = DefaultEntrySize
	}
	return count, size
}

func checkSectorSize(ss int) error {
	switch ss {
	case 512, 1024, 2048, 4096:
		return nil
	}
	return fmt.Errorf("gpt: unsupported sector size %d (want 512, 1024, 2048 or 4096)", ss)
}

// entryArrayBytes checks the entry geometry and returns the array's size.
func entryArrayBytes(count, size uint32) (uint64, error) {
	if size < DefaultEntrySize || size > MaxEntrySize || size&(size-1) != 0 {
		return 0, fmt.Errorf("entry size %d is not 128 × 2^n bytes up to %d", size, MaxEntrySize)
	}
	if count == 0 {
		return 0, fmt.Errorf("entry count is zero")
	}
	n := uint64(count) * uint64(size)
	if n > MaxEntryArrayBytes {
		return 0, fmt.Errorf("entry array of %d × %d bytes exceeds the %d bytes this reader accepts", count, size, MaxEntryArrayBytes)
	}
	return n, nil
}

// checkPartitions checks the entries against each other and the usable
// area. It returns warnings for problems that do not make the table
// unusable.
func (t *Table) checkPartitions(scope string) (warnings []string, err error) {
	count, _ := t.entryGeometry()
	seen := make(map[int]bool, len(t.Partitions))
	byGUID := make(map[GUID]int, len(t.Partitions))
	for _, p := range t.Partitions {
		where := scoped(scope, fmt.Sprintf("partition %d", p.Number))
		if p.Number < 1 || p.Number > int(count) {
			return nil, corrupt(where, "number is outside 1-%d", count)
		}
		if seen[p.Number] {
			return nil, corrupt(where, "number is used twice")
		}
		seen[p.Number] = true
		if p.TypeGUID.IsZero() {
			return nil, corrupt(where, "type GUID is zero, which marks an unused entry")
		}
		if p.FirstLBA > p.LastLBA {
			return nil, corrupt(where, "ends (LBA %d) before it starts (LBA %d)", p.LastLBA, p.FirstLBA)
		}
		if p.FirstLBA < t.FirstUsableLBA || p.LastLBA > t.LastUsableLBA {
			return nil, corrupt(where, "LBA %d-%d is outside the usable area LBA %d-%d",
				p.FirstLBA, p.LastLBA, t.FirstUsableLBA, t.LastUsableLBA)
		}
		if err := CheckName(p.Name); err != nil {
			return nil, corrupt(where, "%v", err)
		}
		if other, dup := byGUID[p.UniqueGUID]; dup {
			warnings = append(warnings, fmt.Sprintf("partitions %d and %d have the same unique GUID %s", other, p.Number, p.UniqueGUID))
		} else {
			byGUID[p.UniqueGUID] = p.Number
		}
	}
	sorted := append([]Partition(nil), t.Partitions...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].FirstLBA < sorted[j].FirstLBA })
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if b.FirstLBA <= a.LastLBA {
			return nil, corrupt(scoped(scope, fmt.Sprintf("partitions %d and %d", a.Number, b.Number)),
				"overlap (LBA %d-%d and %d-%d)", a.FirstLBA, a.LastLBA, b.FirstLBA, b.LastLBA)
		}
	}
	return warnings, nil
}

// Partition returns the partition with the given number.
func (t *Table) Partition(number int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == number {
			return p, true
		}
	}
	return Partition{}, false
}

// FreeNumber returns the lowest entry number no partition uses, as sfdisk
// picks it for a new partition, or false if every entry is used.
func (t *Table) FreeNumber() (int, bool) {
	count, _ := t.entryGeometry()
	used := make(map[int]bool, len(t.Partitions))
	for _, p := range t.Partitions {
		used[p.Number] = true
	}
	for n := 1; n <= int(count); n++ {
		if !used[n] {
			return n, true
		}
	}
	return 0, false
}

// Extent is a run of sectors, inclusive at both ends.
type Extent struct {
	FirstLBA, LastLBA uint64
}

// Sectors returns the extent's length in sectors.
func (e Extent) Sectors() uint64 { return e.LastLBA - e.FirstLBA + 1 }

// FreeSpace lists the runs of the usable area that no partition covers, in
// disk order. It assumes a table that Read returned or Write accepts.
func (t *Table) FreeSpace() []Extent {
	sorted := append([]Partition(nil), t.Partitions...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].FirstLBA < sorted[j].FirstLBA })
	var free []Extent
	next := t.FirstUsableLBA
	for _, p := range sorted {
		if p.FirstLBA > next {
			free = append(free, Extent{next, p.FirstLBA - 1})
		}
		if p.LastLBA >= next {
			next = p.LastLBA + 1
		}
	}
	if next <= t.LastUsableLBA && next != 0 {
		free = append(free, Extent{next, t.LastUsableLBA})
	}
	return free
}

// AlignUp rounds lba up to a multiple of align (in sectors; 0 and 1 leave
// it alone). It saturates at the largest multiple that fits in a uint64.
func AlignUp(lba, align uint64) uint64 {
	if align <= 1 {
		return lba
	}
	if r := lba % align; r != 0 {
		if lba > math.MaxUint64-(align-r) {
			return AlignDown(lba, align)
		}
		return lba + align - r
	}
	return lba
}

// AlignDown rounds lba down to a multiple of align (0 and 1 leave it alone).
func AlignDown(lba, align uint64) uint64 {
	if align <= 1 {
		return lba
	}
	return lba - lba%align
}
