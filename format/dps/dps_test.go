package dps

import (
	"strings"
	"testing"
)

// specUUIDs are the type UUIDs as the specification's tables print them,
// typed in independently of the table in types.go.
var specUUIDs = map[string]string{
	"root-x86-64":            "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
	"usr-x86-64":             "8484680c-9521-48c6-9c11-b0720656f69e",
	"root-x86-64-verity":     "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
	"usr-x86-64-verity":      "77ff5f63-e7b6-4633-acf4-1565b864c0e6",
	"root-x86-64-verity-sig": "41092b05-9fc8-4523-994f-2def0408b176",
	"usr-x86-64-verity-sig":  "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
	"root-arm64":             "b921b045-1df0-41c3-af44-4c6f280d3fae",
	"usr-arm64":              "b0e01050-ee5f-4390-949a-9101b17104e9",
	"root-arm64-verity":      "df3300ce-d69f-4c92-978c-9bfb0f38d820",
	"usr-arm64-verity":       "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e",
	"root-arm64-verity-sig":  "6db69de6-29f4-4758-a7a5-962190f00ce3",
	"usr-arm64-verity-sig":   "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a",
	"root-x86":               "44479540-f297-41b2-9af7-d131d5f0458a",
	"root-arm":               "69dad710-2ce4-4e3c-b16c-21a1d49abed3",
	"root-riscv64":           "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
	"usr-s390x-verity-sig":   "3f324816-667b-46ae-86ee-9b0c0c6c11b4",
	"root-mips":              "e9434544-6e2c-47cc-bae2-12d6deafb44c",
	"usr-mips64-verity-sig":  "05816ce2-dd40-4ac6-a61d-37d32dc1ba7d",
	"esp":                    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
	"xbootldr":               "bc13c2ff-59e6-4262-a352-b275fd6f7172",
	"swap":                   "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
	"home":                   "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
	"srv":                    "3b8f8425-20e0-4f3b-907f-1a25a76f98e8",
	"var":                    "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
	"tmp":                    "7ec6f557-3bc5-4aca-b293-16ef5df639d1",
	"linux-generic":          "0fc63daf-8483-4772-8e79-3d69d8477de4",
	"user-home":              "773f91ef-66d4-49b5-bd83-d683bf40ad16",
}

func TestSpecUUIDs(t *testing.T) {
	for name, want := range specUUIDs {
		typ, ok := LookupName(name, "")
		if !ok {
			t.Errorf("LookupName(%q): not found", name)
			continue
		}
		if got := typ.UUID.String(); got != want || typ.Name != name {
			t.Errorf("LookupName(%q) = %s %q, want %s", name, got, typ.Name, want)
		}
		u, err := ParseUUID(strings.ToUpper(want))
		if err != nil {
			t.Fatal(err)
		}
		back, ok := LookupUUID(u)
		if !ok || back.Name != name {
			t.Errorf("LookupUUID(%s) = %q, %v; want %q", want, back.Name, ok, name)
		}
	}
}

func TestTableShape(t *testing.T) {
	types := Types()
	if len(types) != 21*6+9 {
		t.Fatalf("table has %d types, want %d", len(types), 21*6+9)
	}
	names := map[string]bool{}
	uuids := map[UUID]bool{}
	perArch := map[Arch]int{}
	for _, typ := range types {
		if names[typ.Name] || uuids[typ.UUID] {
			t.Errorf("duplicate %q %s", typ.Name, typ.UUID)
		}
		names[typ.Name], uuids[typ.UUID] = true, true
		if typ.UUID[6]>>4 != 4 && typ.Name != "esp" {
			// Every type but the UEFI-defined ESP is a random (version 4) UUID.
			t.Errorf("%s: %s is not a version 4 UUID", typ.Name, typ.UUID)
		}
		if typ.Arch == "" {
			continue
		}
		perArch[typ.Arch]++
		role := typ.Designator.Data().String()
		want := role + "-" + string(typ.Arch)
		switch {
		case typ.IsVerity():
			want += "-verity"
		case typ.IsVeritySig():
			want += "-verity-sig"
		}
		if typ.Name != want {
			t.Errorf("%s: name does not follow <role>-<arch>[-verity[-sig]], want %q", typ.Name, want)
		}
		wantSince := 252
		if typ.Arch == ArchMIPS || typ.Arch == ArchMIPS64 {
			wantSince = 255
		}
		if typ.Since != wantSince {
			t.Errorf("%s: Since = %d, want %d", typ.Name, typ.Since, wantSince)
		}
	}
	if len(perArch) != 21 || len(Arches()) != 21 {
		t.Errorf("%d architectures in table, Arches() has %d; want 21", len(perArch), len(Arches()))
	}
	for a, n := range perArch {
		if n != 6 {
			t.Errorf("%s has %d types, want 6", a, n)
		}
	}
}

