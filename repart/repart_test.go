package repart_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/repart"
)

func mustUUID(t *testing.T, s string) dps.UUID {
	t.Helper()
	u, err := dps.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestDerivedUUIDs checks the HMAC constructions against the values
// systemd-repart 252 produced for seed 0123456789abcdef0123456789abcdef
// (spec/formats-disk.md §4.5, §2.6).
func TestDerivedUUIDs(t *testing.T) {
	typ := func(name string) dps.UUID {
		tt, ok := dps.LookupName(name, dps.ArchX86_64)
		if !ok {
			t.Fatalf("no type %s", name)
		}
		return tt.UUID
	}
	root0 := repart.PartitionUUID(testSeed, typ("root"), 0)
	for _, c := range []struct {
		name      string
		got, want dps.UUID
	}{
		{"disk", repart.DiskUUID(testSeed), mustUUID(t, "6913f4b6-6690-4a57-a202-f1b53c56dbdf")},
		{"esp", repart.PartitionUUID(testSeed, typ("esp"), 0), mustUUID(t, "b2d552b0-45db-4678-b34f-066168609d1a")},
		{"root 0", root0, mustUUID(t, "9e90c9c3-c7e8-44f2-bf19-9ae2689de795")},
		{"root 1", repart.PartitionUUID(testSeed, typ("root"), 1), mustUUID(t, "7f48db1a-b817-4c23-a5d2-cde068eb2163")},
		{"home", repart.PartitionUUID(testSeed, typ("home"), 0), mustUUID(t, "c6384fca-e59b-4b73-a86f-ab8b15536288")},
		{"swap", repart.PartitionUUID(testSeed, typ("swap"), 0), mustUUID(t, "ee4c2391-c423-44cf-8019-444f4561b526")},
		{"fs of root 0", repart.FileSystemUUID(root0), mustUUID(t, "e23fa935-5911-428c-b168-a4b761ee82bd")},
		{"luks of root 0", repart.LUKSUUID(root0), mustUUID(t, "1ac2da86-e263-4df5-889d-ad42a5da46ca")},
		{"fs of a verity data partition (zero key)", repart.FileSystemUUID(dps.UUID{}), mustUUID(t, "3faed36c-01a6-4ccd-9b78-a1f4cbce9b1d")},
		{"verity superblock", repart.VerityUUID(testSeed), mustUUID(t, "898929e6-7747-423e-8593-3659ba461e7c")},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, c.got, c.want)
		}
	}
	salt := repart.VeritySalt(testSeed)
	if got := hex.EncodeToString(salt[:]); got != "c65b6ab68edf421fcc0cb48ba60f7f14f5186b4d003d21ab3b334b91de16759c" {
		t.Errorf("verity salt %s", got)
	}
}

