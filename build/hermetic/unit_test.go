package hermetic

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePasswd(t *testing.T) {
	in := "root:x:0:0:root:/root:/bin/bash\r\n# comment\n\nalice:x:1000:100:Alice Liddell,,,:/home/alice:/bin/sh\n"
	got, err := ParsePasswd([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []User{
		{Name: "root", Password: "x", UID: 0, GID: 0, GECOS: "root", Home: "/root", Shell: "/bin/bash"},
		{Name: "alice", Password: "x", UID: 1000, GID: 100, GECOS: "Alice Liddell,,,", Home: "/home/alice", Shell: "/bin/sh"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	if out := string(FormatPasswd(got)); out != "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:100:Alice Liddell,,,:/home/alice:/bin/sh\n" {
		t.Errorf("format %q", out)
	}
	for in, msg := range map[string]string{
		"root:x:0:0:root:/root\n":                 "line 1: 6 fields",
		"a:x:0:0:::\nb:x:-1:0:::\n":               "line 2: user b: invalid ID \"-1\"",
		"a:x:0:4294967295:::\n":                   "invalid ID \"4294967295\"",
		"a:x:4294967296:0:::\n":                   "invalid ID",
		"a:x:+1:0:::\n":                           "invalid ID",
		":x:0:0:::\n":                             "empty name",
		"+nis::0:0:::\n":                          "NIS",
		"a:x:0:0:::\n\n# c\nb:x:zero:0:::\n":      "line 4:",
		"a:x:0:0:root:/root:/bin/bash:extra\n":    "8 fields",
		"root:x:0:0:root:/root:/bin/bash\nroot:x": "line 2: 2 fields",
	} {
		if _, err := ParsePasswd([]byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", in, err, msg)
		}
	}
}

func TestParseGroupShadowGShadow(t *testing.T) {
	groups, err := ParseGroup([]byte("adm:x:4:alice,bob\nusers:x:100:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Group{{"adm", "x", 4, []string{"alice", "bob"}}, {"users", "x", 100, nil}}; !reflect.DeepEqual(groups, want) {
		t.Errorf("groups %+v", groups)
	}
	shadow, err := ParseShadow([]byte("root:*:19000:0:99999:7:::\nsvc:!*:19675::::::\n"))
	if err != nil {
		t.Fatal(err)
	}
	if shadow[0].Aging != [7]string{"19000", "0", "99999", "7", "", "", ""} || shadow[1].Password != "!*" {
		t.Errorf("shadow %+v", shadow)
	}
	if out := string(FormatShadow(shadow)); out != "root:*:19000:0:99999:7:::\nsvc:!*:19675::::::\n" {
		t.Errorf("format %q", out)
	}
	gs, err := ParseGShadow([]byte("adm:*:root:alice\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []GShadow{{"adm", "*", []string{"root"}, []string{"alice"}}}; !reflect.DeepEqual(gs, want) {
		t.Errorf("gshadow %+v", gs)
	}
	for _, c := range []struct {
		parse func([]byte) error
		in    string
	}{
		{func(b []byte) error { _, err := ParseGroup(b); return err }, "adm:x:4\n"},
		{func(b []byte) error { _, err := ParseGroup(b); return err }, "adm:x:four:\n"},
		{func(b []byte) error { _, err := ParseShadow(b); return err }, "root:*:1:2:3:4:5:6\n"},
		{func(b []byte) error { _, err := ParseGShadow(b); return err }, "adm:*:root\n"},
	} {
		if err := c.parse([]byte(c.in)); err == nil {
			t.Errorf("%q accepted", c.in)
		}
	}
	for pw, locked := range map[string]bool{"*": true, "!": true, "!*": true, "!$6$x$y": true, "$6$x$y": false, "": false, "x": false} {
		if Locked(pw) != locked {
			t.Errorf("Locked(%q) = %v", pw, !locked)
		}
	}
}

func TestTmpfilesLineFormat(t *testing.T) {
	for _, c := range []struct {
		line TmpfilesLine
		want string
	}{
		{TmpfilesLine{Type: "C", Path: "/etc/fstab"}, "C /etc/fstab - - - -"},
		{TmpfilesLine{Type: "z", Path: "/etc/shadow", Mode: "0640", User: "0", Group: "42"}, "z /etc/shadow 0640 0 42 -"},
		{TmpfilesLine{Type: "L", Path: "/etc/a b", Argument: "../x y"}, `L "/etc/a b" - - - - ../x y`},
		{TmpfilesLine{Type: "L", Path: `/e"t\c`, Argument: `a\b`}, `L "/e\"t\\c" - - - - a\\b`},
		{TmpfilesLine{Type: "L", Path: "/%m", Argument: "%t"}, "L /%%m - - - - %%t"},
		{TmpfilesLine{Type: "L", Path: "/x", Argument: " x "}, `L /x - - - - \x20x\x20`},
		{TmpfilesLine{Type: "L", Path: "/x", Argument: "-"}, `L /x - - - - \x2d`},
		{TmpfilesLine{Type: "L", Path: "/x", Argument: "a\tb\nc"}, `L /x - - - - a\x09b\x0ac`},
		{TmpfilesLine{Type: "C", Path: "/it's"}, `C "/it's" - - - -`},
	} {
		got, err := c.line.Format()
		if err != nil || got != c.want {
			t.Errorf("%+v: %q, %v; want %q", c.line, got, err, c.want)
			continue
		}
		back, err := ParseTmpfilesLine(got)
		want := c.line
		for _, f := range []*string{&want.Mode, &want.User, &want.Group, &want.Age} {
			if *f == "" {
				*f = "-"
			}
		}
		if err != nil || back != want {
			t.Errorf("%q reads back as %+v, %v", got, back, err)
		}
	}
	for _, l := range []TmpfilesLine{
		{Type: "C", Path: "/a\nb"}, {Type: "C", Path: "/a\rb"}, {Type: "C", Path: "/a\x00b"},
		{Type: "L", Path: "/a", Argument: "x\x00y"},
	} {
		if s, err := l.Format(); err == nil {
			t.Errorf("%+v formatted as %q", l, s)
		}
	}
}

// Lines as Debian 12's systemd and dbus ship them.
func TestParseTmpfilesLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		want TmpfilesLine
		spec bool
	}{
		{"L+ /etc/mtab   -    -    -    -  ../proc/self/mounts", TmpfilesLine{"L+", "/etc/mtab", "-", "-", "-", "-", "../proc/self/mounts"}, false},
		{"d /run/dbus/containers 0755 messagebus - - -", TmpfilesLine{"d", "/run/dbus/containers", "0755", "messagebus", "-", "-", ""}, false},
		{"d-\t/root\t:0700\troot\t:root\t-", TmpfilesLine{"d-", "/root", ":0700", "root", ":root", "-", ""}, false},
		{"f+! /run/nologin 0644 - - - \"System is booting up.\"", TmpfilesLine{"f+!", "/run/nologin", "0644", "-", "-", "-", "\"System is booting up.\""}, false},
		{"h /var/log/journal/%m - - - - +C", TmpfilesLine{"h", "/var/log/journal/%m", "-", "-", "-", "-", "+C"}, true},
		{"L /var/lib/dbus/machine-id - - - - /etc/machine-id", TmpfilesLine{"L", "/var/lib/dbus/machine-id", "-", "-", "-", "-", "/etc/machine-id"}, false},
		{"w /x - - - - a\\nb\\x41", TmpfilesLine{"w", "/x", "-", "-", "-", "-", "a\nbA"}, false},
		{"r! /forcefsck", TmpfilesLine{"r!", "/forcefsck", "-", "-", "-", "-", ""}, false},
		{"L /x - - - - -", TmpfilesLine{"L", "/x", "-", "-", "-", "-", ""}, false},
		{"L /x%% - - - - 100%%", TmpfilesLine{"L", "/x%", "-", "-", "-", "-", "100%"}, false},
	} {
		got, spec, err := parseTmpfilesLine(c.in)
		if err != nil || got != c.want || spec != c.spec {
			t.Errorf("%q: %+v spec=%v %v, want %+v spec=%v", c.in, got, spec, err, c.want, c.spec)
		}
	}
	for _, in := range []string{"L", `C "/unterminated`, `L /x - - - - bad\q`, `L /x - - - - \x00`} {
		if l, err := ParseTmpfilesLine(in); err == nil {
			t.Errorf("%q accepted as %+v", in, l)
		}
	}
}

func TestCunescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: "plain", `a\tb`: "a\tb", `\s`: " ", `\x41\101\u00e9\U0001F600`: "AAé😀", `\\\"\'`: `\"'`,
		`\a\b\f\n\r\v`: "\a\b\f\n\r\v", `\xff`: "\xff",
	} {
		if got, err := cunescape(in); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`\`, `\x0`, `\x00`, `\000`, `\400`, `\u0000`, `\ud800`, `\U00110000`, `\q`, `\x4g`, `\08`} {
		if got, err := cunescape(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

func TestRuleMatch(t *testing.T) {
	for _, c := range []struct {
		rule Rule
		path string
		typ  byte
		size int64
		want bool
	}{
		{Rule{Pattern: "/etc/machine-id"}, "/etc/machine-id", 'f', 0, true},
		{Rule{Pattern: "/etc/machine-id"}, "/etc/machine-idx", 'f', 0, false},
		{Rule{Pattern: "/etc/ssh/ssh_host_*"}, "/etc/ssh/ssh_host_ed25519_key", 'f', 1, true},
		{Rule{Pattern: "/etc/ssh/ssh_host_*"}, "/etc/ssh/sshd_config", 'f', 1, false},
		{Rule{Pattern: "/etc/resolv.conf", Types: "f"}, "/etc/resolv.conf", 'l', 0, false},
		{Rule{Pattern: "/var/log/**", Types: "f", NonEmpty: true}, "/var/log/apt/history.log", 'f', 10, true},
		{Rule{Pattern: "/var/log/**", Types: "f", NonEmpty: true}, "/var/log/faillog", 'f', 0, false},
		{Rule{Pattern: "/var/log/**", Types: "f", NonEmpty: true}, "/var/log/apt", 'd', 0, false},
		{Rule{Pattern: "/var/log/**"}, "/var/log", 'd', 0, false},
		{Rule{Pattern: "/var/cache/**", Types: "fl"}, "/var/cache/x/y", 'l', 0, true},
		{Rule{Pattern: "[bad"}, "[bad", 'f', 0, false},
	} {
		if got := c.rule.match(c.path, c.typ, c.size); got != c.want {
			t.Errorf("%+v on %s (%c): %v", c.rule, c.path, c.typ, got)
		}
	}
}

func TestEffective(t *testing.T) {
	for in, want := range map[string]bool{
		"":                              false,
		"# comment\n; other\n\n  \n":    false,
		"[Journal]\n#Storage=auto\n":    false,
		"[Journal]\nStorage=volatile\n": true,
		"net.ipv4.ip_forward=1":         true,
		"  # indented comment":          false,
		"[":                             true,
	} {
		if got := effective([]byte(in)); got != want {
			t.Errorf("%q: %v", in, got)
		}
	}
	for p, want := range map[string]bool{
		"/etc/systemd/journald.conf": true, "/etc/systemd/logind.conf": false, "/etc/udev/rules.d/x.rules": true,
		"/etc/udev": false, "/etc/fstab": true, "/etc/fstab.d": false, "/etc/selinux/config": true, "/etc/selinux/semanage.conf": false,
	} {
		if got := isEarlyConfig(p); got != want {
			t.Errorf("isEarlyConfig(%s) = %v", p, got)
		}
	}
}

func TestSysusersSyntax(t *testing.T) {
	for in, want := range map[string]bool{
		"root": true, "_apt": true, "systemd-network": true, "a1": true, "Debian-exim": true,
		"": false, "1abc": false, "-x": false, "a b": false, "a.b": false, strings.Repeat("a", 32): false, strings.Repeat("a", 31): true,
	} {
		if got := validSysusersName(in); got != want {
			t.Errorf("validSysusersName(%q) = %v", in, got)
		}
	}
	for in, want := range map[string]string{
		"": "-", "-": `"-"`, "plain": "plain", "two words": `"two words"`, `q"\`: `"q\"\\"`, "50%": "50%%",
	} {
		if got := quoteSysusers(in); got != want {
			t.Errorf("quoteSysusers(%q) = %s, want %s", in, got, want)
		}
	}
	if err := validHash("$y$j9T$abc/def.$ghi"); err != nil {
		t.Error(err)
	}
	for _, h := range []string{"", "a:b", "a b", "a\\b", "%m", "\xff"} {
		if validHash(h) == nil {
			t.Errorf("validHash(%q) accepted", h)
		}
	}
}

func TestSplitInstance(t *testing.T) {
	for in, want := range map[string][2]string{
		"getty@tty1.service": {"getty@.service", "tty1"},
		"getty@.service":     {"getty@.service", ""},
		"foo.service":        {"foo.service", ""},
		"a@b.c.timer":        {"a@.timer", "b.c"},
	} {
		tmpl, inst := splitInstance(in)
		if tmpl != want[0] || inst != want[1] {
			t.Errorf("%s: %s %s", in, tmpl, inst)
		}
	}
	if got := withInstance("getty@.service", "ttyS0"); got != "getty@ttyS0.service" {
		t.Error(got)
	}
}

func TestReportText(t *testing.T) {
	rep := &Report{FactoryEntries: 3, TmpfilesLines: 4, Users: 1, Groups: 2, EnabledUnits: []string{"a.service"}}
	rep.add(Fixed, "/usr/bin/awk", "resolved")
	rep.add(Late, "/etc/sysctl.d/x.conf", "early")
	rep.Findings = append(rep.Findings, Finding{Path: "/var/lib/dpkg", Kind: Dropped, Reason: "state", Entries: 7})
	rep.add(NotRecreated, "/etc/a", "xattr")
	rep.add(Changed, "/var/run", "other target")
	rep.sort()
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `hermetic /usr: 3 factory entries, 4 tmpfiles.d lines, 1 users and 2 groups in sysusers.d, 1 units enabled by preset
not recreated on first boot (1):
  /etc/a: xattr
recreated only after first boot has read them (effective from the second boot) (1):
  /etc/sysctl.d/x.conf: early
recreated differently (1):
  /var/run: other target
left out on purpose (1):
  /var/lib/dpkg (7 entries): state
fixed in /usr (1):
  /usr/bin/awk: resolved
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if p := rep.Problems(); len(p) != 2 || p[0].Path != "/etc/a" || p[1].Path != "/etc/sysctl.d/x.conf" {
		t.Errorf("problems %+v", p)
	}
	if f, ok := rep.Covering("/var/lib/dpkg/status"); !ok || f.Path != "/var/lib/dpkg" {
		t.Errorf("covering: %+v %v", f, ok)
	}
	if _, ok := rep.Covering("/var/lib/dpkgx"); ok {
		t.Error("a sibling with a common prefix is covered")
	}
}