func TestLookupNameNative(t *testing.T) {
	cases := []struct {
		name   string
		native Arch
		want   string // canonical name, "" for not found
	}{
		{"root", ArchX86_64, "root-x86-64"},
		{"usr-verity", ArchX86_64, "usr-x86-64-verity"},
		{"usr-verity-sig", ArchARM64, "usr-arm64-verity-sig"},
		{"root-verity-sig", ArchRISCV64, "root-riscv64-verity-sig"},
		{"root-secondary", ArchX86_64, "root-x86"},
		{"usr-secondary-verity-sig", ArchARM64, "usr-arm-verity-sig"},
		{"root-secondary", ArchRISCV64, ""},
		{"root", "", ""},
		{"root", "sparc", ""},
		{"root-amd64", "", "root-x86-64"},
		{"usr-aarch64-verity", "", "usr-arm64-verity"},
		{"usr-x86_64-verity-sig", "", "usr-x86-64-verity-sig"},
		{"root-ppc64le", "", "root-ppc64-le"},
		{"root-armv7l-verity", "", "root-arm-verity"},
		{"esp", ArchX86_64, "esp"},
		{"linux-generic", "", "linux-generic"},
		{"root-x86-64-verity", ArchARM64, "root-x86-64-verity"},
		{"root-verity-x86-64", "", ""},
		{"root-", ArchX86_64, ""},
		{"usr-", ArchX86_64, ""},
		{"root-sig", ArchX86_64, ""},
		{"Root", ArchX86_64, ""},
		{"esp-x86-64", ArchX86_64, ""},
		{"", ArchX86_64, ""},
	}
	for _, c := range cases {
		got, ok := LookupName(c.name, c.native)
		if ok != (c.want != "") || got.Name != c.want {
			t.Errorf("LookupName(%q, %q) = %q, %v; want %q", c.name, c.native, got.Name, ok, c.want)
		}
	}
}

func TestParseType(t *testing.T) {
	typ, err := ParseType("4F68BCE3E8CD4DB196E7FBCAF984B709", ArchARM64)
	if err != nil || typ.Name != "root-x86-64" {
		t.Errorf("ParseType(upper hex) = %+v, %v", typ, err)
	}
	typ, err = ParseType("usr", ArchARM64)
	if err != nil || typ.Name != "usr-arm64" {
		t.Errorf("ParseType(usr) = %+v, %v", typ, err)
	}
	typ, err = ParseType("01234567-89ab-cdef-0123-456789abcdef", ArchX86_64)
	if err != nil || typ.Name != "" || typ.UUID.String() != "01234567-89ab-cdef-0123-456789abcdef" {
		t.Errorf("ParseType(unknown uuid) = %+v, %v", typ, err)
	}
	for _, bad := range []string{"roo", "01234567-89ab-cdef-0123-456789abcdeg", "01234567+89ab-cdef-0123-456789abcdef", "0123"} {
		if _, err := ParseType(bad, ArchX86_64); err == nil {
			t.Errorf("ParseType(%q) succeeded", bad)
		}
	}
}

