package pattern

import (
	"errors"
	"reflect"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		pattern string
		want    error
	}{
		{"foo", ErrInvalid},          // no @v
		{"foo_@v@u", ErrInvalid},     // adjacent wildcards
		{"@v_@v", ErrInvalid},        // repeated
		{"foo_@v_@", ErrInvalid},     // trailing @
		{"foo_@v_@x", ErrInvalid},    // unknown letter
		{"foo_@v*", ErrBadChar},      // reserved
		{"foo_@v?", ErrBadChar},      // reserved
		{"[foo]_@v", ErrBadChar},     // reserved
		{"foo!_@v", ErrBadChar},      // reserved
		{"foo\\_@v", ErrBadChar},     // reserved
		{"foo|_@v", ErrBadChar},      // reserved
		{"$foo_@v", ErrBadChar},      // reserved
		{"foo\t@v", ErrBadChar},      // control character
		{"foo\x7f@v", ErrBadChar},    // DEL
		{"f\xc3\xa4_@v", ErrBadChar}, // non-ASCII
		{"", ErrInvalid},             // empty
		{"@@v", ErrInvalid},          // "@@" then a literal v: no @v
		{"@v@@@", ErrInvalid},        // trailing @ after @@
		{"foo_@v_@u_@f_@a_@r_@g_@t_@m_@s_@d_@l_@h_@u", ErrInvalid}, // @u twice
	}
	for _, c := range cases {
		_, err := Compile(c.pattern)
		if !errors.Is(err, c.want) {
			t.Errorf("Compile(%q) = %v, want %v", c.pattern, err, c.want)
		}
	}
	for _, ok := range []string{
		"@v", "foo_@v.raw", "foo@@bar_@v", "part1-@v", "uki_@v+@l-@d.efi",
		"foo_@v_@u_@f_@a_@r_@g_@t_@m_@s_@d_@l_@h",
		"uki_@v.efi.extra.d/extra.addon.efi", "a b_@v", "~^%&()_@v",
	} {
		if _, err := Compile(ok); err != nil {
			t.Errorf("Compile(%q): %v", ok, err)
		}
	}
}

func bp(b bool) *bool { return &b }

