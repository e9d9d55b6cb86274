package debian

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// wantStatusManifest is what `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'`
// prints for testdata/status (an excerpt of a bookworm tree's database)
// for the packages whose db:Status-Status is "installed".
const wantStatusManifest = "base-files\t12.4+deb12u15\tamd64\n" +
	"libc6\t2.36-9+deb12u14\tamd64\n" +
	"libtss2-esys-3.0.2-0\t3.2.1-3\tamd64\n" +
	"linux-image-6.1.0-56-amd64\t6.1.192-2\tamd64\n" +
	"systemd\t252.39-1~deb12u2\tamd64\n"

func TestParseStatus(t *testing.T) {
	f, err := os.Open("testdata/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseStatus(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.String(); got != wantStatusManifest {
		t.Fatalf("manifest:\n%s\nwant:\n%s", got, wantStatusManifest)
	}
	p, ok := m.Lookup("systemd")
	if !ok || p.Version != "252.39-1~deb12u2" || p.Architecture != "amd64" {
		t.Fatalf("Lookup(systemd) = %+v, %v", p, ok)
	}
	if _, ok := m.Lookup("ifupdown"); ok {
		t.Fatal("a package with only config files left counts as installed")
	}
	if _, ok := m.Lookup("zzz"); ok {
		t.Fatal("Lookup of a missing package succeeded")
	}
}

func TestParseStatusErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no colon":           "Package foo\n",
		"continuation first": " foo\n",
		"status two words":   "Package: a\nStatus: install ok\nVersion: 1\nArchitecture: all\n",
		"no version":         "Package: a\nStatus: install ok installed\nArchitecture: all\n",
		"space in version":   "Package: a\nStatus: install ok installed\nVersion: 1 2\nArchitecture: all\n",
		"repeated field":     "Package: a\nPackage: b\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n",
		"listed twice": "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n" +
			"Package: a\nStatus: install ok installed\nVersion: 2\nArchitecture: all\n",
	} {
		if _, err := ParseStatus(strings.NewReader(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: err = %v, want ErrSyntax", name, err)
		}
	}
}

func TestParseStatusDetails(t *testing.T) {
	// Field names are case-insensitive, comments and multi-line fields are
	// skipped, several blank lines separate paragraphs, the last paragraph
	// needs no final newline, and the same package of two architectures is
	// listed twice.
	in := "# comment\npackage: b\nSTATUS: hold ok installed\nDescription: x\n more\n .\nVersion: 1:2.0~rc1\narchitecture: i386\n\n\n" +
		"Package: b\nStatus: install ok installed\nVersion: 1:2.0~rc1\nArchitecture: amd64\n\n" +
		"Package: a\nStatus: install ok half-installed\nVersion: 1\nArchitecture: all\n\n" +
		"Package: c\nStatus: install ok installed\nVersion: 3\nArchitecture: all"
	m, err := ParseStatus(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "b\t1:2.0~rc1\tamd64\nb\t1:2.0~rc1\ti386\nc\t3\tall\n"
	if got := m.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m, err := ParseManifest(strings.NewReader(wantStatusManifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 5 || m.String() != wantStatusManifest {
		t.Fatalf("round trip: %q", m.String())
	}
	var buf bytes.Buffer
	if n, err := m.WriteTo(&buf); err != nil || n != int64(len(wantStatusManifest)) || buf.String() != wantStatusManifest {
		t.Fatalf("WriteTo = %d, %v: %q", n, err, buf.String())
	}
	for name, in := range map[string]string{
		"two fields": "a\t1\n",
		"unsorted":   "b\t1\tall\na\t1\tall\n",
		"duplicate":  "a\t1\tall\na\t2\tall\n",
		"empty name": "\t1\tall\n",
	} {
		if _, err := ParseManifest(strings.NewReader(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: err = %v, want ErrSyntax", name, err)
		}
	}
	if m, err := ParseManifest(strings.NewReader("")); err != nil || len(m) != 0 {
		t.Fatalf("empty manifest: %v, %v", m, err)
	}
	if m, err := ParseManifest(strings.NewReader("a\t1\tall")); err != nil || len(m) != 1 {
		t.Fatalf("no final newline: %v, %v", m, err)
	}
}

// TestInteropDpkgQuery compares ParseStatus with dpkg-query on the same
// database.
func TestInteropDpkgQuery(t *testing.T) {
	dpkgQuery := testutil.RequireTool(t, "dpkg-query", "dpkg")
	admin := t.TempDir()
	status, err := os.ReadFile("testdata/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"info", "updates"} {
		if err := os.Mkdir(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(admin, "status"), status, 0o644); err != nil {
		t.Fatal(err)
	}
	out := testutil.Run(t, dpkgQuery, "--admindir="+admin, "-W", "-f", `${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\n`)
	m, err := ParseStatus(bytes.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), installedLines(string(out)); got != want {
		t.Fatalf("ParseStatus:\n%s\ndpkg-query:\n%s", got, want)
	}
}

// installedLines keeps the lines of dpkg-query output whose first column
// is "installed", without that column, sorted as a Manifest is.
func installedLines(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "installed\t"); ok {
			lines = append(lines, rest+"\n")
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "")
}

func FuzzParseStatus(f *testing.F) {
	if b, err := os.ReadFile("testdata/status"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"))
	f.Add([]byte("Package: a\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n\nPackage: b\n"))
	f.Add([]byte(" x\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseStatus(bytes.NewReader(in))
		if err != nil {
			return
		}
		for i, p := range m {
			if checkPackage(p) != nil {
				t.Fatalf("invalid package %+v", p)
			}
			if i > 0 && !less(m[i-1], p) {
				t.Fatalf("not sorted or not unique at %d", i)
			}
		}
		again, err := ParseManifest(strings.NewReader(m.String()))
		if err != nil {
			t.Fatalf("manifest of a parsed status does not parse: %v", err)
		}
		if again.String() != m.String() {
			t.Fatalf("round trip changed the manifest")
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(wantStatusManifest))
	f.Add([]byte("a\t1\tall"))
	f.Add([]byte("b\t1\tall\na\t1\tall\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseManifest(bytes.NewReader(in))
		if err != nil {
			return
		}
		again, err := ParseManifest(strings.NewReader(m.String()))
		if err != nil || again.String() != m.String() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
