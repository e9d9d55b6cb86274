package fsimage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

// repartFSUUID derives a file-system UUID from a partition UUID as
// systemd-repart does (disk-format spec §4.5).
func repartFSUUID(partUUID [16]byte) [16]byte {
	m := hmac.New(sha256.New, partUUID[:])
	m.Write([]byte("file-system-uuid"))
	var u [16]byte
	copy(u[:], m.Sum(nil))
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func TestRepartFSUUIDVector(t *testing.T) {
	// Spec §4.5: root₀ 9e90c9c3-… has the ext4 UUID e23fa935-….
	p, _ := parseUUID("9e90c9c3-c7e8-44f2-bf19-9ae2689de795")
	if got := uuidString(repartFSUUID(p)); got != "e23fa935-5911-428c-b168-a4b761ee82bd" {
		t.Fatalf("got %s", got)
	}
}

type sfdiskPartition struct {
	Start int64  `json:"start"`
	Size  int64  `json:"size"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
}

// TestMatchesSystemdRepart has systemd-repart 252 make one partition of
// each type it can format, then makes the same file systems with Make, at
// the same offsets of another disk file, from the same UUIDs and labels,
// and compares: what blkid reports must be equal for all, swap and
// squashfs must be equal byte for byte, vfat everywhere but the label's
// directory-entry timestamps, and ext4, btrfs and xfs in every superblock
// parameter that is not a time, a random seed or a generation.
func TestMatchesSystemdRepart(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	for _, typ := range []string{"vfat", "ext4", "btrfs", "xfs", "squashfs", "swap"} {
		for _, tool := range fsTools[typ] {
			testutil.RequireTool(t, tool.Name, tool.Package)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Fatal("systemd-repart needs loop devices to format: ", err)
	}
	work := t.TempDir()
	root := filepath.Join(work, "root")
	defs := filepath.Join(work, "defs")
	if err := os.MkdirAll(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	tree := makeTreeIn(t, filepath.Join(root, "srv"))
	type part struct {
		file, typ, body string
		src             string // for CopyFiles=/srv:/
	}
	parts := []part{
		{"10-esp.conf", "vfat", "Type=esp\nLabel=Ünïcode.Label:long\nFormat=vfat\nSizeMinBytes=64M\nSizeMaxBytes=64M\n", ""},
		{"20-ext4.conf", "ext4", "Type=linux-generic\nLabel=a-rather-long-ext4-label\nFormat=ext4\nSizeMinBytes=32M\nSizeMaxBytes=32M\n", ""},
		{"30-swap.conf", "swap", "Type=swap\nFormat=swap\nSizeMinBytes=8M\nSizeMaxBytes=8M\n", ""},
		{"40-btrfs.conf", "btrfs", "Type=home\nFormat=btrfs\nSizeMinBytes=128M\nSizeMaxBytes=128M\n", ""},
		{"50-xfs.conf", "xfs", "Type=srv\nLabel=xfs-label-longer\nFormat=xfs\nSizeMinBytes=300M\nSizeMaxBytes=300M\n", ""},
		{"60-squashfs.conf", "squashfs", "Type=var\nFormat=squashfs\nCopyFiles=/srv:/\nSizeMinBytes=8M\nSizeMaxBytes=8M\n", tree},
	}
	for _, p := range parts {
		if err := os.WriteFile(filepath.Join(defs, p.file), []byte("[Partition]\n"+p.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const epoch = 1640995200
	theirs := filepath.Join(work, "theirs.img")
	testutil.Run(t, "env", "SOURCE_DATE_EPOCH=1640995200", repart, "--empty=create", "--size=auto",
		"--seed=0123456789abcdef0123456789abcdef", "--definitions="+defs, "--root="+root, "--dry-run=no", theirs)

	var table struct {
		PartitionTable struct {
			Partitions []sfdiskPartition `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(testutil.Run(t, sfdisk, "--json", theirs), &table); err != nil {
		t.Fatal(err)
	}
	if len(table.PartitionTable.Partitions) != len(parts) {
		t.Fatalf("%d partitions", len(table.PartitionTable.Partitions))
	}
	fi, err := os.Stat(theirs)
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(work, "ours.img")
	f, err := os.Create(ours)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(fi.Size()); err != nil {
		t.Fatal(err)
	}
	ep := time.Unix(epoch, 0)
	theirBytes := func(p sfdiskPartition) []byte {
		b := make([]byte, p.Size*512)
		tf, err := os.Open(theirs)
		if err != nil {
			t.Fatal(err)
		}
		defer tf.Close()
		if _, err := tf.ReadAt(b, p.Start*512); err != nil {
			t.Fatal(err)
		}
		return b
	}
	ourBytes := func(p sfdiskPartition) []byte {
		b := make([]byte, p.Size*512)
		if _, err := f.ReadAt(b, p.Start*512); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i, p := range parts {
		sp := table.PartitionTable.Partitions[i]
		t.Run(p.typ, func(t *testing.T) {
			partUUID, err := parseUUID(sp.UUID)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Type: p.typ, Label: sp.Name, UUID: repartFSUUID(partUUID), SourceDir: p.src}
			if p.typ == "squashfs" {
				opts.SourceDateEpoch = &ep
			}
			off := sp.Start * 512
			if err := Make(context.Background(), f, off, sp.Size*512, opts); err != nil {
				t.Fatal(err)
			}
			want := blkidExport(t, theirs, off)
			got := blkidExport(t, ours, off)
			// The btrfs device UUID is random.
			for _, k := range []string{"DEVNAME", "UUID_SUB"} {
				delete(want, k)
				delete(got, k)
			}
			if !equalMaps(got, want) {
				t.Errorf("blkid: ours %v, systemd-repart's %v", got, want)
			}
			a, b := ourBytes(sp), theirBytes(sp)
			switch p.typ {
			case "swap", "squashfs":
				if !bytes.Equal(a, b) {
					t.Errorf("bytes differ")
				}
			case "vfat":
				compareVFAT(t, a, b, want["LABEL"])
			case "ext4":
				compareToolOutput(t, a, b, []string{"dumpe2fs", "-h"}, "e2fsprogs",
					`^(Filesystem created|Last mount time|Last write time|Last checked|Directory Hash Seed|Checksum|Lifetime writes):`)
			case "btrfs":
				compareToolOutput(t, a, b, []string{"btrfs", "inspect-internal", "dump-super"}, "btrfs-progs",
					`^(csum|bytenr|generation|chunk_root_generation|root|chunk_root|log_root|cache_generation|uuid_tree_generation|dev_item.uuid|dev_item.generation|backup_|\s)`)
			case "xfs":
				compareToolOutput(t, a, b, []string{"xfs_db", "-r", "-c", "sb", "-c", "p"}, "xfsprogs", `^(crc) `)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// compareVFAT requires the two FAT file systems to be equal except inside
// the volume-label directory entry (whose times come from the clock).
func compareVFAT(t *testing.T, ours, theirs []byte, label string) {
	t.Helper()
	var diffs []int
	for i := range ours {
		if ours[i] != theirs[i] {
			diffs = append(diffs, i)
		}
	}
	if len(diffs) == 0 {
		return
	}
	name := []byte(label + strings.Repeat(" ", 11-len(label)))
	entry := bytes.Index(theirs, append(name, 0x08))
	if entry < 0 || entry%32 != 0 {
		t.Fatalf("%d bytes differ, and no label entry found", len(diffs))
	}
	for _, d := range diffs {
		if d < entry || d >= entry+32 {
			t.Fatalf("byte %#x differs (ours %#x, systemd-repart's %#x) outside the label entry at %#x", d, ours[d], theirs[d], entry)
		}
	}
}

// compareToolOutput runs a superblock-printing tool on both file systems
// and compares its lines, leaving out those matching ignore.
func compareToolOutput(t *testing.T, ours, theirs []byte, cmd []string, pkg, ignore string) {
	t.Helper()
	tool := testutil.RequireTool(t, cmd[0], pkg)
	skip := regexp.MustCompile(ignore)
	dump := func(b []byte) []string {
		img := filepath.Join(t.TempDir(), "fs.img")
		if err := os.WriteFile(img, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out := testutil.Run(t, tool, append(cmd[1:], img)...)
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if !skip.MatchString(l) && !strings.Contains(l, img) {
				lines = append(lines, l)
			}
		}
		return lines
	}
	a, b := dump(ours), dump(theirs)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("%s differs:\nours:\n%s\nsystemd-repart's:\n%s", cmd[0], strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
}
