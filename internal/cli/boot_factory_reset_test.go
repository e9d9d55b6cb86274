package cli

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/efistore/efistoretest"
	"github.com/imago-os/imago/internal/testutil"
)

const factoryResetFile = "FactoryReset-8cf2644b-4b0b-428f-9387-6d876050dc67"

func TestBootFactoryReset(t *testing.T) {
	dir := t.TempDir()
	flag := "--efivars=" + dir
	path := filepath.Join(dir, factoryResetFile)

	code, out, errOut := run(t, "boot", "factory-reset", "status", flag)
	if code != 0 || out != "Factory reset: not requested\n" || errOut != "" {
		t.Fatalf("status (absent): %d %q %q", code, out, errOut)
	}

	code, out, errOut = run(t, "boot", "factory-reset", "request", flag)
	if code != 0 || out != "Factory reset: requested for the next boot\n" || errOut != "" {
		t.Fatalf("request: %d %q %q", code, out, errOut)
	}
	// NV|BS|RT, then "1" in UTF-16LE with its NUL: the efivars.tsv vector.
	got, err := os.ReadFile(path)
	if err != nil || hex.EncodeToString(got) != "0700000031000000" {
		t.Fatalf("written file = %x, %v", got, err)
	}

	// A second request does not rewrite the variable.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "boot", "factory-reset", "request", flag); code != 0 {
		t.Fatalf("second request: %d %q", code, errOut)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(old) {
		t.Error("second request rewrote the variable")
	}

	code, out, _ = run(t, "boot", "factory-reset", "status", flag, "--json")
	var st struct {
		Requested  bool    `json:"requested"`
		Variable   string  `json:"variable"`
		Path       string  `json:"path"`
		Value      *string `json:"value"`
		Attributes *uint32 `json:"attributes"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: %d %q", code, out)
	}
	if !st.Requested || st.Variable != factoryResetFile || st.Path != path || st.Value == nil || *st.Value != "1" || st.Attributes == nil || *st.Attributes != 7 {
		t.Errorf("status --json = %s", out)
	}

	code, out, errOut = run(t, "boot", "factory-reset", "cancel", flag)
	if code != 0 || out != "Factory reset: not requested\n" || errOut != "" {
		t.Fatalf("cancel: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("cancel left the variable: %v", err)
	}
	// Cancelling nothing is fine.
	if code, _, errOut := run(t, "boot", "factory-reset", "cancel", flag); code != 0 {
		t.Fatalf("second cancel: %d %q", code, errOut)
	}
	code, out, _ = run(t, "boot", "factory-reset", "status", flag, "--json")
	if code != 0 || !strings.Contains(out, `"requested": false`) || strings.Contains(out, `"value"`) {
		t.Errorf("status --json after cancel: %q", out)
	}
}

func TestBootFactoryResetExistingValues(t *testing.T) {
	dir := t.TempDir()
	flag := "--efivars=" + dir
	path := filepath.Join(dir, factoryResetFile)
	write := func(hexBytes string) {
		t.Helper()
		b, _ := hex.DecodeString(hexBytes)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// "off", written by someone else: not requested, and shown.
	write("070000006f00660066000000")
	code, out, _ := run(t, "boot", "factory-reset", "status", flag)
	if code != 0 || out != "Factory reset: not requested (FactoryReset is \"off\")\n" {
		t.Fatalf("status (off): %d %q", code, out)
	}
	// request replaces a longer value completely.
	if code, _, errOut := run(t, "boot", "factory-reset", "request", flag); code != 0 {
		t.Fatalf("request: %d %q", code, errOut)
	}
	if got, _ := os.ReadFile(path); hex.EncodeToString(got) != "0700000031000000" {
		t.Fatalf("file after request = %x", got)
	}

	// "maybe" would make systemd-repart fail: one error line naming the file.
	write("070000006d0061007900620065000000")
	code, out, errOut := run(t, "boot", "factory-reset", "status", flag)
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 ||
		!strings.HasPrefix(errOut, "imago: "+path+": value \"maybe\" is not a boolean") {
		t.Fatalf("status (maybe): %d %q %q", code, out, errOut)
	}
	// A file too short for the attribute word.
	write("0700")
	code, _, errOut = run(t, "boot", "factory-reset", "status", flag)
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, path) {
		t.Fatalf("status (short): %d %q", code, errOut)
	}
	// cancel still works on either.
	if code, _, errOut := run(t, "boot", "factory-reset", "cancel", flag); code != 0 {
		t.Fatalf("cancel: %d %q", code, errOut)
	}
}

func TestBootFactoryResetErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, verb := range []string{"request", "cancel", "status"} {
		code, out, errOut := run(t, "boot", "factory-reset", verb, "--efivars="+missing)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, missing) {
			t.Errorf("%s on missing dir: %d %q %q", verb, code, out, errOut)
		}
	}
	if code, _, _ := run(t, "boot", "factory-reset", "status", "extra"); code == 0 {
		t.Error("status accepted an argument")
	}
	if code, out, _ := run(t, "boot", "factory-reset", "--help"); code != 0 || !strings.Contains(out, "8cf2644b-4b0b-428f-9387-6d876050dc67") {
		t.Errorf("help: %d %q", code, out)
	}
}

// TestInteropBootFactoryResetRepart requests a reset with imago, then boots
// systemd-repart 252 as the initrd runs it against the same variables: it
// must reset the FactoryReset=yes partition and delete the variable, after
// which imago reports no request.
func TestInteropBootFactoryResetRepart(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	efistoretest.CheckNamespace(t)
	work := t.TempDir()
	defs := filepath.Join(work, "repart.d")
	efivars := filepath.Join(work, "efivars")
	for _, d := range []string{defs, efivars} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(defs, "50-var.conf"), []byte("[Partition]\nType=var\nSizeMinBytes=1M\nSizeMaxBytes=1M\nFactoryReset=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(work, "disk.raw")
	seed := "--seed=11111111-2222-3333-4444-555555555555"
	testutil.Run(t, repart, "--empty=create", "--size=4M", "--dry-run=no", seed, "--definitions="+defs, image)

	// Mark the partition's data so the reset can be seen: repart wipes the
	// area of a partition it re-creates.
	var table struct {
		PartitionTable struct {
			Partitions []struct{ Start int64 } `json:"partitions"`
		} `json:"partitiontable"`
	}
	dump := testutil.Run(t, testutil.RequireTool(t, "sfdisk", "fdisk"), "--json", image)
	if err := json.Unmarshal(dump, &table); err != nil || len(table.PartitionTable.Partitions) != 1 {
		t.Fatalf("sfdisk --json: %v\n%s", err, dump)
	}
	offset := table.PartitionTable.Partitions[0].Start * 512
	marker := []byte("imago was here")
	f, err := os.OpenFile(image, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(marker, offset)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	if code, _, errOut := run(t, "boot", "factory-reset", "request", "--efivars="+efivars); code != 0 {
		t.Fatalf("request: %q", errOut)
	}
	res := efistoretest.Run(t, efivars, []string{"SYSTEMD_IN_INITRD=1"}, repart,
		"--root="+t.TempDir(), "--dry-run=no", seed, "--definitions="+defs, image)
	if res.ExitCode != 0 || !strings.Contains(res.Stderr, "Factory reset requested via EFI variable FactoryReset.") ||
		!strings.Contains(res.Stderr, "Successfully unset EFI variable FactoryReset.") {
		t.Fatalf("systemd-repart (exit %d) did not act on the request:\n%s", res.ExitCode, res.Stderr)
	}
	data, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if string(data[offset:offset+int64(len(marker))]) == string(marker) {
		t.Error("partition data survived the factory reset")
	}
	code, out, errOut := run(t, "boot", "factory-reset", "status", "--efivars="+efivars)
	if code != 0 || out != "Factory reset: not requested\n" {
		t.Errorf("status after reset: %d %q %q", code, out, errOut)
	}
}
