// Package fscheck holds test helpers that look into partitions of disk
// images with the real offline tools (blkid, debugfs, btrfs restore,
// xfs_db, unsquashfs, mtools, veritysetup, openssl), so that the repart
// tests can compare what imago wrote with what systemd-repart wrote.
//
// It is for tests only: every helper fails the test on error.
package fscheck

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imago-os/imago/format/veritysig"
	"github.com/imago-os/imago/internal/testutil"
)

// Entry is one file of a file system as an offline tool shows it.
type Entry struct {
	Type     byte // '-', 'd', 'l', '?'
	Mode     uint32
	UID, GID int
	Data     string // file content or symlink target
}

// WalkTree reads a directory tree (a source tree, or one extracted by an
// offline tool). lost+found is left out.
func WalkTree(t testing.TB, dir string) map[string]Entry {
	t.Helper()
	out := map[string]Entry{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if rel == "lost+found" && fi.IsDir() {
			return filepath.SkipDir
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := Entry{Mode: uint32(fi.Mode().Perm()), UID: int(st.Uid), GID: int(st.Gid)}
		if fi.Mode()&os.ModeSetuid != 0 {
			e.Mode |= 0o4000
		}
		switch {
		case fi.Mode().IsRegular():
			e.Type = '-'
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Data = string(b)
		case fi.IsDir():
			e.Type = 'd'
		case fi.Mode()&os.ModeSymlink != 0:
			e.Type = 'l'
			if e.Data, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			e.Type = '?'
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TypesAndData drops owners and modes, which FAT does not keep.
func TypesAndData(tree map[string]Entry) map[string]Entry {
	out := make(map[string]Entry, len(tree))
	for p, e := range tree {
		out[p] = Entry{Type: e.Type, Data: e.Data}
	}
	return out
}

// List extracts the files of the file-system image img (a file holding
// just the file system) with the file system's own offline tools. For
// vfat only types and contents are kept.
func List(t testing.TB, fsType, img string) map[string]Entry {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	switch fsType {
	case "ext4":
		debugfs := testutil.RequireTool(t, "debugfs", "e2fsprogs")
		mkdir(t, out)
		testutil.Run(t, debugfs, "-R", "rdump / "+out, img)
	case "btrfs":
		btrfs := testutil.RequireTool(t, "btrfs", "btrfs-progs")
		mkdir(t, out)
		testutil.Run(t, btrfs, "restore", "-m", "-S", img, out)
	case "squashfs":
		unsquashfs := testutil.RequireTool(t, "unsquashfs", "squashfs-tools")
		testutil.Run(t, unsquashfs, "-no-progress", "-d", out, img)
	case "vfat":
		mcopy := testutil.RequireTool(t, "mcopy", "mtools")
		mkdir(t, out)
		if mdir, err := testutil.RunErr("mdir", "-b", "-i", img, "::"); err == nil && len(bytes.TrimSpace(mdir)) > 0 {
			testutil.Run(t, "env", "MTOOLS_SKIP_CHECK=1", mcopy, "-s", "-n", "-i", img, "::*", out)
		}
		return TypesAndData(WalkTree(t, out))
	case "xfs":
		return listXFS(t, img)
	default:
		t.Fatalf("fscheck: no lister for %s", fsType)
	}
	return WalkTree(t, out)
}

func mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

var (
	xfsField   = regexp.MustCompile(`(?m)^(core\.mode|core\.uid|core\.gid|core\.size) = (.*)$`)
	xfsHexLine = regexp.MustCompile(`(?m)^[0-9a-f]+:(.*)$`)
	xfsSymlink = regexp.MustCompile(`(?m)^u3\.symlink = "(.*)"$`)
)

// listXFS walks an xfs image with xfs_db, which has no extract command.
// File contents are read from their first block, enough for small files.
func listXFS(t testing.TB, img string) map[string]Entry {
	t.Helper()
	xfsDB := testutil.RequireTool(t, "xfs_db", "xfsprogs")
	out := map[string]Entry{}
	var walk func(dir string)
	walk = func(dir string) {
		ls := string(testutil.Run(t, xfsDB, "-r", "-c", "path "+dir, "-c", "ls", img))
		for _, line := range strings.Split(ls, "\n") {
			f := strings.Fields(line)
			if len(f) < 7 || f[5] == "." || f[5] == ".." {
				continue
			}
			ino, name := f[1], f[5]
			rel := strings.TrimPrefix(dir+"/"+name, "/")
			if dir == "/" {
				rel = name
			}
			core := string(testutil.Run(t, xfsDB, "-r", "-c", "inode "+ino, "-c", "p core.mode core.uid core.gid core.size", img))
			fields := map[string]string{}
			for _, m := range xfsField.FindAllStringSubmatch(core, -1) {
				fields[m[1]] = m[2]
			}
			mode, _ := strconv.ParseUint(fields["core.mode"], 8, 32)
			uid, _ := strconv.Atoi(fields["core.uid"])
			gid, _ := strconv.Atoi(fields["core.gid"])
			e := Entry{Mode: uint32(mode & 0o7777), UID: uid, GID: gid}
			switch mode & syscall.S_IFMT {
			case syscall.S_IFDIR:
				e.Type = 'd'
				out[rel] = e
				walk("/" + rel)
				continue
			case syscall.S_IFLNK:
				e.Type = 'l'
				sl := string(testutil.Run(t, xfsDB, "-r", "-c", "inode "+ino, "-c", "p u3", img))
				if m := xfsSymlink.FindStringSubmatch(sl); m != nil {
					e.Data = m[1]
				}
			case syscall.S_IFREG:
				e.Type = '-'
				size, _ := strconv.Atoi(fields["core.size"])
				if size > 0 {
					dump := string(testutil.Run(t, xfsDB, "-r", "-c", "inode "+ino, "-c", "dblock 0", "-c", "type text", "-c", "p", img))
					var data []byte
					for _, m := range xfsHexLine.FindAllStringSubmatch(dump, -1) {
						for _, h := range strings.Fields(m[1])[:16] {
							b, _ := strconv.ParseUint(h, 16, 8)
							data = append(data, byte(b))
						}
					}
					if size <= len(data) {
						e.Data = string(data[:size])
					} else {
						e.Data = "(more than one block)"
					}
				}
			default:
				e.Type = '?'
			}
			out[rel] = e
		}
	}
	walk("/")
	return out
}

// CompareTrees reports every path whose entry differs between got and
// want, and every path only one of them has.
func CompareTrees(t testing.TB, what string, got, want map[string]Entry) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: %s missing", what, p)
			continue
		}
		if g != w {
			t.Errorf("%s: %s is %c %o %d:%d %.40q, want %c %o %d:%d %.40q", what, p, g.Type, g.Mode, g.UID, g.GID, g.Data, w.Type, w.Mode, w.UID, w.GID, w.Data)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
}

// Blkid probes offset of img with blkid in low-level mode and returns its
// export output as a map (without DEVNAME).
func Blkid(t testing.TB, img string, offset int64) map[string]string {
	t.Helper()
	blkid := testutil.RequireTool(t, "blkid", "util-linux")
	out, _ := testutil.RunErr(blkid, "-p", "-o", "export", "-O", strconv.FormatInt(offset, 10), img)
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "DEVNAME" {
			m[k] = v
		}
	}
	return m
}

// ReadRange returns size bytes of path at off.
func ReadRange(t testing.TB, path string, off, size int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

const seekData, seekHole = 3, 4

// Extract copies size bytes of src at off into a new sparse file, for the
// offline tools that read whole images, and returns its path.
func Extract(t testing.TB, src string, off, size int64) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), "part.img")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for pos := off; pos < off+size; {
		start, err := in.Seek(pos, seekData)
		if err != nil || start >= off+size {
			break
		}
		end, err := in.Seek(start, seekHole)
		if err != nil || end > off+size {
			end = off + size
		}
		for q := start; q < end; {
			n := min(end-q, int64(len(buf)))
			if _, err := in.ReadAt(buf[:n], q); err != nil {
				t.Fatal(err)
			}
			if _, err := out.WriteAt(buf[:n], q-off); err != nil {
				t.Fatal(err)
			}
			q += n
		}
		pos = end
	}
	return p
}

