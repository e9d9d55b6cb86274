package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/bootentry"
	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/format/pe/petest"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/internal/testutil"
)

// bootTestESP writes an ESP tree after a failed update: version 3 used its
// three tries, version 2 is good, version 1 is older. The UKIs are real
// UKIs on a small synthetic stub.
func bootTestESP(t *testing.T) string {
	t.Helper()
	code := []byte("stub")
	stub := petest.Build(0x1000, 0x200, 0x400, []petest.Section{
		{Name: ".text", VA: 0x1000, VirtualSize: uint32(len(code)), Offset: 0x400, RawSize: 0x200, Data: code, Characteristics: 0x60000020},
	}, nil)
	esp := t.TempDir()
	dir := filepath.Join(esp, "EFI", "Linux")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"imago-ref_3+0-3.efi": "3", "imago-ref_2.efi": "2", "imago-ref_1.efi": "1"} {
		img, err := uki.Build(stub, &uki.Input{
			Linux:     []byte("kernel"),
			OSRelease: []byte("ID=debian\nIMAGE_ID=imago-ref\nIMAGE_VERSION=" + v + "\nPRETTY_NAME=\"Imago Reference " + v + "\"\n"),
			Cmdline:   []byte("quiet"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return esp
}

// bootTestVars returns an efivarfs stand-in with LoaderEntrySelected set.
func bootTestVars(t *testing.T, selected string) string {
	t.Helper()
	dir := t.TempDir()
	s, err := efistore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := efivar.EncodeString(selected)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(efivar.LoaderVar(efivar.LoaderEntrySelected), efivar.Variable{Attributes: efivar.AttributesLoaderVolatile, Data: data}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBootList(t *testing.T) {
	esp := bootTestESP(t)
	vars := bootTestVars(t, "imago-ref_2.efi")

	code, out, errOut := run(t, "boot", "list", "--esp="+esp, "--efivars="+vars, "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("boot list --json: %d %q", code, errOut)
	}
	var entries []bootentry.Entry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got []string
	for _, en := range entries {
		got = append(got, en.LoaderID+"/"+string(en.Assessment))
	}
	if strings.Join(got, " ") != "imago-ref_2.efi/good imago-ref_1.efi/good imago-ref_3+0-3.efi/bad" {
		t.Errorf("entries = %v", got)
	}
	if !entries[0].Selected || !entries[0].Default || entries[1].Selected || entries[2].Default || entries[2].TriesDone != 3 || entries[2].Version != "3" {
		t.Errorf("flags: %s", out)
	}
	for _, key := range []string{`"id": "imago-ref_3+0-3.efi"`, `"stableId": "imago-ref_3.efi"`, `"triesLeft": 0`, `"title": "Imago Reference 3"`, `"path": "EFI/Linux/imago-ref_1.efi"`} {
		if !strings.Contains(out, key) {
			t.Errorf("JSON lacks %s", key)
		}
	}

	code, out, errOut = run(t, "boot", "list", "--esp="+esp, "--efivars="+vars)
	if code != 0 || errOut != "" {
		t.Fatalf("boot list: %d %q", code, errOut)
	}
	for _, want := range []string{
		"Boot loader entries in " + esp + ":\n",
		"         title: Imago Reference 2 (default) (booted)\n            id: imago-ref_2.efi\n",
		"         tries: 0 left, 3 done\n    assessment: bad (no tries left; sorted last)\n",
		"         title: Imago Reference 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "Reference 1"), strings.Index(out, "Reference 3"); i < 0 || j < i {
		t.Errorf("bad entry not last:\n%s", out)
	}

	// An empty ESP, a missing one, and a missing explicit efivars.
	if code, out, _ := run(t, "boot", "list", "--esp="+t.TempDir(), "--efivars="+vars, "--json"); code != 0 || out != "[]\n" {
		t.Errorf("empty ESP --json: %d %q", code, out)
	}
	if code, out, _ := run(t, "boot", "list", "--esp="+t.TempDir(), "--efivars="+vars); code != 0 || !strings.HasPrefix(out, "No boot loader entries") {
		t.Errorf("empty ESP: %d %q", code, out)
	}
	if code, _, errOut := run(t, "boot", "list", "--esp="+filepath.Join(esp, "missing"), "--efivars="+vars); code != 1 || !strings.Contains(errOut, "missing") {
		t.Errorf("missing ESP: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "boot", "list", "--esp="+esp, "--efivars="+filepath.Join(vars, "missing")); code != 1 || errOut == "" {
		t.Errorf("missing efivars: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "boot", "list", "--esp="+esp, "--image=x.img"); code != 1 || !strings.Contains(errOut, "esp") {
		t.Errorf("--esp with --image: %d %q", code, errOut)
	}
}

func TestBootStatus(t *testing.T) {
	esp := bootTestESP(t)
	vars := bootTestVars(t, "imago-ref_2.efi")

	code, out, errOut := run(t, "boot", "status", "--esp="+esp, "--efivars="+vars, "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("boot status --json: %d %q", code, errOut)
	}
	var st bootentry.StatusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st.Booted == nil || st.Booted.FileName != "imago-ref_2.efi" || st.Assessment != bootentry.Good || st.Variables.EntrySelected != "imago-ref_2.efi" || len(st.Entries) != 3 {
		t.Errorf("status: %s", out)
	}
	if f := st.Fallback; f == nil || f.FailedVersion != "3" || f.Tries != 3 || f.BootedVersion != "2" || !f.Booted {
		t.Errorf("fallback: %+v", st.Fallback)
	}

	code, out, errOut = run(t, "boot", "status", "--esp="+esp, "--efivars="+vars)
	if code != 0 || errOut != "" {
		t.Fatalf("boot status: %d %q", code, errOut)
	}
	want := "         ESP: " + esp + "\n" +
		"      Booted: Imago Reference 2 (imago-ref_2.efi), version 2\n" +
		"  Assessment: good\n" +
		"     Default: Imago Reference 2 (imago-ref_2.efi), version 2\n" +
		"    Fallback: version 3 (imago-ref_3+0-3.efi) failed: started 3 times without reaching boot-complete.target; version 2 (imago-ref_2.efi) booted instead\n"
	if out != want {
		t.Errorf("boot status:\n%s\nwant:\n%s", out, want)
	}

	// LoaderEntrySelected naming nothing on the ESP.
	code, out, _ = run(t, "boot", "status", "--esp="+esp, "--efivars="+bootTestVars(t, "other.efi"))
	if code != 0 || !strings.Contains(out, "Booted: other.efi (LoaderEntrySelected), not found on this ESP\n") || strings.Contains(out, "Assessment") {
		t.Errorf("unknown selected: %d %q", code, out)
	}
}

// TestBootImage reads the same ESP out of a FAT image with --image.
func TestBootImage(t *testing.T) {
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	testutil.RequireTool(t, "mcopy", "mtools")
	testutil.RequireTool(t, "mdir", "mtools")
	img := filepath.Join(t.TempDir(), "esp.img")
	if _, err := fsimage.MakeFile(context.Background(), img, 40<<20, fsimage.Options{Type: "vfat", Label: "ESP", SourceDir: bootTestESP(t)}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "boot", "status", "--image="+img, "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("boot status --image: %d %q", code, errOut)
	}
	var st bootentry.StatusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	// No variables from the host: nothing booted, the default stands in.
	if st.Booted != nil || st.Default == nil || st.Default.FileName != "imago-ref_2.efi" || st.Fallback == nil || st.Fallback.Booted {
		t.Errorf("status --image: %s", out)
	}
	code, out, _ = run(t, "boot", "status", "--image="+img)
	if code != 0 || !strings.Contains(out, "Booted: unknown (no EFI variables") || !strings.Contains(out, "boots by default instead\n") {
		t.Errorf("boot status --image: %d %q", code, out)
	}
	code, out, errOut = run(t, "boot", "list", "--image="+img)
	if code != 0 || !strings.HasPrefix(out, "Boot loader entries in "+img+":\n") || !strings.Contains(out, "Imago Reference 2 (default)\n") {
		t.Errorf("boot list --image: %d %q %q", code, out, errOut)
	}
}
