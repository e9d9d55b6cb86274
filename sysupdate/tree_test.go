package sysupdate

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tarEntry is one member of a test archive.
type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	uid, gid   int
}

var treeTime = time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC)

func makeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for i, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: treeTime.Add(time.Duration(i) * time.Hour), Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			w.Write([]byte(e.body))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var sampleTree = []tarEntry{
	{name: "./", typ: tar.TypeDir, mode: 0o750},
	{name: "usr/", typ: tar.TypeDir, mode: 0o755},
	{name: "usr/bin/tool", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n", uid: 1234, gid: 4321},
	{name: "usr/lib/data", typ: tar.TypeReg, mode: 0o644, body: "data"},
	{name: "usr/lib/link", typ: tar.TypeSymlink, link: "data"},
	{name: "usr/lib/hard", typ: tar.TypeLink, link: "usr/lib/data"},
	{name: "usr/lib/suid", typ: tar.TypeReg, mode: 0o4711, body: "s"},
	{name: "etc/secret", typ: tar.TypeReg, mode: 0o600, body: "pw"},
	{name: "ro/", typ: tar.TypeDir, mode: 0o555},
	{name: "ro/inside", typ: tar.TypeReg, mode: 0o444, body: "r"},
	{name: "./usr/lib/data2", typ: tar.TypeReg, mode: 0o640, body: "second"},
	{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
}

func TestExtractTar(t *testing.T) {
	dir := t.TempDir()
	if err := ExtractTar(bytes.NewReader(makeTar(t, sampleTree)), dir); err != nil {
		t.Fatal(err)
	}
	check := func(name string, mode fs.FileMode, mtimeIndex int, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode()&(keptModeBits|fs.ModeType) != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode(), mode)
		}
		if mtimeIndex >= 0 && !st.ModTime().Equal(treeTime.Add(time.Duration(mtimeIndex)*time.Hour)) {
			t.Errorf("%s: mtime %v", name, st.ModTime())
		}
		if body != "" {
			if b, _ := os.ReadFile(p); string(b) != body {
				t.Errorf("%s: %q", name, b)
			}
		}
	}
	check(".", fs.ModeDir|0o750, 0, "")
	check("usr", fs.ModeDir|0o755, 1, "")
	check("usr/bin/tool", 0o755, 2, "#!/bin/sh\n")
	check("usr/bin", fs.ModeDir|0o755, -1, "")
	check("usr/lib/data", 0o644, 3, "data")
	check("usr/lib/link", fs.ModeSymlink|0o777, -1, "data")
	check("usr/lib/suid", fs.ModeSetuid|0o711, 6, "")
	check("etc/secret", 0o600, 7, "pw")
	check("ro", fs.ModeDir|0o555, 8, "")
	check("ro/inside", 0o444, 9, "r")
	check("usr/lib/data2", 0o640, 10, "second")
	if l, _ := os.Readlink(filepath.Join(dir, "usr/lib/link")); l != "data" {
		t.Errorf("symlink -> %q", l)
	}
	a, _ := os.Stat(filepath.Join(dir, "usr/lib/data"))
	b, _ := os.Stat(filepath.Join(dir, "usr/lib/hard"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("hard link is not the same file")
	}
	if _, err := os.Lstat(filepath.Join(dir, "dev/null")); err == nil {
		t.Error("device node created")
	}
	if os.Geteuid() == 0 {
		st, _ := os.Stat(filepath.Join(dir, "usr/bin/tool"))
		if s := st.Sys().(*syscall.Stat_t); s.Uid != 1234 || s.Gid != 4321 {
			t.Errorf("owner %d:%d", s.Uid, s.Gid)
		}
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro"), 0o755) })
}

func TestExtractTarRefusesEscapes(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries []tarEntry
		culprit string
	}{
		{"dotdot", []tarEntry{{name: "../x", typ: tar.TypeReg, mode: 0o644, body: "evil"}}, "../x"},
		{"inner-dotdot", []tarEntry{{name: "a/../../x", typ: tar.TypeReg, mode: 0o644, body: "evil"}}, "a/../../x"},
		{"absolute", []tarEntry{{name: "/abs", typ: tar.TypeReg, mode: 0o644, body: "evil"}}, "/abs"},
		{"symlink-relative", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "link/x", typ: tar.TypeReg, mode: 0o644, body: "evil"},
		}, "link/x"},
		{"symlink-absolute", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "OUTSIDE"},
			{name: "link/x", typ: tar.TypeReg, mode: 0o644, body: "evil"},
		}, "link/x"},
		{"symlink-dir", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "link/sub/", typ: tar.TypeDir, mode: 0o755},
		}, "link/sub/"},
		{"hardlink-dotdot", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../outside/victim"}}, "h"},
		{"hardlink-through-symlink", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "../outside"},
			{name: "h", typ: tar.TypeLink, link: "link/victim"},
		}, "h"},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "dir")
			outside := filepath.Join(base, "outside")
			os.Mkdir(dir, 0o755)
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "victim"), []byte("safe"), 0o644)
			for i := range c.entries {
				c.entries[i].link = strings.ReplaceAll(c.entries[i].link, "OUTSIDE", outside)
			}
			err := ExtractTar(bytes.NewReader(makeTar(t, c.entries)), dir)
			if err == nil || !strings.Contains(err.Error(), c.culprit) {
				t.Fatalf("err = %v, want one naming %q", err, c.culprit)

			}
			des, _ := os.ReadDir(outside)
			if len(des) != 1 {
				t.Errorf("outside holds %d entries", len(des))
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "safe" {
				t.Errorf("victim changed: %q", b)
			}
			if _, err := os.Stat(filepath.Join(base, "x")); err == nil {
				t.Error("file written beside dir")
			}
		})
	}
}

