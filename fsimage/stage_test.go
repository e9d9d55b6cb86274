package fsimage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPrepareTreeSingleSourceUsedDirectly(t *testing.T) {
	dir := makeTree(t)
	for _, opts := range []Options{
		{Type: "erofs", SourceDir: dir},
		{Type: "erofs", CopyFiles: []CopyFile{{dir, "/"}}},
		{Type: "erofs", CopyFiles: []CopyFile{{dir, "//."}}},
	} {
		root, cleanup, err := prepareTree(opts)
		if err != nil {
			t.Fatal(err)
		}
		cleanup()
		if root != dir {
			t.Fatalf("%+v: root %q, want the source %q", opts, root, dir)
		}
	}
	if _, _, err := prepareTree(Options{SourceDir: filepath.Join(dir, "a.txt")}); err == nil {
		t.Fatal("a file as the whole tree was accepted")
	}
}

func TestPrepareTreeStagingCopiesEverything(t *testing.T) {
	dir := makeTree(t)
	// A FIFO and a device node travel too.
	if err := syscall.Mkfifo(filepath.Join(dir, "dir/fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(dir, "dir/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "dir/null"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "dir/fifo"), 5, 6); err != nil {
		t.Fatal(err)
	}
	setTreeTimes(t, dir, treeTime)

	root, cleanup, err := prepareTree(Options{SourceDir: dir, MakeDirectories: []string{"/var/tmp", "/dir/sub/more"}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if root == dir {
		t.Fatal("MakeDirectories must not touch the source")
	}
	got := readTree(t, root)
	want := map[string]entry{}
	for k, v := range wantTree {
		want[k] = v
	}
	want["dir/fifo"] = entry{'p', 0o640, 5, 6, ""}
	want["dir/null"] = entry{'c', 0o666, 0, 0, ""}
	want["var"] = entry{'d', 0o755, 0, 0, ""}
	want["var/tmp"] = entry{'d', 0o755, 0, 0, ""}
	want["dir/sub/more"] = entry{'d', 0o755, 0, 0, ""}
	compareTree(t, got, treeCheck{owners: true, modes: true, want: want})

	// Hard links, times, xattrs and the device number survive.
	a, _ := os.Stat(filepath.Join(root, "a.txt"))
	h, _ := os.Stat(filepath.Join(root, "dir/hard"))
	if !os.SameFile(a, h) {
		t.Error("hard link became a copy")
	}
	// (dir/sub got a new directory, and with it a new mtime.)
	for _, p := range []string{"a.txt", "dir", "dir/link", "dir/sub/n", "dir/secret", "empty"} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(treeTime) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), treeTime)
		}
	}
	v := make([]byte, 64)
	n, err := syscall.Getxattr(filepath.Join(root, "a.txt"), xattrName, v)
	if err != nil || string(v[:n]) != xattrValue {
		t.Errorf("xattr: %q %v", v[:n], err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(root, "dir/null"), &st); err != nil || st.Rdev != 1<<8|3 {
		t.Errorf("device: %#x %v", st.Rdev, err)
	}
	if fi, _ := os.Stat(root); fi.Mode().Perm() != 0o755 {
		t.Errorf("root mode %v", fi.Mode())
	}
}

