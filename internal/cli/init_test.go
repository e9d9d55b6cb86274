package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imago-os/imago/build/config"
	"github.com/imago-os/imago/build/reference"
)

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "os")
	code, out, errOut := run(t, "init", dir)
	if code != 0 {
		t.Fatalf("imago init: exit %d, %s", code, errOut)
	}
	var want []string
	for _, f := range reference.Files() {
		want = append(want, filepath.Join(dir, filepath.FromSlash(f)))
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("printed %q, want %q", got, want)
	}
	for _, f := range reference.Files() {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		embedded, _ := fs.ReadFile(reference.FS(), f)
		if string(got) != string(embedded) {
			t.Errorf("%s differs from the embedded file", f)
		}
	}

	// What init wrote parses back to the embedded definition.
	written, err := config.Load(dir, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := config.LoadReference(dir, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := written.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := embedded.Canonical()
	ha, _ := written.Hash()
	hb, _ := embedded.Hash()
	if string(a) != string(b) || ha != hb || written.Slots != embedded.Slots {
		t.Errorf("written definition differs from the embedded one:\n%s\n---\n%s", a, b)
	}

	// A second init refuses, in one line, and changes nothing.
	conf := filepath.Join(dir, "imago.conf")
	if err := os.WriteFile(conf, []byte("[Output]\nImageId=mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "init", dir)
	first := filepath.Join(dir, filepath.FromSlash(reference.Files()[0]))
	if code != 1 || errOut != "imago: "+first+" already exists; use --force to overwrite\n" {
		t.Errorf("init over existing files: exit %d, stderr %q", code, errOut)
	}
	if data, _ := os.ReadFile(conf); string(data) != "[Output]\nImageId=mine\n" {
		t.Error("init without --force replaced a file")
	}
	code, _, errOut = run(t, "init", "--force", dir)
	if code != 0 {
		t.Fatalf("init --force: exit %d, %s", code, errOut)
	}
	if data, _ := os.ReadFile(conf); !strings.Contains(string(data), "ImageId=imago-ref") {
		t.Error("init --force did not restore imago.conf")
	}

	if code, _, _ := run(t, "init"); code == 0 {
		t.Error("init without a directory succeeded")
	}
}
