package unitfile

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// dump renders a File compactly: sections as "[Name]@line", entries as
// "Key=Value@line", warnings as "!line:message".
func dump(f *File) string {
	var b strings.Builder
	for _, s := range f.Sections {
		fmt.Fprintf(&b, "[%s]@%d\n", s.Name, s.Line)
		for _, e := range s.Entries {
			if e.Section != s.Name {
				fmt.Fprintf(&b, "BAD SECTION %q\n", e.Section)
			}
			fmt.Fprintf(&b, "%s=%s@%d\n", e.Key, e.Value, e.Line)
		}
	}
	for _, w := range f.Warnings {
		fmt.Fprintf(&b, "!%d:%v\n", w.Line, w.Err)
	}
	return b.String()
}

func mustParse(t *testing.T, text string) *File {
	t.Helper()
	f, err := Parse("test.conf", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	return f
}

// Each case states what systemd v252's config_parse() makes of the input.
func TestParseLines(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"basic", "[A]\nK=V\n", "[A]@1\nK=V@2\n"},
		{"no final newline", "[A]\nK=V", "[A]@1\nK=V@2\n"},
		{"empty file", "", ""},
		{"whitespace stripped around line, key and value",
			"  [A]\t\n \t Some Key \t=  some  value \t\n", "[A]@1\nSome Key=some  value@2\n"},
		{"header name keeps inner and edge spaces", "[ A B ]\n", "[ A B ]@1\n"},
		{"empty section name is allowed", "[]\nK=V\n", "[]@1\nK=V@2\n"},
		{"header with bracket inside", "[a]b]\n", "[a]b]@1\n"},
		{"comments at line start only",
			"# c\n; c\n   # indented\n\t; tab\n[A]\nK=V # not a comment\nL=;x\n",
			"[A]@5\nK=V # not a comment@6\nL=;x@7\n"},
		{"empty value", "[A]\nK=\n", "[A]@1\nK=@2\n"},
		{"equals in value", "[A]\nK=a=b\n", "[A]@1\nK=a=b@2\n"},
		{"quotes are not interpreted", "[A]\nK=\"a b\" 'c'\n", "[A]@1\nK=\"a b\" 'c'@2\n"},
		{"keys are case sensitive and kept", "[A]\nk=1\nK=2\n", "[A]@1\nk=1@2\nK=2@3\n"},
		{"tabs inside value kept", "[A]\nK=\ta\tb\t\n", "[A]@1\nK=a\tb@2\n"},
		{"blank and whitespace-only lines", "\n  \n\t\n[A]\n\nK=V\n", "[A]@4\nK=V@6\n"},
		{"repeated sections stay separate", "[A]\nK=1\n[B]\nK=2\n[A]\nK=3\n",
			"[A]@1\nK=1@2\n[B]@3\nK=2@4\n[A]@5\nK=3@6\n"},

		// Continuation: a trailing unescaped backslash becomes a space and
		// the next line is appended; the entry gets the last line's number.
		{"continuation", "[A]\nK=a\\\nb\n", "[A]@1\nK=a b@3\n"},
		{"continuation keeps leading space of next line", "[A]\nK=a\\\n  b\n", "[A]@1\nK=a   b@3\n"},
		{"comment inside continuation is skipped", "[A]\nK=a \\\n# c\n  ; d\nb\n", "[A]@1\nK=a  b@5\n"},
		{"empty line ends continuation", "[A]\nK=a\\\n\nL=b\n", "[A]@1\nK=a@3\nL=b@4\n"},
		{"whitespace line ends continuation", "[A]\nK=a\\\n \t\nL=b\n", "[A]@1\nK=a@3\nL=b@4\n"},
		{"three lines", "[A]\nK=a\\\nb\\\nc\n", "[A]@1\nK=a b c@4\n"},
		{"escaped backslash does not continue", "[A]\nK=a\\\\\nL=b\n", "[A]@1\nK=a\\\\@2\nL=b@3\n"},
		{"odd backslash run continues", "[A]\nK=a\\\\\\\nb\n", "[A]@1\nK=a\\\\ b@3\n"},
		{"backslash then space does not continue", "[A]\nK=a\\ \nL=b\n", "[A]@1\nK=a\\@2\nL=b@3\n"},
		{"continuation at end of file counts one more line", "[A]\nK=a\\", "[A]@1\nK=a@3\n"},
		{"continuation at end of file after newline", "[A]\nK=a\\\n", "[A]@1\nK=a@3\n"},
		{"continuation inside the key", "[A]\nKe\\\ny=v\n", "[A]@1\nKe y=v@3\n"},
		{"continuation of a header", "[A\\\n]\n", "[A ]@2\n"},
		{"header text on continuation is part of the value", "[A]\nK=a\\\n[B]\n", "[A]@1\nK=a [B]@3\n"},
		{"escape state counts backslashes in the key", "[A]\nK\\=x\\\ny\n", "[A]@1\nK\\=x y@3\n"},

		// Line terminators: \n, \r, NUL, and combinations using each at
		// most once with NUL last.
		{"CRLF", "[A]\r\nK=V\r\nL=W\r\n", "[A]@1\nK=V@2\nL=W@3\n"},
		{"CR alone", "[A]\rK=V\rL=W", "[A]@1\nK=V@2\nL=W@3\n"},
		{"LF CR is one terminator", "[A]\n\rK=V\n", "[A]@1\nK=V@2\n"},
		{"LF CR LF is two", "[A]\n\r\nK=V\n", "[A]@1\nK=V@3\n"},
		{"CR LF CR is two", "[A]\r\n\rK=V\n", "[A]@1\nK=V@3\n"},
		{"LF LF is two", "[A]\n\nK=V\n", "[A]@1\nK=V@3\n"},
		{"NUL ends a line", "[A]\nK=V\x00L=W\n", "[A]@1\nK=V@2\nL=W@3\n"},
		{"LF NUL is one", "[A]\n\x00K=V\n", "[A]@1\nK=V@2\n"},
		{"CR LF NUL is one", "[A]\r\n\x00K=V\n", "[A]@1\nK=V@2\n"},
		{"NUL LF is two", "[A]\x00\nK=V\n", "[A]@1\nK=V@3\n"},

		// Byte order mark: skipped at the start of a line until one has
		// been skipped; comments are recognised before it is skipped.
		{"BOM at start", "\xef\xbb\xbf[A]\nK=V\n", "[A]@1\nK=V@2\n"},
		{"only the first BOM is skipped", "\xef\xbb\xbf[A]\n\xef\xbb\xbfK=V\n", "[A]@1\n\ufeffK=V@2\n"},
		{"BOM on a later line is skipped if first", "[A]\n\xef\xbb\xbfK=V\n\xef\xbb\xbfL=W\n", "[A]@1\nK=V@2\n\ufeffL=W@3\n"},
		{"indented BOM is not skipped and does not count", "[A]\n \xef\xbb\xbfK=V\n\xef\xbb\xbfL=W\n", "[A]@1\n\ufeffK=V@2\nL=W@3\n"},
		{"BOM hides a comment", "[A]\n\xef\xbb\xbf#K=V\n", "[A]@1\n#K=V@2\n"},
		{"BOM inside continuation is skipped", "[A]\nK=a\\\n\xef\xbb\xbfb\n", "[A]@1\nK=a b@3\n"},

		// Lines systemd ignores with a warning.
		{"missing equals", "[A]\nfoo\nK=V\n", "[A]@1\nK=V@3\n!2:missing '=', line ignored\n"},
		{"missing key", "[A]\n=V\n  = W\n", "[A]@1\n!2:missing key name before '=', line ignored\n!3:missing key name before '=', line ignored\n"},
		{"text before first section", "garbage\n[A]\n", "[A]@2\n!1:assignment outside of a section\n"},
		{"BOM then comment before first section", "\xef\xbb\xbf# hello\n[A]\n", "[A]@2\n!1:assignment outside of a section\n"},
		{"invalid UTF-8 in a comment is fine", "# \xff\xfe\n[A]\n", "[A]@2\n"},
		{"valid multibyte text", "[Ä]\nSchlüssel=Wert ✓ 🙂\n", "[Ä]@1\nSchlüssel=Wert ✓ 🙂@2\n"},
		{"U+FFFD is valid", "[A]\nK=\xef\xbf\xbd\n", "[A]@1\nK=\ufffd@2\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := dump(mustParse(t, c.in)); got != c.want {
				t.Errorf("Parse(%q):\n got %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		err      error
		line     int
	}{
		{"assignment before section", "# c\nK=V\n[A]\n", ErrOutsideSection, 2},
		{"unterminated header", "[A]\n[B\n", ErrSectionHeader, 2},
		{"header with trailing text", "[A]x\n", ErrSectionHeader, 1},
		{"lone bracket", "[\n", ErrSectionHeader, 1},
		{"quote in header", "[A\"]\n", ErrSectionHeader, 1},
		{"apostrophe in header", "[A']\n", ErrSectionHeader, 1},
		{"backslash in header", "[A\\]\n", ErrSectionHeader, 1},
		{"tab in header", "[A\tB]\n", ErrSectionHeader, 1},
		{"DEL in header", "[A\x7f]\n", ErrSectionHeader, 1},
		{"invalid UTF-8 byte", "[A]\nK=\xff\n", ErrInvalidUTF8, 2},
		{"truncated sequence", "[A]\nK=\xc3\n", ErrInvalidUTF8, 2},
		{"overlong encoding", "[A]\nK=\xc0\xaf\n", ErrInvalidUTF8, 2},
		{"surrogate", "[A]\nK=\xed\xa0\x80\n", ErrInvalidUTF8, 2},
		{"noncharacter U+FDD0", "[A]\nK=\xef\xb7\x90\n", ErrInvalidUTF8, 2},
		{"noncharacter U+FDEF", "[A]\nK=\xef\xb7\xaf\n", ErrInvalidUTF8, 2},
		{"noncharacter U+FFFE", "[A]\nK=\xef\xbf\xbe\n", ErrInvalidUTF8, 2},
		{"noncharacter U+1FFFF", "[A]\nK=\xf0\x9f\xbf\xbf\n", ErrInvalidUTF8, 2},
		{"beyond U+10FFFF", "[A]\nK=\xf4\x90\x80\x80\n", ErrInvalidUTF8, 2},
		{"invalid UTF-8 in an otherwise ignored line", "[A]\n\xff\n", ErrInvalidUTF8, 2},
		{"invalid UTF-8 in header", "[\xff]\n", ErrInvalidUTF8, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.conf", strings.NewReader(c.in))
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, c.err) || se.Line != c.line || se.File != "test.conf" {
				t.Fatalf("Parse(%q) = %v, want %v at line %d", c.in, err, c.err, c.line)
			}
		})
	}
}

