package bootentry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/format/pe/petest"
	"github.com/imago-os/imago/format/uki"
)

// testStub is a small stand-in for systemd-stub: one code section.
func testStub() []byte {
	code := []byte("stub code")
	return petest.Build(0x1000, 0x200, 0x400, []petest.Section{
		{Name: ".text", VA: 0x1000, VirtualSize: uint32(len(code)), Offset: 0x400, RawSize: 0x200, Data: code, Characteristics: 0x60000020},
	}, nil)
}

// makeUKI builds a real UKI (stub, .osrel, .cmdline, .linux) with the
// given os-release text.
func makeUKI(t testing.TB, osrel, cmdline string) []byte {
	t.Helper()
	img, err := uki.Build(testStub(), &uki.Input{
		Linux:     []byte("not really a kernel"),
		OSRelease: []byte(osrel),
		Cmdline:   []byte(cmdline),
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// refOSRelease is the os-release of version v of the reference image.
func refOSRelease(v string) string {
	return "ID=debian\nIMAGE_ID=imago-ref\nIMAGE_VERSION=" + v + "\nPRETTY_NAME=\"Imago Reference " + v + "\"\n"
}

func writeFile(t testing.TB, root, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeUKI writes EFI/Linux/name with IMAGE_VERSION version.
func writeUKI(t testing.TB, esp, name, version string) {
	t.Helper()
	writeFile(t, esp, UKIDir+"/"+name, makeUKI(t, refOSRelease(version), "root=PARTLABEL=root-"+version+"\n"))
}

// newStore returns an efistore on a temporary directory with the loader
// variables set as systemd-boot sets them (volatile, UTF-16).
func newStore(t testing.TB, vars map[string]string) *efistore.Store {
	t.Helper()
	s, err := efistore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range vars {
		data, err := efivar.EncodeString(value)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Set(efivar.LoaderVar(name), efivar.Variable{Attributes: efivar.AttributesLoaderVolatile, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func ids(entries []Entry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.LoaderID)
	}
	return strings.Join(out, " ")
}

func mark(entries []Entry, pick func(*Entry) bool) string {
	var out []string
	for i := range entries {
		if pick(&entries[i]) {
			out = append(out, entries[i].LoaderID)
		}
	}
	return strings.Join(out, " ")
}

// TestListObservedOrder reproduces the menu systemd-boot 252.39 showed in
// QEMU: LoaderEntries was testos-2.0+1-2.efi, testos-0.9.efi,
// testos-1.0+0-3.efi (bad last), and 2.0 was booted.
func TestListObservedOrder(t *testing.T) {
	esp := t.TempDir()
	for name, v := range map[string]string{"testos-2.0+1-2.efi": "2.0", "testos-0.9.efi": "0.9", "testos-1.0+0-3.efi": "1.0"} {
		writeFile(t, esp, UKIDir+"/"+name, makeUKI(t, "ID=testos\nPRETTY_NAME=Test OS\nIMAGE_VERSION="+v+"\n", "console=ttyS0 panic=-1 quiet"))
	}
	entries, err := List(esp, newStore(t, map[string]string{efivar.LoaderEntrySelected: "testos-2.0+1-2.efi"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(entries); got != "testos-2.0+1-2.efi testos-0.9.efi testos-1.0+0-3.efi" {
		t.Errorf("order = %s", got)
	}
	if got := mark(entries, func(e *Entry) bool { return e.Selected }); got != "testos-2.0+1-2.efi" {
		t.Errorf("selected = %q", got)
	}
	if got := mark(entries, func(e *Entry) bool { return e.Default }); got != "testos-2.0+1-2.efi" {
		t.Errorf("default = %q", got)
	}
	e := entries[0]
	if e.Title != "Test OS" || e.Version != "2.0" || e.SortKey != "testos" || e.Type != TypeUKI || e.Path != "EFI/Linux/testos-2.0+1-2.efi" ||
		e.Options != "console=ttyS0 panic=-1 quiet" || e.Assessment != Indeterminate || e.TriesLeft != 1 || e.TriesDone != 2 {
		t.Errorf("entry 0 = %+v", e)
	}
	if entries[2].Assessment != Bad || entries[1].Assessment != Good {
		t.Errorf("assessments = %s, %s", entries[1].Assessment, entries[2].Assessment)
	}
}

// TestFallback is the scenario of a failed update: version 3 used its
// three tries and is bad, systemd-boot fell back to version 2.
func TestFallback(t *testing.T) {
	esp := t.TempDir()
	writeUKI(t, esp, "imago-ref_3+0-3.efi", "3")
	writeUKI(t, esp, "imago-ref_2.efi", "2")
	writeUKI(t, esp, "imago-ref_1.efi", "1")
	st, err := Status(esp, newStore(t, map[string]string{efivar.LoaderEntrySelected: "imago-ref_2.efi"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(st.Entries); got != "imago-ref_2.efi imago-ref_1.efi imago-ref_3+0-3.efi" {
		t.Errorf("order = %s", got)
	}
	if st.Booted == nil || st.Booted.FileName != "imago-ref_2.efi" || st.Assessment != Good || st.TriesLeft != 0 {
		t.Fatalf("booted = %+v, assessment %q", st.Booted, st.Assessment)
	}
	if st.Default == nil || st.Default.FileName != "imago-ref_2.efi" {
		t.Errorf("default = %+v", st.Default)
	}
	f := st.Fallback
	if f == nil {
		t.Fatal("no fallback reported")
	}
	if f.FailedID != "imago-ref_3+0-3.efi" || f.FailedVersion != "3" || f.Tries != 3 || f.BootedID != "imago-ref_2.efi" || f.BootedVersion != "2" || !f.Booted {
		t.Errorf("fallback = %+v", f)
	}
	for _, want := range []string{"version 3", "3 times", "version 2", "booted instead"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message %q lacks %q", f.Message, want)
		}
	}

	// Without EFI variables (a disk image) the default entry stands in
	// for the booted one.
	st, err = Status(esp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Booted != nil || st.Assessment != "" || st.Fallback == nil || st.Fallback.Booted || !strings.Contains(st.Fallback.Message, "boots by default") {
		t.Errorf("without variables: booted %+v, fallback %+v", st.Booted, st.Fallback)
	}

	// An older bad version is no fallback.
	esp2 := t.TempDir()
	writeUKI(t, esp2, "imago-ref_3.efi", "3")
	writeUKI(t, esp2, "imago-ref_2+0-3.efi", "2")
	st, err = Status(esp2, newStore(t, map[string]string{efivar.LoaderEntrySelected: "imago-ref_3.efi"}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Fallback != nil || st.Booted == nil || st.Booted.Version != "3" {
		t.Errorf("older bad entry: booted %+v, fallback %+v", st.Booted, st.Fallback)
	}
}

// TestStatusInProgress is the first boot of an update: systemd-boot wrote
// LoaderEntrySelected with the name it chose, then counted it down and
// set LoaderBootCountPath to the new name.
func TestStatusInProgress(t *testing.T) {
	esp := t.TempDir()
	writeUKI(t, esp, "imago-ref_3+2-1.efi", "3")
	writeUKI(t, esp, "imago-ref_2.efi", "2")
	vars := newStore(t, map[string]string{
		efivar.LoaderEntrySelected: "imago-ref_3+3-0.efi",
		efivar.LoaderBootCountPath: `\EFI\Linux\imago-ref_3+2-1.efi`,
	})
	st, err := Status(esp, vars)
	if err != nil {
		t.Fatal(err)
	}
	if st.Booted == nil || st.Booted.FileName != "imago-ref_3+2-1.efi" || st.Assessment != Indeterminate || st.TriesLeft != 2 || st.Fallback != nil {
		t.Fatalf("status = %+v", st)
	}
	if st.Variables.BootCountPath != `\EFI\Linux\imago-ref_3+2-1.efi` || st.Variables.EntrySelected != "imago-ref_3+3-0.efi" {
		t.Errorf("variables = %+v", st.Variables)
	}

	// systemd-bless-boot blessed it: the counter is gone, the variables
	// still name the old file.
	if err := os.Rename(filepath.Join(esp, "EFI/Linux/imago-ref_3+2-1.efi"), filepath.Join(esp, "EFI/Linux/imago-ref_3.efi")); err != nil {
		t.Fatal(err)
	}
	st, err = Status(esp, vars)
	if err != nil {
		t.Fatal(err)
	}
	if st.Booted == nil || st.Booted.FileName != "imago-ref_3.efi" || st.Assessment != Good {
		t.Fatalf("after blessing: %+v", st)
	}
}

// TestSelectedPrefersExact checks that with both a blessed and a counted
// file of the same entry, the exact name wins, and that otherwise
// LoaderBootCountPath decides.
func TestSelectedPrefersExact(t *testing.T) {
	esp := t.TempDir()
	writeUKI(t, esp, "os_1.efi", "1")
	writeUKI(t, esp, "os_1+1-2.efi", "1")
	entries, err := List(esp, newStore(t, map[string]string{efivar.LoaderEntrySelected: "OS_1+1-2.EFI"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := mark(entries, func(e *Entry) bool { return e.Selected }); got != "os_1+1-2.efi" {
		t.Errorf("selected = %q", got)
	}
	entries, err = List(esp, newStore(t, map[string]string{efivar.LoaderEntrySelected: "os_1+2-1.efi", efivar.LoaderBootCountPath: `\EFI\Linux\os_1+1-2.efi`}))
	if err != nil {
		t.Fatal(err)
	}
	if got := mark(entries, func(e *Entry) bool { return e.Selected }); got != "os_1+1-2.efi" {
		t.Errorf("selected by LoaderBootCountPath = %q", got)
	}
}

// TestListTypeOneAndDefault mixes Type #1 entries in and checks the sort
// key rules and every way of picking the default.
func TestListTypeOneAndDefault(t *testing.T) {
	esp := t.TempDir()
	writeUKI(t, esp, "imago-ref_2+3.efi", "2")
	writeUKI(t, esp, "imago-ref_1.efi", "1")
	// No sort key: after the entries that have one.
	writeFile(t, esp, EntriesDir+"/rescue.conf", []byte("# comment\ntitle  \"Rescue shell\"\nlinux /rescue/vmlinuz\noptions init=/bin/sh\noptions quiet\n"))
	// Sort key "aaa" sorts before "imago-ref".
	writeFile(t, esp, EntriesDir+"/other+2-1.conf", []byte("title Other\r\nversion 9\r\nsort-key aaa\r\nmachine-id 0123\r\nefi /other.efi\r\n"))
	// Starts nothing: skipped.
	writeFile(t, esp, EntriesDir+"/broken.conf", []byte("title Broken\n"))
	// Not entries at all.
	writeFile(t, esp, EntriesDir+"/.hidden.conf", []byte("linux /x\n"))
	writeFile(t, esp, EntriesDir+"/auto-x.conf", []byte("linux /x\n"))
	writeFile(t, esp, EntriesDir+"/notes.txt", []byte("linux /x\n"))
	writeFile(t, esp, UKIDir+"/auto-windows.efi", makeUKI(t, refOSRelease("9"), ""))
	writeFile(t, esp, UKIDir+"/garbage.efi", []byte("MZ but nothing else"))
	writeFile(t, esp, UKIDir+"/noosrel.efi", makeUKI(t, "", ""))
	writeFile(t, esp, UKIDir+"/notitle.efi", makeUKI(t, "IMAGE_VERSION=5\n", ""))
	if err := os.MkdirAll(filepath.Join(esp, UKIDir, "dir.efi"), 0o755); err != nil {
		t.Fatal(err)
	}

	entries, err := List(esp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(entries); got != "other+2-1.conf imago-ref_2+3.efi imago-ref_1.efi rescue.conf" {
		t.Fatalf("order = %s", got)
	}
	r := entries[3]
	if r.Type != TypeConf || r.Title != "Rescue shell" || r.Linux != "/rescue/vmlinuz" || r.Options != "init=/bin/sh quiet" || r.Path != "loader/entries/rescue.conf" {
		t.Errorf("rescue = %+v", r)
	}
	o := entries[0]
	if o.Title != "Other" || o.Version != "9" || o.SortKey != "aaa" || o.MachineID != "0123" || o.EFI != "/other.efi" || o.Assessment != Indeterminate {
		t.Errorf("other = %+v", o)
	}
	if got := mark(entries, func(e *Entry) bool { return e.Default }); got != "other+2-1.conf" {
		t.Errorf("default without variables = %q", got)
	}
	if got := mark(entries, func(e *Entry) bool { return e.Selected }); got != "" {
		t.Errorf("selected without variables = %q", got)
	}

	def := func(loaderConf string, vars map[string]string) string {
		t.Helper()
		if loaderConf != "" {
			writeFile(t, esp, LoaderConf, []byte(loaderConf))
		} else {
			os.Remove(filepath.Join(esp, LoaderConf))
		}
		entries, err := List(esp, newStore(t, vars))
		if err != nil {
			t.Fatal(err)
		}
		return mark(entries, func(e *Entry) bool { return e.Default }) + "|" + mark(entries, func(e *Entry) bool { return e.OneShot })
	}
	for _, tt := range []struct {
		conf string
		vars map[string]string
		want string
	}{
		{"", map[string]string{efivar.LoaderEntryDefault: "imago-ref_*"}, "imago-ref_2+3.efi|"},
		{"", map[string]string{efivar.LoaderEntryDefault: "IMAGO-REF_1.EFI"}, "imago-ref_1.efi|"},
		// v252 matches the ID with its counter: the counter-free name does
		// not match a counted file, and the next rule applies.
		{"", map[string]string{efivar.LoaderEntryDefault: "imago-ref_2.efi"}, "other+2-1.conf|"},
		{"timeout 3\ndefault rescue.conf\n", nil, "rescue.conf|"},
		{"default rescue.conf\n", map[string]string{efivar.LoaderEntryDefault: "imago-ref_1*"}, "imago-ref_1.efi|"},
		{"default @saved\n", map[string]string{efivar.LoaderEntryLastBooted: "imago-ref_1.efi"}, "imago-ref_1.efi|"},
		{"", map[string]string{efivar.LoaderEntryDefault: "@saved", efivar.LoaderEntryLastBooted: "rescue.conf"}, "rescue.conf|"},
		{"default @bogus\n", nil, "other+2-1.conf|"},
		{"default [\n", nil, "other+2-1.conf|"},
		{"", map[string]string{efivar.LoaderEntryOneShot: "rescue.conf"}, "other+2-1.conf|rescue.conf"},
	} {
		if got := def(tt.conf, tt.vars); got != tt.want {
			t.Errorf("loader.conf %q, variables %v: default|oneshot = %q, want %q", tt.conf, tt.vars, got, tt.want)
		}
	}
}

// TestListFoldsCase finds entries in directories spelt in another case,
// as a FAT file system would serve them.
func TestListFoldsCase(t *testing.T) {
	esp := t.TempDir()
	writeFile(t, esp, "efi/linux/imago-ref_1.efi", makeUKI(t, refOSRelease("1"), ""))
	writeFile(t, esp, "Loader/Entries/x.conf", []byte("linux /vmlinuz\n"))
	entries, err := List(esp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(entries); got != "imago-ref_1.efi x.conf" {
		t.Errorf("order = %s", got)
	}
	if entries[1].Title != "x.conf" {
		t.Errorf("title of an entry without one = %q", entries[1].Title)
	}
}

func TestListErrors(t *testing.T) {
	if _, err := List(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("missing ESP: no error")
	}
	f := filepath.Join(t.TempDir(), "file")
	writeFile(t, filepath.Dir(f), "file", nil)
	if _, err := List(f, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as ESP: %v", err)
	}
	// An empty ESP has no entries and no error.
	entries, err := List(t.TempDir(), nil)
	if err != nil || len(entries) != 0 {
		t.Errorf("empty ESP: %v, %v", entries, err)
	}
}

func TestParseLoaderOSRelease(t *testing.T) {
	kv := parseLoaderOSRelease([]byte("  # c\r\nA=1\rB=\"two words\"\nC='single'\nA=3\n D = \"x\" \nE=a=b\nnovalue\n\x00F=after-nul"))
	want := map[string]string{"A": "3", "B": "two words", "C": "'single'", "D": "x", "E": "a=b"}
	if len(kv) != len(want) {
		t.Errorf("got %v", kv)
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
}
