package content

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

const mib = 1 << 20

// fsEntry is one file of a file system as an offline tool shows it.
type fsEntry struct {
	Type     byte // '-', 'd', 'l'
	Mode     uint32
	UID, GID int
	Data     string // file content or symlink target
}

// makeTree creates the test tree under dir: files with several modes and
// owners, nested and empty directories, a symlink.
func makeTree(t *testing.T, dir string) map[string]fsEntry {
	t.Helper()
	want := map[string]fsEntry{
		"a.txt":       {'-', 0o644, 0, 0, "hello\n"},
		"exec.sh":     {'-', 0o755, 0, 0, "#!/bin/sh\necho hi\n"},
		"private.txt": {'-', 0o600, 1000, 1000, "secret\n"},
		"link":        {'l', 0o777, 0, 0, "a.txt"},
		"sub":         {'d', 0o755, 0, 0, ""},
		"sub/b.txt":   {'-', 0o644, 0, 0, strings.Repeat("nested ", 100)},
		"empty":       {'d', 0o700, 0, 0, ""},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"sub", "empty"} {
		if err := os.Mkdir(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, e := range want {
		full := filepath.Join(dir, p)
		switch e.Type {
		case '-':
			if err := os.WriteFile(full, []byte(e.Data), 0o644); err != nil {
				t.Fatal(err)
			}
		case 'l':
			if err := os.Symlink(e.Data, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Chmod(full, os.FileMode(e.Mode)); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(full, e.UID, e.GID); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// walkTree reads a directory tree extracted by an offline tool.
func walkTree(t *testing.T, dir string) map[string]fsEntry {
	t.Helper()
	out := map[string]fsEntry{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || rel == "lost+found" {
			if fi.IsDir() && rel == "lost+found" {
				return filepath.SkipDir
			}
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := fsEntry{Mode: uint32(fi.Mode().Perm()), UID: int(st.Uid), GID: int(st.Gid)}
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
			e.Data, err = os.Readlink(p)
			if err != nil {
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

// listFS extracts the files of the file system image img with the file
// system's own offline tools.
func listFS(t *testing.T, fsType, img string) map[string]fsEntry {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	switch fsType {
	case "ext4":
		debugfs := testutil.RequireTool(t, "debugfs", "e2fsprogs")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		testutil.Run(t, debugfs, "-R", "rdump / "+out, img)
	case "btrfs":
		btrfs := testutil.RequireTool(t, "btrfs", "btrfs-progs")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		testutil.Run(t, btrfs, "restore", "-m", "-S", img, out)
	case "squashfs":
		unsquashfs := testutil.RequireTool(t, "unsquashfs", "squashfs-tools")
		testutil.Run(t, unsquashfs, "-no-progress", "-d", out, img)
	case "vfat":
		mcopy := testutil.RequireTool(t, "mcopy", "mtools")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		if mdir, err := testutil.RunErr("mdir", "-b", "-i", img, "::"); err == nil && len(bytes.TrimSpace(mdir)) > 0 {
			testutil.Run(t, "env", "MTOOLS_SKIP_CHECK=1", mcopy, "-s", "-n", "-i", img, "::*", out)
		}
		tree := walkTree(t, out)
		for p, e := range tree {
			// FAT keeps neither owners nor modes.
			tree[p] = fsEntry{Type: e.Type, Data: e.Data}
		}
		return tree
	case "xfs":
		return listXFS(t, img)
	default:
		t.Fatalf("no lister for %s", fsType)
	}
	return walkTree(t, out)
}

var (
	xfsField   = regexp.MustCompile(`(?m)^(core\.mode|core\.uid|core\.gid|core\.size) = (.*)$`)
	xfsHexLine = regexp.MustCompile(`(?m)^[0-9a-f]+:(.*)$`)
	xfsSymlink = regexp.MustCompile(`(?m)^u3\.symlink = "(.*)"$`)
)

// listXFS walks an xfs image with xfs_db, which has no extract command.
// File contents are read from their first block, enough for the test tree.
func listXFS(t *testing.T, img string) map[string]fsEntry {
	t.Helper()
	xfsDB := testutil.RequireTool(t, "xfs_db", "xfsprogs")
	out := map[string]fsEntry{}
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
			e := fsEntry{Mode: uint32(mode & 0o7777), UID: uid, GID: gid}
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

// compareTrees reports every path whose entry differs.
func compareTrees(t *testing.T, what string, got, want map[string]fsEntry) {
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

// blkidExport probes offset of img with blkid in low-level mode.
func blkidExport(t *testing.T, img string, offset int64) map[string]string {
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

// readRange returns size bytes of path at off.
func readRange(t *testing.T, path string, off, size int64) []byte {
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

// extract copies size bytes of src at off into a new sparse file, for the
// offline tools that read whole images.
func extract(t *testing.T, src string, off, size int64) string {
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
	buf := make([]byte, mib)
	for pos := off; pos < off+size; {
		start, err := in.Seek(pos, seekData)
		if err != nil || start >= off+size {
			break
		}
		end, err := in.Seek(start, seekHole)
		if err != nil || end > off+size {
			end = off + size
		}
		for p := start; p < end; {
			n := min(end-p, int64(len(buf)))
			if _, err := in.ReadAt(buf[:n], p); err != nil {
				t.Fatal(err)
			}
			if _, err := out.WriteAt(buf[:n], p-off); err != nil {
				t.Fatal(err)
			}
			p += n
		}
		pos = end
	}
	return p
}

// pattern returns n bytes that differ from their neighbours and from any
// file system structure.
func pattern(n int64, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}
