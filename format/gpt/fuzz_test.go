package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
)

// fuzzSeed writes a small table and returns the disk bytes.
func fuzzSeed(f *testing.F, sectorSize, sectors int, entries uint32, damage func([]byte)) []byte {
	size := int64(sectorSize * sectors)
	tab := &Table{SectorSize: sectorSize, DiskGUID: GUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, EntryCount: entries, EntrySize: DefaultEntrySize}
	l, err := tab.layout(size)
	if err != nil {
		f.Fatal(err)
	}
	tab.FirstUsableLBA, tab.LastUsableLBA = l.MinFirstUsableLBA, l.MaxLastUsableLBA
	tab.Partitions = []Partition{
		{Number: 1, TypeGUID: GUID{0xc1, 0x2a}, UniqueGUID: GUID{1}, FirstLBA: tab.FirstUsableLBA, LastLBA: tab.FirstUsableLBA + 1, Attributes: 1 << 63, Name: "esp"},
		{Number: int(entries), TypeGUID: GUID{0x84}, UniqueGUID: GUID{2}, FirstLBA: tab.FirstUsableLBA + 3, LastLBA: tab.LastUsableLBA, Name: "usr_1 🙂"},
	}
	d := newDisk(int(size))
	if err := Write(d, size, tab); err != nil {
		f.Fatal(err)
	}
	if damage != nil {
		damage(d.b)
	}
	return d.b
}

// FuzzRead reads arbitrary bytes as a disk. Reading must never panic and
// must fail only with ErrNoTable or ErrCorrupt; whatever it reads must write
// back and read again to the same table, from the primary. Each input is
// read twice: as it is, and with every header's and entry array's CRC32
// made to match, so that mutations get past the checksums to the checks
// behind them.
func FuzzRead(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 4096))
	f.Add(fuzzSeed(f, 512, 10, 4, nil))
	f.Add(fuzzSeed(f, 512, 14, 8, func(b []byte) { b[512+20] = 1 }))         // primary header damaged
	f.Add(fuzzSeed(f, 512, 14, 8, func(b []byte) { b[2*512+1] ^= 0xff }))    // primary entries damaged
	f.Add(fuzzSeed(f, 512, 14, 8, func(b []byte) { b[len(b)-512+40] ^= 1 })) // backup damaged
	f.Add(fuzzSeed(f, 512, 10, 4, func(b []byte) { b[510] = 0 }))            // no protective MBR
	f.Add(fuzzSeed(f, 4096, 9, 32, nil))
	f.Add(fuzzSeed(f, 1024, 12, 8, func(b []byte) { b[1024] = 0 })) // only the backup is left
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data)
		fixed := bytes.Clone(data)
		fixCRCs(fixed)
		checkRoundTrip(t, fixed)
	})
}

func checkRoundTrip(t *testing.T, data []byte) {
	size := int64(len(data))
	tab, err := Read(bytes.NewReader(data), size, 0)
	if err != nil {
		if !errors.Is(err, ErrNoTable) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read failed with neither ErrNoTable nor ErrCorrupt: %v", err)
		}
		return
	}
	out := newDisk(len(data))
	if err := Write(out, size, tab); err != nil {
		t.Fatalf("a table Read returned does not write: %v\n%+v", err, tab)
	}
	again, err := Read(out, size, 0)
	if err != nil {
		t.Fatalf("written table does not read: %v", err)
	}
	if again.UsedBackup {
		t.Fatalf("written table read from the backup: %q", again.Warnings)
	}
	if !reflect.DeepEqual(clean(again), clean(tab)) {
		t.Fatalf("round trip changed the table:\n%+v\n%+v", again, tab)
	}
}

// fixCRCs recomputes, for every sector size, the entry array CRC32 and the
// header CRC32 of each header with a signature whose fields lie inside
// data.
func fixCRCs(data []byte) {
	le := binary.LittleEndian
	for _, ss := range []int{512, 1024, 2048, 4096} {
		n := len(data) / ss
		if n < 3 {
			continue
		}
		for _, lba := range []int{1, n - 1} {
			h := data[lba*ss : (lba+1)*ss]
			if string(h[:8]) != signatureValue {
				continue
			}
			size := int(le.Uint32(h[12:]))
			if size < headerSize || size > ss {
				continue
			}
			at, count, esize := le.Uint64(h[72:]), uint64(le.Uint32(h[80:])), uint64(le.Uint32(h[84:]))
			if at < uint64(n) && count*esize <= uint64(len(data)) && at*uint64(ss)+count*esize <= uint64(len(data)) {
				start := at * uint64(ss)
				le.PutUint32(h[88:], crc32.ChecksumIEEE(data[start:start+count*esize]))
			}
			clear(h[16:20])
			le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
		}
	}
}