func TestParseNoncharactersNearTheEdgesAreValid(t *testing.T) {
	// U+FDCF and U+FDF0 border the refused block; U+FFFD and U+10FFFD are
	// ordinary.
	for _, s := range []string{"\ufdcf", "\ufdf0", "\ufffd", "\U0010fffd"} {
		if !validUTF8(s) {
			t.Errorf("validUTF8(%q) = false", s)
		}
	}
}

func TestErrorText(t *testing.T) {
	_, err := Parse("repart.d/10-usr.conf", strings.NewReader("# x\n\nType=usr\n"))
	if err == nil || err.Error() != "repart.d/10-usr.conf:3: assignment outside of a section" {
		t.Fatalf("got %v", err)
	}
	f := mustParse(t, "[Partition]\nFoo=bar\n")
	e := f.Sections[0].Entries[0]
	e.File = "repart.d/10-usr.conf"
	if got := e.Errorf("unknown key").Error(); got != "repart.d/10-usr.conf:2: Foo=: unknown key" {
		t.Errorf("Errorf: %q", got)
	}
	if got := e.Position(); got != "repart.d/10-usr.conf:2" {
		t.Errorf("Position: %q", got)
	}
	inner := e.Errorf("bad size: %w", ErrRange)
	if !errors.Is(inner, ErrRange) {
		t.Errorf("Errorf does not wrap: %v", inner)
	}
}

