package gpt_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/internal/testutil"
)

// sfdiskTable is what sfdisk --json prints for a GPT.
type sfdiskTable struct {
	Label      string            `json:"label"`
	ID         string            `json:"id"`
	Device     string            `json:"device"`
	Unit       string            `json:"unit"`
	FirstLBA   uint64            `json:"firstlba"`
	LastLBA    uint64            `json:"lastlba"`
	SectorSize int               `json:"sectorsize"`
	Partitions []sfdiskPartition `json:"partitions"`
}

type sfdiskPartition struct {
	Node  string `json:"node"`
	Start uint64 `json:"start"`
	Size  uint64 `json:"size"`
	Type  string `json:"type"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	Attrs string `json:"attrs"`
}

func sfdiskJSON(t *testing.T, sfdisk, dev string) sfdiskTable {
	t.Helper()
	var out struct {
		PartitionTable sfdiskTable `json:"partitiontable"`
	}
	if err := json.Unmarshal(testutil.Run(t, sfdisk, "--json", dev), &out); err != nil {
		t.Fatal(err)
	}
	return out.PartitionTable
}

var dumpLine = regexp.MustCompile(`^(\S+) : start=\s*(\d+), size=\s*(\d+), type=([0-9A-Fa-f-]+), uuid=([0-9A-Fa-f-]+)(?:, name="([^"]*)")?(?:, attrs="([^"]*)")?$`)

// sfdiskDump parses sfdisk --dump into the same shape as --json, so that
// both of sfdisk's views are checked.
func sfdiskDump(t *testing.T, sfdisk, dev string) sfdiskTable {
	t.Helper()
	var tab sfdiskTable
	for _, line := range strings.Split(strings.TrimSpace(string(testutil.Run(t, sfdisk, "--dump", dev))), "\n") {
		if line == "" {
			continue
		}
		if m := dumpLine.FindStringSubmatch(line); m != nil {
			start, _ := strconv.ParseUint(m[2], 10, 64)
			size, _ := strconv.ParseUint(m[3], 10, 64)
			tab.Partitions = append(tab.Partitions, sfdiskPartition{Node: m[1], Start: start, Size: size,
				Type: m[4], UUID: m[5], Name: unescapeDump(t, m[6]), Attrs: m[7]})
			continue
		}
		key, value, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("unparsed sfdisk --dump line %q", line)
		}
		switch key {
		case "label":
			tab.Label = value
		case "label-id":
			tab.ID = value
		case "device":
			tab.Device = value
		case "unit":
			tab.Unit = value
		case "first-lba":
			tab.FirstLBA, _ = strconv.ParseUint(value, 10, 64)
		case "last-lba":
			tab.LastLBA, _ = strconv.ParseUint(value, 10, 64)
		case "sector-size":
			tab.SectorSize, _ = strconv.Atoi(value)
		default:
			t.Fatalf("unknown sfdisk --dump header %q", line)
		}
	}
	return tab
}

// unescapeDump undoes sfdisk --dump's \xNN escapes of non-ASCII bytes.
func unescapeDump(t *testing.T, s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				t.Fatalf("bad escape in %q", s)
			}
			b = append(b, byte(v))
			i += 3
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// expectSfdisk is what sfdisk must print for tab on device dev.
func expectSfdisk(tab *gpt.Table, dev string) sfdiskTable {
	want := sfdiskTable{
		Label: "gpt", ID: strings.ToUpper(tab.DiskGUID.String()), Device: dev, Unit: "sectors",
		FirstLBA: tab.FirstUsableLBA, LastLBA: tab.LastUsableLBA, SectorSize: tab.SectorSize,
	}
	sep := ""
	if strings.HasPrefix(dev, "/dev/loop") {
		sep = "p"
	}
	for _, p := range tab.Partitions {
		want.Partitions = append(want.Partitions, sfdiskPartition{
			Node: fmt.Sprintf("%s%s%d", dev, sep, p.Number), Start: p.FirstLBA, Size: p.Sectors(),
			Type: strings.ToUpper(p.TypeGUID.String()), UUID: strings.ToUpper(p.UniqueGUID.String()),
			Name: p.Name, Attrs: gpt.FormatAttributes(p.Attributes),
		})
	}
	return want
}

// normalise upper-cases GUIDs, which sfdisk prints in upper case for types
// it knows and in lower case for others.
func normalise(s sfdiskTable) sfdiskTable {
	s.ID = strings.ToUpper(s.ID)
	for i := range s.Partitions {
		s.Partitions[i].Type = strings.ToUpper(s.Partitions[i].Type)
		s.Partitions[i].UUID = strings.ToUpper(s.Partitions[i].UUID)
	}
	return s
}

func guid(t *testing.T, s string) gpt.GUID {
	t.Helper()
	g, err := gpt.ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// interopTable is a table that exercises every field sfdisk shows: a gap
// in the numbering, free space between partitions, every attribute bit
// sfdisk can print, and names with non-ASCII characters.
func interopTable(t *testing.T, size int64, sectorSize int) *gpt.Table {
	t.Helper()
	tab, err := gpt.New(size, sectorSize, guid(t, "9b2f5e0c-4d1a-4c3e-8f6a-0b1c2d3e4f50"))
	if err != nil {
		t.Fatal(err)
	}
	mib := uint64(1 << 20 / sectorSize)
	first := tab.FirstUsableLBA
	tab.Partitions = []gpt.Partition{
		{Number: 1, TypeGUID: guid(t, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), UniqueGUID: guid(t, "5d4c3b2a-1908-4f7e-9d6c-5b4a39281706"),
			FirstLBA: first, LastLBA: first + 8*mib - 1, Attributes: gpt.AttrRequiredPartition | gpt.AttrNoBlockIOProtocol | gpt.AttrLegacyBIOSBootable, Name: "esp"},
		{Number: 2, TypeGUID: guid(t, "8484680c-9521-48c6-9c11-b0720656f69e"), UniqueGUID: guid(t, "c67d57c2-9a5f-f038-8123-456789abcdef"),
			FirstLBA: first + 8*mib, LastLBA: first + 24*mib - 1, Attributes: 1<<59 | 1<<60, Name: "fooOS_1.2 ü€ usr"},
		{Number: 3, TypeGUID: guid(t, "77ff5f63-e7b6-4633-acf4-1565b864c0e6"), UniqueGUID: guid(t, "0a0b0c0d-0e0f-4011-8213-141516171819"),
			FirstLBA: first + 24*mib, LastLBA: first + 26*mib - 1, Attributes: 1 << 60, Name: "fooOS_1.2_verity"},
		{Number: 7, TypeGUID: guid(t, "773f91ef-66d4-49b5-bd83-d683bf40ad16"), UniqueGUID: guid(t, "ffeeddcc-bbaa-4988-9766-554433221100"),
			FirstLBA: first + 30*mib, LastLBA: first + 30*mib + 99, Attributes: 0xffff000000000000, Name: strings.Repeat("x", gpt.NameLength)},
		{Number: 4, TypeGUID: guid(t, "0fc63daf-8483-4772-8e79-3d69d8477de4"), UniqueGUID: guid(t, "12345678-9abc-4def-8123-456789abcdef"),
			FirstLBA: first + 40*mib, LastLBA: tab.LastUsableLBA, Name: "_empty"},
	}
	return tab
}

func writeImage(t *testing.T, path string, size int64, tab *gpt.Table) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := gpt.Write(f, size, tab); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readImage(t *testing.T, path string, sectorSize int) *gpt.Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gpt.Read(f, fi.Size(), sectorSize)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// sorted returns the partitions in entry order, the order sfdisk lists them.
func sorted(tab *gpt.Table) *gpt.Table {
	c := *tab
	c.Partitions = append([]gpt.Partition(nil), tab.Partitions...)
	for i := range c.Partitions {
		for j := i + 1; j < len(c.Partitions); j++ {
			if c.Partitions[j].Number < c.Partitions[i].Number {
				c.Partitions[i], c.Partitions[j] = c.Partitions[j], c.Partitions[i]
			}
		}
	}
	return &c
}

// checkWithSfdisk compares sfdisk's --json and --dump views of dev with tab
// and runs sfdisk --verify.
func checkWithSfdisk(t *testing.T, sfdisk, dev string, tab *gpt.Table) {
	t.Helper()
	want := expectSfdisk(sorted(tab), dev)
	got := normalise(sfdiskJSON(t, sfdisk, dev))
	if len(got.Partitions) != len(tab.Partitions) || got.Partitions[0].Attrs == "" {
		t.Errorf("sfdisk --json shows %d partitions, attributes %q", len(got.Partitions), got.Partitions)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sfdisk --json:\n got %+v\nwant %+v", got, want)
	}
	if got := normalise(sfdiskDump(t, sfdisk, dev)); !reflect.DeepEqual(got, want) {
		t.Errorf("sfdisk --dump:\n got %+v\nwant %+v", got, want)
	}
	out, err := testutil.RunErr(sfdisk, "--verify", dev)
	if err != nil || !bytes.Contains(out, []byte("No errors detected.")) {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
}

// sfdiskScript is the sfdisk input that makes tab on dev.
func sfdiskScript(tab *gpt.Table, dev string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "label: gpt\nlabel-id: %s\nunit: sectors\nfirst-lba: %d\nlast-lba: %d\n\n", tab.DiskGUID, tab.FirstUsableLBA, tab.LastUsableLBA)
	sep := ""
	if strings.HasPrefix(dev, "/dev/loop") {
		sep = "p"
	}
	for _, p := range tab.Partitions {
		fmt.Fprintf(&b, "%s%s%d : start=%d, size=%d, type=%s, uuid=%s, name=\"%s\"", dev, sep, p.Number, p.FirstLBA, p.Sectors(), p.TypeGUID, p.UniqueGUID, p.Name)
		if p.Attributes != 0 {
			fmt.Fprintf(&b, ", attrs=\"%s\"", gpt.FormatAttributes(p.Attributes))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func runSfdiskScript(t *testing.T, sfdisk, dev, script string) {
	t.Helper()
	path := testutil.WriteFile(t, "script.sfdisk", []byte(script))
	// sfdisk reads the script from standard input.
	if _, err := testutil.RunErr("sh", "-c", `exec "$0" --quiet --no-reread --no-tell-kernel "$1" <"$2"`, sfdisk, dev, path); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, script)
	}
}

// sameTableBytes compares the table areas of two images: LBA 0 to the
// first usable LBA, and the backup area after the last usable LBA.
func sameTableBytes(t *testing.T, ours, theirs string, tab *gpt.Table) {
	t.Helper()
	ss := int64(tab.SectorSize)
	fi, err := os.Stat(ours)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, int64(tab.FirstUsableLBA) * ss}, {int64(tab.LastUsableLBA+1) * ss, fi.Size()}} {
		a, b := readRange(t, ours, r[0], r[1]), readRange(t, theirs, r[0], r[1])
		for i := range a {
			if a[i] != b[i] {
				off := r[0] + int64(i)
				t.Errorf("byte %d (LBA %d + %d) differs: ours %#02x, sfdisk's %#02x", off, off/ss, off%ss, a[i], b[i])
				break
			}
		}
	}
}

func readRange(t *testing.T, path string, from, to int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, to-from)
	if _, err := f.ReadAt(buf, from); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return buf
}

// TestSfdiskReadsOurs writes a table with this package and has sfdisk
// read it back.
func TestSfdiskReadsOurs(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	const size = 64 << 20
	img := filepath.Join(t.TempDir(), "ours.img")
	tab := interopTable(t, size, 512)
	// sfdisk 2.38 cannot write characters outside the BMP but reads them.
	tab.Partitions[2].Name = "fooOS 🙂 verity"
	writeImage(t, img, size, tab)
	checkWithSfdisk(t, sfdisk, img, tab)
}

// TestWeReadSfdisk has sfdisk write a table from a script and reads it with
// this package; then writes what it read to a second image and compares the
// table bytes with sfdisk's.
func TestWeReadSfdisk(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	const size = 64 << 20
	dir := t.TempDir()
	img := filepath.Join(dir, "sfdisk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	want := interopTable(t, size, 512)
	runSfdiskScript(t, sfdisk, img, sfdiskScript(want, img))

	got := readImage(t, img, 0)
	if len(got.Warnings) != 0 || got.UsedBackup {
		t.Errorf("warnings %q, UsedBackup %v", got.Warnings, got.UsedBackup)
	}
	if !reflect.DeepEqual(got, sorted(want)) {
		t.Errorf("read\n%+v\nwant\n%+v", got, sorted(want))
	}
	ours := filepath.Join(dir, "ours.img")
	writeImage(t, ours, size, got)
	sameTableBytes(t, ours, img, got)
}

// TestSfdiskEmptyTable compares our New with sfdisk's empty table, byte for
// byte, for a few disk sizes.
func TestSfdiskEmptyTable(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	for _, size := range []int64{4 << 20, 4<<20 + 512, 64 << 20, 3<<30 + 4096} {
		dir := t.TempDir()
		img := filepath.Join(dir, "sfdisk.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, size); err != nil {
			t.Fatal(err)
		}
		id := guid(t, "01020304-0506-4708-890a-0b0c0d0e0f10")
		runSfdiskScript(t, sfdisk, img, fmt.Sprintf("label: gpt\nlabel-id: %s\n", id))
		tab, err := gpt.New(size, 512, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := readImage(t, img, 512); !reflect.DeepEqual(got, tab) {
			t.Errorf("size %d: sfdisk made %+v, New makes %+v", size, got, tab)
		}
		ours := filepath.Join(dir, "ours.img")
		writeImage(t, ours, size, tab)
		sameTableBytes(t, ours, img, tab)
	}
}

// loopDevice attaches path to a loop device with the given logical sector
// size. It skips the test when that is impossible here (not root, no loop
// support), since only a block device can have 4096-byte sectors.
func loopDevice(t *testing.T, path string, sectorSize int) string {
	t.Helper()
	losetup := testutil.RequireTool(t, "losetup", "mount")
	if os.Geteuid() != 0 {
		t.Skip("attaching a loop device needs root")
	}
	out, err := testutil.RunErr(losetup, "--find", "--show", "--sector-size", strconv.Itoa(sectorSize), path)
	if err != nil {
		t.Skipf("cannot attach a loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if _, err := testutil.RunErr(losetup, "--detach", dev); err != nil {
			t.Errorf("detaching %s: %v", dev, err)
		}
	})
	return dev
}

// Test4KSectors does both directions on a loop device with 4096-byte
// logical sectors.
func Test4KSectors(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	const size = 64 << 20
	dir := t.TempDir()

	ours := filepath.Join(dir, "ours.img")
	tab := interopTable(t, size, 4096)
	writeImage(t, ours, size, tab)
	dev := loopDevice(t, ours, 4096)
	checkWithSfdisk(t, sfdisk, dev, tab)

	theirs := filepath.Join(dir, "sfdisk.img")
	if err := os.WriteFile(theirs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(theirs, size); err != nil {
		t.Fatal(err)
	}
	dev2 := loopDevice(t, theirs, 4096)
	runSfdiskScript(t, sfdisk, dev2, sfdiskScript(tab, dev2))
	testutil.Run(t, "sync")
	got := readImage(t, theirs, 0)
	if !reflect.DeepEqual(got, sorted(tab)) {
		t.Errorf("read\n%+v\nwant\n%+v", got, sorted(tab))
	}
	again := filepath.Join(dir, "again.img")
	writeImage(t, again, size, got)
	sameTableBytes(t, again, theirs, got)
}

// TestWeReadRepart reads a table systemd-repart made and checks it against
// sfdisk's view of the same image, then rewrites it and compares the table
// bytes.
func TestWeReadRepart(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	dir := t.TempDir()
	defs := filepath.Join(dir, "repart.d")
	if err := os.Mkdir(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, conf := range map[string]string{
		"10-esp.conf":   "[Partition]\nType=esp\nSizeMinBytes=8M\nSizeMaxBytes=8M\n",
		"20-usr.conf":   "[Partition]\nType=usr\nLabel=fooOS_1.0\nSizeMinBytes=12M\nSizeMaxBytes=12M\nReadOnly=yes\n",
		"30-usr-b.conf": "[Partition]\nType=usr\nLabel=_empty\nSizeMinBytes=12M\nSizeMaxBytes=12M\nNoAuto=yes\n",
		"40-home.conf":  "[Partition]\nType=home\nLabel=home ü\n",
	} {
		if err := os.WriteFile(filepath.Join(defs, name), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "repart.img")
	testutil.Run(t, repart, "--dry-run=no", "--empty=create", "--size=64M", "--seed=0123456789abcdef0123456789abcdef",
		"--definitions="+defs, img)
	tab := readImage(t, img, 512)
	if len(tab.Partitions) != 4 || len(tab.Warnings) != 0 || tab.UsedBackup {
		t.Fatalf("read %d partitions, warnings %q, UsedBackup %v", len(tab.Partitions), tab.Warnings, tab.UsedBackup)
	}
	if got := normalise(sfdiskJSON(t, sfdisk, img)); !reflect.DeepEqual(got, expectSfdisk(tab, img)) {
		t.Errorf("sfdisk --json:\n got %+v\nwant %+v", got, expectSfdisk(tab, img))
	}
	if tab.Partitions[1].Attributes != 1<<60 || tab.Partitions[2].Attributes&(1<<63) == 0 || tab.Partitions[3].Name != "home ü" {
		t.Errorf("partitions %+v", tab.Partitions)
	}
	ours := filepath.Join(dir, "ours.img")
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	writeImage(t, ours, fi.Size(), tab)
	sameTableBytes(t, ours, img, tab)
}
