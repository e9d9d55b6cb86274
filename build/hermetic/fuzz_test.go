package hermetic

import (
	"reflect"
	"strings"
	"testing"
)

var accountSeeds = []string{
	"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
	"messagebus:x:100:105::/nonexistent:/usr/sbin/nologin\r\n# c\n\n",
	"adm:x:4:alice,bob\nusers:x:100:\nx:x:1:,\n",
	"root:*:19000:0:99999:7:::\nsvc:!*:19675::::::\n",
	"adm:*:root:alice\nx:!::\n",
	"a:x:4294967294:0:::\n", "a:x:01:+1:::\n", "::::::\n", "+::::::\n", "#a:x:0:0:::\n",
}

// FuzzParsePasswd checks the four account file parsers: no panics, and what
// one reads survives a write and a second read unchanged.
func FuzzParsePasswd(f *testing.F) {
	for _, s := range accountSeeds {
		for kind := byte(0); kind < 4; kind++ {
			f.Add(kind, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var first, second any
		var out []byte
		var err error
		switch kind % 4 {
		case 0:
			var u []User
			if u, err = ParsePasswd(data); err == nil {
				first, out = u, FormatPasswd(u)
				second, err = ParsePasswd(out)
			} else {
				return
			}
		case 1:
			var g []Group
			if g, err = ParseGroup(data); err == nil {
				first, out = g, FormatGroup(g)
				second, err = ParseGroup(out)
			} else {
				return
			}
		case 2:
			var s []Shadow
			if s, err = ParseShadow(data); err == nil {
				first, out = s, FormatShadow(s)
				second, err = ParseShadow(out)
			} else {
				return
			}
		case 3:
			var s []GShadow
			if s, err = ParseGShadow(data); err == nil {
				first, out = s, FormatGShadow(s)
				second, err = ParseGShadow(out)
			} else {
				return
			}
		}
		if err != nil {
			t.Fatalf("cannot read our own output %q: %v", out, err)
		}
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("round trip changed %+v into %+v via %q", first, second, out)
		}
	})
}

// FuzzTmpfilesLine checks that any path and argument Format accepts read
// back unchanged through systemd's column splitting and unescaping, and that
// parsing arbitrary lines never panics.
func FuzzTmpfilesLine(f *testing.F) {
	for _, s := range [][2]string{
		{"etc/fstab", ""}, {"etc/a b", "../x y"}, {`e"t\c`, `a\b`}, {"%m", "%t"}, {"x", " x "}, {"x", "-"},
		{"tab\there", "trail\t\x7f "}, {"ü", "é"}, {"it's", "\"q\""}, {"", "\\x41"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, arg string) {
		_, _ = ParseTmpfilesLine(p + " " + arg) // must not panic
		l := TmpfilesLine{Type: "L", Path: "/" + p, Mode: "-", User: "-", Group: "-", Age: "-", Argument: arg}
		s, err := l.Format()
		if err != nil {
			if !strings.ContainsAny(p, "\n\r\x00") && !strings.Contains(arg, "\x00") {
				t.Fatalf("%+v refused: %v", l, err)
			}
			return
		}
		if strings.ContainsAny(s, "\n\r\x00") {
			t.Fatalf("line %q has a line break", s)
		}
		back, err := ParseTmpfilesLine(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if back != l {
			t.Fatalf("%+v written as %q reads back as %+v", l, s, back)
		}
	})
}
