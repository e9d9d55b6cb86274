package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

// memDisk is an in-memory disk for tests.
type memDisk struct{ b []byte }

func newDisk(size int) *memDisk { return &memDisk{make([]byte, size)} }

func (d *memDisk) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(d.b).ReadAt(p, off)
}

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d.b)) {
		return 0, errors.New("write past end of disk")
	}
	return copy(d.b[off:], p), nil
}

func mustGUID(t testing.TB, s string) GUID {
	t.Helper()
	g, err := ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// sampleTable is a table with a few partitions on a 64 MiB disk.
func sampleTable(t testing.TB, sectorSize int) (*Table, int64) {
	t.Helper()
	const size = 64 << 20
	tab, err := New(size, sectorSize, mustGUID(t, "11111111-2222-3333-4444-555555555555"))
	if err != nil {
		t.Fatal(err)
	}
	spt := uint64(1 << 20 / sectorSize) // sectors per MiB
	tab.Partitions = []Partition{
		{Number: 1, TypeGUID: mustGUID(t, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), UniqueGUID: mustGUID(t, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
			FirstLBA: spt, LastLBA: 9*spt - 1, Attributes: AttrRequiredPartition | AttrLegacyBIOSBootable, Name: "esp"},
		{Number: 2, TypeGUID: mustGUID(t, "8484680c-9521-48c6-9c11-b0720656f69e"), UniqueGUID: mustGUID(t, "c67d57c2-9a5f-f038-0123-456789abcdef"),
			FirstLBA: 9 * spt, LastLBA: 41*spt - 1, Attributes: 1<<60 | 1<<59, Name: "usr_1.2 ü€"},
		{Number: 5, TypeGUID: mustGUID(t, "77ff5f63-e7b6-4633-acf4-1565b864c0e6"), UniqueGUID: mustGUID(t, "01234567-89ab-cdef-0123-456789abcdef"),
			FirstLBA: 41 * spt, LastLBA: 45*spt - 1, Attributes: 1 << 63, Name: strings.Repeat("🙂", 18)},
	}
	return tab, size
}

func clean(t *Table) *Table {
	c := *t
	c.UsedBackup, c.Warnings = false, nil
	return &c
}

func TestGUIDByteOrder(t *testing.T) {
	// The digest's example: partition UUID c67d57c2-9a5f-f038-... is stored
	// as c2 57 7d c6 5f 9a 38 f0 ...
	g := mustGUID(t, "C67D57C2-9A5F-F038-0123-456789ABCDEF")
	want := [16]byte{0xc2, 0x57, 0x7d, 0xc6, 0x5f, 0x9a, 0x38, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	if g.DiskBytes() != want {
		t.Errorf("DiskBytes = % x", g.DiskBytes())
	}
	if GUIDFromDisk(want) != g || g.String() != "c67d57c2-9a5f-f038-0123-456789abcdef" {
		t.Errorf("round trip: %s", GUIDFromDisk(want))
	}
	for _, bad := range []string{"", "c67d57c2-9a5f-f038-0123-456789abcdeg", "c67d57c29a5ff0380123456789abcdef", "c67d57c2-9a5f-f038-0123_456789abcdef"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
	r, err := NewRandomGUID(bytes.NewReader(bytes.Repeat([]byte{0xff}, 16)))
	if err != nil || r.String() != "ffffffff-ffff-4fff-bfff-ffffffffffff" {
		t.Errorf("NewRandomGUID = %s, %v", r, err)
	}
	if _, err := NewRandomGUID(bytes.NewReader(nil)); err == nil {
		t.Error("NewRandomGUID with no randomness succeeded")
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		units int // -1: refused
	}{
		{"", 0},
		{"root-x86-64", 11},
		{"ü€", 2},
		{"🙂", 2},
		{strings.Repeat("a", 36), 36},
		{strings.Repeat("a", 37), -1},
		{strings.Repeat("🙂", 18), 36},
		{strings.Repeat("🙂", 18) + "a", -1},
		{strings.Repeat("🙂", 17) + "ab", 36},
		{"a\x00b", -1},
		{"\xff", -1},
	} {
		units, err := encodeName(c.name)
		if c.units < 0 {
			if err == nil {
				t.Errorf("encodeName(%q) succeeded", c.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("encodeName(%q): %v", c.name, err)
			continue
		}
		b := make([]byte, 72)
		putName(b, units)
		n := 0
		for n < 36 && units[n] != 0 {
			n++
		}
		if n != c.units {
			t.Errorf("%q: %d units, want %d", c.name, n, c.units)
		}
		if got := decodeName(b); got != c.name {
			t.Errorf("decodeName(encodeName(%q)) = %q", c.name, got)
		}
	}
	// U+1F642 is the surrogate pair D83D DE42, little-endian.
	units, _ := encodeName("🙂")
	b := make([]byte, 72)
	putName(b, units)
	if !bytes.Equal(b[:6], []byte{0x3d, 0xd8, 0x42, 0xde, 0, 0}) {
		t.Errorf("surrogate pair encoded as % x", b[:6])
	}
	// A lone surrogate on disk reads as U+FFFD.
	if got := decodeName([]byte{0x41, 0, 0x3d, 0xd8, 0x42, 0}); got != "A\uFFFDB" {
		t.Errorf("lone surrogate decoded as %q", got)
	}
	if err := CheckName(strings.Repeat("x", 37)); err == nil || !strings.Contains(err.Error(), "37 UTF-16 code units") {
		t.Errorf("CheckName error = %v", err)
	}
}

func TestAttributes(t *testing.T) {
	for _, c := range []struct {
		attrs uint64
		text  string
	}{
		{0, ""},
		{AttrRequiredPartition | AttrLegacyBIOSBootable | 1<<59 | 1<<60 | 1<<63, "RequiredPartition LegacyBIOSBootable GUID:59,60,63"},
		{AttrNoBlockIOProtocol, "NoBlockIOProtocol"},
		{1 << 48, "GUID:48"},
	} {
		if got := FormatAttributes(c.attrs); got != c.text {
			t.Errorf("FormatAttributes(%#x) = %q, want %q", c.attrs, got, c.text)
		}
		back, err := ParseAttributes(c.text)
		if err != nil || back != c.attrs {
			t.Errorf("ParseAttributes(%q) = %#x, %v", c.text, back, err)
		}
	}
	if got, err := ParseAttributes("60, 63,GUID:48 RequiredPartition"); err != nil || got != 1<<60|1<<63|1<<48|1 {
		t.Errorf("ParseAttributes mixed = %#x, %v", got, err)
	}
	for _, bad := range []string{"GUID:47", "64", "Foo", "GUID:", "0x3c"} {
		if _, err := ParseAttributes(bad); err == nil {
			t.Errorf("ParseAttributes(%q) succeeded", bad)
		}
	}
}

// TestNewLayout checks New against what sfdisk 2.38 makes of an empty
// image of the same size ("label: gpt").
func TestNewLayout(t *testing.T) {
	for _, c := range []struct {
		size        int64
		ss          int
		first, last uint64
	}{
		{64 << 20, 512, 2048, 131038},
		{4 << 20, 512, 34, 8158},
		{4<<20 + 512, 512, 2048, 8159},
		{1 << 20, 512, 34, 2014},
		{64 << 20, 4096, 256, 16378}, // sfdisk on a 4096-byte-sector loop device
	} {
		tab, err := New(c.size, c.ss, GUID{})
		if err != nil {
			t.Fatalf("New(%d, %d): %v", c.size, c.ss, err)
		}
		if tab.FirstUsableLBA != c.first || tab.LastUsableLBA != c.last {
			t.Errorf("New(%d, %d): usable %d-%d, want %d-%d", c.size, c.ss, tab.FirstUsableLBA, tab.LastUsableLBA, c.first, c.last)
		}
	}
	if _, err := New(20<<10, 512, GUID{}); err == nil {
		t.Error("New on a 20 KiB disk succeeded")
	}
	if _, err := New(1<<20, 520, GUID{}); err == nil {
		t.Error("New with 520-byte sectors succeeded")
	}
}

// TestWriteBytes checks the written bytes field by field, for both sector
// sizes, against offsets and CRCs computed here.
func TestWriteBytes(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		tab, size := sampleTable(t, ss)
		d := newDisk(int(size))
		if err := Write(d, size, tab); err != nil {
			t.Fatal(err)
		}
		le := binary.LittleEndian
		last := uint64(size)/uint64(ss) - 1
		es := uint64((128*128 + ss - 1) / ss)

		mbr := d.b[:512]
		wantRec := []byte{0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0}
		if !bytes.Equal(mbr[446:458], wantRec) || le.Uint32(mbr[458:]) != uint32(last) || mbr[510] != 0x55 || mbr[511] != 0xaa {
			t.Errorf("ss %d: protective MBR % x", ss, mbr[446:512])
		}
		if !allZero(mbr[:446]) || !allZero(mbr[462:510]) || !allZero(d.b[512:ss]) {
			t.Errorf("ss %d: LBA 0 has stray bytes", ss)
		}
		entries := d.b[2*ss : 2*ss+128*128]
		entriesCRC := crc32.ChecksumIEEE(entries)
		for _, h := range []struct {
			at, alt, entriesAt uint64
		}{{1, last, 2}, {last, 1, last - es}} {
			b := d.b[h.at*uint64(ss) : (h.at+1)*uint64(ss)]
			if string(b[:8]) != "EFI PART" || le.Uint32(b[8:]) != 0x00010000 || le.Uint32(b[12:]) != 92 {
				t.Errorf("ss %d LBA %d: signature/revision/size % x", ss, h.at, b[:16])
			}
			hdr := bytes.Clone(b[:92])
			clear(hdr[16:20])
			if le.Uint32(b[16:]) != crc32.ChecksumIEEE(hdr) {
				t.Errorf("ss %d LBA %d: header CRC wrong", ss, h.at)
			}
			if le.Uint64(b[24:]) != h.at || le.Uint64(b[32:]) != h.alt || le.Uint64(b[40:]) != tab.FirstUsableLBA ||
				le.Uint64(b[48:]) != tab.LastUsableLBA || le.Uint64(b[72:]) != h.entriesAt || le.Uint32(b[80:]) != 128 ||
				le.Uint32(b[84:]) != 128 || le.Uint32(b[88:]) != entriesCRC {
				t.Errorf("ss %d LBA %d: header fields wrong", ss, h.at)
			}
			if !bytes.Equal(b[56:72], []byte{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}) {
				t.Errorf("ss %d: disk GUID bytes % x", ss, b[56:72])
			}
			if !allZero(b[92:]) {
				t.Errorf("ss %d LBA %d: header sector not zero-filled", ss, h.at)
			}
			arr := d.b[h.entriesAt*uint64(ss) : h.entriesAt*uint64(ss)+es*uint64(ss)]
			if !bytes.Equal(arr[:128*128], entries) || !allZero(arr[128*128:]) {
				t.Errorf("ss %d: entry array at LBA %d differs", ss, h.entriesAt)
			}
		}
		// Entry 2 (index 1): the usr partition, field by field.
		e := entries[128:256]
		if !bytes.Equal(e[16:32], []byte{0xc2, 0x57, 0x7d, 0xc6, 0x5f, 0x9a, 0x38, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}) ||
			le.Uint64(e[32:]) != tab.Partitions[1].FirstLBA || le.Uint64(e[40:]) != tab.Partitions[1].LastLBA ||
			le.Uint64(e[48:]) != 0x1800000000000000 || le.Uint16(e[56+2*8:]) != 0xfc || le.Uint16(e[56+2*9:]) != 0x20ac {
			t.Errorf("ss %d: entry 2 = % x", ss, e)
		}
		// Entries 3, 4 and 6-128 are unused and zero.
		if !allZero(entries[2*128:4*128]) || !allZero(entries[5*128:]) {
			t.Errorf("ss %d: unused entries not zero", ss)
		}

		got, err := Read(d, size, 0)
		if err != nil {
			t.Fatalf("ss %d: Read: %v", ss, err)
		}
		if got.UsedBackup || len(got.Warnings) != 0 {
			t.Errorf("ss %d: UsedBackup %v, warnings %q", ss, got.UsedBackup, got.Warnings)
		}
		if !reflect.DeepEqual(got, tab) {
			t.Errorf("ss %d: read back\n%+v\nwant\n%+v", ss, got, tab)
		}
	}
}

// corruptDisk writes the sample table and applies damage.
func corruptDisk(t *testing.T, ss int, damage func(d *memDisk, last uint64)) (*Table, *Table, error) {
	t.Helper()
	tab, size := sampleTable(t, ss)
	d := newDisk(int(size))
	if err := Write(d, size, tab); err != nil {
		t.Fatal(err)
	}
	damage(d, uint64(size)/uint64(ss)-1)
	got, err := Read(d, size, ss)
	return tab, got, err
}

// rehash recomputes the CRC32 of the header at lba after a test changed it.
func rehash(d *memDisk, ss int, lba uint64) {
	b := d.b[lba*uint64(ss):]
	clear(b[16:20])
	binary.LittleEndian.PutUint32(b[16:], crc32.ChecksumIEEE(b[:binary.LittleEndian.Uint32(b[12:])]))
}

func TestBackupFallback(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		for _, c := range []struct {
			name    string
			damage  func(d *memDisk, last uint64)
			warning string
		}{
			{"header CRC", func(d *memDisk, _ uint64) { d.b[ss+40] ^= 1 }, "header CRC32"},
			{"signature", func(d *memDisk, _ uint64) { d.b[ss] = 'X' }, "signature"},
			{"entry array CRC", func(d *memDisk, _ uint64) { d.b[2*ss+60] ^= 1 }, "entry array CRC32"},
			{"header size", func(d *memDisk, _ uint64) {
				binary.LittleEndian.PutUint32(d.b[ss+12:], 91)
			}, "header size 91"},
			{"revision", func(d *memDisk, _ uint64) {
				binary.LittleEndian.PutUint32(d.b[ss+8:], 0x00020000)
				rehash(d, ss, 1)
			}, "revision"},
			{"my LBA", func(d *memDisk, _ uint64) {
				binary.LittleEndian.PutUint64(d.b[ss+24:], 2)
				rehash(d, ss, 1)
			}, "says it is at LBA 2"},
			{"entry size", func(d *memDisk, _ uint64) {
				binary.LittleEndian.PutUint32(d.b[ss+84:], 100)
				rehash(d, ss, 1)
			}, "entry size 100"},
			{"usable area past end", func(d *memDisk, last uint64) {
				binary.LittleEndian.PutUint64(d.b[ss+48:], last+1)
				rehash(d, ss, 1)
			}, "past the end"},
			{"entries inside usable area", func(d *memDisk, _ uint64) {
				binary.LittleEndian.PutUint64(d.b[ss+72:], binary.LittleEndian.Uint64(d.b[ss+40:])-1)
				rehash(d, ss, 1)
			}, "does not lie between"},
			{"zeroed", func(d *memDisk, _ uint64) { clear(d.b[ss : 2*ss]) }, "signature"},
		} {
			tab, got, err := corruptDisk(t, ss, c.damage)
			if err != nil {
				t.Errorf("ss %d %s: Read: %v", ss, c.name, err)
				continue
			}
			if !got.UsedBackup || len(got.Warnings) == 0 || !strings.Contains(got.Warnings[0], c.warning) {
				t.Errorf("ss %d %s: UsedBackup %v, warnings %q; want one mentioning %q", ss, c.name, got.UsedBackup, got.Warnings, c.warning)
			}
			if !reflect.DeepEqual(clean(got), tab) {
				t.Errorf("ss %d %s: backup table differs:\n%+v\n%+v", ss, c.name, got, tab)
			}
		}
	}
}

func TestBackupDamageIsAWarning(t *testing.T) {
	tab, got, err := corruptDisk(t, 512, func(d *memDisk, last uint64) { d.b[last*512+30] ^= 1 })
	if err != nil {
		t.Fatal(err)
	}
	if got.UsedBackup || len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "backup GPT is unusable") {
		t.Errorf("warnings %q", got.Warnings)
	}
	if !reflect.DeepEqual(clean(got), tab) {
		t.Error("table differs")
	}
	// A backup that is valid but has other entries.
	_, got, err = corruptDisk(t, 512, func(d *memDisk, last uint64) {
		arr := d.b[(last-32)*512:]
		arr[128*2] = 1 // a third partition's type GUID, in an otherwise empty entry
		binary.LittleEndian.PutUint32(d.b[last*512+88:], crc32.ChecksumIEEE(arr[:128*128]))
		rehash(d, 512, last)
	})
	if err != nil || len(got.Warnings) != 1 || got.Warnings[0] != "the backup GPT differs from the primary" {
		t.Errorf("differing backup: %v, %q", err, got.Warnings)
	}
}

func TestBothDamaged(t *testing.T) {
	_, _, err := corruptDisk(t, 512, func(d *memDisk, last uint64) {
		d.b[512+40] ^= 1
		d.b[last*512+88] ^= 1
	})
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNoTable) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"primary header at LBA 1: header CRC32", "backup header at LBA 131071: header CRC32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = Read(newDisk(1<<20), 1<<20, 512)
	if !errors.Is(err, ErrNoTable) {
		t.Errorf("empty disk: %v", err)
	}
	if _, err := DetectSectorSize(newDisk(1<<20), 1<<20); !errors.Is(err, ErrNoTable) {
		t.Errorf("DetectSectorSize on an empty disk: %v", err)
	}
}

// damageEntries rewrites the entry arrays of both tables, with valid CRCs,
// so that only the partition checks can catch the problem.
func damageEntries(t *testing.T, edit func(entries []byte, tab *Table)) error {
	t.Helper()
	_, _, err := corruptDisk(t, 512, func(d *memDisk, last uint64) {
		tab, _ := sampleTable(t, 512)
		for _, h := range []struct{ at, entries uint64 }{{1, 2}, {last, last - 32}} {
			arr := d.b[h.entries*512 : h.entries*512+128*128]
			edit(arr, tab)
			binary.LittleEndian.PutUint32(d.b[h.at*512+88:], crc32.ChecksumIEEE(arr))
			rehash(d, 512, h.at)
		}
	})
	return err
}

func TestCorruptEntries(t *testing.T) {
	le := binary.LittleEndian
	for _, c := range []struct {
		name string
		edit func(e []byte, tab *Table)
		want string
	}{
		{"overlap", func(e []byte, tab *Table) { le.PutUint64(e[128+32:], tab.Partitions[0].LastLBA) }, "gpt: primary table, partitions 1 and 2: overlap (LBA 2048-18431 and 18431-83967): invalid GPT; and the backup: gpt: backup table, partitions 1 and 2: overlap"},
		{"before usable area", func(e []byte, _ *Table) { le.PutUint64(e[32:], 33) }, "partition 1: LBA 33-18431 is outside the usable area"},
		{"after usable area", func(e []byte, tab *Table) { le.PutUint64(e[4*128+40:], tab.LastUsableLBA+1) }, "partition 5: LBA"},
		{"ends before start", func(e []byte, _ *Table) { le.PutUint64(e[40:], 2047) }, "partition 1: ends (LBA 2047) before it starts (LBA 2048)"},
	} {
		err := damageEntries(t, c.edit)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one containing %q", c.name, err, c.want)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(tab *Table)
		want string
	}{
		{"overlap", func(tab *Table) { tab.Partitions[1].FirstLBA-- }, "overlap"},
		{"long name", func(tab *Table) { tab.Partitions[0].Name = strings.Repeat("n", 37) }, "37 UTF-16 code units"},
		{"zero type", func(tab *Table) { tab.Partitions[0].TypeGUID = GUID{} }, "type GUID is zero"},
		{"number zero", func(tab *Table) { tab.Partitions[0].Number = 0 }, "outside 1-128"},
		{"number twice", func(tab *Table) { tab.Partitions[2].Number = 2 }, "used twice"},
		{"past usable area", func(tab *Table) { tab.Partitions[2].LastLBA = tab.LastUsableLBA + 1 }, "outside the usable area"},
		{"usable area over backup", func(tab *Table) { tab.LastUsableLBA++ }, "no room for the backup"},
		{"usable area over primary", func(tab *Table) { tab.FirstUsableLBA = 33 }, "inside the primary entry array"},
		{"entry size", func(tab *Table) { tab.EntrySize = 192 }, "entry size 192"},
		{"sector size", func(tab *Table) { tab.SectorSize = 8192 }, "sector size 8192"},
		{"boot code", func(tab *Table) { tab.BootCode = []byte{1} }, "boot code"},
	} {
		tab, size := sampleTable(t, 512)
		c.edit(tab)
		err := Write(newDisk(int(size)), size, tab)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one containing %q", c.name, err, c.want)
		}
	}
}

func TestEntryGeometry(t *testing.T) {
	// 256-byte entries, 16 of them, and the primary array not at LBA 2.
	tab, size := sampleTable(t, 512)
	tab.EntrySize, tab.EntryCount, tab.PrimaryEntriesLBA = 256, 16, 10
	tab.Partitions[2].Number = 16
	tab.BootCode = bytes.Repeat([]byte{0xeb}, 440)
	d := newDisk(int(size))
	if err := Write(d, size, tab); err != nil {
		t.Fatal(err)
	}
	got, err := Read(d, size, 512)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tab) {
		t.Errorf("read back %+v", got)
	}
	l, _ := tab.Layout(size)
	if l.EntrySectors != 8 || l.BackupEntriesLBA != 131071-8 || l.MinFirstUsableLBA != 18 {
		t.Errorf("layout %+v", l)
	}
}

