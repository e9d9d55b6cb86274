package sha256sums

import (
	"bytes"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func seedManifests(f *testing.F) {
	ha, hb := hexOf("a"), hexOf("b")
	f.Add([]byte(coreutilsOutput))
	for _, s := range []string{
		ha + "  a\n" + hb + " *b\n",
		"# c\n\n" + strings.ToUpper(ha) + "\t a\r\n",
		"\\" + ha + "  x\\\\y\\nz\\r\n",
		"\\" + ha + "  bad\\q\n",
		ha + "  a\n" + hb + "  a\n",
		ha + "  a\n" + ha + " *a\n",
		"SHA256 (a) = " + ha + "\n",
		ha + "  dir/a\n" + ha + "  ..\n",
		ha + "  a",
		ha + "  back\\slash\n",
		"",
	} {
		f.Add([]byte(s))
	}
}

func sortedEntries(m *Manifest) []Entry {
	e := m.Entries()
	sort.SliceStable(e, func(i, j int) bool { return e[i].Name < e[j].Name })
	return e
}

// FuzzParse checks that Parse never panics, that what it reads survives
// Write and a second Parse (Parse(Write(Parse(x))) == Parse(x), as a set),
// that Write is stable, that a manifest systemd-sysupdate accepts reads the
// same with Parse, and that WriteSysupdate output reads the same under both.
func FuzzParse(f *testing.F) {
	seedManifests(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		strict, strictErr := ParseSysupdateBytes(data)
		m, err := ParseBytes(data)
		if strictErr == nil {
			if err != nil {
				t.Fatalf("sysupdate rules accept %q but Parse refuses: %v", data, err)
			}
			if !reflect.DeepEqual(strict.Entries(), m.Entries()) {
				t.Fatalf("sysupdate and GNU readings differ: %q vs %q", strict.Entries(), m.Entries())
			}
		}
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := Write(&out, m.Entries()); err != nil {
			t.Fatalf("cannot write what we read: %v", err)
		}
		again, err := ParseBytes(out.Bytes())
		if err != nil {
			t.Fatalf("cannot read our own output %q: %v", out.Bytes(), err)
		}
		if !reflect.DeepEqual(sortedEntries(m), again.Entries()) {
			t.Fatalf("round trip changed entries:\n%q\n%q", sortedEntries(m), again.Entries())
		}
		var out2 bytes.Buffer
		if _, err := again.WriteTo(&out2); err != nil || !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatalf("Write not stable: %q then %q (%v)", out.Bytes(), out2.Bytes(), err)
		}
		// With names systemd-sysupdate takes, WriteSysupdate's output reads
		// the same under both rule sets.
		var sys bytes.Buffer
		if err := WriteSysupdate(&sys, m.Entries()); err == nil {
			s, err := ParseSysupdateBytes(sys.Bytes())
			if err != nil || !reflect.DeepEqual(s.Entries(), again.Entries()) {
				t.Fatalf("sysupdate rules refuse WriteSysupdate output %q: %v", sys.Bytes(), err)
			}
			g, err := ParseBytes(sys.Bytes())
			if err != nil || !reflect.DeepEqual(g.Entries(), again.Entries()) {
				t.Fatalf("GNU rules misread WriteSysupdate output %q: %v", sys.Bytes(), err)
			}
		}
	})
}

// FuzzParseSysupdate checks that the systemd-sysupdate reader never panics
// and that what it accepts survives WriteSysupdate unchanged.
func FuzzParseSysupdate(f *testing.F) {
	seedManifests(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseSysupdateBytes(data)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteSysupdate(&out, m.Entries()); err != nil {
			t.Fatal(err)
		}
		again, err := ParseSysupdateBytes(out.Bytes())
		if err != nil {
			t.Fatalf("refuses our output %q: %v", out.Bytes(), err)
		}
		if !reflect.DeepEqual(sortedEntries(m), again.Entries()) {
			t.Fatalf("round trip changed entries:\n%q\n%q", sortedEntries(m), again.Entries())
		}
	})
}
