package fsimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

const mib = 1 << 20

// blkidExport probes the file system at offset of img with blkid.
func blkidExport(t *testing.T, img string, offset int64) map[string]string {
	t.Helper()
	blkid := testutil.RequireTool(t, "blkid", "util-linux")
	out := testutil.Run(t, blkid, "-p", "-o", "export", "-O", strconv.FormatInt(offset, 10), img)
	return parseExport(out)
}

func checkBlkid(t *testing.T, img string, offset int64, want map[string]string) {
	t.Helper()
	got := blkidExport(t, img, offset)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("blkid %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	for _, k := range []string{"UUID", "LABEL"} {
		if _, ok := want[k]; !ok && got[k] != "" {
			t.Errorf("blkid %s = %q, want none", k, got[k])
		}
	}
}

// makeImage runs MakeFile for the test tree and returns the image path.
func makeImage(t *testing.T, size int64, opts Options) string {
	t.Helper()
	for _, tool := range fsTools[opts.Type] {
		testutil.RequireTool(t, tool.Name, tool.Package)
	}
	img := filepath.Join(t.TempDir(), opts.Type+".img")
	n, err := MakeFile(context.Background(), img, size, opts)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != n || (size != 0 && n != size) || n%4096 != 0 {
		t.Fatalf("MakeFile returned %d, file has %d, asked %d", n, fi.Size(), size)
	}
	return img
}

