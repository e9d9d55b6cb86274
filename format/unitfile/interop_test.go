package unitfile

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// repartPartition is what systemd-repart --json=short reports per partition.
type repartPartition struct {
	Label   string   `json:"label"`
	File    string   `json:"file"`
	RawSize uint64   `json:"raw_size"`
	DropIns []string `json:"drop-in_files"`
}

// runRepart plans a new image from the given definition arguments
// (--root=... or --definitions=...) without touching anything but a scratch
// image file, and returns systemd-repart's view of each partition.
func runRepart(t *testing.T, args ...string) []repartPartition {
	t.Helper()
	out, err := repartErr(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var parts []repartPartition
	if err := json.Unmarshal(out, &parts); err != nil {
		t.Fatalf("systemd-repart output %q: %v", out, err)
	}
	return parts
}

func repartErr(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	img := filepath.Join(t.TempDir(), "disk.img")
	full := append([]string{"--dry-run=yes", "--empty=create", "--size=256M", "--json=short", "--no-pager"}, args...)
	return testutil.RunErr(repart, append(full, img)...)
}

// systemd-repart --root= enumerates repart.d like ListConfFiles: override by
// name, masks, hidden files, dangling links, directories, a directory that
// is a symlink resolved inside the root.
func TestInteropRepartSearchPath(t *testing.T) {
	tr := tree{}
	for k, v := range searchTree {
		// v252 follows an absolute symlink of a file (not of a directory)
		// on the host even with --root; imago resolves it inside the root.
		if k != "usr/lib/repart.d/80-abs.conf" {
			tr[k] = v
		}
	}
	root := tr.create(t)
	want, err := LoadAll(os.DirFS(root), ConfPaths("repart.d"), ".conf")
	if err != nil {
		t.Fatal(err)
	}
	got := runRepart(t, "--root="+root)
	if len(got) != len(want) || len(want) != len(searchTreeWant)-1 {
		t.Fatalf("systemd-repart found %d partitions, imago %d: %+v", len(got), len(want), got)
	}
	for i, p := range got {
		e, _ := want[i].Get("Partition", "Label")
		if p.File != path.Base(want[i].Sources[0]) || p.Label != e.Value {
			t.Errorf("partition %d: systemd-repart %s %q, imago %s %q", i, p.File, p.Label, want[i].Sources[0], e.Value)
		}
	}
}

// Drop-ins, masking of drop-ins, override by name across directories and
// the line syntax itself, compared on the values systemd-repart reports.
func TestInteropRepartDropInsAndSyntax(t *testing.T) {
	base := t.TempDir()
	dirs := []string{filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")}
	files := tree{
		"a/10-a.conf":                 label("main-a"),
		"b/10-a.conf":                 label("shadowed"),
		"a/10-a.conf.d/50-x.conf":     "[Partition]\nLabel=a-50\n",
		"c/10-a.conf.d/50-x.conf":     "[Partition]\nLabel=c-50\n",
		"b/20-b.conf":                 label("main-b"),
		"b/20-b.conf.d/10-first.conf": "[Partition]\nLabel=b-first\n",
		"c/20-b.conf.d/90-last.conf":  "[Partition]\nLabel=c-last\nSizeMinBytes=1M 512K\nSizeMaxBytes=1M 512K\n",
		"a/20-b.conf.d/95-mask.conf":  "->/dev/null",
		"c/20-b.conf.d/95-mask.conf":  "[Partition]\nLabel=masked\n",
		"c/20-b.conf.d/.hidden.conf":  "[Partition]\nLabel=hidden\n",
		"c/20-b.conf.d/96.conf.bak":   "[Partition]\nLabel=backup\n",
		// Byte order mark, a comment-like line that the mark turns into
		// an ignored line, CRLF, whitespace, a continuation with a comment
		// inside and a value ending in an escaped backslash.
		"a/30-syntax.conf": "\xef\xbb\xbf; not a comment\r\n\r\n  [Partition] \r\n" +
			"Type = linux-generic\r\nSizeMinBytes= 2.5M\r\nSizeMaxBytes =2M 512K \r\n" +
			"  Label = x\\\r\n# skipped\r\n\t ; skipped\r\n  y;z #w \\\\\r\n",
		// Repeated keys, a reset, lines without '=', line ends \r and NUL.
		"a/40-repeat.conf": "[Partition]\rType=linux-generic\x00Label=first\nLabel=\nbogus line\n=x\nLabel=last\\\n  one",
		// A continuation that runs into the end of the file.
		"a/50-eof.conf": "[Partition]\nType=linux-generic\nLabel=eof\\",
		// A UTF-8 value and a key that only exists for the consumer.
		"a/60-utf8.conf": "[Partition]\nType=linux-generic\nLabel=Grüße ✓\nX-Imago-Note=ignored by repart\n",
	}
	files.createIn(t, base)
	args := make([]string, len(dirs))
	for i, d := range dirs {
		args[i] = "--definitions=" + d
	}
	got := runRepart(t, args...)

	fsys := os.DirFS("/")
	want, err := LoadAll(fsys, dirs, ".conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 6 {
		t.Fatalf("systemd-repart found %d partitions, imago %d", len(got), len(want))
	}
	wantLabels := []string{"a-50", "c-last", "x   y;z #w \\\\", "last   one", "eof", "Grüße ✓"}
	for i, p := range got {
		f := want[i]
		e, _ := f.Get("Partition", "Label")
		if p.File != path.Base(f.Sources[0]) || p.Label != e.Value || e.Value != wantLabels[i] {
			t.Errorf("partition %d: systemd-repart %s %q, imago %s %q (expected %q)", i, p.File, p.Label, f.Sources[0], e.Value, wantLabels[i])
		}
		dropIns, err := ListDropIns(fsys, dirs, path.Base(f.Sources[0])+".d")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(p.DropIns, "\n") != strings.Join(dropIns, "\n") {
			t.Errorf("partition %d drop-ins: systemd-repart %q, imago %q", i, p.DropIns, dropIns)
		}
		if m, ok := f.Get("Partition", "SizeMinBytes"); ok {
			size, err := ParseSize(m.Value, 1024)
			if err != nil || size != p.RawSize {
				t.Errorf("partition %d: SizeMinBytes=%s: systemd-repart %d, imago %d (%v)", i, m.Value, p.RawSize, size, err)
			}
		}
	}
	if n := len(want[3].Warnings); n != 2 {
		t.Errorf("40-repeat.conf: %d warnings, want 2", n)
	}
}

// What systemd refuses, imago refuses; what systemd ignores with a warning,
// imago reports as a warning. The one intended difference: an assignment
// before the first section, which systemd ignores and imago refuses.
func TestInteropRepartRefusals(t *testing.T) {
	head := "[Partition]\nType=linux-generic\n"
	cases := []struct {
		name    string
		content string
		refused bool
	}{
		{"unterminated header", head + "[Other\n", true},
		{"quote in header", head + "[Oth\"er]\n", true},
		{"invalid UTF-8", head + "Label=\xff\n", true},
		{"noncharacter", head + "Label=a\xef\xb7\x90\n", true},
		{"line too long", head + "Label=" + strings.Repeat("x", LongLineMax) + "\n", true},
		{"continuation too long", head + "Label=" + strings.Repeat("x", LongLineMax/2) + "\\\n" + strings.Repeat("y", LongLineMax/2) + "\n", true},
		{"longest line", head + "X-Long=" + strings.Repeat("x", LongLineMax-8) + "\n", false},
		{"missing equals", head + "Label\n", false},
		{"missing key", head + "=Label\n", false},
		{"unknown section", head + "[Other]\nFoo=bar\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "10.conf"), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, repartErr := repartErr(t, "--definitions="+dir)
			_, err := Parse("10.conf", strings.NewReader(c.content))
			if (repartErr != nil) != c.refused || (err != nil) != c.refused {
				t.Fatalf("systemd-repart error %v, imago error %v, want refused=%v", repartErr, err, c.refused)
			}
		})
	}
	t.Run("assignment before section", func(t *testing.T) {
		dir := t.TempDir()
		content := "Label=ignored\n" + head + "Label=kept\n"
		if err := os.WriteFile(filepath.Join(dir, "10.conf"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got := runRepart(t, "--definitions="+dir)
		if len(got) != 1 || got[0].Label != "kept" {
			t.Fatalf("systemd-repart: %+v", got)
		}
		if _, err := Parse("10.conf", strings.NewReader(content)); err == nil {
			t.Fatal("imago accepted an assignment before the first section")
		}
	})
}

// systemd-analyze cat-config shows which main file and which drop-ins
// systemd reads for a configuration name, in order; LoadWithDropIns must
// read the same files.
func TestInteropCatConfig(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	root := tree{
		"etc/imago/image.conf":                     "->/dev/null",
		"usr/lib/imago/image.conf":                 "[Output]\nFormat=disk\n",
		"etc/imago/image.conf.d/10-size.conf":      "[Output]\nSize=1G\n",
		"run/imago":                                "->../usr/local/lib/imago",
		"usr/local/lib/imago/image.conf.d/20.conf": "[Output]\nA=1\n",
		"usr/lib/imago/image.conf.d/10-size.conf":  "[Output]\nSize=2G\n",
		"usr/lib/imago/image.conf.d/05-base.conf":  "[Output]\nSize=3G\n",
		"usr/lib/imago/image.conf.d/30-mask.conf":  "[Output]\nB=1\n",
		"etc/imago/image.conf.d/30-mask.conf":      "->/dev/null",
		"usr/lib/imago/image.conf.d/.hidden.conf":  "[Output]\nC=1\n",
		"usr/lib/imago/image.conf.d/x.conf~":       "[Output]\nC=1\n",
		"usr/lib/imago/image.conf.d/README":        "not a drop-in\n",
		"etc/imago/other.conf.d/z.conf":            "[Output]\n",
		"usr/lib/imago/other.conf.d/a.conf":        "[Output]\n",
	}.create(t)
	for _, name := range []string{"image.conf", "other.conf", "missing.conf"} {
		out := testutil.Run(t, analyze, "cat-config", "--no-pager", "--root="+root, "imago/"+name)
		var shown []string
		for _, line := range strings.Split(string(out), "\n") {
			if p, ok := strings.CutPrefix(line, "# "+root); ok {
				shown = append(shown, p)
			}
		}
		f, err := LoadWithDropIns(os.DirFS(root), ConfPaths("imago"), name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(shown, "\n") != strings.Join(f.Sources, "\n") {
			t.Errorf("%s: systemd-analyze shows\n%s\nimago reads\n%s", name, strings.Join(shown, "\n"), strings.Join(f.Sources, "\n"))
		}
		if name == "image.conf" && len(f.Sources) != 5 {
			t.Errorf("image.conf: expected 5 files, got %q", f.Sources)
		}
	}
}
