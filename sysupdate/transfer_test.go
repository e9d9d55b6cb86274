package sysupdate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
)

var testSpec = Specifiers{Arch: "x86-64", ImageVersion: "7", ImageID: "imago", OSID: "debian", VersionID: "12", BuildID: "b1", MachineID: "0123456789abcdef0123456789abcdef", Hostname: "host.example"}

func parse(t *testing.T, text string) (*Transfer, error) {
	t.Helper()
	return ParseTransfer("/etc/sysupdate.d/50-test.transfer", []byte(text), testSpec, dps.ArchX86_64)
}

func mustParse(t *testing.T, text string) *Transfer {
	t.Helper()
	tr, err := parse(t, text)
	if err != nil {
		t.Fatalf("ParseTransfer: %v", err)
	}
	return tr
}

const minimal = `[Source]
Type=regular-file
Path=/var/src
MatchPattern=foo_@v.raw
[Target]
Type=regular-file
Path=/var/dst
`

func TestReferenceDefinitions(t *testing.T) {
	dir := "../build/reference/sysupdate.d"
	ts, err := Load(Options{Definitions: dir, Specifiers: &testSpec, Arch: dps.ArchX86_64})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tr := range ts {
		ids = append(ids, tr.ID)
	}
	if got := strings.Join(ids, " "); got != "10-usr 20-usr-verity 30-usr-verity-sig 90-uki" {
		t.Fatalf("ids = %q", got)
	}
	usr := ts[0]
	if usr.Source.Type != URLFile || usr.Target.Type != Partition || usr.Target.Path != "auto" ||
		usr.PartitionType.Name != "usr-x86-64" || usr.ReadOnly == nil || !*usr.ReadOnly ||
		len(usr.Source.Patterns) != 4 || usr.Source.Patterns[0].String() != "imago_@v_@u.usr.raw" ||
		usr.Target.Patterns[0].String() != "imago_@v" || usr.InstancesMax != Unlimited ||
		len(usr.ProtectVersions) != 1 || usr.ProtectVersions[0] != "7" || !usr.Verify {
		t.Errorf("10-usr parsed as %+v", usr)
	}
	uki := ts[3]
	if uki.Target.Type != RegularFile || uki.Target.PathRelativeTo != RelativeToBoot || uki.InstancesMax != 2 ||
		*uki.TriesLeft != 3 || *uki.TriesDone != 0 || len(uki.Target.Patterns) != 3 ||
		uki.Target.Patterns[0].String() != "imago_@v+@l-@d.efi" {
		t.Errorf("90-uki parsed as %+v", uki)
	}
}

func TestEveryKey(t *testing.T) {
	tr := mustParse(t, `[Transfer]
MinVersion=%w
MaxVersion=99
ProtectVersion=%A 5 "6"
Verify=no
ChangeLog=https://example.com/@v.txt
AppStream=https://example.com/a.xml
Features=optional other
RequisiteFeatures=base

[Source]
Type=url-file
Path=https://updates.example.com/%o/
MatchPattern=%M_@v_@u.raw \
    %M_@v_@u.raw.gz
PathRelativeTo=root

[Target]
Type=partition
Path=/dev/disk/by-id/x
MatchPattern=%M_@v
MatchPartitionType=root-verity
PartitionUUID=4f68bce3-e8cd-4db1-96e7-fbcaf984b709
PartitionFlags=0x8000000000000000
PartitionNoAuto=yes
PartitionGrowFileSystem=false
ReadOnly=1
Mode=0444
TriesDone=1
TriesLeft=2
InstancesMax=1
RemoveTemporary=no
CurrentSymlink=/run/current
PathRelativeTo=root
`)
	if tr.MinVersion != "12" || tr.MaxVersion != "99" || strings.Join(tr.ProtectVersions, ",") != "7,5,6" || tr.Verify ||
		tr.ChangeLog[0] != "https://example.com/@v.txt" || tr.AppStream[0] != "https://example.com/a.xml" ||
		strings.Join(tr.Features, ",") != "optional,other" || tr.RequisiteFeatures[0] != "base" {
		t.Errorf("[Transfer] parsed as %+v", tr)
	}
	if tr.Source.Path != "https://updates.example.com/debian/" || len(tr.Source.Patterns) != 2 || tr.Source.Patterns[1].String() != "imago_@v_@u.raw.gz" {
		t.Errorf("[Source] parsed as %+v", tr.Source)
	}
	wantUUID, _ := gpt.ParseGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
	if tr.PartitionType.Name != "root-x86-64-verity" || *tr.PartitionUUID != wantUUID || *tr.PartitionFlags != 1<<63 ||
		!*tr.NoAuto || *tr.GrowFileSystem || !*tr.ReadOnly || *tr.Mode != 0o444 || *tr.TriesDone != 1 || *tr.TriesLeft != 2 ||
		tr.InstancesMax != 2 || tr.RemoveTemporary || tr.CurrentSymlink != "/run/current" || len(tr.Warnings) != 1 {
		t.Errorf("[Target] parsed as %+v", tr)
	}
}

