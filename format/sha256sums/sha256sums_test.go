package sha256sums

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
)

// coreutilsOutput is what `sha256sum -- *` (GNU coreutils 9.1) printed for
// files whose content is one letter each, named to exercise escaping.
const coreutilsOutput = "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea   lead\n" +
	"\\3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  back\\\\slash\n" +
	"\\18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4  cr\\rx\n" +
	"\\2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6  new\\nline\n" +
	"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  sp ace\n" +
	"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  sp ace \n" +
	"252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111  tab\tx\n"

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

var coreutilsEntries = []Entry{
	{Name: " lead", Digest: sum("e")},
	{Name: `back\slash`, Digest: sum("b")},
	{Name: "cr\rx", Digest: sum("d")},
	{Name: "new\nline", Digest: sum("c")},
	{Name: "sp ace", Digest: sum("a")},
	{Name: "sp ace ", Digest: sum("x")},
	{Name: "tab\tx", Digest: sum("f")},
}

func TestParseCoreutilsOutput(t *testing.T) {
	m, err := ParseBytes([]byte(coreutilsOutput))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Entries(); !reflect.DeepEqual(got, coreutilsEntries) {
		t.Errorf("entries = %q\nwant      %q", got, coreutilsEntries)
	}
	d, ok := m.Lookup("new\nline")
	if !ok || d != sum("c") {
		t.Errorf("Lookup = %x %v", d, ok)
	}
	if _, ok := m.Lookup("new"); ok {
		t.Error("Lookup found an unlisted name")
	}
}

func TestWriteMatchesCoreutils(t *testing.T) {
	// Reversed input: Write sorts.
	in := append([]Entry(nil), coreutilsEntries...)
	sort.Slice(in, func(i, j int) bool { return in[i].Name > in[j].Name })
	var b bytes.Buffer
	if err := Write(&b, in); err != nil {
		t.Fatal(err)
	}
	if b.String() != coreutilsOutput {
		t.Errorf("Write =\n%q\nwant\n%q", b.String(), coreutilsOutput)
	}
	m, _ := ParseBytes([]byte(coreutilsOutput))
	var w bytes.Buffer
	if n, err := m.WriteTo(&w); err != nil || n != int64(len(coreutilsOutput)) || w.String() != coreutilsOutput {
		t.Errorf("WriteTo = %d %v %q", n, err, w.String())
	}
}

func TestWriteBinaryMarkerAndDuplicates(t *testing.T) {
	var b bytes.Buffer
	err := Write(&b, []Entry{{Name: "b", Digest: sum("b"), Binary: true}, {Name: "a", Digest: sum("a")}, {Name: "a", Digest: sum("a")}})
	if err != nil {
		t.Fatal(err)
	}
	want := hexOf("a") + "  a\n" + hexOf("b") + " *b\n"
	if b.String() != want {
		t.Errorf("Write = %q, want %q", b.String(), want)
	}
	for name, entries := range map[string][]Entry{
		"conflict": {{Name: "a", Digest: sum("a")}, {Name: "a", Digest: sum("b")}},
		"empty":    {{Name: ""}},
		"NUL":      {{Name: "a\x00b"}},
	} {
		var out bytes.Buffer
		if err := Write(&out, entries); err == nil || out.Len() != 0 {
			t.Errorf("%s: Write = %v, wrote %q", name, err, out.String())
		}
	}
}

func hexOf(s string) string { d := sum(s); return hex.EncodeToString(d[:]) }