func TestCopyFilesSemantics(t *testing.T) {
	requireRoot(t)
	src := t.TempDir()
	mk := func(p, data string, mode os.FileMode, uid int) string {
		t.Helper()
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(full, uid, uid); err != nil {
			t.Fatal(err)
		}
		return full
	}
	// A base tree whose /lib is a symlink into /usr/lib, as in a merged-usr
	// system.
	base := filepath.Join(src, "base")
	mk("base/usr/lib/os-release", "ID=test\n", 0o644, 0)
	mk("base/etc/keep", "old\n", 0o644, 0)
	if err := os.Symlink("usr/lib", filepath.Join(base, "lib")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(base, "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	single := mk("single", "one file\n", 0o640, 1000)
	overlay := filepath.Join(src, "overlay")
	mk("overlay/keep", "new\n", 0o600, 7)
	mk("overlay/added", "added\n", 0o644, 8)
	if err := os.Chmod(overlay, 0o711); err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(src, "module")
	mk("module/m.ko", "module\n", 0o644, 0)
	if err := os.Chmod(mod, 0o750); err != nil {
		t.Fatal(err)
	}

	root, cleanup, err := prepareTree(Options{
		SourceDir: base,
		CopyFiles: []CopyFile{
			{single, "/srv/deep/file"},  // parents created 0755
			{overlay, "/etc"},           // merged: etc keeps 0700, keep replaced
			{mod, "/lib/modules/extra"}, // through the /lib symlink, created as a copy of mod
			{filepath.Join(src, "single"), "/lib/single"},
		},
		MakeDirectories: []string{"/lib/firmware", "/etc"},
		TempDir:         t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	got := readTree(t, root)
	want := map[string]entry{
		"usr":                        {'d', 0o755, 0, 0, ""},
		"usr/lib":                    {'d', 0o755, 0, 0, ""},
		"usr/lib/os-release":         {'-', 0o644, 0, 0, "ID=test\n"},
		"usr/lib/modules":            {'d', 0o755, 0, 0, ""},
		"usr/lib/modules/extra":      {'d', 0o750, 0, 0, ""},
		"usr/lib/modules/extra/m.ko": {'-', 0o644, 0, 0, "module\n"},
		"usr/lib/single":             {'-', 0o640, 0, 0, "one file\n"},
		"usr/lib/firmware":           {'d', 0o755, 0, 0, ""},
		"lib":                        {'l', 0, 0, 0, "usr/lib"},
		"etc":                        {'d', 0o700, 0, 0, ""},
		"etc/keep":                   {'-', 0o600, 7, 7, "new\n"},
		"etc/added":                  {'-', 0o644, 8, 8, "added\n"},
		"srv":                        {'d', 0o755, 0, 0, ""},
		"srv/deep":                   {'d', 0o755, 0, 0, ""},
		"srv/deep/file":              {'-', 0o640, 0, 0, "one file\n"}, // owner not copied
	}
	compareTree(t, got, treeCheck{owners: true, modes: true, want: want})

	// A regular file never overwrites.
	_, _, err = prepareTree(Options{SourceDir: base, CopyFiles: []CopyFile{{single, "/etc/keep"}}, TempDir: t.TempDir()})
	if !errors.Is(err, os.ErrExist) {
		t.Errorf("overwrite by a file: err = %v", err)
	}
	// A file cannot become a directory.
	_, _, err = prepareTree(Options{CopyFiles: []CopyFile{{single, "/"}}, MakeDirectories: []string{"/x"}, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "refers to a directory") {
		t.Errorf("file to /: err = %v", err)
	}
	// A directory cannot replace a file.
	_, _, err = prepareTree(Options{SourceDir: base, CopyFiles: []CopyFile{{overlay, "/etc/keep"}}, TempDir: t.TempDir()})
	if err == nil {
		t.Error("directory onto a file accepted")
	}
	// A missing source is an error naming it.
	_, _, err = prepareTree(Options{CopyFiles: []CopyFile{{filepath.Join(src, "nope"), "/x"}}, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing source: err = %v", err)
	}
}

func TestResolveInRootStaysInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../..", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop", filepath.Join(root, "loop")); err != nil {
		t.Fatal(err)
	}
	// An absolute link is taken relative to the root, so this creates
	// root/<outside path>/x, never outside/x.
	p, err := resolveInRoot(root, "/abs/x", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, outside, "x"); p != want {
		t.Fatalf("got %q, want %q", p, want)
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Fatal("escaped the root")
	}
	p, err = resolveInRoot(root, "/up/y", true)
	if err != nil || p != filepath.Join(root, "y") {
		t.Fatalf("got %q %v", p, err)
	}
	if _, err := resolveInRoot(root, "/loop/z", true); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("loop: %v", err)
	}
	if _, err := resolveInRoot(root, "/missing/z", false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestSetTimesNoFollow(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "t")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "l")
	if err := os.Symlink("t", link); err != nil {
		t.Fatal(err)
	}
	tm := time.Unix(1000000000, 123456789)
	ts := syscall.NsecToTimespec(tm.UnixNano())
	if err := setTimes(link, &syscall.Stat_t{Atim: ts, Mtim: ts}, true); err != nil {
		t.Fatal(err)
	}
	lfi, _ := os.Lstat(link)
	tfi, _ := os.Stat(target)
	if !lfi.ModTime().Equal(tm) || tfi.ModTime().Equal(tm) {
		t.Fatalf("link %v target %v", lfi.ModTime(), tfi.ModTime())
	}
}