func TestDefaults(t *testing.T) {
	tr := mustParse(t, minimal)
	if tr.ID != "50-test" || !tr.Verify || !tr.RemoveTemporary || tr.InstancesMax != 3 ||
		tr.PartitionType.Name != "linux-generic" || tr.Target.Patterns[0].String() != "foo_@v.raw" {
		t.Errorf("defaults: %+v", tr)
	}
	// Target type inferred from the source.
	for src, want := range map[string]ResourceType{"url-file": RegularFile, "regular-file": RegularFile, "url-tar": Directory, "tar": Directory, "directory": Directory, "subvolume": Subvolume} {
		path := "/var/src"
		if strings.HasPrefix(src, "url-") {
			path = "https://x.example/"
		}
		tr := mustParse(t, "[Source]\nType="+src+"\nPath="+path+"\nMatchPattern=a_@v\n[Target]\nPath=/var/dst\n")
		if tr.Target.Type != want {
			t.Errorf("source %s: target type %s, want %s", src, tr.Target.Type, want)
		}
	}
	tr = mustParse(t, "[Source]\nType=regular-file\nPath=/s\nMatchPattern=a_@v\n[Target]\nPath=/dev/sda\n")
	if tr.Target.Type != Partition || tr.InstancesMax != Unlimited {
		t.Errorf("/dev target: %s %d", tr.Target.Type, tr.InstancesMax)
	}
	// ProtectVersion=%A without IMAGE_VERSION= is ignored with a warning.
	tr, err := ParseTransfer("x.conf", []byte("[Transfer]\nProtectVersion=%A\n"+minimal), Specifiers{}, dps.ArchX86_64)
	if err != nil || len(tr.ProtectVersions) != 0 || len(tr.Warnings) != 1 || tr.ID != "x" {
		t.Errorf("empty %%A: %v %+v", err, tr)
	}
}