func TestMBRWarnings(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(mbr []byte)
		want   string
	}{
		{"no signature", func(mbr []byte) { mbr[510] = 0 }, "no MBR signature"},
		{"no 0xEE", func(mbr []byte) { mbr[450] = 0x83 }, "no 0xEE partition"},
		{"hybrid", func(mbr []byte) { mbr[466] = 0x0c }, "hybrid"},
		{"size", func(mbr []byte) { binary.LittleEndian.PutUint32(mbr[458:], 5) }, "covers 5 sectors"},
	} {
		_, got, err := corruptDisk(t, 512, func(d *memDisk, _ uint64) { c.damage(d.b) })
		if err != nil || len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], c.want) {
			t.Errorf("%s: %v, %q", c.name, err, got.Warnings)
		}
	}
	// A disk larger than 2 TiB of sectors has the size clamped.
	tab := &Table{SectorSize: 512}
	mbr := tab.protectiveMBR(1 << 33)
	if binary.LittleEndian.Uint32(mbr[458:]) != 0xffffffff {
		t.Error("protective MBR size not clamped")
	}
}

func TestDetectSectorSize(t *testing.T) {
	for _, ss := range []int{512, 1024, 2048, 4096} {
		tab, size := sampleTable(t, ss)
		d := newDisk(int(size))
		if err := Write(d, size, tab); err != nil {
			t.Fatal(err)
		}
		if got, err := DetectSectorSize(d, size); err != nil || got != ss {
			t.Errorf("DetectSectorSize = %d, %v; want %d", got, err, ss)
		}
		clear(d.b[ss : 2*ss]) // only the backup is left
		if got, err := DetectSectorSize(d, size); err != nil || got != ss {
			t.Errorf("backup only: DetectSectorSize = %d, %v; want %d", got, err, ss)
		}
	}
}