// TestBadDefinitions checks that every refused definition gets one line
// naming the file, the line and (where one is to blame) the key.
func TestBadDefinitions(t *testing.T) {
	cases := []struct {
		text string
		want string // regexp the error must match
	}{
		{"[Partition]\nLabel=x\n", `^repart: f\.conf:1: Type= not defined, refusing$`},
		{"[Partition]\nType=nonsense\n", `^repart: f\.conf:2: Type=: "nonsense" is neither`},
		{"[Partition]\nType=root-amd64\n", `^repart: f\.conf:2: Type=: .*systemd 254`},
		{"[Partition]\nType=root\nWeight=1000001\n", `^repart: f\.conf:3: Weight=: 1000001 is out of range`},
		{"[Partition]\nType=root\nPaddingWeight=-1\n", `^repart: f\.conf:3: PaddingWeight=: "-1": number out of range`},
		{"[Partition]\nType=root\nPriority=2147483648\n", `^repart: f\.conf:3: Priority=: .*out of range`},
		{"[Partition]\nType=root\nPriority=\n", `^repart: f\.conf:3: Priority=: "": not a number`},
		{"[Partition]\nType=root\nSizeMinBytes=lots\n", `^repart: f\.conf:3: SizeMinBytes=: "lots"`},
		{"[Partition]\nType=root\nSizeMinBytes=2G\nSizeMaxBytes=1G\n", `^repart: f\.conf:3: SizeMinBytes= SizeMinBytes= \(2147483648\) larger than SizeMaxBytes= \(1073741824\), refusing$`},
		{"[Partition]\nType=root\nPaddingMinBytes=2G\nPaddingMaxBytes=1G\n", `^repart: f\.conf:3: PaddingMinBytes= PaddingMinBytes= .* larger than PaddingMaxBytes=`},
		{"[Partition]\nType=root\nFactoryReset=maybe\n", `^repart: f\.conf:3: FactoryReset=: "maybe" is not a boolean$`},
		{"[Partition]\nType=root\nLabel=0123456789012345678901234567890123456\n", `^repart: f\.conf:3: Label=: expanded value too long \(more than 36 bytes\)$`},
		{"[Partition]\nType=root\nLabel=%Z\n", `^repart: f\.conf:3: Label=: unknown specifier %Z$`},
		{"[Partition]\nType=root\nUUID=1234\n", `^repart: f\.conf:3: UUID=: "1234" is not a UUID$`},
		{"[Partition]\nType=root\nFlags=0x1g\n", `^repart: f\.conf:3: Flags=: "0x1g": not a number`},
		{"[Partition]\nType=root\nReadOnly=perhaps\n", `^repart: f\.conf:3: ReadOnly=: "perhaps" is not a boolean$`},
		{"[Partition]\nType=root\nEncrypt=rot13\n", `^repart: f\.conf:3: Encrypt=: invalid encryption mode "rot13"`},
		{"[Partition]\nType=root\nVerity=yes\n", `^repart: f\.conf:3: Verity=: invalid verity mode "yes"`},
		{"[Partition]\nType=root\nVerity=data\n", `^repart: f\.conf:3: Verity= VerityMatchKey= must be set if Verity=data$`},
		{"[Partition]\nType=root\nVerityMatchKey=x\n", `^repart: f\.conf:3: VerityMatchKey= VerityMatchKey= can only be set`},
		{"[Partition]\nType=root\nVerity=hash\nVerityMatchKey=x\nFormat=ext4\n", `^repart: f\.conf:3: Verity= CopyBlocks=/CopyFiles=/Format=/MakeDirectories= cannot be used with Verity=hash$`},
		{"[Partition]\nType=root\nVerity=signature\nVerityMatchKey=x\n", `^repart: f\.conf:3: Verity= verity signature partition requested but no private key`},
		{"[Partition]\nType=root\nVerity=data\nVerityMatchKey=x\nEncrypt=yes\n", `^repart: f\.conf:5: Encrypt= encrypting verity`},
		{"[Partition]\nType=root\nCopyBlocks=/dev/sda1\nFormat=ext4\n", `^repart: f\.conf:3: CopyBlocks= Format=/CopyFiles=/MakeDirectories= and CopyBlocks= cannot be combined`},
		{"[Partition]\nType=swap\nFormat=swap\nMakeDirectories=/x\n", `^repart: f\.conf:3: Format= Format=swap and CopyFiles=`},
		{"[Partition]\nType=root\nFormat=ext4/x\n", `^repart: f\.conf:3: Format=: "ext4/x" is not a valid file system type$`},
		{"[Partition]\nType=root\nFormat=empty\n", `^repart: f\.conf:3: Format=: Format=empty is not supported`},
		{"[Partition]\nType=root\nCopyFiles=relative\n", `^repart: f\.conf:3: CopyFiles=: source: path "relative" is not absolute$`},
		{"[Partition]\nType=root\nCopyFiles=/a:/b:/c\n", `^repart: f\.conf:3: CopyFiles=: "/a:/b:/c": too many arguments`},
		{"[Partition]\nType=root\nCopyFiles=\n", `^repart: f\.conf:3: CopyFiles=: no source path given$`},
		{"[Partition]\nType=root\nMakeDirectories=/a ../b\n", `^repart: f\.conf:3: MakeDirectories=: path "../b" is not absolute$`},
		{"[Partition]\nType=root\nMakeDirectories=/a/../b\n", `^repart: f\.conf:3: MakeDirectories=: path "/a/../b" is not normalized`},
		{"[Partition]\nType=root\nCopyBlocks=dev/sda\n", `^repart: f\.conf:3: CopyBlocks=: path "dev/sda" is not absolute$`},
		{"[Partition]\nType=root\nMinimize=best\n", `^repart: f\.conf:3: Minimize=: not supported \(the key comes with systemd 253`},
		{"[Partition]\nType=root\nSubvolumes=/x\n", `^repart: f\.conf:3: Subvolumes=: not supported \(the key comes with systemd 255`},
		{"[Partition]\nType=root\nExcludeFiles=/x\n", `^repart: f\.conf:3: ExcludeFiles=: not supported`},
		{"[Partition]\nType=root\nVerityDataBlockSizeBytes=4096\n", `^repart: f\.conf:3: VerityDataBlockSizeBytes=: not supported`},
		{"[Partition]\nType=root\nTypo=1\n", `^repart: f\.conf:3: Typo=: unknown key in \[Partition\]$`},
		{"[Partition]\nType=root\n[Other]\nX=1\n", `^repart: f\.conf:3: unknown section \[Other\]`},
		{"Type=root\n", `^repart: f\.conf:1: assignment outside of a section$`},
		{"[Partition]\nType=root\njunk\n", `^repart: f\.conf:3: line has no '='`},
		{"[Partition\nType=root\n", `^repart: f\.conf:1: invalid section header "\[Partition"$`},
	}
	for _, c := range cases {
		_, err := repart.ParseDefinitionFile("f.conf", []byte(c.text), repart.ParseOptions{Arch: dps.ArchX86_64})
		if err == nil {
			t.Errorf("%q: accepted", c.text)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("%q: error has several lines: %q", c.text, msg)
		}
		if !regexp.MustCompile(c.want).MatchString(msg) {
			t.Errorf("%q:\n got %q\nwant %s", c.text, msg, c.want)
		}
	}
}