func TestErrors(t *testing.T) {
	src := "[Source]\nType=regular-file\nPath=/s\nMatchPattern=a_@v\n"
	tgt := "[Target]\nType=regular-file\nPath=/d\n"
	cases := []struct{ text, want string }{
		{"[Transfer]\nBogus=1\n" + src + tgt, "50-test.transfer:2: Bogus=: unknown key in section [Transfer]"},
		{src + tgt + "Frobnicate=yes\n", "50-test.transfer:8: Frobnicate=: unknown key"},
		{"[Foo]\nA=b\n" + src + tgt, "50-test.transfer:1: unknown section [Foo]"},
		{"[Transfer]\nMinVersion=1~rc\n" + src + tgt, "MinVersion=: invalid version"},
		{"[Transfer]\nProtectVersion=a/b\n" + src + tgt, "ProtectVersion=: invalid version"},
		{"[Transfer]\nVerify=maybe\n" + src + tgt, "Verify=: invalid boolean"},
		{"[Transfer]\nChangeLog=ftp://x\n" + src + tgt, "ChangeLog=: not an http"},
		{"[Transfer]\nFeatures=a/b\n" + src + tgt, "Features=: invalid feature name"},
		{"[Transfer]\nMinVersion=%Q\n" + src + tgt, "unknown specifier"},
		{"[Source]\nType=floppy\n", "Type=: invalid resource type"},
		{"[Source]\nType=url-file\nPath=ftp://x\nMatchPattern=a_@v\n" + tgt, "not a valid http://"},
		{"[Source]\nType=regular-file\nPath=relative\nMatchPattern=a_@v\n" + tgt, "not a normalized absolute path"},
		{"[Source]\nType=regular-file\nPath=/a/../b\nMatchPattern=a_@v\n" + tgt, "not a normalized absolute path"},
		{"[Source]\nType=regular-file\nPath=/s\nMatchPattern=a_@v*\n" + tgt, "MatchPattern=: invalid character"},
		{"[Source]\nType=regular-file\nPath=/s\nMatchPattern=nover\n" + tgt, "MatchPattern=: invalid pattern"},
		{"[Source]\nType=regular-file\nPath=/s\nMatchPattern=\n" + tgt, "lacks MatchPattern="},
		{"[Source]\nPath=/s\nMatchPattern=a_@v\n" + tgt, "Type= must be specified"},
		{"[Source]\nType=regular-file\nMatchPattern=a_@v\n" + tgt, "[Source] lacks Path="},
		{src + "[Target]\nType=regular-file\n", "[Target] lacks Path="},
		{src + "[Target]\nType=directory\nPath=/d\n", "incompatible with source type"},
		{"[Source]\nType=tar\nPath=/s\nMatchPattern=a_@v\n[Target]\nType=partition\nPath=/dev/sda\n", "incompatible"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nMatchPartitionType=nonsense\n", "MatchPartitionType=: unknown partition type"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nPartitionUUID=xyz\n", "PartitionUUID=: invalid UUID"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nPartitionFlags=0xzz\n", "PartitionFlags=: invalid number"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nPartitionNoAuto=2\n", "PartitionNoAuto=: invalid boolean"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nPartitionGrowFileSystem=x\n", "PartitionGrowFileSystem=: invalid boolean"},
		{src + tgt + "ReadOnly=x\n", "ReadOnly=: invalid boolean"},
		{src + tgt + "Mode=999\n", "Mode=: invalid mode"},
		{src + tgt + "Mode=17777\n", "Mode=: invalid mode"},
		{src + tgt + "TriesDone=-1\n", "TriesDone=: invalid number"},
		{src + tgt + "TriesLeft=x\n", "TriesLeft=: invalid number"},
		{src + tgt + "InstancesMax=many\n", "InstancesMax=: invalid number"},
		{src + tgt + "RemoveTemporary=x\n", "RemoveTemporary=: invalid boolean"},
		{src + tgt + "CurrentSymlink=a/../b\n", "CurrentSymlink=: invalid path"},
		{src + tgt + "PathRelativeTo=home\n", "PathRelativeTo=: invalid"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nPathRelativeTo=esp\n", "only valid for regular-file and directory"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nCurrentSymlink=cur\n", "must be absolute for partition targets"},
		{src + "[Target]\nType=partition\nPath=/dev/sda\nMatchPattern=a/@v\n", "partition labels cannot contain"},
		{src + "[Target]\nType=regular-file\nPath=auto\n", "Path=auto is only valid for partition"},
		{"[Source]\nType=regular-file\nPath=auto\nMatchPattern=a_@v\n" + tgt, "not a normalized absolute path"},
		{"[Source\n", "50-test.transfer:1:"},
		{"junk line\n" + src + tgt, "50-test.transfer:1:"},
	}
	for _, c := range cases {
		_, err := parse(t, c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.text, err, c.want)
		}
	}
}

func TestLoadSearchPaths(t *testing.T) {
	root := t.TempDir()
	write := func(p, text string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/lib/sysupdate.d/10-a.conf", minimal)
	write("usr/lib/sysupdate.d/20-b.transfer", minimal)
	write("etc/sysupdate.d/20-b.transfer", strings.Replace(minimal, "foo_", "etc_", 1)) // overrides
	write("run/sysupdate.d/30-c.conf", "")                                              // masks
	write("usr/lib/sysupdate.d/30-c.conf", minimal)
	write("usr/lib/sysupdate.d/40-d.feature", "[Feature]\n")
	write("usr/lib/sysupdate.test.d/50-e.conf", minimal)
	ts, err := Load(Options{Root: root, Specifiers: &testSpec})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].ID != "10-a" || ts[1].ID != "20-b" || ts[1].Source.Patterns[0].String() != "etc_@v.raw" {
		t.Fatalf("loaded %+v", ts)
	}
	ts, err = Load(Options{Root: root, Component: "test", Specifiers: &testSpec})
	if err != nil || len(ts) != 1 || ts[0].ID != "50-e" {
		t.Fatalf("component: %v %+v", err, ts)
	}
	if _, err := Load(Options{Root: t.TempDir(), Specifiers: &testSpec}); err == nil || !strings.Contains(err.Error(), "no transfer definitions") {
		t.Errorf("empty root: %v", err)
	}
	write("etc/sysupdate.d/60-bad.conf", "[Target]\nNope=1\n")
	if _, err := Load(Options{Root: root, Specifiers: &testSpec}); err == nil || !strings.Contains(err.Error(), "60-bad.conf:2: Nope=") {
		t.Errorf("bad key: %v", err)
	}
}