func TestLineLength(t *testing.T) {
	// The longest accepted physical line has LongLineMax-1 bytes, with or
	// without a terminator after it.
	long := "K=" + strings.Repeat("x", LongLineMax-3)
	for _, end := range []string{"", "\n", "\r\n"} {
		f := mustParse(t, "[A]\n"+long+end)
		if e, _ := f.Get("A", "K"); len(e.Value) != LongLineMax-3 {
			t.Fatalf("value length %d", len(e.Value))
		}
		_, err := Parse("t", strings.NewReader("[A]\n"+long+"x"+end))
		var se *SyntaxError
		if !errors.Is(err, ErrLineTooLong) || !errors.As(err, &se) || se.Line != 2 {
			t.Fatalf("one byte more: %v", err)
		}
	}
	// Lines joined by continuation may reach LongLineMax bytes in total.
	first := "K=" + strings.Repeat("a", 1000) + "\\"
	second := strings.Repeat("b", LongLineMax-len(first))
	f := mustParse(t, "[A]\n"+first+"\n"+second+"\n")
	if e, _ := f.Get("A", "K"); len(e.Value) != LongLineMax-2 || e.Line != 3 {
		t.Fatalf("joined value length %d line %d", len(e.Value), e.Line)
	}
	_, err := Parse("t", strings.NewReader("[A]\n"+first+"\n"+second+"b\n"))
	var se *SyntaxError
	if !errors.Is(err, ErrLineTooLong) || !errors.As(err, &se) || se.Line != 3 {
		t.Fatalf("joined one byte more: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadError(t *testing.T) {
	_, err := Parse("x.conf", failingReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "x.conf:1") {
		t.Fatalf("got %v", err)
	}
}

func TestLookups(t *testing.T) {
	f := mustParse(t, `[A]
L=a
L=b c
Single=1
[B]
L=other
[A]
L=
L=d
Single=2
L=e
Single=
`)
	if got := f.Values("A", "L"); strings.Join(got, "|") != "d|e" {
		t.Errorf("Values = %q", got)
	}
	if got := f.List("A", "L"); len(got) != 2 || got[0].Line != 9 || got[1].Line != 11 {
		t.Errorf("List = %+v", got)
	}
	if got := f.Lookup("A", "L"); len(got) != 5 || got[2].Value != "" || got[1].Value != "b c" {
		t.Errorf("Lookup = %+v", got)
	}
	if e, ok := f.Get("A", "Single"); !ok || e.Value != "" || e.Line != 12 {
		t.Errorf("Get(Single) = %+v %v", e, ok)
	}
	if e, ok := f.Get("B", "L"); !ok || e.Value != "other" {
		t.Errorf("Get(B.L) = %+v", e)
	}
	if _, ok := f.Get("A", "l"); ok {
		t.Error("keys must be case sensitive")
	}
	if _, ok := f.Get("C", "L"); ok {
		t.Error("missing section found")
	}
	if got := f.Values("A", "Missing"); len(got) != 0 {
		t.Errorf("Values(missing) = %q", got)
	}
	// A list whose last assignment is empty is empty.
	g := mustParse(t, "[A]\nL=a\nL=\n")
	if got := g.Values("A", "L"); len(got) != 0 {
		t.Errorf("reset list = %q", got)
	}
	if got := strings.Join(f.SectionNames(), ","); got != "A,B" {
		t.Errorf("SectionNames = %q", got)
	}
	if !f.HasSection("B") || f.HasSection("C") {
		t.Error("HasSection")
	}
	if n := len(f.Entries()); n != 9 {
		t.Errorf("Entries: %d", n)
	}
}

func TestMergeAppliesDropInsInOrder(t *testing.T) {
	main := mustParse(t, "[Partition]\nType=root\nLabel=main\nCopyFiles=/a\n")
	d1, _ := Parse("d1.conf", strings.NewReader("[Partition]\nLabel=one\nCopyFiles=/b\n"))
	d2, _ := Parse("d2.conf", strings.NewReader("[Partition]\nCopyFiles=\nCopyFiles=/c\n"))
	m := Merge(main, nil, d1, d2)
	if e, _ := m.Get("Partition", "Label"); e.Value != "one" || e.File != "d1.conf" {
		t.Errorf("Label = %+v", e)
	}
	if got := m.Values("Partition", "CopyFiles"); strings.Join(got, ",") != "/c" {
		t.Errorf("CopyFiles = %q", got)
	}
	if got := strings.Join(m.Sources, ","); got != "test.conf,d1.conf,d2.conf" {
		t.Errorf("Sources = %q", got)
	}
	// Merge copies: changing the result leaves the inputs alone.
	m.Sections[0].Entries[0].Value = "changed"
	if main.Sections[0].Entries[0].Value != "root" {
		t.Error("Merge aliases its input")
	}
}

func TestAdd(t *testing.T) {
	var f File
	f.Add("Partition", "Type", "root")
	f.Add("Partition", "Label", "x")
	f.Add("Other", "K", "v")
	f.Add("Partition", "Weight", "1")
	if got := dump(&f); got != "[Partition]@0\nType=root@0\nLabel=x@0\n[Other]@0\nK=v@0\n[Partition]@0\nWeight=1@0\n" {
		t.Errorf("got %q", got)
	}
}
