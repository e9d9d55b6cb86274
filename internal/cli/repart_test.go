package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

const repartTestSeed = "--seed=0123456789abcdef0123456789abcdef"

func writeRepartDefs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRepartMatchesSystemdRepart runs imago repart and systemd-repart with
// the same arguments on two new images and compares the tables and the
// --json=short output field by field.
func TestRepartMatchesSystemdRepart(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	defs := writeRepartDefs(t, map[string]string{
		"10-esp.conf":  "[Partition]\nType=esp\nSizeMinBytes=16M\nSizeMaxBytes=16M\n",
		"20-root.conf": "[Partition]\nType=root\nLabel=root\nFactoryReset=yes\n",
		"30-swap.conf": "[Partition]\nType=swap\nWeight=250\n",
	})
	dir := t.TempDir()
	sysImg, imgImg := filepath.Join(dir, "sys.img"), filepath.Join(dir, "img.img")
	args := []string{"--empty=create", "--size=96M", repartTestSeed, "--definitions=" + defs, "--json=short"}
	sysOut := testutil.Run(t, repart, append(args, sysImg)...)
	code, out, errOut := run(t, append([]string{"repart"}, append(args, imgImg)...)...)
	if code != 0 {
		t.Fatalf("imago repart: exit %d: %s", code, errOut)
	}
	sysTable := strings.ReplaceAll(string(testutil.Run(t, sfdisk, "--json", sysImg)), sysImg, "IMG")
	imgTable := strings.ReplaceAll(string(testutil.Run(t, sfdisk, "--json", imgImg)), imgImg, "IMG")
	if sysTable != imgTable {
		t.Fatalf("tables differ:\nsystemd-repart: %s\nimago: %s", sysTable, imgTable)
	}
	var sys, img []map[string]any
	if err := json.Unmarshal(sysOut, &sys); err != nil {
		t.Fatalf("systemd-repart JSON: %v\n%s", err, sysOut)
	}
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		t.Fatalf("imago JSON: %v\n%s", err, out)
	}
	if len(sys) != len(img) {
		t.Fatalf("%d partitions from systemd-repart, %d from imago", len(sys), len(img))
	}
	for i := range sys {
		for k, v := range sys[i] {
			w := img[i][k]
			if k == "node" {
				v = strings.ReplaceAll(v.(string), sysImg, "IMG")
				w = strings.ReplaceAll(w.(string), imgImg, "IMG")
			}
			if v != w {
				t.Errorf("partition %d: %s: systemd-repart %v, imago %v", i, k, v, w)
			}
		}
	}
	if img[0]["action"] != "create" || img[0]["partno"] != float64(1) {
		t.Errorf("imago fields: %v", img[0])
	}

	// A second run has nothing to do; the text plan says so.
	code, out, errOut = run(t, "repart", repartTestSeed, "--definitions="+defs, imgImg)
	if code != 0 || !strings.Contains(errOut, "No changes.") || !strings.Contains(out, "keep") {
		t.Errorf("second run: exit %d\n%s\n%s", code, out, errOut)
	}
	// --can-factory-reset: root says FactoryReset=yes.
	if code, _, errOut := run(t, "repart", "--can-factory-reset", "--definitions="+defs, imgImg); code != 0 {
		t.Errorf("--can-factory-reset: exit %d: %s", code, errOut)
	}
	plain := writeRepartDefs(t, map[string]string{"10-esp.conf": "[Partition]\nType=esp\n"})
	if code, _, _ := run(t, "repart", "--can-factory-reset", "--definitions="+plain, imgImg); code != 1 {
		t.Errorf("--can-factory-reset without FactoryReset=yes: exit %d, want 1", code)
	}
	// A dry-run factory reset plans the removal and writes nothing.
	before, _ := os.ReadFile(imgImg)
	code, out, errOut = run(t, "repart", "--factory-reset=yes", repartTestSeed, "--definitions="+defs, imgImg)
	after, _ := os.ReadFile(imgImg)
	if code != 0 || !strings.Contains(out, "factory-reset") || string(before) != string(after) {
		t.Errorf("dry-run factory reset: exit %d, changed %v\n%s\n%s", code, string(before) != string(after), out, errOut)
	}
}

func TestRepartExitStatus(t *testing.T) {
	defs := writeRepartDefs(t, map[string]string{"10-root.conf": "[Partition]\nType=root\n"})
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// No partition table and --empty=refuse: 77, like systemd-repart.
	code, _, errOut := run(t, "repart", "--definitions="+defs, img)
	if code != 77 || !strings.Contains(errOut, "no GPT disk label") {
		t.Errorf("exit %d, %q", code, errOut)
	}
	bad := writeRepartDefs(t, map[string]string{"10-root.conf": "[Partition]\nType=root\nWeight=lots\n"})
	code, _, errOut = run(t, "repart", "--definitions="+bad, img)
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "10-root.conf:3: Weight=:") {
		t.Errorf("bad definition: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "repart", "--empty=sometimes", "--definitions="+defs, img)
	if code != 1 || !strings.Contains(errOut, "--empty=") {
		t.Errorf("bad --empty: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "repart", "--empty=create", "--definitions="+defs, img)
	if code != 1 || !strings.Contains(errOut, "--size=") {
		t.Errorf("--empty=create without --size: exit %d, %q", code, errOut)
	}
}

// TestRepartSplit compares --split=yes with systemd-repart's: the same
// files with the same contents.
func TestRepartSplit(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	defs := writeRepartDefs(t, map[string]string{
		"10-esp.conf":  "[Partition]\nType=esp\nSizeMinBytes=1M\nSizeMaxBytes=1M\n",
		"20-root.conf": "[Partition]\nType=root\nSizeMinBytes=1M\nSizeMaxBytes=1M\nSplitName=%t-%n-%U\n",
		"30-home.conf": "[Partition]\nType=home\nSizeMinBytes=1M\nSizeMaxBytes=1M\nSplitName=-\n",
	})
	sysDir, imgDir := t.TempDir(), t.TempDir()
	args := []string{"--empty=create", "--size=8M", repartTestSeed, "--definitions=" + defs, "--split=yes"}
	testutil.Run(t, repart, append(args, filepath.Join(sysDir, "disk.raw"))...)
	if code, _, errOut := run(t, append([]string{"repart"}, append(args, filepath.Join(imgDir, "disk.raw"))...)...); code != 0 {
		t.Fatalf("imago repart --split: exit %d: %s", code, errOut)
	}
	names := func(dir string) []string {
		ents, _ := os.ReadDir(dir)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	a, b := names(sysDir), names(imgDir)
	if strings.Join(a, " ") != strings.Join(b, " ") || len(a) != 3 {
		t.Fatalf("systemd-repart wrote %v, imago %v", a, b)
	}
	for _, n := range a {
		x, _ := os.ReadFile(filepath.Join(sysDir, n))
		y, _ := os.ReadFile(filepath.Join(imgDir, n))
		if string(x) != string(y) {
			t.Errorf("%s differs", n)
		}
	}
}