func TestSpecifiers(t *testing.T) {
	s := Specifiers{Arch: "arm64", ImageVersion: "1", BootID: "b", BuildID: "B", Hostname: "h.d", MachineID: "m", ImageID: "M", OSID: "o", KernelRelease: "v", VersionID: "w", VariantID: "W"}
	got, err := s.Expand("%a %A %b %B %H %l %m %M %o %v %w %W %T %V %%")
	if want := "arm64 1 b B h.d h m M o v w W /tmp /var/tmp %"; err != nil || got != want {
		t.Errorf("Expand = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"%", "a%", "%z"} {
		if _, err := s.Expand(bad); err == nil {
			t.Errorf("Expand(%q) succeeded", bad)
		}
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nIMAGE_ID=imago\nIMAGE_VERSION=3\nVERSION_ID=12\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	h := HostSpecifiers(root)
	if h.ImageID != "imago" || h.ImageVersion != "3" || h.OSID != "debian" || h.VersionID != "12" || h.MachineID != "0123456789abcdef0123456789abcdef" {
		t.Errorf("HostSpecifiers = %+v", h)
	}
}

func FuzzParseTransfer(f *testing.F) {
	for _, name := range []string{"10-usr.conf", "20-usr-verity.conf", "30-usr-verity-sig.conf", "90-uki.conf"} {
		if b, err := os.ReadFile("../build/reference/sysupdate.d/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte("[Transfer]\nProtectVersion=%A\nMinVersion=1\n[Source]\nType=directory\nPath=/s\nMatchPattern=d-@v\n[Target]\nType=directory\nPath=/t\nCurrentSymlink=cur\nInstancesMax=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseTransfer("f.transfer", data, testSpec, dps.ArchX86_64)
		if err != nil {
			return
		}
		// Invariants of a valid definition.
		if tr.Source.Type == "" || tr.Target.Type == "" || !compatible(tr.Source.Type, tr.Target.Type) {
			t.Fatalf("incompatible types accepted: %s -> %s", tr.Source.Type, tr.Target.Type)
		}
		if len(tr.Source.Patterns) == 0 || len(tr.Target.Patterns) == 0 {
			t.Fatal("no patterns")
		}
		if tr.InstancesMax < 2 {
			t.Fatalf("InstancesMax = %d", tr.InstancesMax)
		}
		for _, p := range append(tr.Source.Patterns, tr.Target.Patterns...) {
			if !p.Has('v') {
				t.Fatalf("pattern %s without @v", p)
			}
		}
	})
}

func TestPathRelativeTo(t *testing.T) {
	tr := mustParse(t, "[Source]\nType=regular-file\nPath=sub/dir\nPathRelativeTo=explicit\nMatchPattern=a_@v\n[Target]\nType=regular-file\nPath=/EFI/Linux\nPathRelativeTo=esp\n")
	if tr.Source.PathRelativeTo != RelativeToExplicit || tr.Source.Path != "sub/dir" {
		t.Errorf("source %+v", tr.Source)
	}
	if _, err := parse(t, "[Source]\nType=regular-file\nPath=../x\nPathRelativeTo=explicit\nMatchPattern=a_@v\n[Target]\nPath=/t\n"); err == nil {
		t.Error("../x accepted")
	}
	if _, err := parse(t, "[Source]\nType=regular-file\nPath=/s\nPathRelativeTo=esp\nMatchPattern=a_@v\n[Target]\nPath=/t\n"); err == nil {
		t.Error("source PathRelativeTo=esp accepted")
	}
	cases := []struct {
		rel           string
		esp, xbootldr string
		want          string
	}{
		{"root", "/e", "/x", "/r/EFI/Linux"},
		{"esp", "/e", "/x", "/e/EFI/Linux"},
		{"xbootldr", "/e", "/x", "/x/EFI/Linux"},
		{"boot", "/e", "/x", "/x/EFI/Linux"},
		{"boot", "/e", "", "/e/EFI/Linux"},
		{"boot", "", "", ""},
		{"esp", "", "/x", ""},
		{"xbootldr", "/e", "", ""},
	}
	for _, c := range cases {
		tr.Target.PathRelativeTo = c.rel
		got, err := tr.TargetDir(Env{Root: "/r", ESP: c.esp, XBOOTLDR: c.xbootldr})
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("%s esp=%q xbootldr=%q: %q %v, want %q", c.rel, c.esp, c.xbootldr, got, err, c.want)
		}
	}
}

func TestListResets(t *testing.T) {
	tr := mustParse(t, "[Transfer]\nProtectVersion=1 2\nProtectVersion=\nProtectVersion=3 3\nFeatures=a\nFeatures=\n"+
		"[Source]\nType=regular-file\nPath=/s\nMatchPattern=x_@v\nMatchPattern=\nMatchPattern=a_@v a_@v \"b_@v\"\n[Target]\nPath=/t\n")
	if strings.Join(tr.ProtectVersions, ",") != "3" || tr.Features != nil || len(tr.Source.Patterns) != 2 || tr.Source.Patterns[1].String() != "b_@v" {
		t.Errorf("resets: %+v %+v", tr, tr.Source.Patterns)
	}
}
