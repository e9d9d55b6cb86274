package efivar

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// vectorRow is one line of testdata/efivars.tsv: efivarfs byte images
// written by systemd 252 userspace, or observed from systemd-boot and
// systemd-stub 252.39 in a booted VM.
type vectorRow struct {
	line  int
	id    ID
	attrs Attributes
	file  []byte
	note  string
}

func readVectors(t *testing.T) []vectorRow {
	t.Helper()
	f, err := os.Open("testdata/efivars.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []vectorRow
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 5 {
			t.Fatalf("efivars.tsv:%d: %d columns, want 5", n, len(cols))
		}
		vendor, err := ParseGUID(cols[1])
		if err != nil {
			t.Fatalf("efivars.tsv:%d: %v", n, err)
		}
		attrs, err := strconv.ParseUint(cols[2], 0, 32)
		if err != nil {
			t.Fatalf("efivars.tsv:%d: attributes: %v", n, err)
		}
		file, err := hex.DecodeString(cols[3])
		if err != nil {
			t.Fatalf("efivars.tsv:%d: bytes: %v", n, err)
		}
		rows = append(rows, vectorRow{n, ID{cols[0], vendor}, Attributes(attrs), file, cols[4]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestVectors decodes every efivars.tsv line to the value written in this
// table, then encodes that value again and compares the whole file, byte
// for byte.
func TestVectors(t *testing.T) {
	want := []struct {
		name  string
		value any // string, uint64 or bool, by encoding
	}{
		{LoaderEntryOneShot, "testos-2.0.efi"},
		{LoaderEntryDefault, "testos-*"},
		{LoaderEntryDefault, "@saved"},
		{LoaderConfigTimeout, "5"},
		{LoaderConfigTimeout, "4294967295"},
		{LoaderConfigTimeout, TimeoutMenuForceString},
		{LoaderConfigTimeout, "0"},
		{LoaderConfigTimeoutOneShot, "10"},
		{LoaderFeatures, uint64(0x7ff)},
		{StubFeatures, uint64(0x0f)},
		{LoaderEntrySelected, "testos-2.0+1-2.efi"},
		{LoaderBootCountPath, `\EFI\Linux\testos-2.0+0-3.efi`},
		{StubPcrKernelImage, uint64(11)},
		{FactoryReset, true},
		{FactoryResetRequest, `{"osReleaseId":"testos","osReleaseVersionId":"1.0","bootId":"0123456789abcdef0123456789abcdef"}`},
	}
	rows := readVectors(t)
	if len(rows) != len(want) {
		t.Fatalf("efivars.tsv has %d rows, the test expects %d", len(rows), len(want))
	}
	for i, row := range rows {
		w := want[i]
		if row.id.Name != w.name {
			t.Fatalf("efivars.tsv:%d: name %q, test expects %q", row.line, row.id.Name, w.name)
		}
		v, err := Decode(row.file)
		if err != nil {
			t.Fatalf("efivars.tsv:%d: %v", row.line, err)
		}
		if v.Attributes != row.attrs {
			t.Errorf("efivars.tsv:%d: attributes %v, column says %v", row.line, v.Attributes, row.attrs)
		}
		var payload []byte
		switch enc := EncodingOf(row.id); enc {
		case EncodingString:
			got := DecodeString(v.Data)
			if got != w.value {
				t.Errorf("efivars.tsv:%d: %s = %q, want %q", row.line, row.id, got, w.value)
			}
			payload, err = EncodeString(got)
		case EncodingDecimal:
			got, derr := DecodeDecimal(v.Data)
			if derr != nil || got != w.value {
				t.Errorf("efivars.tsv:%d: %s = %d, %v; want %v", row.line, row.id, got, derr, w.value)
			}
			payload = EncodeDecimal(got)
		case EncodingUint64:
			got, derr := DecodeUint64(v.Data)
			if derr != nil || got != w.value {
				t.Errorf("efivars.tsv:%d: %s = %#x, %v; want %#x", row.line, row.id, got, derr, w.value)
			}
			payload = EncodeUint64(got)
		case EncodingBoolean:
			got, derr := DecodeFactoryReset(v.Data)
			if derr != nil || got != w.value {
				t.Errorf("efivars.tsv:%d: %s = %v, %v; want %v", row.line, row.id, got, derr, w.value)
			}
			payload = EncodeFactoryResetRequest()
		default:
			t.Fatalf("efivars.tsv:%d: %s has encoding %v", row.line, row.id, enc)
		}
		if err != nil {
			t.Fatalf("efivars.tsv:%d: encode: %v", row.line, err)
		}
		again := Variable{Attributes: row.attrs, Data: payload}.Encode()
		if !bytes.Equal(again, row.file) {
			t.Errorf("efivars.tsv:%d: re-encoded %s\n got %x\nwant %x", row.line, row.id, again, row.file)
		}
		if _, err := row.id.FileName(); err != nil {
			t.Errorf("efivars.tsv:%d: %v", row.line, err)
		}
	}
}

// TestVectorAttributesByWriter checks the rule the vectors illustrate:
// what the OS writes is NV|BS|RT, what the loader publishes is BS|RT.
func TestVectorAttributesByWriter(t *testing.T) {
	for _, row := range readVectors(t) {
		want := AttributesSystemd
		if strings.HasPrefix(row.note, "observed") {
			want = AttributesLoaderVolatile
		}
		if row.attrs != want {
			t.Errorf("efivars.tsv:%d: %s has %v, want %v (%s)", row.line, row.id, row.attrs, want, row.note)
		}
	}
}

// TestObservedBoot decodes every variable systemd-boot and systemd-stub
// 252.39 left in efivarfs on two boots of a test VM.
func TestObservedBoot(t *testing.T) {
	data, err := os.ReadFile("testdata/observed-boot.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]any{ // name -> value on boot 1, boot 2
		LoaderBootCountPath:     {`\EFI\Linux\testos-1.0+2-1.efi`, `\EFI\Linux\testos-2.0+0-3.efi`},
		LoaderDevicePartUUID:    {"11111111-2222-3333-4444-555555555555", "11111111-2222-3333-4444-555555555555"},
		LoaderEntries:           {[]string{"testos-1.0+3.efi", "auto-reboot-to-firmware-setup"}, []string{"testos-2.0+1-2.efi", "testos-0.9.efi", "testos-1.0+0-3.efi", "auto-reboot-to-firmware-setup"}},
		LoaderEntrySelected:     {"testos-1.0+3.efi", "testos-2.0+1-2.efi"},
		LoaderFeatures:          {uint64(0x7ff), uint64(0x7ff)},
		LoaderFirmwareInfo:      {"EDK II 1.00", "EDK II 1.00"},
		LoaderFirmwareType:      {"UEFI 2.70", "UEFI 2.70"},
		LoaderImageIdentifier:   {`\EFI\BOOT\BOOTX64.EFI`, `\EFI\BOOT\BOOTX64.EFI`},
		LoaderInfo:              {"systemd-boot 252.39-1~deb12u2", "systemd-boot 252.39-1~deb12u2"},
		StubFeatures:            {uint64(0x0f), uint64(0x0f)},
		StubInfo:                {"systemd-stub 252.39-1~deb12u2", "systemd-stub 252.39-1~deb12u2"},
		StubPcrInitRDSysExts:    {uint64(13), uint64(13)},
		StubPcrKernelImage:      {uint64(11), uint64(11)},
		StubPcrKernelParameters: {uint64(12), uint64(12)},
	}
	seen := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			t.Fatalf("observed-boot.txt:%d: %d fields", n+1, len(fields))
		}
		id, err := ParseFileName(fields[0])
		if err != nil {
			t.Fatalf("observed-boot.txt:%d: %v", n+1, err)
		}
		if id.Vendor != VendorLoader {
			t.Errorf("observed-boot.txt:%d: vendor %s", n+1, id.Vendor)
		}
		file, err := hex.DecodeString(fields[1])
		if err != nil {
			t.Fatal(err)
		}
		v, err := Decode(file)
		if err != nil {
			t.Fatalf("observed-boot.txt:%d: %v", n+1, err)
		}
		if v.Attributes != AttributesLoaderVolatile {
			t.Errorf("observed-boot.txt:%d: %s attributes %v", n+1, id, v.Attributes)
		}
		w, ok := want[id.Name]
		if !ok {
			t.Fatalf("observed-boot.txt:%d: unexpected %s", n+1, id)
		}
		boot := seen[id.Name]
		seen[id.Name]++
		var got any
		var payload []byte
		switch EncodingOf(id) {
		case EncodingString:
			s := DecodeString(v.Data)
			got = s
			payload, err = EncodeString(s)
		case EncodingStringList:
			l := DecodeEntries(v.Data)
			got = l
			payload, err = EncodeStringList(l)
		case EncodingDecimal:
			var x uint64
			x, err = DecodeDecimal(v.Data)
			got = x
			payload = EncodeDecimal(x)
		case EncodingUint64:
			var x uint64
			x, err = DecodeUint64(v.Data)
			got = x
			payload = EncodeUint64(x)
		default:
			t.Fatalf("observed-boot.txt:%d: %s has no encoding", n+1, id)
		}
		if err != nil {
			t.Fatalf("observed-boot.txt:%d: %s: %v", n+1, id, err)
		}
		if !reflect.DeepEqual(got, w[boot]) {
			t.Errorf("observed-boot.txt:%d: %s = %#v, want %#v", n+1, id, got, w[boot])
		}
		if !bytes.Equal(payload, v.Data) {
			t.Errorf("observed-boot.txt:%d: %s re-encoded\n got %x\nwant %x", n+1, id, payload, v.Data)
		}
	}
	for name := range want {
		if seen[name] != 2 {
			t.Errorf("%s seen %d times, want 2", name, seen[name])
		}
	}
}

func TestDecodeShortAndLarge(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		if _, err := Decode(make([]byte, n)); !errors.Is(err, ErrShort) {
			t.Errorf("Decode(%d bytes) = %v, want ErrShort", n, err)
		}
	}
	if v, err := Decode([]byte{7, 0, 0, 0}); err != nil || v.Attributes != 7 || len(v.Data) != 0 {
		t.Errorf("Decode(header only) = %+v, %v", v, err)
	}
	if _, err := Decode(make([]byte, MaxFileSize)); err != nil {
		t.Errorf("Decode(MaxFileSize) = %v", err)
	}
	if _, err := Decode(make([]byte, MaxFileSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Decode(MaxFileSize+1) = %v, want ErrTooLarge", err)
	}
}

func TestAttributesString(t *testing.T) {
	for a, want := range map[Attributes]string{
		0:                        "0",
		AttributesSystemd:        "NV|BS|RT",
		AttributesLoaderVolatile: "BS|RT",
		0x27:                     "NV|BS|RT|AT",
		0x100 | NonVolatile:      "NV|0x100",
		TimeBasedAuthenticatedWriteAccess | AppendWrite: "AT|AP",
	} {
		if got := a.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint32(a), got, want)
		}
	}
}