func TestFreeSpaceAndHelpers(t *testing.T) {
	tab, _ := sampleTable(t, 512)
	tab.Partitions = append(tab.Partitions[:1], tab.Partitions[2]) // leaves a hole where usr was
	free := tab.FreeSpace()
	want := []Extent{{9 * 2048, 41*2048 - 1}, {45 * 2048, 131038}}
	if !reflect.DeepEqual(free, want) || free[0].Sectors() != 32*2048 {
		t.Errorf("FreeSpace = %v, want %v", free, want)
	}
	if n, ok := tab.FreeNumber(); !ok || n != 2 {
		t.Errorf("FreeNumber = %d, %v", n, ok)
	}
	if p, ok := tab.Partition(5); !ok || p.Name != strings.Repeat("🙂", 18) {
		t.Errorf("Partition(5) = %+v", p)
	}
	if off, size := tab.Partitions[0].Bytes(512); off != 1<<20 || size != 8<<20 {
		t.Errorf("Bytes = %d, %d", off, size)
	}
	empty := &Table{FirstUsableLBA: 34, LastUsableLBA: 100}
	if got := empty.FreeSpace(); !reflect.DeepEqual(got, []Extent{{34, 100}}) {
		t.Errorf("empty FreeSpace = %v", got)
	}
	for _, c := range []struct{ x, a, up, down uint64 }{
		{0, 2048, 0, 0}, {1, 2048, 2048, 0}, {2048, 2048, 2048, 2048}, {2049, 2048, 4096, 2048}, {7, 0, 7, 7}, {7, 1, 7, 7},
		{^uint64(0), 2048, ^uint64(0) - 2047, ^uint64(0) - 2047},
	} {
		if AlignUp(c.x, c.a) != c.up || AlignDown(c.x, c.a) != c.down {
			t.Errorf("Align(%d, %d) = %d, %d", c.x, c.a, AlignUp(c.x, c.a), AlignDown(c.x, c.a))
		}
	}
}

