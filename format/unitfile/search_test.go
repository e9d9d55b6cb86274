package unitfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// tree describes files to create under a root: a value starting with "->"
// is a symlink, "/" at the end of a key a directory, anything else file
// content.
type tree map[string]string

func (tr tree) create(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	tr.createIn(t, root)
	return root
}

func (tr tree) createIn(t *testing.T, root string) {
	t.Helper()
	for name, v := range tr {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(name, "/"):
			err = os.MkdirAll(p, 0o755)
		case strings.HasPrefix(v, "->"):
			err = os.Symlink(strings.TrimPrefix(v, "->"), p)
		default:
			err = os.WriteFile(p, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func label(l string) string { return "[Partition]\nType=linux-generic\nLabel=" + l + "\n" }

// searchTree exercises every rule of ListConfFiles; interop_test.go checks
// the same tree against systemd-repart.
var searchTree = tree{
	"etc/repart.d/10-root.conf":         label("etc-10"),
	"etc/repart.d/20-masked.conf":       "->/dev/null",
	"etc/repart.d/30-empty.conf":        "",
	"etc/repart.d/40-dangling.conf":     "->/nonexistent/40.conf",
	"etc/repart.d/.50-hidden.conf":      label("hidden"),
	"etc/repart.d/60-dir.conf/":         "",
	"etc/repart.d/readme.txt":           "not a conf file",
	"run/repart.d":                      "->/usr/local/lib/repart.d",
	"usr/local/lib/repart.d/15.conf":    label("local-15"),
	"usr/local/lib/repart.d/10x.conf":   label("local-10x"),
	"usr/lib/repart.d/10-root.conf":     label("usr-10"),
	"usr/lib/repart.d/20-masked.conf":   label("usr-20"),
	"usr/lib/repart.d/30-empty.conf":    label("usr-30"),
	"usr/lib/repart.d/40-dangling.conf": label("usr-40"),
	"usr/lib/repart.d/60-dir.conf":      label("usr-60"),
	"usr/lib/repart.d/70-rel.conf":      "->../extra/70.conf",
	"usr/lib/repart.d/80-abs.conf":      "->/usr/lib/extra/80.conf",
	"usr/lib/repart.d/90-rel-null.conf": "->../../../dev/null",
	"usr/lib/extra/70.conf":             label("extra-70"),
	"usr/lib/extra/80.conf":             label("extra-80"),
}

var searchTreeWant = []string{
	"/etc/repart.d/10-root.conf",
	"/usr/local/lib/repart.d/10x.conf",
	"/usr/local/lib/repart.d/15.conf",
	"/usr/lib/repart.d/40-dangling.conf",
	"/usr/lib/repart.d/60-dir.conf",
	"/usr/lib/repart.d/70-rel.conf",
	"/usr/lib/repart.d/80-abs.conf",
}

var searchTreeLabels = []string{"etc-10", "local-10x", "local-15", "usr-40", "usr-60", "extra-70", "extra-80"}

func TestListConfFiles(t *testing.T) {
	root := searchTree.create(t)
	got, err := ListConfFiles(os.DirFS(root), ConfPaths("repart.d"), ".conf")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "\n") != strings.Join(searchTreeWant, "\n") {
		t.Fatalf("ListConfFiles:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(searchTreeWant, "\n"))
	}
	files, err := LoadAll(os.DirFS(root), ConfPaths("repart.d"), ".conf")
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		if e, _ := f.Get("Partition", "Label"); e.Value != searchTreeLabels[i] || e.File != searchTreeWant[i] {
			t.Errorf("file %d: Label from %s = %q, want %q", i, e.File, e.Value, searchTreeLabels[i])
		}
	}
}

func TestListConfFilesDetails(t *testing.T) {
	root := tree{
		"a/x.conf":           "[A]\nK=1\n",
		"a/x.conf~":          "[A]\n",
		"a/x.conf.dpkg-old":  "[A]\n",
		"a/y.rpmnew":         "[A]\n",
		"a/lost+found":       "[A]\n",
		"a/plain":            "[A]\n",
		"a/B.conf":           "[A]\n",
		"a/_.conf":           "[A]\n",
		"b/x.conf":           "[A]\nK=2\n",
		"b/loop.conf":        "->loop.conf",
		"missing-dir-target": "->/nowhere",
	}.create(t)
	fsys := os.DirFS(root)
	// An empty suffix takes every name that is not hidden or a backup; the
	// order is bytewise ("B" < "_" < "p" < "x").
	got, err := ListConfFiles(fsys, []string{"a", "b", "missing", "missing-dir-target", "a/x.conf"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a/B.conf a/_.conf a/plain a/x.conf"; strings.Join(got, " ") != want {
		t.Fatalf("got %q want %q", strings.Join(got, " "), want)
	}
	if _, err := ListConfFiles(fsys, []string{"../x"}, ".conf"); err == nil {
		t.Fatal("a directory above the root was accepted")
	}
	// "/.." stays at the root, as in a chroot.
	got, err = ListConfFiles(fsys, []string{"/../a/../b"}, ".conf")
	if err != nil || strings.Join(got, " ") != "/b/x.conf" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestLoadWithDropIns(t *testing.T) {
	dirs := append(ConfPaths("imago"), "/lib/imago")
	root := tree{
		"etc/imago/image.conf":                    "->/dev/null",
		"usr/lib/imago/image.conf":                "[Output]\nFormat=disk\n",
		"etc/imago/image.conf.d/10-size.conf":     "[Output]\nSize=1G\n",
		"run/imago/image.conf.d/20-rt.conf":       "[Output]\nPackages=a b\n",
		"usr/lib/imago/image.conf.d/10-size.conf": "[Output]\nSize=2G\n",
		"usr/lib/imago/image.conf.d/05-base.conf": "[Output]\nPackages=base\nSize=3G\n",
		"usr/lib/imago/image.conf.d/30-mask.conf": "[Output]\nPackages=masked\n",
		"etc/imago/image.conf.d/30-mask.conf":     "->/dev/null",
		"lib/imago/image.conf.d/40-lib.conf":      "[Output]\nPackages=\nPackages=c\n",
		"lib/imago/image.conf.d/50-dangle.conf":   "->/nope",
		"lib/imago/image.conf.d/.hidden.conf":     "[Output]\nSize=9G\n",
	}.create(t)
	f, err := LoadWithDropIns(os.DirFS(root), dirs, "image.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The masked main file in /etc hides /usr/lib's; the drop-ins follow
	// in name order, the dangling one skipped.
	wantSources := []string{
		"/etc/imago/image.conf",
		"/usr/lib/imago/image.conf.d/05-base.conf",
		"/etc/imago/image.conf.d/10-size.conf",
		"/run/imago/image.conf.d/20-rt.conf",
		"/etc/imago/image.conf.d/30-mask.conf",
		"/lib/imago/image.conf.d/40-lib.conf",
	}
	if strings.Join(f.Sources, "\n") != strings.Join(wantSources, "\n") {
		t.Fatalf("Sources:\n%s", strings.Join(f.Sources, "\n"))
	}
	if _, ok := f.Get("Output", "Format"); ok {
		t.Error("masked main file was read")
	}
	if e, _ := f.Get("Output", "Size"); e.Value != "1G" || e.File != "/etc/imago/image.conf.d/10-size.conf" || e.Line != 2 {
		t.Errorf("Size = %+v", e)
	}
	if got := f.Values("Output", "Packages"); strings.Join(got, ",") != "c" {
		t.Errorf("Packages = %q", got)
	}
	drop, err := ListDropIns(os.DirFS(root), dirs, "image.conf.d")
	if err != nil {
		t.Fatal(err)
	}
	if len(drop) != 6 || drop[5] != "/lib/imago/image.conf.d/50-dangle.conf" {
		t.Errorf("ListDropIns = %q", drop)
	}

	// Nothing there at all is not an error.
	f, err = LoadWithDropIns(os.DirFS(root), dirs, "other.conf")
	if err != nil || len(f.Sources) != 0 || len(f.Sections) != 0 {
		t.Errorf("missing config: %+v, %v", f, err)
	}
}

func TestLoadErrors(t *testing.T) {
	root := tree{
		"d/a.conf":             "[A]\nK=1\n",
		"d/a.conf.d/bad.conf":  "K=outside\n",
		"d/b.conf/":            "",
		"d/c.conf":             "[A]\n",
		"d/c.conf.d/sub.conf/": "",
		"d/e.conf":             "[A\n",
	}.create(t)
	fsys := os.DirFS(root)
	_, err := LoadFileWithDropIns(fsys, "d/a.conf", []string{"d"})
	if err == nil || err.Error() != "d/a.conf.d/bad.conf:1: assignment outside of a section" {
		t.Errorf("bad drop-in: %v", err)
	}
	// A directory where a file is expected cannot be read; systemd fails
	// the same way.
	if _, err := LoadWithDropIns(fsys, []string{"d"}, "b.conf"); err == nil {
		t.Error("directory as main file accepted")
	}
	if _, err := LoadFileWithDropIns(fsys, "d/c.conf", []string{"d"}); err == nil {
		t.Error("directory as drop-in accepted")
	}
	if _, err := LoadAll(fsys, []string{"d"}, ".conf"); err == nil || !strings.Contains(err.Error(), "d/a.conf.d/bad.conf:1") {
		t.Errorf("LoadAll: %v", err)
	}
	if _, err := ReadFile(fsys, "d/missing.conf"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing): %v", err)
	}
	var se *SyntaxError
	if _, err := ReadFile(fsys, "d/e.conf"); !errors.As(err, &se) || se.File != "d/e.conf" || se.Line != 1 {
		t.Errorf("ReadFile(bad header): %v", err)
	}
}

// Embedded definitions (embed.FS, fstest.MapFS) use relative directories,
// and the names in messages are relative too.
func TestMapFS(t *testing.T) {
	fsys := fstest.MapFS{
		"defs/repart.d/10-root.conf":          {Data: []byte(label("root"))},
		"defs/repart.d/10-root.conf.d/a.conf": {Data: []byte("[Partition]\nLabel=dropin\n")},
		"defs/repart.d/20-usr.conf":           {Data: []byte(label("usr"))},
		"defs/repart.d/30-gone.conf":          {Data: nil},
		"defs/repart.d/40-link.conf":          {Data: []byte("/dev/null"), Mode: fs.ModeSymlink},
		"over/repart.d/20-usr.conf":           {Data: []byte(label("over"))},
	}
	files, err := LoadAll(fsys, []string{"over/repart.d", "defs/repart.d"}, ".conf")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		e, _ := f.Get("Partition", "Label")
		got = append(got, e.Position()+" "+e.Value)
	}
	want := "defs/repart.d/10-root.conf.d/a.conf:2 dropin|over/repart.d/20-usr.conf:3 over"
	if strings.Join(got, "|") != want {
		t.Fatalf("got %q", strings.Join(got, "|"))
	}
}

func TestResolveLoop(t *testing.T) {
	root := tree{"d/a.conf": "->b.conf", "d/b.conf": "->a.conf"}.create(t)
	if _, err := ReadFile(os.DirFS(root), "d/a.conf"); !errors.Is(err, ErrSymlinkLoop) {
		t.Fatalf("got %v", err)
	}
}