func TestVFAT(t *testing.T) {
	tree := makeTree(t)
	img := makeImage(t, 64*mib, Options{Type: "vfat", Label: "Ünïcode.Label:long", UUID: testUUID, SourceDir: tree})
	checkBlkid(t, img, 0, map[string]string{"TYPE": "vfat", "VERSION": "FAT32", "UUID": "0123-4567", "LABEL": "_N_CODE_LAB"})
	fsck := testutil.RequireTool(t, "fsck.vfat", "dosfstools")
	testutil.Run(t, fsck, "-n", img)

	// Take everything out again with mtools.
	mcopy := testutil.RequireTool(t, "mcopy", "mtools")
	out := t.TempDir()
	cmd := fmt.Sprintf("TZ=UTC MTOOLS_SKIP_CHECK=1 %s -s -n -m -i %s '::*' %s", mcopy, img, out)
	testutil.Run(t, "sh", "-c", cmd)
	// FAT keeps neither owners nor modes nor links: the symlink inside
	// the tree was followed (mcopy), the hard link is a second copy.
	compareTree(t, readTree(t, out), treeCheck{replace: map[string]entry{
		"dir/link": {'-', 0, 0, 0, "hello\n"},
	}})
	// Modification times survive (FAT has 2-second steps, stored in UTC).
	fi, err := os.Stat(filepath.Join(out, "dir/sub/n"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(treeTime) {
		t.Errorf("mtime %v, want %v", fi.ModTime(), treeTime)
	}
}

func TestExt4(t *testing.T) {
	tree := makeTree(t)
	img := makeImage(t, 32*mib, Options{Type: "ext4", Label: "a-rather-long-ext4-label", UUID: testUUID, SourceDir: tree})
	checkBlkid(t, img, 0, map[string]string{"TYPE": "ext4", "UUID": testUUIDString, "LABEL": "a-rather-long-ex"})
	e2fsck := testutil.RequireTool(t, "e2fsck", "e2fsprogs")
	testutil.Run(t, e2fsck, "-fn", img)

	debugfs := testutil.RequireTool(t, "debugfs", "e2fsprogs")
	out := t.TempDir()
	testutil.Run(t, debugfs, "-R", "rdump / "+out, img)
	compareTree(t, readTree(t, out), treeCheck{owners: true, modes: true, ignore: map[string]bool{"lost+found": true}})

	// The hard link is one inode with two names.
	a := string(testutil.Run(t, debugfs, "-R", "stat /a.txt", img))
	h := string(testutil.Run(t, debugfs, "-R", "stat /dir/hard", img))
	inode := regexp.MustCompile(`Inode: (\d+)`)
	if ia, ih := inode.FindStringSubmatch(a), inode.FindStringSubmatch(h); ia == nil || ih == nil || ia[1] != ih[1] || !strings.Contains(a, "Links: 2") {
		t.Errorf("hard link:\n%s\n%s", a, h)
	}
	if ea := string(testutil.Run(t, debugfs, "-R", "ea_get /a.txt "+xattrName, img)); !strings.Contains(ea, xattrValue) {
		t.Errorf("xattr: %q", ea)
	}
	// systemd's parameters: 256-byte inodes, no reserved blocks, a journal.
	dumpe2fs := testutil.RequireTool(t, "dumpe2fs", "e2fsprogs")
	sb := string(testutil.Run(t, dumpe2fs, "-h", img))
	for _, re := range []string{`(?m)^Inode size:\s+256$`, `(?m)^Reserved block count:\s+0$`, `(?m)^Filesystem features:.*has_journal`} {
		if !regexp.MustCompile(re).MatchString(sb) {
			t.Errorf("superblock lacks %s", re)
		}
	}
}

func TestBtrfs(t *testing.T) {
	tree := makeTree(t)
	img := makeImage(t, 128*mib, Options{Type: "btrfs", Label: "home-btrfs-label-not-cut", UUID: testUUID, SourceDir: tree})
	checkBlkid(t, img, 0, map[string]string{"TYPE": "btrfs", "UUID": testUUIDString, "LABEL": "home-btrfs-label-not-cut"})
	btrfs := testutil.RequireTool(t, "btrfs", "btrfs-progs")
	testutil.Run(t, btrfs, "check", img)
	out := t.TempDir()
	testutil.Run(t, btrfs, "restore", "-m", "-S", "-x", img, out)
	compareTree(t, readTree(t, out), treeCheck{owners: true, modes: true})
	v := make([]byte, 64)
	n, err := syscall.Getxattr(filepath.Join(out, "a.txt"), xattrName, v)
	if err != nil || string(v[:n]) != xattrValue {
		t.Errorf("xattr: %q %v", v[:n], err)
	}
	// `btrfs restore` writes hard links as copies; the tree shows one
	// regular inode with two links.
	dump := string(testutil.Run(t, btrfs, "inspect-internal", "dump-tree", "-t", "fs", img))
	if c := strings.Count(dump, "mode 100644 links 2"); c != 1 {
		t.Errorf("%d inodes with mode 100644 and two links, want 1", c)
	}
}

func TestXFS(t *testing.T) {
	tree := makeTree(t)
	img := makeImage(t, 300*mib, Options{Type: "xfs", Label: "xfs-label-longer", UUID: testUUID, SourceDir: tree})
	checkBlkid(t, img, 0, map[string]string{"TYPE": "xfs", "UUID": testUUIDString, "LABEL": "xfs-label-lo"})
	repair := testutil.RequireTool(t, "xfs_repair", "xfsprogs")
	testutil.Run(t, repair, "-n", img)
	xfsDB := testutil.RequireTool(t, "xfs_db", "xfsprogs")
	field := regexp.MustCompile(`(?m)^(core\.mode|core\.uid|core\.gid|core\.size|u3\.symlink) = (.*)$`)
	hexLine := regexp.MustCompile(`(?m)^[0-9a-f]+:(.*)$`)
	for p, w := range wantTree {
		out := string(testutil.Run(t, xfsDB, "-r", "-c", "path /"+p, "-c", "p core.mode core.uid core.gid core.size", img))
		f := map[string]string{}
		for _, m := range field.FindAllStringSubmatch(out, -1) {
			f[m[1]] = m[2]
		}
		mode, _ := strconv.ParseUint(f["core.mode"], 8, 32)
		types := map[uint64]byte{syscall.S_IFREG: '-', syscall.S_IFDIR: 'd', syscall.S_IFLNK: 'l'}
		if types[mode&syscall.S_IFMT] != w.typ || (w.typ != 'l' && uint32(mode&0o7777) != w.mode) ||
			f["core.uid"] != strconv.Itoa(w.uid) || f["core.gid"] != strconv.Itoa(w.gid) {
			t.Errorf("%s: %v, want %+v", p, f, w)
		}
		switch w.typ {
		case 'l':
			out := string(testutil.Run(t, xfsDB, "-r", "-c", "path /"+p, "-c", "p u3", img))
			if !strings.Contains(out, `u3.symlink = "`+w.data+`"`) {
				t.Errorf("%s: %s", p, out)
			}
		case '-':
			out := string(testutil.Run(t, xfsDB, "-r", "-c", "path /"+p, "-c", "dblock 0", "-c", "type text", "-c", "p", img))
			var data []byte
			for _, m := range hexLine.FindAllStringSubmatch(out, -1) {
				// 16 hex bytes, then their ASCII rendering.
				for _, h := range strings.Fields(m[1])[:16] {
					b, _ := strconv.ParseUint(h, 16, 8)
					data = append(data, byte(b))
				}
			}
			size, _ := strconv.Atoi(f["core.size"])
			if size > len(data) || string(data[:size]) != w.data {
				t.Errorf("%s: content %q (size %d), want %q", p, data, size, w.data)
			}
		}
	}
}

func TestErofs(t *testing.T) {
	tree := makeTree(t)
	img := makeImage(t, 0, Options{Type: "erofs", Label: "usr-erofs-label-too-long", UUID: testUUID, SourceDir: tree})
	checkBlkid(t, img, 0, map[string]string{"TYPE": "erofs", "UUID": testUUIDString, "LABEL": "usr-erofs-label-"})
	fsck := testutil.RequireTool(t, "fsck.erofs", "erofs-utils")
	testutil.Run(t, fsck, img)
	out := filepath.Join(t.TempDir(), "out")
	testutil.Run(t, fsck, "--extract="+out, "--preserve", img)
	compareTree(t, readTree(t, out), treeCheck{owners: true, modes: true})

	dump := testutil.RequireTool(t, "dump.erofs", "erofs-utils")
	a := string(testutil.Run(t, dump, "--path=/a.txt", img))
	h := string(testutil.Run(t, dump, "--path=/dir/hard", img))
	nid := regexp.MustCompile(`NID: (\d+)\s+Links: (\d+)`)
	ma, mh := nid.FindStringSubmatch(a), nid.FindStringSubmatch(h)
	if ma == nil || mh == nil || ma[1] != mh[1] || ma[2] != "2" {
		t.Errorf("hard link:\n%s\n%s", a, h)
	}
	if m := regexp.MustCompile(`Xattr size: (\d+)`).FindStringSubmatch(a); m == nil || m[1] == "0" {
		t.Errorf("no xattr on a.txt:\n%s", a)
	}
}

func TestSquashfs(t *testing.T) {
	tree := makeTree(t)
	img := makeImage(t, 0, Options{Type: "squashfs", Label: "ignored", UUID: testUUID, SourceDir: tree})
	checkBlkid(t, img, 0, map[string]string{"TYPE": "squashfs"})
	unsquashfs := testutil.RequireTool(t, "unsquashfs", "squashfs-tools")
	out := filepath.Join(t.TempDir(), "out")
	testutil.Run(t, unsquashfs, "-n", "-d", out, img)
	compareTree(t, readTree(t, out), treeCheck{owners: true, modes: true})
	a, _ := os.Stat(filepath.Join(out, "a.txt"))
	h, _ := os.Stat(filepath.Join(out, "dir/hard"))
	if a == nil || h == nil || !os.SameFile(a, h) {
		t.Error("hard link not kept")
	}
	v := make([]byte, 64)
	n, err := syscall.Getxattr(filepath.Join(out, "a.txt"), xattrName, v)
	if err != nil || string(v[:n]) != xattrValue {
		t.Errorf("xattr: %q %v", v[:n], err)
	}
}

func TestSwap(t *testing.T) {
	img := makeImage(t, mib, Options{Type: "swap", Label: "swap-label-that-is-long", UUID: testUUID})
	checkBlkid(t, img, 0, map[string]string{"TYPE": "swap", "UUID": testUUIDString, "LABEL": "swap-label-that"})
	swaplabel := testutil.RequireTool(t, "swaplabel", "util-linux")
	out := string(testutil.Run(t, swaplabel, img))
	if want := "LABEL: swap-label-that\nUUID:  " + testUUIDString + "\n"; out != want {
		t.Errorf("swaplabel: %q, want %q", out, want)
	}
	_, err := MakeFile(context.Background(), filepath.Join(t.TempDir(), "x"), mib, Options{Type: "swap", MakeDirectories: []string{"/x"}})
	if err == nil {
		t.Error("populated swap accepted")
	}
}

func TestCopyFilesIntoImage(t *testing.T) {
	// CopyFiles and MakeDirectories go through the staging tree.
	tree := makeTree(t)
	img := makeImage(t, 0, Options{Type: "squashfs",
		CopyFiles:       []CopyFile{{tree, "/usr"}, {filepath.Join(tree, "dir/secret"), "/etc/secret"}},
		MakeDirectories: []string{"/var/lib", "/usr/empty/x"},
		TempDir:         t.TempDir(),
	})
	out := filepath.Join(t.TempDir(), "out")
	testutil.Run(t, testutil.RequireTool(t, "unsquashfs", "squashfs-tools"), "-n", "-d", out, img)
	want := map[string]entry{
		"usr":         {'d', 0o755, 0, 0, ""},
		"etc":         {'d', 0o755, 0, 0, ""},
		"etc/secret":  {'-', 0o600, 0, 0, "secret\n"},
		"var":         {'d', 0o755, 0, 0, ""},
		"var/lib":     {'d', 0o755, 0, 0, ""},
		"usr/empty/x": {'d', 0o755, 0, 0, ""},
	}
	for p, e := range wantTree {
		want["usr/"+p] = e
	}
	compareTree(t, readTree(t, out), treeCheck{owners: true, modes: true, want: want})
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("root: %v %v", fi.Mode(), err)
	}
}

// TestReproducible builds each read-only type twice from two separately
// made, equal trees, through staging, with SOURCE_DATE_EPOCH before every
// timestamp: the images must be identical, and differ for another epoch.
func TestReproducible(t *testing.T) {
	epoch := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	other := epoch.Add(time.Hour)
	for _, typ := range []string{"erofs", "squashfs"} {
		t.Run(typ, func(t *testing.T) {
			build := func(at time.Time) []byte {
				tree := makeTree(t)
				// Real, differing times that the epoch clamps.
				setTreeTimes(t, tree, time.Now())
				img := makeImage(t, 0, Options{Type: typ, Label: "usr", UUID: testUUID, SourceDateEpoch: &at,
					CopyFiles: []CopyFile{{tree, "/"}}, MakeDirectories: []string{"/var"}, TempDir: t.TempDir()})
				b, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			a := build(epoch)
			time.Sleep(1100 * time.Millisecond)
			b := build(epoch)
			if !bytes.Equal(a, b) {
				t.Fatalf("two builds differ (%d and %d bytes)", len(a), len(b))
			}
			if bytes.Equal(a, build(other)) {
				t.Fatal("the epoch made no difference")
			}
		})
	}
}

// TestReproducibleSameTree: ext4 and vfat are reproducible only when built
// from the very same, unchanged tree: mke2fs copies each file's atime and
// ctime. The tree's atimes are set after its mtimes and ctimes, so that
// reading it (relatime) does not change them.
func TestReproducibleSameTree(t *testing.T) {
	epoch := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		typ  string
		size int64
	}{{"ext4", 32 * mib}, {"vfat", 64 * mib}} {
		t.Run(c.typ, func(t *testing.T) {
			tree := makeStableTree(t)
			var imgs [2][]byte
			for i := range imgs {
				if i == 1 {
					time.Sleep(1100 * time.Millisecond)
				}
				img := makeImage(t, c.size, Options{Type: c.typ, Label: "x", UUID: testUUID, SourceDir: tree, SourceDateEpoch: &epoch})
				b, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				imgs[i] = b
			}
			if !bytes.Equal(imgs[0], imgs[1]) {
				t.Fatal("two builds differ")
			}
			// The epoch must not override the UUID (for vfat, the volume
			// ID) the caller asked for.
			path := testutil.WriteFile(t, "img", imgs[0])
			if got, want := blkidExport(t, path, 0)["UUID"], wantBlkidUUID(c.typ); !strings.EqualFold(got, want) {
				t.Errorf("UUID %s, want %s", got, want)
			}
		})
	}
}

// wantBlkidUUID is how blkid prints testUUID for a file system type.
func wantBlkidUUID(typ string) string {
	if typ == "vfat" {
		id := fatVolumeID(testUUID)
		return id[:4] + "-" + id[4:]
	}
	return uuidString(testUUID)
}

// makeStableTree is makeTree with atimes after the mtimes and ctimes,
// which reading the files does not change (relatime).
func makeStableTree(t *testing.T) string {
	tree := makeTree(t)
	at := syscall.NsecToTimespec(time.Now().Add(time.Hour).UnixNano())
	mt := syscall.NsecToTimespec(treeTime.UnixNano())
	err := filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return setTimes(p, &syscall.Stat_t{Atim: at, Mtim: mt}, fi.Mode()&os.ModeSymlink != 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// pattern fills a buffer with bytes no file system writes by chance.
func pattern(n int64, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// writerAtOnly hides *os.File, so Make cannot punch and writes zeros.
type writerAtOnly struct{ f *os.File }

func (w writerAtOnly) WriteAt(b []byte, off int64) (int, error) { return w.f.WriteAt(b, off) }

func TestMakeIntoRange(t *testing.T) {
	tree := makeStableTree(t)
	epoch := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	const off, size, tail = 3 * mib, 32 * mib, 2 * mib
	opts := Options{Type: "ext4", Label: "part", UUID: testUUID, SourceDir: tree, SourceDateEpoch: &epoch}
	ref, err := os.ReadFile(makeImage(t, size, opts))
	if err != nil {
		t.Fatal(err)
	}
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "disk.img")
			orig := pattern(off+size+tail, 0xA5)
			if err := os.WriteFile(disk, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(disk, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var dst interface {
				WriteAt([]byte, int64) (int, error)
			} = f
			if !direct {
				dst = writerAtOnly{f}
			}
			if err := Make(context.Background(), dst, off, size, opts); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(disk)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(orig) {
				t.Fatalf("disk grew to %d bytes", len(got))
			}
			if !bytes.Equal(got[:off], orig[:off]) || !bytes.Equal(got[off+size:], orig[off+size:]) {
				t.Fatal("bytes outside the range changed")
			}
			if !bytes.Equal(got[off:off+size], ref) {
				t.Fatal("the range differs from the same file system made in a file")
			}
			checkBlkid(t, disk, off, map[string]string{"TYPE": "ext4", "UUID": testUUIDString, "LABEL": "part"})
		})
	}
}

func TestMakeReadOnlyIntoRange(t *testing.T) {
	tree := makeTree(t)
	const off, size = mib, 4 * mib
	disk := filepath.Join(t.TempDir(), "disk.img")
	orig := pattern(off+size, 0x3C)
	if err := os.WriteFile(disk, orig[:off+size/2], 0o644); err != nil { // shorter than the range: Make extends it
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	testutil.RequireTool(t, "mkfs.erofs", "erofs-utils")
	epoch := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{Type: "erofs", Label: "ro", UUID: testUUID, SourceDir: tree, SourceDateEpoch: &epoch}
	if err := Make(context.Background(), f, off, size, opts); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != off+size || !bytes.Equal(got[:off], orig[:off]) {
		t.Fatalf("length %d or prefix changed", len(got))
	}
	img := makeImage(t, 0, opts)
	ref, _ := os.ReadFile(img)
	if !bytes.Equal(got[off:off+int64(len(ref))], ref) {
		t.Fatal("range does not start with the image")
	}
	if !bytes.Equal(got[off+int64(len(ref)):], make([]byte, size-int64(len(ref)))) {
		t.Fatal("range not zero after the image")
	}
	checkBlkid(t, disk, off, map[string]string{"TYPE": "erofs", "UUID": testUUIDString, "LABEL": "ro"})

	// A range too small for the image is refused before anything is written.
	if err := Make(context.Background(), f, off, 512, opts); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("err = %v", err)
	}
}

func TestMakeFileMinimalAndPadded(t *testing.T) {
	tree := makeTree(t)
	opts := Options{Type: "squashfs", SourceDir: tree}
	img := makeImage(t, 0, opts)
	fi, _ := os.Stat(img)
	padded := makeImage(t, 1*mib, opts)
	pfi, _ := os.Stat(padded)
	if fi.Size()%4096 != 0 || pfi.Size() != mib {
		t.Fatalf("sizes %d %d", fi.Size(), pfi.Size())
	}
	_, err := MakeFile(context.Background(), filepath.Join(t.TempDir(), "small"), 512, opts)
	if err == nil {
		t.Fatal("too small accepted")
	}
}

func TestValidate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, c := range []struct {
		size int64
		opts Options
		want string
	}{
		{mib, Options{Type: "ntfs"}, "unsupported"},
		{0, Options{Type: "ext4"}, "size is required"},
		{mib + 1, Options{Type: "ext4"}, "multiple of 512"},
		{mib, Options{Type: "ext4", SectorSize: 1000}, "sector size"},
		{mib, Options{Type: "swap", SourceDir: dir}, "cannot be populated"},
		{mib, Options{Type: "ext4", CopyFiles: []CopyFile{{dir, "relative"}}}, "not absolute"},
		{mib, Options{Type: "ext4", MakeDirectories: []string{"rel"}}, "not absolute"},
		{mib, Options{Type: "ext4", Label: "\xff"}, "UTF-8"},
	} {
		_, err := MakeFile(ctx, filepath.Join(dir, "img"), c.size, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.opts, err, c.want)
		}
		if _, serr := os.Stat(filepath.Join(dir, "img")); serr == nil {
			t.Errorf("%+v: image left behind", c.opts)
		}
	}
	if err := Make(ctx, writerAtOnly{}, -1, mib, Options{Type: "ext4"}); err == nil {
		t.Error("negative offset accepted")
	}
}