func TestDuplicateGUIDWarning(t *testing.T) {
	tab, size := sampleTable(t, 512)
	tab.Partitions[1].UniqueGUID = tab.Partitions[0].UniqueGUID
	d := newDisk(int(size))
	if err := Write(d, size, tab); err != nil {
		t.Fatal(err)
	}
	got, err := Read(d, size, 512)
	if err != nil || len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "partitions 1 and 2 have the same unique GUID") {
		t.Errorf("%v, %q", err, got.Warnings)
	}
}

// failingDisk lets the first n writes through and fails the rest, like a
// machine that loses power in the middle of Write.
type failingDisk struct {
	*memDisk
	n      int
	writes []int64
	syncs  int
}

func (d *failingDisk) WriteAt(p []byte, off int64) (int, error) {
	if len(d.writes) == d.n {
		return 0, errors.New("power lost")
	}
	d.writes = append(d.writes, off)
	return d.memDisk.WriteAt(p, off)
}

func (d *failingDisk) Sync() error { d.syncs++; return nil }

func TestInterruptedWrite(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		old, size := sampleTable(t, ss)
		next, _ := sampleTable(t, ss)
		next.Partitions = next.Partitions[:2]
		next.Partitions[1].LastLBA = next.LastUsableLBA
		next.Partitions[1].Name = "usr_1.3"
		last := size/int64(ss) - 1
		es := int64(128 * 128 / ss)
		wantOrder := []int64{(last - es) * int64(ss), last * int64(ss), 2 * int64(ss), int64(ss), 0}
		for n := 0; n <= 5; n++ {
			base := newDisk(int(size))
			if err := Write(base, size, old); err != nil {
				t.Fatal(err)
			}
			d := &failingDisk{memDisk: base, n: n}
			err := Write(d, size, next)
			if (err == nil) != (n == 5) {
				t.Fatalf("ss %d n %d: Write error %v", ss, n, err)
			}
			if n > 0 && !reflect.DeepEqual(d.writes, wantOrder[:n]) {
				t.Errorf("ss %d: write offsets %v, want %v", ss, d.writes, wantOrder[:n])
			}
			got, err := Read(base, size, ss)
			if err != nil {
				t.Fatalf("ss %d: after %d writes the disk is unreadable: %v", ss, n, err)
			}
			want := old
			if n >= 3 { // the primary entries are new: the new backup wins
				want = next
			}
			if !reflect.DeepEqual(clean(got), want) {
				t.Errorf("ss %d: after %d writes read %+v, want %+v", ss, n, got.Partitions, want.Partitions)
			}
			if n == 5 && (got.UsedBackup || len(got.Warnings) != 0 || d.syncs != 3) {
				t.Errorf("ss %d: complete write: UsedBackup %v, warnings %q, %d syncs", ss, got.UsedBackup, got.Warnings, d.syncs)
			}
		}
	}
}

