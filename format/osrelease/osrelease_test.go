package osrelease

import (
	"errors"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// parseCases pairs tricky inputs with what systemd 252's parser yields for
// them. interop_test.go replays the same files against systemd itself.
var parseCases = []struct {
	name     string
	in       string
	want     []Field
	warnings int
}{
	{"plain", "ID=fedora\nVERSION_ID=38\n", []Field{{"ID", "fedora"}, {"VERSION_ID", "38"}}, 0},
	{"double quotes", `NAME="Fedora Linux"` + "\n", []Field{{"NAME", "Fedora Linux"}}, 0},
	{"single quotes are literal", `A='single $x \" \\ #'` + "\n", []Field{{"A", `single $x \" \\ #`}}, 0},
	{"double quote escapes", "A=\"a\\\"b\\\\c\\$d\\`e\"\n", []Field{{"A", "a\"b\\c$d`e"}}, 0},
	{"other backslashes stay in double quotes", `A="keep\n \x \'"` + "\n", []Field{{"A", `keep\n \x \'`}}, 0},
	{"continuation in double quotes", "A=\"line1\\\nline2\"\n", []Field{{"A", "line1line2"}}, 0},
	{"unquoted escapes", `A=un\ quoted\"\\\$` + "\n", []Field{{"A", `un quoted"\$`}}, 0},
	{"unquoted continuation", "A=foo\\\nbar\n", []Field{{"A", "foobar"}}, 0},
	{"trailing blanks stripped", "A=trail \t \n", []Field{{"A", "trail"}}, 0},
	{"escaped trailing blank kept", "A=trail\\ \n", []Field{{"A", "trail "}}, 0},
	{"leading blanks skipped", "A= \t lead\n", []Field{{"A", "lead"}}, 0},
	{"quoted blanks kept", "A=\"  x  \"\n", []Field{{"A", "  x  "}}, 0},
	{"quote then word concatenate", "A=\"x\" y\nB='a'\"b\"c\n", []Field{{"A", "xy"}, {"B", "abc"}}, 0},
	{"quotes inside a word are literal", `A=a"b c"` + "\n", []Field{{"A", `a"b c"`}}, 0},
	{"no inline comments", "A=x # not a comment\n", []Field{{"A", "x # not a comment"}}, 0},
	{"comments and blank lines", "# c\n; c\n   # indented\n\n\t\nA=1\n", []Field{{"A", "1"}}, 0},
	{"blanks around key", "  A  =  1\n", []Field{{"A", "1"}}, 0},
	{"empty values", "A=\nB=\"\"\nC=''\n", []Field{{"A", ""}, {"B", ""}, {"C", ""}}, 0},
	{"dollar is literal", "A=$HOME\nB=`id`\n", []Field{{"A", "$HOME"}, {"B", "`id`"}}, 0},
	{"equals in value", "A=b=c==d\n", []Field{{"A", "b=c==d"}}, 0},
	{"CRLF", "A=1\r\nB=\"2\"\r\nC='3 '\r\n", []Field{{"A", "1"}, {"B", "2"}, {"C", "3 "}}, 0},
	{"no final newline", "A=1\nB=\"2\"", []Field{{"A", "1"}, {"B", "2"}}, 0},
	{"trailing backslash at EOF", "A=x\\", []Field{{"A", "x"}}, 0},
	{"newline inside quotes", "A=\"one\ntwo\"\nB='x\ny'\n", []Field{{"A", "one\ntwo"}, {"B", "x\ny"}}, 0},
	{"utf-8", "PRETTY_NAME=\"Débian ☃\"\n", []Field{{"PRETTY_NAME", "Débian ☃"}}, 0},
	{"control characters kept", "A=\"\x01\x7f\"\n", []Field{{"A", "\x01\x7f"}}, 0},
	{"duplicate keeps first position, last value", "A=1\nB=2\nA=3\n", []Field{{"A", "3"}, {"B", "2"}}, 1},
	{"empty assignment overrides", "A=1\nA=\n", []Field{{"A", ""}}, 1},
	{"invalid names skipped", "9A=1\nexport B=2\nC-D=3\n=4\nE=5\n", []Field{{"E", "5"}}, 4},
	{"line without equals skipped", "JUSTAWORD\nA=1\nTAIL", []Field{{"A", "1"}}, 2},
	{"unterminated quote runs to EOF", "A=\"open\nB=2\n", []Field{{"A", "open\nB=2\n"}}, 1},
	{"comment continued by backslash (252)", "# note \\\nA=1\nB=2\n", []Field{{"B", "2"}}, 1},
	{"backslash inside comment", "# a\\b\nA=1\n", []Field{{"A", "1"}}, 0},
	{"invalid UTF-8 in a comment is fine", "# \xff\nA=1\n", []Field{{"A", "1"}}, 0},
	{"lowercase keys allowed", "a_b=1\n_X=2\n", []Field{{"a_b", "1"}, {"_X", "2"}}, 0},
	{"empty file", "", nil, 0},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := ParseBytes([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := rel.Fields(); !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("fields = %q, want %q", got, tc.want)
			}
			if len(rel.Warnings) != tc.warnings {
				t.Errorf("warnings = %v, want %d", rel.Warnings, tc.warnings)
			}
		})
	}
}