func TestMatch(t *testing.T) {
	uuid := [16]byte{0x4f, 0x68, 0xbc, 0xe3, 0xe8, 0xcd, 0x4d, 0xb1, 0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09}
	cases := []struct {
		pattern, name string
		res           Result
		want          Fields
	}{
		{"part1-@v.raw", "part1-v1.raw", Matched, Fields{Version: "v1"}},
		{"part1-@v.raw", "part1-v1.raw.gz", NoMatch, Fields{}},
		{"part1-@v.raw", "part1-.raw", NoMatch, Fields{}},    // empty version
		{"part1-@v.raw", "part1-a~b.raw", NoMatch, Fields{}}, // '~' not allowed in versions
		{"part1-@v.raw", "xpart1-1.raw", NoMatch, Fields{}},  // literal must match at start
		{"part1-@v", "part1-1.2.3_rc+4,x", Matched, Fields{Version: "1.2.3_rc+4,x"}},
		{"foo_@v", "foo_..", NoMatch, Fields{}}, // not a valid file name
		{"foo_@v_@u.raw", "foo_1_4f68bce3e8cd4db196e7fbcaf984b709.raw", Matched, Fields{Version: "1", PartitionUUID: uuid, HasPartitionUUID: true}},
		{"foo_@v_@u.raw", "foo_1_4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709.raw", Matched, Fields{Version: "1", PartitionUUID: uuid, HasPartitionUUID: true}},
		{"foo_@v_@u.raw", "foo_1_4f68bce3-e8cd4db196e7fbcaf984b709xxxx.raw", NoMatch, Fields{}},
		// Non-greedy: the version ends at the first '_', so "1_2" cannot be a version here.
		{"foo_@v_@u.raw", "foo_1_2_4f68bce3e8cd4db196e7fbcaf984b709.raw", NoMatch, Fields{}},
		{"uki_@v+@l-@d.efi", "uki_5+3-0.efi", Matched, Fields{Version: "5", TriesLeft: 3, HasTriesLeft: true, TriesDone: 0, HasTriesDone: true}},
		{"uki_@v+@l-@d.efi", "uki_5+3.efi", NoMatch, Fields{}},
		{"uki_@v+@l.efi", "uki_5+3.efi", Matched, Fields{Version: "5", TriesLeft: 3, HasTriesLeft: true}},
		{"x_@v_@f", "x_1_0x8000000000000000", Matched, Fields{Version: "1", PartitionFlags: 1 << 63, HasPartitionFlags: true}},
		{"x_@v_@f", "x_1_1000000000000000a", NoMatch, Fields{}}, // overflow
		{"x_@v_@a_@r_@g", "x_1_yes_OFF_t", Matched, Fields{Version: "1", NoAuto: bp(true), ReadOnly: bp(false), GrowFileSystem: bp(true)}},
		{"x_@v_@a", "x_1_maybe", NoMatch, Fields{}},
		{"x_@v_@m", "x_1_0644", Matched, Fields{Version: "1", Mode: 0o644, HasMode: true}},
		{"x_@v_@m", "x_1_0666", NoMatch, Fields{}}, // world-writable
		{"x_@v_@m", "x_1_4755", NoMatch, Fields{}}, // suid
		{"x_@v_@m", "x_1_0778", NoMatch, Fields{}}, // not octal
		{"x_@v_@t", "x_1_1700000000000000", Matched, Fields{Version: "1", MTime: 1700000000000000, HasMTime: true}},
		{"x_@v_@t", "x_1_18446744073709551615", NoMatch, Fields{}}, // infinity
		{"x_@v_@s", "x_1_4096", Matched, Fields{Version: "1", Size: 4096, HasSize: true}},
		{"x_@v_@s", "x_1_-1", NoMatch, Fields{}},
		{"x_@v_@d", "x_1_18446744073709551615", NoMatch, Fields{}},
		{"x_@v_@h", "x_1_" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Matched,
			Fields{Version: "1", HasSHA256: true, SHA256: [32]byte{0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55}}},
		{"x_@v_@h", "x_1_e3b0", NoMatch, Fields{}},
		{"foo@@bar_@v", "foo@bar_7", Matched, Fields{Version: "7"}},
		// Transfer 6 and 7 of TEST-72: names that prefix each other.
		{"linux-@v.erofs", "linux-v1.erofs.caibx", NoMatch, Fields{}},
		{"linux-@v.erofs.caibx", "linux-v1.erofs", NoMatch, Fields{}},
		{"linux-@v.erofs.caibx", "linux-v1.erofs.caibx", Matched, Fields{Version: "v1"}},
		// Subdirectory patterns (systemd 257).
		{"uki_@v.efi.extra.d/extra.addon.efi", "uki_v1.efi.extra.d", Retry, Fields{Version: "v1"}},
		{"uki_@v.efi.extra.d/extra.addon.efi", "uki_v1.efi.extra.d/extra.addon.efi", Matched, Fields{Version: "v1"}},
		{"uki_@v.efi.extra.d/extra.addon.efi", "uki_v1.efi", NoMatch, Fields{}},
		{"dir-@v/file", "dir-3", Retry, Fields{Version: "3"}},
		{"dir-@v/file", "dir-3/other", NoMatch, Fields{}},
	}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		res, f := p.Match(c.name)
		if res != c.res || !reflect.DeepEqual(f, c.want) {
			t.Errorf("%q.Match(%q) = %v %+v, want %v %+v", c.pattern, c.name, res, f, c.res, c.want)
		}
	}
}