// A file entry named like an earlier symlink replaces the symlink; it
// never writes through it.
func TestExtractTarReplacesSymlink(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "dir")
	os.Mkdir(dir, 0o755)
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, []byte("safe"), 0o644)
	tarball := makeTar(t, []tarEntry{
		{name: "f", typ: tar.TypeSymlink, link: "../victim"},
		{name: "f", typ: tar.TypeReg, mode: 0o644, body: "new"},
	})
	if err := ExtractTar(bytes.NewReader(tarball), dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "safe" {
		t.Errorf("victim = %q", b)
	}
	if st, err := os.Lstat(filepath.Join(dir, "f")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("f: %v %v", st, err)
	}
	if err := ExtractTar(strings.NewReader("this is not a tar archive, just text that is long enough to fill a header block"+strings.Repeat(" ", 500)), dir); err == nil {
		t.Error("garbage extracted")
	}
}

// treeSnapshot describes a tree for comparison: type, mode, mtime,
// content or link target, and the hard-link groups.
func treeSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := st.Mode().String()
		if !st.Mode().IsDir() || rel != "." {
			s += " " + st.ModTime().UTC().Format(time.RFC3339)
		}
		switch {
		case st.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			s += " " + string(b)
			sys := st.Sys().(*syscall.Stat_t)
			if sys.Nlink > 1 {
				if first, ok := inodes[sys.Ino]; ok {
					s += " =" + first
				} else {
					inodes[sys.Ino] = rel
				}
			}
			s += " " + strings.Repeat("o", int(sys.Uid%7))
		case st.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			s += " -> " + l
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCopyTreeRoundTrip(t *testing.T) {
	src := t.TempDir()
	if err := ExtractTar(bytes.NewReader(makeTar(t, sampleTree)), src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy", "target")
	if err := CopyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	a, b := treeSnapshot(t, src), treeSnapshot(t, dst)
	if len(a) < 10 {
		t.Fatalf("source snapshot too small: %v", a)
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: copy %q, source %q", k, b[k], v)
		}
	}
	if len(a) != len(b) {
		t.Errorf("copy has %d entries, source %d", len(b), len(a))
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o750 {
		t.Errorf("root mode %v", st.Mode())
	}
	if err := CopyTree(filepath.Join(src, "usr/lib/data"), dst); err == nil {
		t.Error("copied a file as a tree")
	}
	if err := CopyTree(filepath.Join(src, "missing"), dst); err == nil {
		t.Error("copied a missing tree")
	}
	t.Cleanup(func() {
		os.Chmod(filepath.Join(src, "ro"), 0o755)
		os.Chmod(filepath.Join(dst, "ro"), 0o755)
	})
}

// An archive made by GNU tar from a real tree extracts to the same tree.
func TestExtractTarFromGNUTar(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("tar not installed")
	}
	src := t.TempDir()
	if err := ExtractTar(bytes.NewReader(makeTar(t, sampleTree[:8])), src); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-C", src, "--numeric-owner", "-cf", "-", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := ExtractTar(bytes.NewReader(out), dst); err != nil {
		t.Fatal(err)
	}
	a, b := treeSnapshot(t, src), treeSnapshot(t, dst)
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: extracted %q, source %q", k, b[k], v)
		}
	}
}