func TestGUIDAndFileNames(t *testing.T) {
	g, err := ParseGUID("4A67B082-0A4C-41CF-B6C7-440B29BB8C4F")
	if err != nil || g != VendorLoader {
		t.Fatalf("ParseGUID(upper) = %q, %v", g, err)
	}
	for _, bad := range []string{"", "4a67b082-0a4c-41cf-b6c7-440b29bb8c4", "4a67b082+0a4c-41cf-b6c7-440b29bb8c4f", "4a67b082-0a4c-41cf-b6c7-440b29bb8c4g"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
	id := SystemdVar(FactoryReset)
	name, err := id.FileName()
	if err != nil || name != "FactoryReset-8cf2644b-4b0b-428f-9387-6d876050dc67" {
		t.Fatalf("FileName = %q, %v", name, err)
	}
	back, err := ParseFileName(name)
	if err != nil || back != id {
		t.Errorf("ParseFileName(%q) = %+v, %v", name, back, err)
	}
	if got, _ := GlobalVar("SecureBoot").FileName(); got != "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c" {
		t.Errorf("GlobalVar FileName = %q", got)
	}
	if got, _ := LoaderVar(LoaderEntryOneShot).FileName(); got != "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f" {
		t.Errorf("LoaderVar FileName = %q", got)
	}
	// Variable names may themselves contain '-'.
	if id, err := ParseFileName("a-b-8cf2644b-4b0b-428f-9387-6d876050dc67"); err != nil || id.Name != "a-b" {
		t.Errorf("ParseFileName(dash in name) = %+v, %v", id, err)
	}
	for _, bad := range []string{"", "FactoryReset", "-8cf2644b-4b0b-428f-9387-6d876050dc67", "FactoryReset_8cf2644b-4b0b-428f-9387-6d876050dc67", "a/b-8cf2644b-4b0b-428f-9387-6d876050dc67", "\U0001F600-8cf2644b-4b0b-428f-9387-6d876050dc67"} {
		if id, err := ParseFileName(bad); err == nil {
			t.Errorf("ParseFileName(%q) = %+v", bad, id)
		}
	}
	if _, err := (ID{Name: "X", Vendor: "8CF2644B-4B0B-428F-9387-6D876050DC67"}).FileName(); err == nil {
		t.Error("FileName accepted an uppercase vendor")
	}
}

func TestEncodeString(t *testing.T) {
	for s, want := range map[string]string{
		"":    "0000",
		"1":   "31000000",
		"ä€":  "e400ac200000",
		"a😀b": "61003dd800de62000000",
	} {
		got, err := EncodeString(s)
		if err != nil || hex.EncodeToString(got) != want {
			t.Errorf("EncodeString(%q) = %x, %v; want %s", s, got, err, want)
		}
	}
	for _, bad := range []string{"a\x00b", "\xff"} {
		if _, err := EncodeString(bad); err == nil {
			t.Errorf("EncodeString(%q) succeeded", bad)
		}
	}
}

// TestDecodeStringQuirks pins the systemd-252 reading of malformed UTF-16.
func TestDecodeStringQuirks(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"31":           "",  // odd byte alone: ignored
		"310032":       "1", // odd trailing byte ignored
		"3100":         "1", // terminator optional
		"310000003200": "1", // stops at the first NUL
		"00dc3100":     "1", // stray trailing surrogate dropped
		"3dd83100":     "1", // leading surrogate without partner dropped, next unit kept
		"31003dd8":     "1", // leading surrogate at the end dropped
		"3dd800de":     "😀", // pair
		"3dd83dd800de": "😀", // first lead dropped, second pair kept
		"e400ac200000": "ä€",
		"fffe4100":     "\ufeffA", // BOM kept as a character, as systemd does
	} {
		b, _ := hex.DecodeString(in)
		if got := DecodeString(b); got != want {
			t.Errorf("DecodeString(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestStringList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                 nil,
		"0000":             nil,
		"61000000":         {"a"},
		"6100":             {"a"},      // last terminator optional
		"610000006200":     {"a", "b"}, //
		"6100000000006200": {"a", "b"}, // empty strings skipped
		"6100000062":       {"a", "b"}, // odd byte read with a zero high byte
		"00dc00006200":     {"b"},      // a string that decodes to "" is skipped
	} {
		b, err := hex.DecodeString(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := DecodeStringList(b); !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeStringList(%s) = %q, want %q", in, got, want)
		}
	}
	b, err := EncodeStringList([]string{"a", "bc"})
	if err != nil || hex.EncodeToString(b) != "61000000620063000000" {
		t.Errorf("EncodeStringList = %x, %v", b, err)
	}
	if _, err := EncodeStringList([]string{"a", ""}); err == nil {
		t.Error("EncodeStringList accepted an empty item")
	}
	if got := DecodeEntries(append(b, mustEncode(t, "bad/id")...)); !reflect.DeepEqual(got, []string{"a", "bc"}) {
		t.Errorf("DecodeEntries = %q", got)
	}
}

func mustEncode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := EncodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEntryIDValid(t *testing.T) {
	for s, want := range map[string]bool{
		"testos-2.0+1-2.efi":            true,
		"auto-reboot-to-firmware-setup": true,
		"a_b.conf":                      true,
		"":                              false,
		".":                             false,
		"..":                            false,
		"...":                           true,
		"a/b":                           false,
		"a b":                           false,
		"testos-*":                      false,
		"@saved":                        false,
		"é":                             false,
		strings.Repeat("a", 255):        true,
		strings.Repeat("a", 256):        false,
	} {
		if got := EntryIDValid(s); got != want {
			t.Errorf("EntryIDValid(%q) = %v", s, got)
		}
	}
}

func TestDecimal(t *testing.T) {
	for _, n := range []uint64{0, 5, 11, 4294967295, 18446744073709551615} {
		got, err := DecodeDecimal(EncodeDecimal(n))
		if err != nil || got != n {
			t.Errorf("DecodeDecimal(EncodeDecimal(%d)) = %d, %v", n, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "+1", " 1", "1 ", "010", "0x10", "18446744073709551616", "menu-force"} {
		if got, err := DecodeDecimal(mustEncode(t, bad)); err == nil {
			t.Errorf("DecodeDecimal(%q) = %d", bad, got)
		}
	}
}

func TestUint64(t *testing.T) {
	if got := hex.EncodeToString(EncodeUint64(0x7ff)); got != "ff07000000000000" {
		t.Errorf("EncodeUint64 = %s", got)
	}
	for _, n := range []int{0, 7, 9} {
		if _, err := DecodeUint64(make([]byte, n)); err == nil {
			t.Errorf("DecodeUint64(%d bytes) succeeded", n)
		}
	}
}

func TestParseBoolean(t *testing.T) {
	for _, s := range []string{"1", "yes", "y", "true", "t", "on", "YES", "True", "oN"} {
		if b, err := ParseBoolean(s); err != nil || !b {
			t.Errorf("ParseBoolean(%q) = %v, %v", s, b, err)
		}
	}
	for _, s := range []string{"0", "no", "n", "false", "f", "off", "OFF", "No"} {
		if b, err := ParseBoolean(s); err != nil || b {
			t.Errorf("ParseBoolean(%q) = %v, %v", s, b, err)
		}
	}
	for _, s := range []string{"", " 1", "1 ", "2", "yess", "ye", "yeſ", "enable", "\u212a"} {
		if b, err := ParseBoolean(s); err == nil {
			t.Errorf("ParseBoolean(%q) = %v, want error", s, b)
		}
	}
}

func TestFactoryReset(t *testing.T) {
	if got := hex.EncodeToString(EncodeFactoryResetRequest()); got != "31000000" {
		t.Errorf("EncodeFactoryResetRequest = %s", got)
	}
	for s, want := range map[string]bool{"1": true, "yes": true, "0": false, "off": false} {
		if got, err := DecodeFactoryReset(mustEncode(t, s)); err != nil || got != want {
			t.Errorf("DecodeFactoryReset(%q) = %v, %v", s, got, err)
		}
	}
	// Without terminator, as a hand-written file might be.
	if got, err := DecodeFactoryReset([]byte{'1', 0}); err != nil || !got {
		t.Errorf("DecodeFactoryReset(unterminated) = %v, %v", got, err)
	}
	// A UTF-8 "1" is one odd byte in UTF-16 terms: systemd reads "" and fails.
	if _, err := DecodeFactoryReset([]byte("1")); err == nil {
		t.Error("DecodeFactoryReset(UTF-8 \"1\") succeeded")
	}
	if _, err := DecodeFactoryReset(nil); err == nil {
		t.Error("DecodeFactoryReset(empty) succeeded")
	}
}

func TestFeatureNames(t *testing.T) {
	got := LoaderFeature(0x7ff).Names()
	want := []string{"config-timeout", "config-timeout-one-shot", "entry-default", "entry-one-shot",
		"boot-counting", "xbootldr", "random-seed", "load-driver", "sort-key", "saved-entry", "devicetree"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoaderFeature(0x7ff).Names() = %q", got)
	}
	if LoaderFeatureBootCounting != 1<<4 || LoaderFeatureMenuDisable != 1<<13 {
		t.Error("LoaderFeature bits moved")
	}
	got = StubFeature(0x0f | 1<<40).Names()
	want = []string{"report-boot-partition", "pick-up-credentials", "pick-up-sysexts", "three-pcrs", "bit-40"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StubFeature.Names() = %q", got)
	}
	if StubFeaturePickUpConfExts != 1<<8 {
		t.Error("StubFeature bits moved")
	}
}

func TestEncodingOf(t *testing.T) {
	for id, want := range map[ID]Encoding{
		SystemdVar(FactoryReset):        EncodingBoolean,
		LoaderVar(FactoryReset):         EncodingRaw, // wrong vendor
		LoaderVar(LoaderEntries):        EncodingStringList,
		LoaderVar(LoaderTimeInitUSec):   EncodingDecimal,
		LoaderVar(LoaderConfigTimeout):  EncodingString,
		LoaderVar(LoaderFeatures):       EncodingUint64,
		LoaderVar(LoaderSystemToken):    EncodingRaw,
		GlobalVar("SecureBoot"):         EncodingRaw,
		SystemdVar(FactoryResetRequest): EncodingString,
	} {
		if got := EncodingOf(id); got != want {
			t.Errorf("EncodingOf(%s) = %v, want %v", id, got, want)
		}
	}
}
