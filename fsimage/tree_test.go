package fsimage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tree every file-system test builds from: files, nested directories,
// a symlink, a private file owned by uid 1000, an empty directory, a hard
// link, and an extended attribute.
var (
	treeTime = time.Date(2023, 6, 1, 12, 0, 0, 0, time.UTC)
	testUUID = [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0x4c, 0xde, 0x8f, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd}
)

const (
	testUUIDString = "01234567-89ab-4cde-8f01-23456789abcd"
	xattrName      = "user.imago"
	xattrValue     = "test-value"
)

// entry is what a test knows about one file in a tree.
type entry struct {
	typ  byte // '-' regular, 'd' directory, 'l' symlink, 'c' char device, 'p' fifo
	mode uint32
	uid  int
	gid  int
	data string // content, or symlink target
}

// wantTree is the content of makeTree, by path.
var wantTree = map[string]entry{
	"a.txt":      {'-', 0o644, 0, 0, "hello\n"},
	"dir":        {'d', 0o755, 0, 0, ""},
	"dir/secret": {'-', 0o600, 1000, 1000, "secret\n"},
	"dir/link":   {'l', 0o777, 0, 0, "../a.txt"},
	"dir/hard":   {'-', 0o644, 0, 0, "hello\n"},
	"dir/sub":    {'d', 0o750, 0, 0, ""},
	"dir/sub/n":  {'-', 0o755, 0, 0, "nested\n"},
	"empty":      {'d', 0o700, 0, 0, ""},
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by other users")
	}
}

// makeTree builds the test tree under a new directory and returns it.
// Every timestamp is treeTime.
func makeTree(t *testing.T) string {
	t.Helper()
	return makeTreeIn(t, filepath.Join(t.TempDir(), "tree"))
}

// makeTreeIn builds the test tree as the new directory dir.
func makeTreeIn(t *testing.T, dir string) string {
	t.Helper()
	requireRoot(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "dir/sub"), 0o755))
	must(os.Mkdir(filepath.Join(dir, "empty"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "dir/secret"), []byte("secret\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "dir/sub/n"), []byte("nested\n"), 0o755))
	must(os.Symlink("../a.txt", filepath.Join(dir, "dir/link")))
	must(os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "dir/hard")))
	must(os.Chown(filepath.Join(dir, "dir/secret"), 1000, 1000))
	for p, e := range wantTree {
		if e.typ != 'l' {
			must(os.Chmod(filepath.Join(dir, p), os.FileMode(e.mode)))
		}
	}
	must(os.Chmod(dir, 0o755))
	must(syscall.Setxattr(filepath.Join(dir, "a.txt"), xattrName, []byte(xattrValue), 0))
	setTreeTimes(t, dir, treeTime)
	return dir
}

// setTreeTimes sets atime and mtime of everything under dir, symlinks
// included, to tm.
func setTreeTimes(t *testing.T, dir string, tm time.Time) {
	t.Helper()
	ts := syscall.NsecToTimespec(tm.UnixNano())
	st := &syscall.Stat_t{Atim: ts, Mtim: ts}
	var paths []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deepest first, so that setting a child does not touch its parent's
	// times afterwards.
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := setTimes(p, st, fi.Mode()&os.ModeSymlink != 0); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree describes every file under dir (not dir itself).
func readTree(t *testing.T, dir string) map[string]entry {
	t.Helper()
	got := map[string]entry{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: st.Mode & 0o7777, uid: int(st.Uid), gid: int(st.Gid)}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			e.typ = '-'
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.data = string(b)
		case syscall.S_IFDIR:
			e.typ = 'd'
		case syscall.S_IFLNK:
			e.typ = 'l'
			e.data, err = os.Readlink(p)
			if err != nil {
				return err
			}
		case syscall.S_IFCHR:
			e.typ = 'c'
		case syscall.S_IFIFO:
			e.typ = 'p'
		default:
			e.typ = '?'
		}
		got[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// treeCheck says which properties an extracted tree is compared on.
type treeCheck struct {
	owners  bool             // uid and gid
	modes   bool             // permission bits
	ignore  map[string]bool  // paths present only in the image (lost+found)
	replace map[string]entry // entries expected to differ from wantTree
	want    map[string]entry // defaults to wantTree
}

// compareTree checks an extracted tree against the expectation.
func compareTree(t *testing.T, got map[string]entry, c treeCheck) {
	t.Helper()
	want := c.want
	if want == nil {
		want = map[string]entry{}
		for k, v := range wantTree {
			want[k] = v
		}
	}
	for k, v := range c.replace {
		want[k] = v
	}
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		if g.typ != w.typ || g.data != w.data {
			t.Errorf("%s: got %c %q, want %c %q", p, g.typ, g.data, w.typ, w.data)
		}
		if c.modes && w.typ != 'l' && g.mode != w.mode {
			t.Errorf("%s: mode %#o, want %#o", p, g.mode, w.mode)
		}
		if c.owners && (g.uid != w.uid || g.gid != w.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, g.uid, g.gid, w.uid, w.gid)
		}
	}
	for p := range got {
		top := strings.SplitN(p, "/", 2)[0]
		if _, ok := want[p]; !ok && !c.ignore[top] {
			t.Errorf("%s: unexpected", p)
		}
	}
}

// parseExport parses `blkid -o export` output.
func parseExport(out []byte) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestReadTreeMatchesWant(t *testing.T) {
	dir := makeTree(t)
	compareTree(t, readTree(t, dir), treeCheck{owners: true, modes: true})
	a, _ := os.Stat(filepath.Join(dir, "a.txt"))
	h, _ := os.Stat(filepath.Join(dir, "dir/hard"))
	if !os.SameFile(a, h) {
		t.Fatal("hard link not made")
	}
	v := make([]byte, 64)
	n, err := syscall.Getxattr(filepath.Join(dir, "a.txt"), xattrName, v)
	if err != nil || !bytes.Equal(v[:n], []byte(xattrValue)) {
		t.Fatalf("xattr: %v", err)
	}
	if errors.Is(err, syscall.ENOTSUP) {
		t.Skip("no user xattrs here")
	}
}
