package dps_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/internal/testutil"
)

// repartVersion returns the release and stable point release that
// systemd-repart --version prints ("systemd 252 (252.39-1~deb12u2)").
func repartVersion(t *testing.T, repart string) (major, point int) {
	t.Helper()
	out := testutil.Run(t, repart, "--version")
	m := regexp.MustCompile(`^systemd (\d+) \((\d+)(?:\.(\d+))?`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("cannot parse %q", out)
	}
	major, _ = strconv.Atoi(string(m[1]))
	point, _ = strconv.Atoi(string(m[3]))
	return major, point
}

// knows reports whether systemd major.point has typ. The MIPS big-endian
// types came with 255 and were backported to the 252 stable series in
// 252.19; for other stable series we do not know and report ok=false.
func knows(typ dps.Type, major, point int) (known, ok bool) {
	if typ.Since <= major {
		return true, true
	}
	if typ.Arch == dps.ArchMIPS || typ.Arch == dps.ArchMIPS64 {
		switch major {
		case 252:
			return point >= 19, true
		case 253, 254:
			return false, false
		}
	}
	return false, true
}

type sfdiskPartition struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// repartTypes has systemd-repart create one 4 KiB partition per name, in
// order, and returns the type UUID and label of each partition it made.
func repartTypes(t *testing.T, repart, sfdisk string, names []string) ([]sfdiskPartition, error) {
	t.Helper()
	dir := t.TempDir()
	defs := filepath.Join(dir, "definitions")
	if err := os.Mkdir(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		conf := fmt.Sprintf("[Partition]\nType=%s\nSizeMinBytes=4096\nSizeMaxBytes=4096\n", name)
		if err := os.WriteFile(filepath.Join(defs, fmt.Sprintf("%03d.conf", i)), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "disk.img")
	if _, err := testutil.RunErr(repart, "--dry-run=no", "--empty=create", "--size=16M",
		"--seed=0123456789abcdef0123456789abcdef", "--definitions="+defs, img); err != nil {
		return nil, err
	}
	var dump struct {
		PartitionTable struct {
			Partitions []sfdiskPartition `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(testutil.Run(t, sfdisk, "--json", img), &dump); err != nil {
		t.Fatal(err)
	}
	if len(dump.PartitionTable.Partitions) != len(names) {
		t.Fatalf("repart made %d partitions for %d definitions", len(dump.PartitionTable.Partitions), len(names))
	}
	return dump.PartitionTable.Partitions, nil
}

// TestRepartAcceptsNames checks every name in the table, and the native and
// secondary aliases, against systemd-repart: it must accept the name, write
// the UUID we have for it, and label the partition with the canonical name
// (repart's default label is the name systemd prints for the type UUID).
func TestRepartAcceptsNames(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	version, point := repartVersion(t, repart)
	native, ok := dps.ArchFromGOARCH(runtime.GOARCH)
	if !ok {
		t.Skipf("no DPS architecture for %s", runtime.GOARCH)
	}

	type want struct{ name, uuid, label string }
	var table, aliases []want
	var tooNew []string
	for _, typ := range dps.Types() {
		known, ok := knows(typ, version, point)
		switch {
		case !ok:
			continue
		case !known:
			tooNew = append(tooNew, typ.Name)
			continue
		}
		table = append(table, want{typ.Name, typ.UUID.String(), typ.Name})
	}
	for _, alias := range []string{"root", "root-verity", "root-verity-sig", "usr", "usr-verity", "usr-verity-sig"} {
		for _, name := range []string{alias, strings.Replace(alias+"-", "-", "-secondary-", 1)} {
			name = strings.TrimSuffix(name, "-")
			typ, ok := dps.LookupName(name, native)
			if !ok {
				if strings.Contains(name, "secondary") && native.Secondary() == "" {
					continue
				}
				t.Fatalf("LookupName(%q, %q) failed", name, native)
			}
			aliases = append(aliases, want{name, typ.UUID.String(), typ.Name})
		}
	}
	// A GPT has 128 entries; run repart on batches that fit. Aliases go in
	// a batch of their own, since repart makes duplicate labels unique.
	batches := [][]want{aliases}
	for start := 0; start < len(table); start += 100 {
		batches = append(batches, table[start:min(start+100, len(table))])
	}
	for _, batch := range batches {
		var names []string
		for _, w := range batch {
			names = append(names, w.name)
		}
		parts, err := repartTypes(t, repart, sfdisk, names)
		if err != nil {
			t.Fatalf("systemd-repart refused a batch of names: %v", err)
		}
		for i, w := range batch {
			if got := strings.ToLower(parts[i].Type); got != w.uuid {
				t.Errorf("Type=%s: repart wrote type %s, we have %s", w.name, got, w.uuid)
			}
			if parts[i].Name != w.label {
				t.Errorf("Type=%s: repart labelled it %q, our canonical name is %q", w.name, parts[i].Name, w.label)
			}
		}
	}
	t.Logf("systemd %d.%d: %d names accepted and matched", version, point, len(table)+len(aliases))

	// Names this systemd does not know yet must be refused by it, which
	// shows Since is not too low. Aliases came with 254.
	if version < 254 {
		tooNew = append(tooNew, "root-amd64", "usr-aarch64-verity")
	}
	for _, name := range tooNew {
		if _, err := repartTypes(t, repart, sfdisk, []string{name}); err == nil {
			t.Errorf("systemd %d.%d accepted Type=%s, which we record as newer", version, point, name)
		}
	}
}