func TestMatchAny(t *testing.T) {
	ps := []*Pattern{MustCompile("uki_@v+@l-@d.efi"), MustCompile("uki_@v+@l.efi"), MustCompile("uki_@v.efi")}
	for name, want := range map[string]int{"uki_1+3-0.efi": 0, "uki_1+2.efi": 1, "uki_1.efi": 2, "uki_1.efi.bak": -1} {
		res, f, p := MatchAny(ps, name)
		switch {
		case want < 0 && res != NoMatch:
			t.Errorf("MatchAny(%q) matched %v", name, p)
		case want >= 0 && (res != Matched || p != ps[want] || f.Version != "1"):
			t.Errorf("MatchAny(%q) = %v %v %+v, want pattern %d", name, res, p, f, want)
		}
	}
}

func TestFormat(t *testing.T) {
	f := Fields{
		Version: "1.2", PartitionUUID: [16]byte{0xab, 1}, HasPartitionUUID: true,
		PartitionFlags: 0x1000000000000000, HasPartitionFlags: true,
		NoAuto: bp(false), ReadOnly: bp(true), GrowFileSystem: bp(false),
		MTime: 42, HasMTime: true, Mode: 0o444, HasMode: true, Size: 1024, HasSize: true,
		TriesDone: 0, HasTriesDone: true, TriesLeft: 3, HasTriesLeft: true,
		SHA256: [32]byte{0xff}, HasSHA256: true,
	}
	got, err := MustCompile("x_@v_@u_@f_@a_@r_@g_@t_@m_@s_@d_@l_@h@@").Format(f)
	want := "x_1.2_ab010000000000000000000000000000_1000000000000000_0_1_0_42_444_1024_0_3_ff" + "00000000000000000000000000000000000000000000000000000000000000"[:62] + "@"
	if err != nil || got != want {
		t.Errorf("Format = %q, %v\nwant     %q", got, err, want)
	}
	if got, err := MustCompile("uki_@v+@l-@d.efi").Format(Fields{Version: "v5", TriesLeft: 3, HasTriesLeft: true, HasTriesDone: true}); got != "uki_v5+3-0.efi" || err != nil {
		t.Errorf("Format = %q, %v", got, err)
	}
	if got, err := MustCompile("x_@v_@m").Format(Fields{Version: "1", Mode: 0o5, HasMode: true}); got != "x_1_005" || err != nil {
		t.Errorf("Format = %q, %v", got, err)
	}
	if _, err := MustCompile("x_@v_@u").Format(Fields{Version: "1"}); !errors.Is(err, ErrMissingField) {
		t.Errorf("Format without UUID: %v", err)
	}
	if _, err := MustCompile("x_@v").Format(Fields{}); !errors.Is(err, ErrMissingField) {
		t.Errorf("Format without version: %v", err)
	}
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"part1-@v.raw", "part1-v1.raw"},
		{"foo_@v_@u.raw", "foo_1_4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709.raw"},
		{"uki_@v+@l-@d.efi", "uki_5+3-0.efi"},
		{"x_@v_@a_@r_@g", "x_1_yes_OFF_t"},
		{"x_@v_@f", "x_1_0x80"},
		{"x_@v_@m_@t_@s", "x_1_0644_17_4096"},
		{"x_@v_@h", "x_1_e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"uki_@v.efi.extra.d/extra.addon.efi", "uki_v1.efi.extra.d"},
		{"foo@@bar_@v", "foo@bar_7"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		p, err := Compile(pat)
		if err != nil {
			return
		}
		if p.String() != pat {
			t.Fatalf("String() = %q", p.String())
		}
		res, fields := p.Match(name)
		if res != Matched {
			return
		}
		out, err := p.Format(fields)
		if err != nil {
			t.Fatalf("Format after match of %q by %q: %v", name, pat, err)
		}
		if out == name {
			return
		}
		// The canonical name must carry the same fields whenever it
		// matches; it can fail to match only if a canonical value (such
		// as lowercase hex) now contains the literal that follows it.
		res2, fields2 := p.Match(out)
		if res2 == Matched && !reflect.DeepEqual(fields, fields2) {
			t.Fatalf("%q: %q -> %+v, formatted %q -> %+v", pat, name, fields, out, fields2)
		}
		if res2 == Matched {
			if out2, _ := p.Format(fields2); out2 != out {
				t.Fatalf("Format not stable: %q then %q", out, out2)
			}
		}
	})
}