func TestParseWarningLines(t *testing.T) {
	rel, err := ParseBytes([]byte("A=1\n\n9B=2\nC=\"x\ny\"\nNOEQ\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Warning{
		{3, `"9B" is not a valid variable name, assignment ignored`},
		{6, `no "=" in "NOEQ", line ignored`},
	}
	if !reflect.DeepEqual(rel.Warnings, want) {
		t.Errorf("warnings = %v, want %v", rel.Warnings, want)
	}
}

func TestParseRejects(t *testing.T) {
	for name, in := range map[string]string{
		"NUL":                "ID=x\x00\n",
		"NUL in comment":     "# \x00\nID=x\n",
		"bad UTF-8 in value": "ID=fo\xffo\n",
		"bad UTF-8 in key":   "I\xffD=x\n",
		"bad UTF-8 quoted":   "ID=\"\xc3\"\n",
	} {
		if _, err := ParseBytes([]byte(in)); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
	_, err := ParseBytes([]byte("A=1\nB=\xff\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v does not name line 2", err)
	}
	if _, err := Parse(strings.NewReader(strings.Repeat("#", MaxSize+1))); err == nil {
		t.Error("oversized input accepted")
	}
}

func TestFormatValue(t *testing.T) {
	for in, want := range map[string]string{
		"":             ``,
		"fedora":       `fedora`,
		"1.2.3-rc1+b2": `1.2.3-rc1+b2`,
		"x=y:z,@%^#/":  `x=y:z,@%^#/`,
		"Fedora Linux": `"Fedora Linux"`,
		"a\"b":         `"a\"b"`,
		"$HOME":        `"\$HOME"`,
		"a\\b":         `"a\\b"`,
		"`id`":         "\"\\`id\\`\"",
		"~":            `"~"`,
		"a:~/x":        `"a:~/x"`,
		"it's":         `"it's"`,
		"*?[":          `"*?["`,
		"a;b":          `"a;b"`,
		"(x)<y>|&!":    `"(x)<y>|&!"`,
		"one\ntwo":     "\"one\ntwo\"",
		"tab\there":    "\"tab\there\"",
		"\x7f":         "\"\x7f\"",
		"☃":            `☃`,
	} {
		if got := FormatValue(in); got != want {
			t.Errorf("FormatValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestFormatKeepsOrder(t *testing.T) {
	var rel Release
	for _, f := range []Field{{"NAME", "Imago OS"}, {"ID", "imago"}, {"IMAGE_VERSION", "7"}, {"ID_LIKE", "debian"}} {
		if err := rel.Set(f.Key, f.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := rel.Set("ID", "imago2"); err != nil {
		t.Fatal(err)
	}
	if !rel.Delete("ID_LIKE") || rel.Delete("ID_LIKE") {
		t.Error("Delete did not report presence correctly")
	}
	want := "NAME=\"Imago OS\"\nID=imago2\nIMAGE_VERSION=7\n"
	if got := string(rel.Format()); got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
	var b strings.Builder
	if n, err := rel.WriteTo(&b); err != nil || n != int64(len(want)) || b.String() != want {
		t.Errorf("WriteTo = %d, %v, %q", n, err, b.String())
	}
}

func TestSetRejects(t *testing.T) {
	var rel Release
	for _, k := range []string{"", "9A", "A-B", "A B", "Ä"} {
		if rel.Set(k, "x") == nil {
			t.Errorf("Set accepted key %q", k)
		}
	}
	for _, v := range []string{"a\x00b", "\xff"} {
		if rel.Set("A", v) == nil {
			t.Errorf("Set accepted value %q", v)
		}
	}
	if rel.Len() != 0 {
		t.Errorf("rejected Set changed the release: %v", rel.Fields())
	}
}

func TestHelpers(t *testing.T) {
	rel, err := ParseBytes([]byte(`NAME="Imago"
ID=imago
ID_LIKE="debian  ubuntu
 fedora"
PRETTY_NAME="Imago 7"
VERSION="7 (x)"
VERSION_ID=7
BUILD_ID=b1
VARIANT_ID=server
IMAGE_ID=imago-server
IMAGE_VERSION=7.1
SYSEXT_LEVEL=1.0
SYSEXT_SCOPE="system initrd"
CONFEXT_LEVEL=2
ARCHITECTURE=x86-64
PORTABLE_PREFIXES=foo
`))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{rel.Name(), rel.ID(), rel.IDLike(), rel.PrettyName(), rel.Version(), rel.VersionID(), rel.BuildID(),
		rel.VariantID(), rel.ImageID(), rel.ImageVersion(), rel.SysextLevel(), rel.SysextScope(), rel.ConfextLevel(),
		rel.Architecture(), rel.PortablePrefixes()}
	want := []any{"Imago", "imago", []string{"debian", "ubuntu", "fedora"}, "Imago 7", "7 (x)", "7", "b1",
		"server", "imago-server", "7.1", "1.0", []string{"system", "initrd"}, "2",
		"x86-64", []string{"foo"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("helpers = %q\nwant      %q", got, want)
	}
	var empty Release
	if empty.IDLike() != nil || empty.ID() != "" {
		t.Error("empty release returned values")
	}
	if v, ok := empty.Get("ID"); ok || v != "" {
		t.Error("Get on empty release reported a value")
	}
}

// edgeValues are values chosen to break naive quoting.
var edgeValues = []string{
	"", " ", "  lead", "trail  ", "a b", "\t", "\n", "\r", "\r\n", "x\n", "\nx",
	`"`, `""`, `'`, `''`, `\`, `\\`, `\n`, `\"`, "\\\n", `$`, `$HOME`, `${HOME}`, "`", "`id`", `$(id)`,
	"~", "~root", "a:~", "*", "?", "[a]", "a]", "{a,b}", "!", "!!", "#", "#x", "x#y", ";", "&", "|", "<>",
	"()", "=", "==x", "a=b", "%s", "%%", "\x01", "\x1f", "\x7f", "☃ snow", "é", "\u00a0", "\u2028",
	"'\"'\"'", `\$`, `\` + "`", "-n", "-e", "--", "IFS", "a\tb",
}

func TestFormatRoundTrip(t *testing.T) {
	var rel Release
	for i, v := range edgeValues {
		if err := rel.Set(keyFor(i), v); err != nil {
			t.Fatal(err)
		}
	}
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 500; i++ {
		if err := rel.Set(keyFor(len(edgeValues)+i), randomValue(rnd)); err != nil {
			t.Fatal(err)
		}
	}
	back, err := ParseBytes(rel.Format())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Fields(), rel.Fields()) {
		for i, f := range rel.Fields() {
			if g := back.Value(f.Key); g != f.Value {
				t.Errorf("field %d %s: wrote %q, read back %q (as %s)", i, f.Key, f.Value, g, FormatValue(f.Value))
			}
		}
		t.FailNow()
	}
	if len(back.Warnings) != 0 {
		t.Errorf("warnings reading our own output: %v", back.Warnings)
	}
}

func keyFor(i int) string { return "K" + strings.Repeat("_", i%3) + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// randomValue draws valid-UTF-8 strings rich in characters that matter to
// quoting.
func randomValue(rnd *rand.Rand) string {
	const special = " \t\n\r\"'\\$`~*?[]{}()<>|&;!#=:%@,^-\x01\x7f"
	n := rnd.Intn(12)
	var b strings.Builder
	for i := 0; i < n; i++ {
		switch rnd.Intn(4) {
		case 0, 1:
			b.WriteByte(special[rnd.Intn(len(special))])
		case 2:
			b.WriteByte(byte('a' + rnd.Intn(26)))
		default:
			b.WriteRune([]rune("é☃\u00a0ß")[rnd.Intn(4)])
		}
	}
	return b.String()
}

func writeTree(t *testing.T, files map[string]string, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoadOrder(t *testing.T) {
	both := writeTree(t, map[string]string{"etc/os-release": "ID=etc\n", "usr/lib/os-release": "ID=usr\n"}, nil)
	rel, path, err := Load(both)
	if err != nil || path != EtcOSReleasePath || rel.ID() != "etc" {
		t.Errorf("both: %v %q %v", rel, path, err)
	}
	usrOnly := writeTree(t, map[string]string{"usr/lib/os-release": "ID=usr\n"}, nil)
	rel, path, err = Load(usrOnly)
	if err != nil || path != UsrLibOSReleasePath || rel.ID() != "usr" {
		t.Errorf("usr only: %v %q %v", rel, path, err)
	}
	_, _, err = Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty root: %v, want ErrNotExist", err)
	}
	bad := writeTree(t, map[string]string{"etc/os-release": "ID=\xff\n", "usr/lib/os-release": "ID=usr\n"}, nil)
	if _, _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "os-release") {
		t.Errorf("broken /etc/os-release must not fall back silently: %v", err)
	}
}

func TestLoadSymlinksStayInRoot(t *testing.T) {
	outside := writeTree(t, map[string]string{"etc/os-release": "ID=host\n", "usr/lib/os-release": "ID=host\n"}, nil)
	// An absolute link as images ship it must resolve inside the image.
	abs := writeTree(t, map[string]string{"usr/lib/os-release": "ID=image\n"},
		map[string]string{"etc/os-release": "/usr/lib/os-release"})
	// A link climbing out with .. must stop at the image root.
	climb := writeTree(t, map[string]string{"usr/lib/os-release": "ID=image\n"},
		map[string]string{"etc/os-release": "../../../../../../../../usr/lib/os-release"})
	// An absolute link through a linked directory.
	dir := writeTree(t, map[string]string{"usr/lib/real/os-release": "ID=image\n"},
		map[string]string{"etc/os-release": "/usr/lib/os-release", "usr/lib/os-release": "/usr/lib/lnk/os-release", "usr/lib/lnk": "real"})
	for name, root := range map[string]string{"absolute": abs, "climb": climb, "dir": dir} {
		rel, path, err := Load(root)
		if err != nil || rel.ID() != "image" || path != EtcOSReleasePath {
			t.Errorf("%s: %v %q %v", name, rel, path, err)
		}
	}
	_ = outside
	loop := writeTree(t, map[string]string{"usr/lib/os-release": "ID=usr\n"}, map[string]string{"etc/os-release": "os-release"})
	if _, _, err := Load(loop); err == nil {
		t.Error("symlink loop accepted")
	}
	notDir := writeTree(t, map[string]string{"etc": "file", "usr/lib/os-release": "ID=usr\n"}, nil)
	if _, _, err := Load(notDir); err == nil {
		t.Error("/etc being a file must be an error, as for systemd (only ENOENT falls through)")
	}
}

func TestLoadInitrdAndExtension(t *testing.T) {
	root := writeTree(t, map[string]string{
		"etc/initrd-release": "ID=imago\nVERSION_ID=7\n",
		"usr/lib/extension-release.d/extension-release.tools": "ID=imago\nSYSEXT_LEVEL=1\nARCHITECTURE=_any\n",
	}, nil)
	rel, path, err := LoadInitrd(root)
	if err != nil || path != InitrdReleasePath || rel.VersionID() != "7" {
		t.Errorf("initrd: %v %q %v", rel, path, err)
	}
	rel, path, err = LoadExtension(root, "tools")
	if err != nil || path != "/usr/lib/extension-release.d/extension-release.tools" || rel.SysextLevel() != "1" {
		t.Errorf("extension: %v %q %v", rel, path, err)
	}
	if _, _, err := LoadExtension(root, "other"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing extension: %v", err)
	}
	for _, name := range []string{"", ".", "..", "a/b", ".#tmp", "a\nb", strings.Repeat("x", 256), "\xff"} {
		if _, _, err := LoadExtension(root, name); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("name %q: %v, want invalid-name error", name, err)
		}
	}
	if _, _, err := LoadInitrd(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing initrd-release: %v", err)
	}
}
