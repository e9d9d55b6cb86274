package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// writeNewc writes entries as one newc archive with a trailer, padded to
// a multiple of 512 bytes as GNU cpio pads its output.
func writeNewc(entries []cpioEntry) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	member := func(e cpioEntry, data []byte) {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			e.Ino, e.Mode, e.UID, e.GID, e.NLink, e.MTime, len(data), e.Major, e.Minor, e.RMajor, e.RMinor, len(e.Name)+1, 0)
		b.WriteString(e.Name)
		b.WriteByte(0)
		pad()
		b.Write(data)
		pad()
	}
	for _, e := range entries {
		member(e, e.Data)
	}
	member(cpioEntry{Name: newcTrailer, NLink: 1}, nil)
	for b.Len()%512 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func sampleEntries() []cpioEntry {
	return []cpioEntry{
		{Name: ".", Ino: 1, Mode: modeDir | 0o755, NLink: 2, Data: []byte{}},
		{Name: "init", Ino: 2, Mode: modeSymlink | 0o777, NLink: 1, Size: 23, Data: []byte("usr/lib/systemd/systemd")},
		{Name: "usr/lib/repart.d/50-root.conf", Ino: 3, Mode: modeRegular | 0o644, NLink: 1, Size: 5, Data: []byte("[Par]")},
		{Name: "usr/bin/a", Ino: 4, Mode: modeRegular | 0o755, NLink: 2, Size: 0, Data: []byte{}},
		{Name: "usr/bin/b", Ino: 4, Mode: modeRegular | 0o755, NLink: 2, Size: 3, Data: []byte("abc")},
		{Name: "dev/null", Ino: 5, Mode: 0o020666, NLink: 1, RMajor: 1, RMinor: 3, UID: 7, GID: 8, MTime: 1700000000, Data: []byte{}},
	}
}

func TestReadNewc(t *testing.T) {
	want := sampleEntries()
	archive := writeNewc(want)
	// Two archives one after the other, as an early cpio and the main one.
	second := []cpioEntry{{Name: "etc/initrd-release", Ino: 9, Mode: modeRegular | 0o644, NLink: 1, Size: 2, Data: []byte("x\n")}}
	archive = append(archive, writeNewc(second)...)
	got, err := readNewc(bytes.NewReader(archive), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, append(want, second...)) {
		t.Fatalf("got  %+v\nwant %+v", got, append(want, second...))
	}
	// Without keep, only symlink targets are kept.
	got, err = readNewc(bytes.NewReader(archive), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if (e.Data != nil) != (e.Name == "init") {
			t.Errorf("%s: data kept = %v", e.Name, e.Data != nil)
		}
	}
	c := newContents(got)
	if !c.has("dev/null") || c.has("usr/bin/c") {
		t.Error("has")
	}

	// Hard links: the empty twin gets the data of the full one.
	c = newContents(mustRead(t, writeNewc(sampleEntries())))
	if d, ok := c.data("usr/bin/a"); !ok || string(d) != "abc" {
		t.Fatalf("hard link data %q %v", d, ok)
	}
	if d, ok := c.data("usr/lib/repart.d/50-root.conf"); !ok || string(d) != "[Par]" {
		t.Fatalf("data %q %v", d, ok)
	}
}

func mustRead(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	e, err := readNewc(bytes.NewReader(b), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"./usr/bin": "usr/bin", "/init": "init", ".": ".", "./": ".", "//a": "a", "TRAILER!!!": "TRAILER!!!"} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadNewcErrors(t *testing.T) {
	good := writeNewc(sampleEntries())
	header := func(nameSize, size int, mode uint32) string {
		return fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x", 1, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, nameSize, 0)
	}
	for name, in := range map[string][]byte{
		"bad magic":        append([]byte("070707"), good[6:]...),
		"truncated header": good[:50],
		"truncated data":   []byte(header(2, 10, modeRegular) + "a\x00abc"),
		"no trailer":       good[:len(good)-512],
		"bad hex":          []byte("070701zzzzzzzz" + strings.Repeat("0", 96)),
		"zero name size":   []byte(header(0, 0, modeRegular)),
		"huge name":        []byte(header(1<<20, 0, modeRegular)),
		"name without NUL": []byte(header(2, 0, modeRegular) + "ab"),
		"huge symlink":     []byte(header(2, 1<<20, modeSymlink) + "a\x00"),
		"misaligned":       append([]byte{0, 0, 0}, []byte(header(2, 0, modeRegular)+"a\x00")...),
	} {
		_, err := readNewc(bytes.NewReader(in), nil)
		if !errors.Is(err, errNewc) {
			t.Errorf("%s: err = %v, want errNewc", name, err)
		}
	}
	if e, err := readNewc(bytes.NewReader(nil), nil); err != nil || len(e) != 0 {
		t.Errorf("empty input: %v, %v", e, err)
	}
	// More data kept than the limit is refused before it is allocated.
	big := header(2, newcMaxKept+1, modeRegular) + "a\x00"
	if _, err := readNewc(strings.NewReader(big), func(string) bool { return true }); !errors.Is(err, errNewc) {
		t.Errorf("huge kept file: %v", err)
	}
}

func FuzzReadNewc(f *testing.F) {
	f.Add(writeNewc(sampleEntries()))
	f.Add(append(writeNewc(sampleEntries()[:2]), writeNewc(sampleEntries()[2:])...))
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, in []byte) {
		entries, err := readNewc(bytes.NewReader(in), func(string) bool { return true })
		if err != nil {
			return
		}
		for i := range entries {
			e := &entries[i]
			if uint32(len(e.Data)) != e.Size {
				t.Fatalf("%s: %d bytes of data, size %d", e.Name, len(e.Data), e.Size)
			}
			if e.Name == "" || strings.HasPrefix(e.Name, "/") || strings.HasPrefix(e.Name, "./") {
				t.Fatalf("name %q not clean", e.Name)
			}
			if e.Size == 0 {
				// A member without data reads back with empty, not nil, data.
				e.Data = []byte{}
			}
		}
		again, err := readNewc(bytes.NewReader(writeNewc(entries)), func(string) bool { return true })
		if err != nil {
			t.Fatalf("rewritten archive does not read: %v", err)
		}
		for i := range again {
			if again[i].Size == 0 {
				again[i].Data = []byte{}
			}
		}
		if !reflect.DeepEqual(again, entries) && !(len(again) == 0 && len(entries) == 0) {
			t.Fatalf("round trip changed the members")
		}
	})
}