func TestUUIDString(t *testing.T) {
	u := UUID{0x4f, 0x68, 0xbc, 0xe3, 0xe8, 0xcd, 0x4d, 0xb1, 0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09}
	if got := u.String(); got != "4f68bce3-e8cd-4db1-96e7-fbcaf984b709" {
		t.Errorf("String = %s", got)
	}
	if u.IsZero() || !(UUID{}).IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestSiblings(t *testing.T) {
	usr, _ := LookupName("usr-x86-64", "")
	for d, want := range map[Designator]string{
		DesignatorUsrVerity:     "usr-x86-64-verity",
		DesignatorUsrVeritySig:  "usr-x86-64-verity-sig",
		DesignatorRoot:          "root-x86-64",
		DesignatorRootVeritySig: "root-x86-64-verity-sig",
	} {
		got, ok := usr.Sibling(d)
		if !ok || got.Name != want {
			t.Errorf("usr-x86-64 sibling %s = %q, %v; want %q", d, got.Name, ok, want)
		}
	}
	sig, _ := LookupName("usr-arm64-verity-sig", "")
	data, ok := sig.Sibling(sig.Designator.Data())
	if !ok || data.Name != "usr-arm64" {
		t.Errorf("data of %s = %q", sig.Name, data.Name)
	}
	if !sig.IsSiblingOf(data) || !data.IsSiblingOf(sig) || sig.IsSiblingOf(usr) {
		t.Error("IsSiblingOf wrong across architectures")
	}
	if root, _ := usr.Sibling(DesignatorRoot); root.IsSiblingOf(usr) {
		t.Error("root and usr are siblings")
	}
	if esp, _ := LookupName("esp", ""); esp.IsSiblingOf(esp) {
		t.Error("esp is in a verity group")
	}
	if _, ok := usr.Sibling(DesignatorNone); ok {
		t.Error("Sibling(DesignatorNone) found something")
	}
	other, ok := usr.ForArch(ArchS390X)
	if !ok || other.Name != "usr-s390x" {
		t.Errorf("ForArch = %q, %v", other.Name, ok)
	}
	esp, _ := LookupName("esp", "")
	if _, ok := esp.ForArch(ArchX86_64); ok {
		t.Error("esp.ForArch found something")
	}
}

func TestDesignators(t *testing.T) {
	for d := DesignatorRoot; d < designatorCount; d++ {
		back, err := ParseDesignator(d.String())
		if err != nil || back != d {
			t.Errorf("ParseDesignator(%q) = %v, %v", d.String(), back, err)
		}
	}
	if _, err := ParseDesignator(""); err == nil {
		t.Error("ParseDesignator(\"\") succeeded")
	}
	if Designator(200).String() != "" {
		t.Error("out-of-range designator has a name")
	}
	if DesignatorRoot.Verity() != DesignatorRootVerity || DesignatorUsr.VeritySig() != DesignatorUsrVeritySig ||
		DesignatorUsrVerity.Data() != DesignatorUsr || DesignatorHome.Verity() != DesignatorNone ||
		DesignatorESP.VeritySig() != DesignatorNone || DesignatorSwap.Data() != DesignatorNone {
		t.Error("verity/data mapping wrong")
	}
	versioned := 0
	for d := DesignatorNone; d < designatorCount; d++ {
		if d.IsVersioned() {
			versioned++
		}
	}
	if versioned != 6 {
		t.Errorf("%d versioned designators, want 6", versioned)
	}
	// The flag tables of systemd's gpt.c.
	for _, c := range []struct {
		d                        Designator
		readOnly, growFS, noAuto bool
		mountPoints              string
	}{
		{DesignatorRoot, true, true, true, "/"},
		{DesignatorUsrVerity, true, false, true, ""},
		{DesignatorUsrVeritySig, false, false, false, ""},
		{DesignatorESP, false, false, false, "/efi /boot"},
		{DesignatorXBOOTLDR, true, true, true, "/boot"},
		{DesignatorSwap, false, false, true, ""},
		{DesignatorTmp, true, true, true, "/var/tmp"},
		{DesignatorNone, false, false, false, ""},
	} {
		if c.d.KnowsReadOnly() != c.readOnly || c.d.KnowsGrowFS() != c.growFS || c.d.KnowsNoAuto() != c.noAuto ||
			strings.Join(c.d.MountPoints(), " ") != c.mountPoints {
			t.Errorf("%q: flags/mount points wrong", c.d)
		}
	}
}

func TestFlags(t *testing.T) {
	attrs := FlagRequiredPartition | FlagLegacyBIOSBootable | FlagGrowFS | FlagReadOnly | FlagNoAuto | 1<<48
	names := FlagNames(attrs)
	if got := strings.Join(names, ","); got != "required-partition,legacy-bios-bootable,bit-48,growfs,read-only,no-auto" {
		t.Errorf("FlagNames = %s", got)
	}
	if FlagNoAuto != 0x8000000000000000 || FlagReadOnly != 0x1000000000000000 || FlagGrowFS != 0x0800000000000000 {
		t.Error("flag masks wrong")
	}
	var back uint64
	for _, n := range names {
		b, err := ParseFlagName(n)
		if err != nil {
			t.Fatal(err)
		}
		back |= b
	}
	if back != attrs {
		t.Errorf("ParseFlagName round trip = %#x, want %#x", back, attrs)
	}
	for _, bad := range []string{"bit-64", "bit-01", "bit-x", "grow"} {
		if _, err := ParseFlagName(bad); err == nil {
			t.Errorf("ParseFlagName(%q) succeeded", bad)
		}
	}
}

func TestArchFromGOARCH(t *testing.T) {
	for goarch, want := range map[string]Arch{"amd64": ArchX86_64, "arm64": ArchARM64, "386": ArchX86, "ppc64le": ArchPPC64LE, "loong64": ArchLoongArch64, "mipsle": ArchMIPSLE} {
		if got, ok := ArchFromGOARCH(goarch); !ok || got != want {
			t.Errorf("ArchFromGOARCH(%q) = %q", goarch, got)
		}
	}
	if _, ok := ArchFromGOARCH("wasm"); ok {
		t.Error("wasm has an architecture")
	}
	if ArchX86_64.Secondary() != ArchX86 || ArchARM64.Secondary() != ArchARM || ArchX86.Secondary() != "" {
		t.Error("Secondary wrong")
	}
}
