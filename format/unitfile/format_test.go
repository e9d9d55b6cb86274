package unitfile

import (
	"bytes"
	"strings"
	"testing"
)

func TestFormatCanonical(t *testing.T) {
	f := mustParse(t, "# comment\n [Partition] \nType = root\nLabel=a\\\n b\n\n[Empty]\n[Partition]\nCopyFiles=\n")
	got, err := f.Format()
	if err != nil {
		t.Fatal(err)
	}
	want := "[Partition]\nType=root\nLabel=a  b\n\n[Empty]\n\n[Partition]\nCopyFiles=\n"
	if string(got) != want {
		t.Fatalf("Format:\n got %q\nwant %q", got, want)
	}
	var buf bytes.Buffer
	n, err := f.WriteTo(&buf)
	if err != nil || n != int64(len(want)) || buf.String() != want {
		t.Fatalf("WriteTo = %d, %v, %q", n, err, buf.String())
	}
	var empty File
	if out, err := empty.Format(); err != nil || len(out) != 0 {
		t.Fatalf("empty file: %q %v", out, err)
	}
}

// The corner cases of the syntax that Format has to write with care.
func TestFormatCornerCases(t *testing.T) {
	cases := []struct {
		name    string
		key     string
		value   string
		written string
	}{
		{"trailing backslash gets a space", "K", `a\`, "K=a\\ \n"},
		{"escaped trailing backslash needs none", "K", `a\\`, "K=a\\\\\n"},
		{"empty value", "K", "", "K=\n"},
		{"key with trailing backslash", `K\`, "", "K\\=\n"},
		{"key starting with BOM is indented", "\ufeffK", "v", " \ufeffK=v\n"},
		{"key starting with # goes behind a BOM", "#K", "v", "\ufeff#K=v\n"},
		{"key starting with ; goes behind a BOM", ";K", `v\`, "\ufeff;K=v\\ \n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f File
			f.Add("A", c.key, c.value)
			out, err := f.Format()
			if err != nil {
				t.Fatal(err)
			}
			if want := "[A]\n" + c.written; string(out) != want {
				t.Fatalf("got %q want %q", out, want)
			}
			back := mustParse(t, string(out))
			if e, ok := back.Get("A", c.key); !ok || e.Value != c.value || len(back.Warnings) != 0 {
				t.Fatalf("re-parse: %s", dump(back))
			}
		})
	}
}

func TestFormatRefuses(t *testing.T) {
	cases := []struct {
		name                string
		section, key, value string
	}{
		{"empty key", "A", "", "v"},
		{"key with leading space", "A", " K", "v"},
		{"key with trailing tab", "A", "K\t", "v"},
		{"key with equals", "A", "K=L", "v"},
		{"key with newline", "A", "K\nL", "v"},
		{"key with NUL", "A", "K\x00", "v"},
		{"key starting with bracket", "A", "[K", "v"},
		{"value with leading space", "A", "K", " v"},
		{"value with trailing newline", "A", "K", "v\n"},
		{"value with CR", "A", "K", "a\rb"},
		{"value with NUL", "A", "K", "a\x00b"},
		{"invalid UTF-8 value", "A", "K", "\xff"},
		{"noncharacter in key", "A", "K\ufdd0", "v"},
		{"section with quote", "A\"", "K", "v"},
		{"section with newline", "A\nB", "K", "v"},
		{"section with backslash", `A\`, "K", "v"},
		{"section with invalid UTF-8", "\xff", "K", "v"},
		{"value too long", "A", "K", strings.Repeat("x", LongLineMax)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f File
			f.Add(c.section, c.key, c.value)
			if out, err := f.Format(); err == nil {
				t.Fatalf("Format accepted %q", out)
			}
			if _, err := f.WriteTo(&bytes.Buffer{}); err == nil {
				t.Fatal("WriteTo accepted it")
			}
		})
	}
	// Only one '#' key per file: the byte order mark works once.
	var f File
	f.Add("A", "#a", "1")
	f.Add("A", ";b", "2")
	if _, err := f.Format(); err == nil {
		t.Fatal("two comment-like keys accepted")
	}
}

// sameContent compares sections and entries, ignoring positions.
func sameContent(a, b *File) bool {
	if len(a.Sections) != len(b.Sections) {
		return false
	}
	for i := range a.Sections {
		sa, sb := a.Sections[i], b.Sections[i]
		if sa.Name != sb.Name || len(sa.Entries) != len(sb.Entries) {
			return false
		}
		for j := range sa.Entries {
			ea, eb := sa.Entries[j], sb.Entries[j]
			if ea.Section != eb.Section || ea.Key != eb.Key || ea.Value != eb.Value {
				return false
			}
		}
	}
	return true
}

var fuzzSeeds = []string{
	"",
	"[A]\nK=V\n",
	"[Partition]\nType=root\nLabel=root-%A\nSizeMinBytes=1G\nCopyFiles=/usr:/usr\nCopyFiles=\n",
	"# c\n; c\n[A]\nK = v # x\n\n[B]\n[A]\nK=\n",
	"[A]\nK=a\\\n# c\nb\\\nc\n",
	"[A]\nK=a\\",
	"[A]\nK=a\\\\\nL=b\\ \n",
	"\xef\xbb\xbf[A]\n\xef\xbb\xbfK=V\n \xef\xbb\xbfL=W\n",
	"[A]\n\xef\xbb\xbf#K=V\n",
	"[A]\r\nK=V\r\n\rL=W\x00M=X\n\r\x00",
	"[A]\nfoo\n=bar\n",
	"garbage\n[A]\nK=V\n",
	"[ A ]\n[]\n[a]b]\nK=V\n",
	"[A\\\n]\nKe\\\ny=v\n",
	"[A]\nK=\xef\xb7\x90\n",
	"[A\"]\n",
	"[Transfer]\nProtectVersion=%A \"a b\" 'c d' e\\x20f\n",
}

func TestRoundTripSeeds(t *testing.T) {
	for _, s := range fuzzSeeds {
		checkRoundTrip(t, []byte(s))
	}
}

func checkRoundTrip(t *testing.T, data []byte) {
	t.Helper()
	f, err := Parse("fuzz.conf", bytes.NewReader(data))
	if err != nil {
		return
	}
	out, err := f.Format()
	if err != nil {
		t.Fatalf("Format of parsed %q: %v", data, err)
	}
	g, err := Parse("fuzz.conf", bytes.NewReader(out))
	if err != nil {
		t.Fatalf("re-parse of %q (from %q): %v", out, data, err)
	}
	if !sameContent(f, g) || len(g.Warnings) != 0 {
		t.Fatalf("round trip changed content:\n in %q\nout %q\n%s\nvs\n%s", data, out, dump(f), dump(g))
	}
	again, err := g.Format()
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("Format is not stable: %q vs %q (%v)", out, again, err)
	}
}

// FuzzParse checks that Parse never panics and that Format writes every file
// Parse accepts so that parsing it again yields the same sections and entries
// (and that Format is a fixed point).
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data)
	})
}

func BenchmarkParse(b *testing.B) {
	var text strings.Builder
	for i := 0; i < 50; i++ {
		text.WriteString("# a definition\n[Partition]\nType=root\nLabel=root-%A\nSizeMinBytes=1G\nCopyFiles=/usr:/usr \\\n  /etc:/etc\n\n")
	}
	data := []byte(text.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("bench.conf", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
