package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
)

// makeSlotDisk writes a GPT image with two empty usr partition slots of
// 1 MiB each.
func makeSlotDisk(t *testing.T, path string) {
	t.Helper()
	const size = 4 << 20
	tab, err := gpt.New(size, 512, gpt.GUID{7})
	if err != nil {
		t.Fatal(err)
	}
	usr, _ := dps.LookupName("usr", dps.ArchX86_64)
	for k := 0; k < 2; k++ {
		start := uint64(2048 + k*2048)
		tab.Partitions = append(tab.Partitions, gpt.Partition{Number: k + 1, TypeGUID: gpt.GUID(usr.UUID),
			UniqueGUID: gpt.GUID{0xb0, byte(k)}, FirstLBA: start, LastLBA: start + 2047, Name: "_empty"})
	}
	testutil.WriteGPTImage(t, path, size, tab)
}

func slotLabels(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, p := range testutil.ReadGPTImage(t, path).Partitions {
		out = append(out, p.Name)
	}
	return out
}

func TestUpdateApplyVerbs(t *testing.T) {
	w := t.TempDir()
	src, defs, disk := filepath.Join(w, "src"), filepath.Join(w, "defs"), filepath.Join(w, "disk.raw")
	os.MkdirAll(src, 0o755)
	os.MkdirAll(defs, 0o755)
	makeSlotDisk(t, disk)
	def := "[Source]\nType=regular-file\nPath=" + src + "\nMatchPattern=os_@v.usr\n" +
		"[Target]\nType=partition\nPath=auto\nMatchPattern=os_@v\nMatchPartitionType=usr-x86-64\nReadOnly=yes\n"
	os.WriteFile(filepath.Join(defs, "10-usr.conf"), []byte(def), 0o644)
	os.WriteFile(filepath.Join(defs, "extra.feature"), []byte("[Feature]\nDescription=Extra things\n"), 0o644)
	payload := func(v string) []byte { return bytes.Repeat([]byte(v), 1000) }
	for _, v := range []string{"1", "2", "3"} {
		os.WriteFile(filepath.Join(src, "os_"+v+".usr"), payload(v), 0o644)
	}
	base := []string{"update", "--definitions", defs, "--image", disk}
	up := func(args ...string) (int, string, string) {
		return run(t, append(append([]string{}, base...), args...)...)
	}

	// --plan writes nothing.
	before, _ := os.ReadFile(disk)
	code, out, errOut := up("--json", "update", "--plan")
	var plan struct {
		Version   string
		Transfers []struct {
			Slot      int
			SlotLabel string
			Target    string
			Size      int64
		}
	}
	if err := json.Unmarshal([]byte(out), &plan); code != 0 || err != nil || plan.Version != "3" || len(plan.Transfers) != 1 ||
		plan.Transfers[0].SlotLabel != "_empty" || plan.Transfers[0].Target != "os_3" || plan.Transfers[0].Size != 1000 {
		t.Fatalf("plan: %d %v %s %s", code, err, out, errOut)
	}
	if after, _ := os.ReadFile(disk); !bytes.Equal(before, after) {
		t.Fatal("--plan changed the disk")
	}
	if code, out, _ := up("update", "--plan"); code != 0 || !strings.Contains(out, "Install version 3") || !strings.Contains(out, "partition") {
		t.Fatalf("plan text: %d %s", code, out)
	}

	// Install 2, then 3: both slots used; then 1 is refused as older but
	// installable only by name.
	if code, out, errOut := up("update", "2"); code != 0 || !strings.Contains(out, "Version 2 installed.") {
		t.Fatalf("update 2: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := up("update"); code != 0 || !strings.Contains(out, "Installed 10-usr: os_3") {
		t.Fatalf("update: %d %s %s", code, out, errOut)
	}
	if got := strings.Join(slotLabels(t, disk), ","); got != "os_2,os_3" {
		t.Fatalf("labels after two updates: %s", got)
	}
	data, _ := os.ReadFile(disk)
	if !bytes.Equal(data[2<<20:2<<20+1000], payload("3")) || !bytes.Equal(data[1<<20:1<<20+1000], payload("2")) {
		t.Fatal("slot contents differ from the payloads")
	}
	if code, out, _ := up("update"); code != 0 || !strings.Contains(out, "No update needed") {
		t.Fatalf("up to date: %d %s", code, out)
	}
	if code, _, _ := up("check-new"); code != 1 {
		t.Fatalf("check-new after update: %d", code)
	}

	// Vacuum with at most 2 instances keeps both; the JSON says so.
	if code, out, errOut := up("--json", "vacuum"); code != 0 || !strings.Contains(out, `"removed": []`) {
		t.Fatalf("vacuum: %d %s %s", code, out, errOut)
	}
	// A source version that does not exist is refused, nothing changes.
	before, _ = os.ReadFile(disk)
	if code, _, errOut := up("update", "9"); code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "9") {
		t.Fatalf("update 9: %d %q", code, errOut)
	}
	if after, _ := os.ReadFile(disk); !bytes.Equal(before, after) {
		t.Fatal("a refused update changed the disk")
	}
	// A payload larger than every slot is refused before anything changes.
	os.WriteFile(filepath.Join(src, "os_4.usr"), bytes.Repeat([]byte("4"), 2<<20), 0o644)
	if code, _, errOut := up("update"); code != 1 || !strings.Contains(errOut, disk) {
		t.Fatalf("too large: %d %q", code, errOut)
	}
	if after, _ := os.ReadFile(disk); !bytes.Equal(before, after) {
		t.Fatal("a payload too large for the slots changed the disk")
	}

	// features and components.
	if code, out, _ := run(t, "update", "--definitions", defs, "features"); code != 0 || !strings.Contains(out, "extra") || !strings.Contains(out, "Extra things") {
		t.Fatalf("features: %d %s", code, out)
	}
	if code, out, _ := run(t, "update", "--definitions", defs, "--json", "features", "extra"); code != 0 || !strings.Contains(out, `"enabled": false`) {
		t.Fatalf("features extra: %d %s", code, out)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/lib/sysupdate.extra.d"), 0o755)
	if code, out, _ := run(t, "update", "--root", root, "components"); code != 0 || !strings.Contains(out, "extra") {
		t.Fatalf("components: %d %q", code, out)
	}
	// pending compares with the booted IMAGE_VERSION= below --root.
	os.MkdirAll(filepath.Join(root, "usr/lib/sysupdate.d"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/sysupdate.d/10-usr.conf"), []byte(strings.ReplaceAll(def, "Path=auto", "Path="+disk)), 0o644)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=test\nIMAGE_VERSION=2\n"), 0o644)
	if code, out, errOut := run(t, "update", "--root", root, "pending"); code != 0 || !strings.Contains(out, "reboot recommended") {
		t.Fatalf("pending: %d %q %q", code, out, errOut)
	}
	// Version 3 used up its boot tries and 2 boots instead: no reboot.
	esp := bootTestESP(t)
	if code, out, errOut := run(t, "update", "--root", root, "--esp-path", esp, "pending"); code != 1 || !strings.Contains(out, "failed its boot assessment") {
		t.Fatalf("pending after a fallback: %d %q %q", code, out, errOut)
	}
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=test\nIMAGE_VERSION=3\n"), 0o644)
	if code, _, _ := run(t, "update", "--root", root, "pending"); code != 1 {
		t.Fatalf("pending when up to date: %d", code)
	}
}