func BenchmarkRead(b *testing.B) {
	tab, size := sampleTable(b, 512)
	d := newDisk(int(size))
	if err := Write(d, size, tab); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(d, size, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	tab, size := sampleTable(b, 512)
	d := newDisk(int(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(d, size, tab); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGrownDisk reads a table from a disk that was enlarged after it was
// written, as a dd of an image onto a bigger disk leaves it.
func TestGrownDisk(t *testing.T) {
	tab, size := sampleTable(t, 512)
	d := newDisk(int(size))
	if err := Write(d, size, tab); err != nil {
		t.Fatal(err)
	}
	bigger := size + 8<<20
	d.b = append(d.b, make([]byte, 8<<20)...)
	got, err := Read(d, bigger, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.UsedBackup || len(got.Warnings) != 2 ||
		got.Warnings[0] != "the primary header puts the backup header at LBA 131071, not at the last LBA 147455" ||
		!strings.Contains(got.Warnings[1], "covers 131071 sectors, not 147455") {
		t.Errorf("warnings %q", got.Warnings)
	}
	if !reflect.DeepEqual(clean(got), tab) {
		t.Error("table differs")
	}
	l, err := got.Layout(bigger)
	if err != nil || l.MaxLastUsableLBA != 147422 {
		t.Errorf("Layout = %+v, %v", l, err)
	}
	// Growing the usable area and writing moves the backup to the end.
	got.LastUsableLBA = l.MaxLastUsableLBA
	if err := Write(d, bigger, got); err != nil {
		t.Fatal(err)
	}
	again, err := Read(d, bigger, 0)
	if err != nil || len(again.Warnings) != 0 || again.LastUsableLBA != 147422 {
		t.Errorf("after growing: %v, %q", err, again.Warnings)
	}
	// The same image on a smaller disk has lost its backup and its usable
	// area no longer fits: that is refused.
	if _, err := Read(d, size-1<<20, 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("shrunk disk: %v", err)
	}
}