// TestDefinitionValues checks values systemd 252 accepts and how it reads
// them.
func TestDefinitionValues(t *testing.T) {
	d, err := repart.ParseDefinitionFile("v.conf", []byte(`[Partition]
Type=usr
Label=a
Label=
UUID=null
Priority=-0x10
Weight=0o17
PaddingWeight=0b101
SizeMinBytes=5000
SizeMaxBytes=9000
PaddingMinBytes=1.5K
PaddingMaxBytes=1
FactoryReset=on
Flags=010
CopyFiles=/etc/a\x3a:/srv
CopyFiles=/var
MakeDirectories=/a "/b c"
MakeDirectories=
Encrypt=yes
VerityMatchKey=
X-Extension=ignored
SplitName=-
[X-Extra]
Anything=goes
`), repart.ParseOptions{Arch: dps.ArchARM64})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	check("type", d.Type.Name, "usr-arm64")
	check("label", d.Label, "")
	check("has label", d.HasLabel, true)
	check("uuid", d.UUID, dps.UUID{})
	check("has uuid", d.HasUUID, true)
	check("priority", d.Priority, int32(-16))
	check("weight", d.Weight, uint32(15))
	check("padding weight", d.PaddingWeight, uint32(5))
	check("size min (rounded down)", d.SizeMin, uint64(4096))
	check("size max (rounded up)", d.SizeMax, uint64(12288))
	check("padding min", d.PaddingMin, uint64(0))
	check("padding max", d.PaddingMax, uint64(4096))
	check("factory reset", d.FactoryReset, true)
	check("flags (octal)", d.Flags, uint64(8))
	check("copy files", len(d.CopyFiles), 2)
	check("copy files source", d.CopyFiles[0].Source, "/etc/a:")
	check("copy files target", d.CopyFiles[0].Target, "/srv")
	check("copy files default target", d.CopyFiles[1].Target, "/var")
	check("make directories", strings.Join(d.MakeDirectories, ","), "/a,/b c")
	check("encrypt", d.Encrypt, repart.EncryptKeyFile)
	check("format implied by Encrypt=", d.Format, "ext4")
	check("split name", d.SplitName, "")
	check("growfs default", *d.GrowFileSystem, true)
	if d.ReadOnly != nil || d.NoAuto != nil {
		t.Errorf("read-only/no-auto set without being configured")
	}

	v, err := repart.ParseDefinitionFile("v.conf", []byte("[Partition]\nType=root-verity\n"), repart.ParseOptions{Arch: dps.ArchX86_64})
	if err != nil {
		t.Fatal(err)
	}
	if v.ReadOnly == nil || !*v.ReadOnly || v.GrowFileSystem != nil || v.SplitName != "%t" {
		t.Errorf("verity defaults: read-only %v, growfs %v, split %q", v.ReadOnly, v.GrowFileSystem, v.SplitName)
	}
	if f := v.WriteFlags(); f != dps.FlagReadOnly {
		t.Errorf("verity flags %#x", f)
	}
}

