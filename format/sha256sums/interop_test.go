package sha256sums

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// trickyNames are file names that need escaping or careful splitting.
var trickyNames = []string{
	"plain.raw", "sp ace", " lead", "trail ", "  two", "*star", "back\\slash", "\\lead", "end\\",
	"new\nline", "\nlead", "cr\rx", "crlf\r\n", "tab\tx", "ünï☃", "#hash", "a b  c", "\\n literal",
	"x*", ".dot",
}

func writeTrickyTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, name := range trickyNames {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte{byte('a' + i)}, i*37), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestInteropCoreutilsChecksOurManifest has `sha256sum --strict -c` verify a
// manifest we wrote, and checks that it is byte for byte what sha256sum
// prints for the same files in the same order.
func TestInteropCoreutilsChecksOurManifest(t *testing.T) {
	testutil.RequireTool(t, "sha256sum", "coreutils")
	dir := writeTrickyTree(t)
	entries, err := SumDir(dir, trickyNames)
	if err != nil {
		t.Fatal(err)
	}
	var ours bytes.Buffer
	if err := Write(&ours, entries); err != nil {
		t.Fatal(err)
	}

	sorted := append([]string(nil), trickyNames...)
	sort.Strings(sorted)
	theirs := testutil.Run(t, "env", append([]string{"-C", dir, "sha256sum", "--"}, sorted...)...)
	if !bytes.Equal(ours.Bytes(), theirs) {
		t.Errorf("our manifest differs from sha256sum's:\nours   %q\ntheirs %q", ours.Bytes(), theirs)
	}

	manifest := filepath.Join(t.TempDir(), "SHA256SUMS")
	if err := os.WriteFile(manifest, ours.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := testutil.RunErr("env", "-C", dir, "sha256sum", "--strict", "-c", manifest)
	if err != nil {
		t.Fatalf("sha256sum -c refused our manifest: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), ": OK\n"); n != len(trickyNames) {
		t.Errorf("sha256sum -c confirmed %d files, want %d:\n%s", n, len(trickyNames), out)
	}

	// Binary markers are read too.
	for i := range entries {
		entries[i].Binary = i%2 == 0
	}
	var bin bytes.Buffer
	if err := Write(&bin, entries); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, bin.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testutil.RunErr("env", "-C", dir, "sha256sum", "--strict", "-c", manifest); err != nil {
		t.Fatalf("sha256sum -c refused our binary-mode manifest: %v\n%s", err, out)
	}

	// The check can fail: a changed file is caught by both.
	victim := trickyNames[9] // "new\nline"
	if err := os.WriteFile(filepath.Join(dir, victim), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := testutil.RunErr("env", "-C", dir, "sha256sum", "--strict", "-c", manifest); err == nil {
		t.Error("sha256sum -c accepted a changed file")
	}
	m, err := ParseBytes(bin.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	bad, err := VerifyTree(dir, m)
	if err != nil || len(bad) != 1 || bad[0].Name != victim {
		t.Errorf("VerifyTree = %v, %v; want only %q", bad, err, victim)
	}
}

// TestInteropWeParseCoreutilsOutput parses what sha256sum prints, in text
// and binary mode, and compares every name, digest and marker with our own
// hashing.
func TestInteropWeParseCoreutilsOutput(t *testing.T) {
	testutil.RequireTool(t, "sha256sum", "coreutils")
	dir := writeTrickyTree(t)
	want, err := SumDir(dir, trickyNames)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"--text", "--binary"} {
		out := testutil.Run(t, "env", append([]string{"-C", dir, "sha256sum", mode, "--"}, trickyNames...)...)
		m, err := ParseBytes(out)
		if err != nil {
			t.Fatalf("%s: %v\n%q", mode, err, out)
		}
		got := m.Entries()
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries, want %d", mode, len(got), len(want))
		}
		for i := range want {
			w := want[i]
			w.Binary = mode == "--binary"
			if !reflect.DeepEqual(got[i], w) {
				t.Errorf("%s: entry %d = %q, want %q", mode, i, got[i], w)
			}
		}
		if bad, err := VerifyTree(dir, m); err != nil || len(bad) != 0 {
			t.Errorf("%s: VerifyTree = %v, %v", mode, bad, err)
		}
	}
}

// TestInteropCoreutilsChecksSysupdateManifest has `sha256sum --strict -c`
// verify WriteSysupdate's output, whose names with backslashes are not
// escaped.
func TestInteropCoreutilsChecksSysupdateManifest(t *testing.T) {
	testutil.RequireTool(t, "sha256sum", "coreutils")
	dir := writeTrickyTree(t)
	var names []string
	for _, n := range trickyNames {
		if CheckSysupdateName(n) == nil {
			names = append(names, n)
		}
	}
	if len(names) < 10 || !strings.Contains(strings.Join(names, ""), `\`) {
		t.Fatalf("too few sysupdate-safe names with backslashes: %q", names)
	}
	entries, err := SumDir(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSysupdate(&b, entries); err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b.Bytes(), []byte(`\`)) || bytes.Contains(b.Bytes(), []byte("\n\\")) {
		t.Fatalf("WriteSysupdate escaped a line: %q", b.Bytes())
	}
	manifest := filepath.Join(t.TempDir(), "SHA256SUMS")
	if err := os.WriteFile(manifest, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := testutil.RunErr("env", "-C", dir, "sha256sum", "--strict", "-c", manifest)
	if err != nil {
		t.Fatalf("sha256sum -c refused WriteSysupdate output: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), ": OK\n"); n != len(names) {
		t.Errorf("sha256sum -c confirmed %d files, want %d:\n%s", n, len(names), out)
	}
}