func TestMkfsFailureNamesTool(t *testing.T) {
	testutil.RequireTool(t, "mkfs.xfs", "xfsprogs")
	// 16 MiB is below mkfs.xfs's minimum.
	_, err := MakeFile(context.Background(), filepath.Join(t.TempDir(), "img"), 16*mib, Options{Type: "xfs"})
	if err == nil || !strings.HasPrefix(err.Error(), "fsimage: mkfs.xfs ") || !strings.Contains(err.Error(), "exit status") {
		t.Fatalf("err = %v", err)
	}
}

func TestTypesAndTools(t *testing.T) {
	if got := strings.Join(Types(), " "); got != "btrfs erofs ext2 ext3 ext4 squashfs swap vfat xfs" {
		t.Fatalf("Types() = %s", got)
	}
	tools, err := Tools("vfat")
	if err != nil || len(tools) != 2 || tools[0] != (Tool{"mkfs.vfat", "dosfstools"}) || tools[1] != (Tool{"mcopy", "mtools"}) {
		t.Fatalf("Tools(vfat) = %v, %v", tools, err)
	}
	if _, err := Tools("zfs"); err == nil {
		t.Fatal("zfs has tools")
	}
	if !ReadOnly("erofs") || !ReadOnly("squashfs") || ReadOnly("ext4") {
		t.Fatal("ReadOnly")
	}
}

// BenchmarkMakeExt4IntoRange measures a 1 GiB ext4 written into a range of
// a larger disk file: mkfs into a sparse temporary file, then the sparse
// copy into place.
func BenchmarkMakeExt4IntoRange(b *testing.B) {
	testutil.RequireTool(b, "mkfs.ext4", "e2fsprogs")
	disk := filepath.Join(b.TempDir(), "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const size = 1 << 30
	for i := 0; i < b.N; i++ {
		if err := Make(context.Background(), f, mib, size, Options{Type: "ext4", Label: "bench", UUID: testUUID, TempDir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(size)
}
