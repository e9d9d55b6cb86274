package config

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/build/reference"
	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/unitfile"
	"github.com/imago-os/imago/internal/testutil"
)

func TestReferenceDefinition(t *testing.T) {
	dir := t.TempDir()
	d, err := LoadReference(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Distribution.Architecture != dps.ArchX86_64 || d.Distribution.Release != "bookworm" ||
		d.Output.ImageID != "imago-ref" || d.Output.ImageVersion != "1" || d.Output.Label() != "imago-ref_1" {
		t.Errorf("reference: %+v %+v", d.Distribution, d.Output)
	}
	wantPackages := []string{"systemd", "systemd-sysv", "udev", "dbus", "linux-image-amd64", "systemd-boot-efi",
		"cryptsetup", "libtss2-esys-3.0.2-0", "libtss2-rc0", "libtss2-mu0", "libtss2-tcti-device0", "btrfs-progs", "dracut", "systemd-boot"}
	if !reflect.DeepEqual(d.Content.Packages, wantPackages) {
		t.Errorf("Packages = %q", d.Content.Packages)
	}
	if !d.Content.InstallImago {
		t.Error("InstallImago = no")
	}
	if !reflect.DeepEqual(d.Content.KernelCommandLine, []string{"console=ttyS0", "systemd.firstboot=off"}) {
		t.Errorf("KernelCommandLine = %q", d.Content.KernelCommandLine)
	}
	if pw := d.Content.RootPassword; pw == nil || !pw.Hashed || !strings.HasPrefix(pw.Value, "$6$imagoreference$") {
		t.Errorf("RootPassword = %+v", pw)
	}
	if !reflect.DeepEqual(d.Content.ExtraTrees, []Tree{{filepath.Join(dir, "extra"), "/"}}) {
		t.Errorf("ExtraTrees = %+v", d.Content.ExtraTrees)
	}
	v := d.Validation
	if !v.SecureBoot || !v.SecureBootAutoEnroll || !v.SignExpectedPcr || !v.Checksum || !v.Sign || v.Verity != "signed" {
		t.Errorf("Validation = %+v", v)
	}
	if want := (Slots{Usr: 1 << 30, UsrVerity: 16 << 20, UsrVeritySig: 16 << 10}); d.Slots != want {
		t.Errorf("Slots = %+v, want %+v", d.Slots, want)
	}
	if d.RepartDir != filepath.Join(dir, "repart.d") || d.SysupdateDir != filepath.Join(dir, "sysupdate.d") {
		t.Errorf("dirs %q %q", d.RepartDir, d.SysupdateDir)
	}
	if _, err := d.Hash(); err != nil {
		t.Error(err)
	}
}

// TestReferenceWrittenOut writes the reference out and loads it back from
// disk: the same definition, file for file.
func TestReferenceWrittenOut(t *testing.T) {
	dir := t.TempDir()
	written, err := reference.WriteTo(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != len(reference.Files()) {
		t.Errorf("wrote %d files, the reference has %d", len(written), len(reference.Files()))
	}
	fromDisk, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := LoadReference(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h1, err := fromDisk.Hash()
	if err != nil {
		t.Fatal(err)
	}
	h2, err := embedded.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if h1 != h2 {
		t.Errorf("hash of the written definition %s != embedded %s", h1, h2)
	}
	fromDisk.fsys, embedded.fsys = nil, nil
	if !reflect.DeepEqual(fromDisk, embedded) {
		t.Errorf("written and embedded definitions differ:\n%+v\n%+v", fromDisk, embedded)
	}
	if _, err := reference.WriteTo(dir, false); !os.IsExist(err) {
		t.Errorf("second write without overwrite: %v", err)
	}
	if _, err := reference.WriteTo(dir, true); err != nil {
		t.Errorf("overwrite: %v", err)
	}
}

// transferKeys are the keys systemd-sysupdate defines per section (v252
// plus PathRelativeTo= of v254, which imago's updater implements).
var transferKeys = map[string][]string{
	"Transfer": {"MinVersion", "ProtectVersion", "Verify"},
	"Source":   {"Type", "Path", "MatchPattern"},
	"Target": {"Type", "Path", "PathRelativeTo", "MatchPattern", "MatchPartitionType", "PartitionUUID",
		"PartitionFlags", "PartitionNoAuto", "PartitionGrowFileSystem", "ReadOnly", "Mode", "TriesLeft",
		"TriesDone", "InstancesMax", "RemoveTemporary", "CurrentSymlink"},
}

// TestReferenceTransfers checks the update transfers against
// spec/formats-runtime.md §1: known keys only, and the patterns and
// targets the build names its artifacts and partitions for.
func TestReferenceTransfers(t *testing.T) {
	files, err := unitfile.LoadAll(reference.FS(), []string{"sysupdate.d"}, ".conf")
	if err != nil {
		t.Fatal(err)
	}
	type transfer struct{ source, target, ptype, path, relativeTo string }
	got := map[string]transfer{}
	var order []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f.Sources[0]), ".conf")
		order = append(order, name)
		for _, e := range f.Entries() {
			if !contains(transferKeys[e.Section], e.Key) {
				t.Errorf("%s: [%s] %s= is not a sysupdate.d key", e.Position(), e.Section, e.Key)
			}
		}
		get := func(s, k string) string { e, _ := f.Get(s, k); return e.Value }
		if get("Transfer", "ProtectVersion") != "%A" {
			t.Errorf("%s: the booted version is not protected", name)
		}
		if get("Source", "Type") != "url-file" || !strings.HasPrefix(get("Source", "Path"), "http://") {
			t.Errorf("%s: source %q %q", name, get("Source", "Type"), get("Source", "Path"))
		}
		got[name] = transfer{
			source: get("Source", "MatchPattern"), target: get("Target", "MatchPattern"),
			ptype: get("Target", "MatchPartitionType"), path: get("Target", "Path"), relativeTo: get("Target", "PathRelativeTo"),
		}
		if name == "90-uki" {
			for k, want := range map[string]string{"Type": "regular-file", "TriesLeft": "3", "TriesDone": "0", "InstancesMax": "2"} {
				if v := get("Target", k); v != want {
					t.Errorf("uki: %s=%q, want %q", k, v, want)
				}
			}
		} else if get("Target", "Type") != "partition" || get("Target", "Path") != "auto" {
			t.Errorf("%s: target %q %q", name, get("Target", "Type"), get("Target", "Path"))
		}
	}
	if !sort.StringsAreSorted(order) || order[len(order)-1] != "90-uki" {
		t.Errorf("transfers %q: the UKI must come last", order)
	}
	words := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	want := map[string]transfer{
		"10-usr": {"%M_@v_@u.usr.raw %M_@v_@u.usr.raw.gz %M_@v_@u.usr.raw.xz %M_@v_@u.usr.raw.zst", "%M_@v", "usr", "auto", ""},
		"20-usr-verity": {"%M_@v_@u.usr-verity.raw %M_@v_@u.usr-verity.raw.gz %M_@v_@u.usr-verity.raw.xz %M_@v_@u.usr-verity.raw.zst",
			"%M_@v", "usr-verity", "auto", ""},
		"30-usr-verity-sig": {"%M_@v_@u.usr-verity-sig.raw %M_@v_@u.usr-verity-sig.raw.gz %M_@v_@u.usr-verity-sig.raw.xz %M_@v_@u.usr-verity-sig.raw.zst",
			"%M_@v", "usr-verity-sig", "auto", ""},
		"90-uki": {"%M_@v.efi %M_@v.efi.gz %M_@v.efi.xz %M_@v.efi.zst", "%M_@v+@l-@d.efi %M_@v+@l.efi %M_@v.efi", "", "/EFI/Linux", "boot"},
	}
	for name, w := range want {
		g := got[name]
		g.source, g.target = words(g.source), words(g.target)
		if g != w {
			t.Errorf("%s:\n got %+v\nwant %+v", name, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("transfers %q", order)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// repartPlan is one entry of `systemd-repart --json=short`.
type repartPlan struct {
	Type     string `json:"type"`
	Label    string `json:"label"`
	File     string `json:"file"`
	OldSize  int64  `json:"old_size"`
	RawSize  int64  `json:"raw_size"`
	Activity string `json:"activity"`
}

// runRepart runs systemd-repart 252 in dry-run mode with the reference's
// repart.d on img and returns its plan; stderr must be free of warnings.
func runRepart(t *testing.T, img string, extra ...string) []repartPlan {
	t.Helper()
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	dir := t.TempDir()
	if _, err := reference.WriteTo(dir, false); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--definitions=" + filepath.Join(dir, "repart.d"), "--dry-run=yes", "--no-pager", "--json=short"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, repart, append(args, img)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("systemd-repart: %v: %s", err, stderr.Bytes())
	}
	// What systemd-repart says besides: only that it did not write.
	if msg := strings.TrimSpace(stderr.String()); msg != "Refusing to repartition, please re-run with --dry-run=no." {
		t.Errorf("systemd-repart printed %q", msg)
	}
	var plan []repartPlan
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatalf("systemd-repart output %q: %v", out, err)
	}
	return plan
}

// TestReferenceRepartFirstBoot runs the real systemd-repart 252 over a disk
// laid out as imago ships the reference image (ESP, usr, usr-verity,
// usr-verity-sig of version 1) grown to 8 GiB, as on first boot: it must
// accept every definition, keep the shipped partitions, and add the B slot,
// root, home and swap.
func TestReferenceRepartFirstBoot(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<30); err != nil {
		t.Fatal(err)
	}
	layout := "label: gpt\n" +
		"start=2048, size=262144, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\n" +
		"size=2097152, type=8484680C-9521-48C6-9C11-B0720656F69E, name=imago-ref_1\n" +
		"size=32768, type=77FF5F63-E7B6-4633-ACF4-1565B864C0E6, name=imago-ref_1\n" +
		"size=32, type=E7BB33FB-06CF-4E81-8273-E543B413E2E2, name=imago-ref_1\n"
	script := filepath.Join(t.TempDir(), "layout")
	if err := os.WriteFile(script, []byte(layout), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "sh", "-c", `"$0" -q "$1" < "$2"`, sfdisk, img, script)

	plan := runRepart(t, img)
	type row struct {
		typ, label, file, activity string
		size                       int64
	}
	var got []row
	sizes := map[string]int64{}
	for _, p := range plan {
		r := row{p.Type, p.Label, p.File, p.Activity, p.RawSize}
		if p.File == "30-root.conf" || p.File == "40-home.conf" || p.File == "50-swap.conf" {
			sizes[p.File] = p.RawSize
			r.size = 0 // checked below: they share the rest of the disk
		}
		got = append(got, r)
	}
	want := []row{
		{"usr-x86-64", "imago-ref_1", "10-usr-a.conf", "unchanged", 1 << 30},
		{"usr-x86-64-verity", "imago-ref_1", "11-usr-a-verity.conf", "unchanged", 16 << 20},
		{"usr-x86-64-verity-sig", "imago-ref_1", "12-usr-a-verity-sig.conf", "unchanged", 16 << 10},
		{"usr-x86-64", "_empty", "20-usr-b.conf", "create", 1 << 30},
		{"usr-x86-64-verity", "_empty", "21-usr-b-verity.conf", "create", 16 << 20},
		{"usr-x86-64-verity-sig", "_empty", "22-usr-b-verity-sig.conf", "create", 16 << 10},
		{"root-x86-64", "root-x86-64", "30-root.conf", "create", 0},
		{"home", "home", "40-home.conf", "create", 0},
		{"swap", "swap", "50-swap.conf", "create", 0},
		{"esp", "ESP", "-", "unchanged", 128 << 20},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("first-boot plan:\n got %+v\nwant %+v", got, want)
	}
	root, home, swap := sizes["30-root.conf"], sizes["40-home.conf"], sizes["50-swap.conf"]
	if root < 3<<30 || home < 1<<30 || swap < 256<<20 || swap > 1<<30 || root <= home {
		t.Errorf("sizes root %d, home %d, swap %d", root, home, swap)
	}
	// All of the disk is used, up to the GPT's backup at the end.
	var used int64
	for _, p := range plan {
		used += p.RawSize
	}
	if free := int64(8<<30) - used; free < 0 || free > 4<<20 {
		t.Errorf("%d bytes left unused", free)
	}
}

// TestReferenceRepartEmptyDisk runs systemd-repart 252 over an empty disk:
// every definition is accepted and planned (slot A then gets created too).
func TestReferenceRepartEmptyDisk(t *testing.T) {
	img := filepath.Join(t.TempDir(), "empty.raw")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<30); err != nil {
		t.Fatal(err)
	}
	plan := runRepart(t, img, "--empty=allow")
	var files []string
	for _, p := range plan {
		if p.Activity != "create" {
			t.Errorf("%s: %s", p.File, p.Activity)
		}
		files = append(files, p.File)
	}
	want := []string{"10-usr-a.conf", "11-usr-a-verity.conf", "12-usr-a-verity-sig.conf", "20-usr-b.conf",
		"21-usr-b-verity.conf", "22-usr-b-verity-sig.conf", "30-root.conf", "40-home.conf", "50-swap.conf"}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("planned %q", files)
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() != 8<<30 {
		t.Errorf("dry run changed the image: %v", err)
	}
}