func TestParseLenient(t *testing.T) {
	ha, hb := hexOf("a"), hexOf("b")
	for name, tc := range map[string]struct {
		in   string
		want []Entry
	}{
		"upper case digits":     {strings.ToUpper(ha) + "  a\n", []Entry{{Name: "a", Digest: sum("a")}}},
		"binary marker":         {ha + " *a\n", []Entry{{Name: "a", Digest: sum("a"), Binary: true}}},
		"star in name":          {ha + "  *a\n", []Entry{{Name: "*a", Digest: sum("a")}}},
		"tab separator":         {ha + "\t a\n", []Entry{{Name: "a", Digest: sum("a")}}},
		"leading blanks":        {" \t" + ha + "  a\n", []Entry{{Name: "a", Digest: sum("a")}}},
		"comments and empties":  {"# x\n\n\r\n" + ha + "  a\n#" + hb + "  b\n", []Entry{{Name: "a", Digest: sum("a")}}},
		"CRLF":                  {ha + "  a\r\n" + hb + "  b\r\n", []Entry{{Name: "a", Digest: sum("a")}, {Name: "b", Digest: sum("b")}}},
		"only one CR stripped":  {ha + "  a\r\r\n", []Entry{{Name: "a\r", Digest: sum("a")}}},
		"no final newline":      {ha + "  a", []Entry{{Name: "a", Digest: sum("a")}}},
		"trailing blanks kept":  {ha + "  a \t\n", []Entry{{Name: "a \t", Digest: sum("a")}}},
		"escaped CR then CRLF":  {"\\" + ha + "  x\\r\r\n", []Entry{{Name: "x\r", Digest: sum("a")}}},
		"escaped plain name":    {"\\" + ha + "  a\n", []Entry{{Name: "a", Digest: sum("a")}}},
		"identical duplicate":   {ha + "  a\n" + hb + "  b\n" + ha + " *a\n", []Entry{{Name: "a", Digest: sum("a")}, {Name: "b", Digest: sum("b")}}},
		"subdirectory names":    {ha + "  dir/a\n", []Entry{{Name: "dir/a", Digest: sum("a")}}},
		"non-UTF-8 names (GNU)": {ha + "  \xff\n", []Entry{{Name: "\xff", Digest: sum("a")}}},
		"empty manifest":        {"", nil},
	} {
		m, err := ParseBytes([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := m.Entries(); !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s: entries = %q, want %q", name, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	ha := hexOf("a")
	for name, tc := range map[string]struct {
		in   string
		line int
	}{
		"short digest":       {ha[:63] + "  a\n", 1},
		"non-hex digit":      {"g" + ha[1:] + "  a\n", 1},
		"no blank":           {ha + "x a\n", 1},
		"no marker":          {ha + " a\n", 1},
		"empty name":         {ha + "  \n", 1},
		"blank-only line":    {ha + "  a\n   \n", 2},
		"indented comment":   {ha + "  a\n #x\n", 2},
		"BSD tag":            {"SHA256 (a) = " + ha + "\n", 1},
		"bad escape":         {"\\" + ha + "  a\\tb\n", 1},
		"lone backslash":     {"\\" + ha + "  a\\\n", 1},
		"NUL in name":        {ha + "  a\x00b\n", 1},
		"garbage line 3":     {ha + "  a\n# c\nhello\n", 3},
		"conflict duplicate": {ha + "  a\n" + hexOf("b") + "  a\n", 2},
		"long digest":        {ha + "0  a\n", 1},
	} {
		_, err := ParseBytes([]byte(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%s: error %v, want *SyntaxError", name, err)
			continue
		}
		if se.Line != tc.line {
			t.Errorf("%s: line %d, want %d (%v)", name, se.Line, tc.line, err)
		}
	}
}

func TestReadFileNamesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(p, []byte(hexOf("a")+"  a\nbroken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p)
	if err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Errorf("error %v does not name %s:2", err, p)
	}
	if err := os.WriteFile(p, []byte(hexOf("a")+"  a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadFile(p); err != nil || m.Len() != 1 {
		t.Errorf("ReadFile = %v, %v", m, err)
	}
}

func TestParseSysupdate(t *testing.T) {
	ha, hb := hexOf("a"), hexOf("b")
	good := ha + "  imago_7.raw.xz\n" + hb + " *imago_7.efi\n" + strings.ToUpper(ha) + "  " + strings.Repeat("n", 255) + "\n"
	m, err := ParseSysupdateBytes([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"imago_7.raw.xz", sum("a"), false}, {"imago_7.efi", sum("b"), true}, {strings.Repeat("n", 255), sum("a"), false}}
	if !reflect.DeepEqual(m.Entries(), want) {
		t.Errorf("entries = %q", m.Entries())
	}
	for name, tc := range map[string]struct {
		in   string
		line int
	}{
		"no final newline": {ha + "  a\n" + hb + "  b", 2},
		"escaped line":     {"\\" + ha + "  a\\\\b\n", 1},
		"comment":          {"# c\n" + ha + "  a\n", 1},
		"blank line":       {ha + "  a\n\n", 2},
		"CRLF":             {ha + "  a\r\n", 1},
		"tab separator":    {ha + "\t a\n", 1},
		"leading blank":    {" " + ha + "  a\n", 1},
		"subdirectory":     {ha + "  dir/a\n", 1},
		"dot":              {ha + "  .\n", 1},
		"dot dot":          {ha + "  ..\n", 1},
		"256 bytes":        {ha + "  " + strings.Repeat("n", 256) + "\n", 1},
		"control char":     {ha + "  a\tb\n", 1},
		"DEL":              {ha + "  a\x7f\n", 1},
		"empty name":       {ha + "  \n" + ha + "  a\n", 1},
		"short rest":       {ha + "  a\nxyz\n", 2},
		"not hex":          {"z" + ha[1:] + "  a\n", 1},
		"conflict":         {ha + "  a\n" + hb + "  a\n", 2},
		"NUL":              {ha + "  a\n\x00", 0},
		"bad UTF-8":        {ha + "  \xff\n", 0},
	} {
		_, err := ParseSysupdateBytes([]byte(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%s: error %v, want *SyntaxError", name, err)
			continue
		}
		if se.Line != tc.line {
			t.Errorf("%s: line %d, want %d (%v)", name, se.Line, tc.line, err)
		}
	}
	if m, err := ParseSysupdate(strings.NewReader("")); err != nil || m.Len() != 0 {
		t.Errorf("empty manifest: %v %v", m, err)
	}
}

func TestVerify(t *testing.T) {
	m, err := ParseBytes([]byte(hexOf("a") + "  a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify("a", strings.NewReader("a")); err != nil {
		t.Errorf("matching content: %v", err)
	}
	var mm *Mismatch
	if err := m.Verify("a", strings.NewReader("b")); !errors.As(err, &mm) || mm.Got != sum("b") || mm.Want != sum("a") {
		t.Errorf("wrong content: %v", err)
	}
	if err := m.Verify("b", strings.NewReader("b")); !errors.Is(err, ErrNotListed) {
		t.Errorf("unlisted: %v", err)
	}
	boom := errors.New("boom")
	if err := m.Verify("a", errReader{boom}); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestSumAndVerifyFS(t *testing.T) {
	fsys := fstest.MapFS{
		"a":       {Data: []byte("a")},
		"dir/b":   {Data: []byte("b")},
		"changed": {Data: []byte("new")},
	}
	entries, err := Sum(fsys, []string{"dir/b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Name: "dir/b", Digest: sum("b")}, {Name: "a", Digest: sum("a")}}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("Sum = %q", entries)
	}
	for _, bad := range [][]string{{"missing"}, {"dir"}, {"../a"}, {"/a"}} {
		if _, err := Sum(fsys, bad); err == nil {
			t.Errorf("Sum(%q) succeeded", bad)
		}
	}
	manifest := hexOf("a") + "  a\n" + hexOf("old") + "  changed\n" + hexOf("x") + "  missing\n" +
		hexOf("b") + "  dir/b\n" + hexOf("y") + "  ../escape\n" + hexOf("z") + "  dir\n"
	m, err := ParseBytes([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	bad := VerifyFS(fsys, m)
	var names []string
	for _, b := range bad {
		names = append(names, b.Name)
		if b.Name == "changed" && (b.Err != nil || b.Got != sum("new") || b.Want != sum("old")) {
			t.Errorf("changed: %+v", b)
		}
		if b.Name != "changed" && b.Err == nil {
			t.Errorf("%s: no error recorded", b.Name)
		}
	}
	if want := []string{"changed", "missing", "../escape", "dir"}; !reflect.DeepEqual(names, want) {
		t.Errorf("mismatches = %q, want %q", names, want)
	}
}

func TestSumDirAndVerifyTree(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	for name, data := range map[string]string{"a b": "a", "back\\slash": "b", "new\nline": "c"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a b", filepath.Join(dir, "inside")); err != nil {
		t.Fatal(err)
	}
	entries, err := SumDir(dir, []string{"a b", "back\\slash", "new\nline", "inside"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SumDir(dir, []string{"escape"}); err == nil {
		t.Error("SumDir followed a symlink out of the directory")
	}
	entries = append(entries, Entry{Name: "escape", Digest: sum("s")})
	var b bytes.Buffer
	if err := Write(&b, entries); err != nil {
		t.Fatal(err)
	}
	m, err := ParseBytes(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	bad, err := VerifyTree(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Name != "escape" || bad[0].Err == nil {
		t.Errorf("VerifyTree = %+v, want only the escaping symlink refused", bad)
	}
	if _, err := VerifyTree(filepath.Join(dir, "nope"), m); err == nil {
		t.Error("VerifyTree on a missing root succeeded")
	}
}

func TestCheckSysupdateName(t *testing.T) {
	for _, ok := range []string{"imago_7.raw.xz", "a b", "ünï", "a\\b", strings.Repeat("n", 255)} {
		if err := CheckSysupdateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a\nb", "a\tb", "\xff", strings.Repeat("n", 256)} {
		if CheckSysupdateName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWriteSysupdate(t *testing.T) {
	entries := []Entry{{Name: "z", Digest: sum("z")}, {Name: `back\slash`, Digest: sum("b"), Binary: true}}
	var b bytes.Buffer
	if err := WriteSysupdate(&b, entries); err != nil {
		t.Fatal(err)
	}
	want := hexOf("b") + ` *back\slash` + "\n" + hexOf("z") + "  z\n"
	if b.String() != want {
		t.Errorf("WriteSysupdate = %q, want %q", b.String(), want)
	}
	for _, name := range []string{"a/b", "new\nline", ".."} {
		var out bytes.Buffer
		if err := WriteSysupdate(&out, []Entry{{Name: name}}); err == nil || out.Len() != 0 {
			t.Errorf("%q: WriteSysupdate = %v, wrote %q", name, err, out.String())
		}
	}
}