// FirstDiff returns the first index where a and b differ, -1 if equal.
func FirstDiff(a, b []byte) int {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	if len(b) > len(a) {
		return len(a)
	}
	return -1
}

// CompareVFAT requires two FAT file systems to be equal except inside the
// volume-label directory entry, whose times come from the clock.
func CompareVFAT(t testing.TB, what string, got, want []byte) {
	t.Helper()
	for i := 0; i < len(got); {
		j := FirstDiff(got[i:], want[i:])
		if j < 0 {
			return
		}
		d := i + j
		entry := d / 32 * 32
		if entry+32 > len(got) || entry+32 > len(want) || got[entry+11] != 0x08 || !bytes.Equal(got[entry:entry+11], want[entry:entry+11]) {
			t.Fatalf("%s: byte %#x differs (%#x, want %#x), not in a volume label entry", what, d, got[d], want[d])
		}
		i = entry + 32
	}
}

// VerifyVerity has veritysetup verify the data and hash partitions of img
// (offsets and sizes in bytes) against root, and refuse a wrong root hash.
func VerifyVerity(t testing.TB, img string, dataOff, dataSize, hashOff, hashSize int64, root []byte) {
	t.Helper()
	vs := testutil.RequireTool(t, "veritysetup", "cryptsetup-bin")
	d, h := Extract(t, img, dataOff, dataSize), Extract(t, img, hashOff, hashSize)
	testutil.Run(t, vs, "verify", d, h, hex.EncodeToString(root))
	bad := append([]byte(nil), root...)
	bad[0] ^= 1
	if _, err := testutil.RunErr(vs, "verify", d, h, hex.EncodeToString(bad)); err == nil {
		t.Error("veritysetup accepted a wrong root hash")
	}
}

// VerifySignature checks a verity signature partition with openssl: its
// PKCS#7 signature must be by the certificate in certPath over the hex
// root hash the partition names, which is returned.
func VerifySignature(t testing.TB, partition []byte, certPath string) []byte {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	sig, err := veritysig.Parse(partition)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sigPath, contentPath := filepath.Join(dir, "sig.der"), filepath.Join(dir, "roothash.txt")
	if err := os.WriteFile(sigPath, sig.PKCS7, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(contentPath, []byte(hex.EncodeToString(sig.RootHash)), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, openssl, "smime", "-verify", "-binary", "-inform", "DER", "-in", sigPath, "-content", contentPath,
		"-out", os.DevNull, "-noverify", "-nointern", "-certfile", certPath)
	return sig.RootHash
}