// TestFlagsWarnings checks the mirrored libfdisk and GrowFileSystem= quirks
// are reported.
func TestFlagsWarnings(t *testing.T) {
	d, err := repart.ParseDefinitionFile("w.conf", []byte("[Partition]\nType=home\nFlags=1\nGrowFileSystem=no\n"), repart.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.MergedFlags() != 1|dps.FlagGrowFS || d.WriteFlags() != 0 {
		t.Errorf("merged %#x, written %#x", d.MergedFlags(), d.WriteFlags())
	}
	w := strings.Join(d.Warnings(), "\n")
	if !strings.Contains(w, "w.conf:4: GrowFileSystem=no is overridden") || !strings.Contains(w, "w.conf:3: Flags= sets bits below 48") {
		t.Errorf("warnings: %s", w)
	}
	e, err := repart.ParseDefinitionFile("e.conf", []byte("[Partition]\nType=esp\nNoAuto=yes\n"), repart.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := e.Warnings(); len(w) != 1 || !strings.Contains(w[0], "NoAuto= is ignored for partition type esp") {
		t.Errorf("warnings: %q", w)
	}
}

func TestSpecifiers(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=foo\nIMAGE_ID=fooOS\nIMAGE_VERSION=1.2\nVERSION_ID=3\n"), 0o644)
	os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789ABCDEF0123456789abcdef\n"), 0o444)
	s := &repart.Specifiers{Root: root, Values: map[byte]string{'H': "host.example"}}
	for in, want := range map[string]string{
		"%M_%A":      "fooOS_1.2",
		"%o-%w-%W%B": "foo-3-",
		"%m":         "0123456789abcdef0123456789abcdef",
		"%H/%%/%":    "host.example/%/%",
		"a%-b%.c":    "a%-b%.c",
		"%T %V":      "/tmp /var/tmp",
	} {
		got, err := s.Expand(in, 0)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := s.Expand("%y", 0); !errors.Is(err, repart.ErrUnknownSpecifier) {
		t.Errorf("%%y: %v", err)
	}
	if _, err := s.Expand("%M%M%M%M%M%M%M%M", 36); !errors.Is(err, repart.ErrTooLong) {
		t.Errorf("long: %v", err)
	}
	empty := &repart.Specifiers{Root: t.TempDir()}
	if _, err := empty.Expand("%A", 0); err == nil {
		t.Error("%A without os-release was accepted")
	}
	if _, err := empty.Expand("%m", 0); err == nil {
		t.Error("%m without machine-id was accepted")
	}
}

func TestResolveSeed(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	zero := strings.NewReader(strings.Repeat("\x00", 64))
	if u, src, err := repart.ResolveSeed("", root, zero); err != nil || src != repart.SeedRandom || u != repart.MakeV4(dps.UUID{}) {
		t.Errorf("no machine-id: %v %v %v", u, src, err)
	}
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("uninitialized\n"), 0o444)
	if _, src, err := repart.ResolveSeed("", root, nil); err != nil || src != repart.SeedRandom {
		t.Errorf("uninitialized: %v %v", src, err)
	}
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	if u, src, err := repart.ResolveSeed("", root, nil); err != nil || src != repart.SeedMachineID || u != testSeed {
		t.Errorf("machine-id: %v %v %v", u, src, err)
	}
	if u, src, err := repart.ResolveSeed("00000000-0000-0000-0000-000000000000", root, nil); err != nil || src != repart.SeedMachineID || u != testSeed {
		t.Errorf("null seed: %v %v %v", u, src, err)
	}
	if u, src, err := repart.ResolveSeed("ffffffffffffffffffffffffffffffff", root, nil); err != nil || src != repart.SeedGiven || u[0] != 0xff {
		t.Errorf("given: %v %v %v", u, src, err)
	}
	if _, _, err := repart.ResolveSeed("bogus", root, nil); err == nil {
		t.Error("bogus seed accepted")
	}
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("garbage\n"), 0o444)
	if _, _, err := repart.ResolveSeed("", root, nil); err == nil {
		t.Error("garbage machine-id accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"1": 4096, "4096": 4096, "4097": 8192, "1M": 1 << 20, "1.5K": 4096} {
		got, auto, err := repart.ParseSize(in)
		if err != nil || auto || got != want {
			t.Errorf("ParseSize(%q) = %d, %v, %v; want %d", in, got, auto, err, want)
		}
	}
	if _, auto, err := repart.ParseSize("auto"); !auto || err != nil {
		t.Error("auto")
	}
	for _, bad := range []string{"0", "", "-1", "1X", "16E"} {
		if _, _, err := repart.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// TestDryRunWritesNothing runs plans that would change a disk without
// --dry-run=no and checks not a byte changed.
func TestDryRunWritesNothing(t *testing.T) {
	defs := mustDefs(t, "[Partition]\nType=esp\nSizeMinBytes=4M\nSizeMaxBytes=4M\n", "[Partition]\nType=root\nFactoryReset=yes\n")
	m := &memDisk{}
	if _, err := repart.Run(context.Background(), m, repart.Options{Definitions: defs, Seed: testSeed, Empty: repart.EmptyCreate, Write: true, Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), m.b...)
	more := mustDefs(t, "[Partition]\nType=esp\nSizeMinBytes=4M\nSizeMaxBytes=4M\n", "[Partition]\nType=root\nFactoryReset=yes\n", "[Partition]\nType=home\n")
	plan, err := repart.Run(context.Background(), m, repart.Options{Definitions: more, Seed: testSeed, Size: 64 << 20, FactoryReset: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(m.b) {
		t.Fatal("a dry run changed the disk")
	}
	if plan.Written || !plan.Changed || plan.DiskSize != 64<<20 {
		t.Errorf("plan: written %v changed %v size %d", plan.Written, plan.Changed, plan.DiskSize)
	}
	var actions []string
	for _, p := range plan.Partitions {
		actions = append(actions, string(p.Action))
	}
	if got := strings.Join(actions, ","); got != "keep,factory-reset,create" {
		t.Errorf("actions %s", got)
	}
	if len(plan.Removed) != 1 || plan.Removed[0].Type.Designator != dps.DesignatorRoot {
		t.Errorf("removed %+v", plan.Removed)
	}
}

// TestContentHook checks what the content step is given and that verity
// UUIDs it sets reach the table.
func TestContentHook(t *testing.T) {
	defs := mustDefs(t,
		"[Partition]\nType=usr\nVerity=data\nVerityMatchKey=u\nFormat=erofs\nSizeMaxBytes=12M\n",
		"[Partition]\nType=usr-verity\nVerity=hash\nVerityMatchKey=u\nSizeMaxBytes=12M\n",
		"[Partition]\nType=home\nCopyBlocks=/some/file\n",
	)
	m := &memDisk{}
	_, err := repart.Run(context.Background(), m, repart.Options{Definitions: defs, Seed: testSeed, Empty: repart.EmptyCreate, Write: true, Size: 64 << 20})
	if err == nil || !strings.Contains(err.Error(), "CopyBlocks= needs the content step") {
		t.Fatalf("CopyBlocks= without content: %v", err)
	}
	hook := &recordingContent{}
	m = &memDisk{}
	plan, err := repart.Run(context.Background(), m, repart.Options{Definitions: defs, Seed: testSeed, Empty: repart.EmptyCreate, Write: true, Size: 64 << 20, Content: hook})
	if err != nil {
		t.Fatal(err)
	}
	if hook.prepared != 3 || hook.filled != 3 {
		t.Errorf("prepared %d, filled %d", hook.prepared, hook.filled)
	}
	tab, err := gpt.Read(m, int64(len(m.b)), 512)
	if err != nil {
		t.Fatal(err)
	}
	if dps.UUID(tab.Partitions[0].UniqueGUID) != hook.dataUUID || dps.UUID(tab.Partitions[1].UniqueGUID) != hook.hashUUID {
		t.Errorf("verity UUIDs not taken over: %+v", tab.Partitions[:2])
	}
	if home := tab.Partitions[2]; home.Sectors()*512 < 20<<20 {
		t.Errorf("CopyBlocks= size not part of the minimum: %d sectors", home.Sectors())
	}
	if !plan.Partitions[0].UUIDKnown || plan.Partitions[0].UUID != hook.dataUUID {
		t.Errorf("plan UUID %v", plan.Partitions[0].UUID)
	}
	if string(plan.Partitions[1].RootHash) != "\x01\x02\x03" {
		t.Errorf("plan root hash %x", plan.Partitions[1].RootHash)
	}
}

type recordingContent struct {
	prepared, filled   int
	dataUUID, hashUUID dps.UUID
}

func (r *recordingContent) Prepare(_ context.Context, run *repart.ContentRun) error {
	r.prepared = len(run.Partitions)
	for _, p := range run.Partitions {
		if p.Definition.CopyBlocks != "" {
			p.CopyBlocksSize = 20 << 20
		}
	}
	return nil
}

func (r *recordingContent) Fill(_ context.Context, run *repart.ContentRun) error {
	r.filled = len(run.Partitions)
	for _, p := range run.Partitions {
		if p.Number == 0 || p.Size == 0 || p.Offset%4096 != 0 {
			return errors.New("partition not placed")
		}
		switch p.Definition.Verity {
		case repart.VerityData:
			if p.HasUUID || run.Sibling(p, repart.VerityHash) == nil {
				return errors.New("verity data partition: unexpected UUID or no sibling")
			}
			r.dataUUID = repart.MakeV4(dps.UUID{1})
			p.UUID, p.HasUUID = r.dataUUID, true
		case repart.VerityHash:
			r.hashUUID = repart.MakeV4(dps.UUID{2})
			p.UUID, p.HasUUID = r.hashUUID, true
			p.RootHash = []byte{1, 2, 3}
		}
	}
	return nil
}
