package sysupdate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
)

// cloneT72 copies a fixture's whole work directory and rewrites the
// definitions for the new paths, so that each interruption starts from
// the same state.
func cloneT72(t *testing.T, tmpl *t72) *t72 {
	w := t.TempDir()
	if err := CopyTree(tmpl.work, w); err != nil {
		t.Fatal(err)
	}
	x := *tmpl
	x.t, x.work = t, w
	for _, p := range []*string{&x.source, &x.disk, &x.defs, &x.cache, &x.dirs, &x.xbootldr, &x.esp, &x.system, &x.blobs} {
		*p = filepath.Join(w, strings.TrimPrefix(*p, tmpl.work))
	}
	for n, c := range t72Definitions(&x) {
		if strings.HasSuffix(n, ".transfer") {
			writeFile(t, filepath.Join(x.defs, n), c)
		}
	}
	return &x
}

var errCrash = errors.New("simulated crash")

// TestInterruptedUpdate stops an update of v2 (with v1 installed) before
// each of its steps in turn: v1 must stay complete and untouched, the
// update set v2 must never look complete before the last step, and
// running the update again must finish v2.
func TestInterruptedUpdate(t *testing.T) {
	tmpl := newT72(t, 512)
	tmpl.publish("v1")
	tmpl.update("v1")
	tmpl.publish("v2")

	// Count the steps of an uninterrupted update.
	var steps []string
	probe := cloneT72(t, tmpl)
	if _, err := probe.plan(false).Update(context.Background(), "", UpdateOptions{hook: func(s string) error {
		steps = append(steps, s)
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	probe.verifyCurrent("v2", 2)
	if len(steps) < 20 {
		t.Fatalf("only %d steps: %v", len(steps), steps)
	}
	for k := range steps {
		t.Run(fmt.Sprintf("%02d-%s", k, strings.ReplaceAll(filepath.Base(steps[k]), " ", "_")), func(t *testing.T) {
			t.Parallel()
			x := cloneT72(t, tmpl)
			n := 0
			hook := func(s string) error {
				if n == k {
					return errCrash
				}
				n++
				return nil
			}
			if _, err := x.plan(false).Update(context.Background(), "", UpdateOptions{hook: hook}); !errors.Is(err, errCrash) {
				t.Fatalf("update interrupted before %q: %v", steps[k], err)
			}
			x.verify("v1", 1)
			for _, n := range []string{"foo.txt", "bar.txt"} {
				x.sameFile(filepath.Join(x.dirs, "dir-v1", n), filepath.Join(x.source, "dir-v1", n))
			}
			if got := x.assess(true, "v2"); got == "current" {
				t.Errorf("v2 complete before its last step")
			}
			// A crash leaves temporaries behind (a failed run removes its
			// own); the rerun must clear them.
			stale := []string{
				filepath.Join(x.system, ".#sysupdatelinux-v2.erofs0123456789abcdef"),
				filepath.Join(x.xbootldr, "EFI/Linux/uki_v2.efi.extra.d/.#sysupdateextra.addon.efi0123456789abcdef"),
				filepath.Join(x.dirs, ".#sysupdatedir-v20123456789abcdef/foo.txt"),
			}
			for _, p := range stale {
				writeFile(t, p, "debris")
			}
			res, err := x.plan(false).Update(context.Background(), "", UpdateOptions{})
			if err != nil {
				t.Fatalf("rerun: %v", err)
			}
			if len(res.Vacuum.Temporary) != len(stale) {
				t.Errorf("temporaries removed: %v", res.Vacuum.Temporary)
			}
			for _, p := range stale {
				if x.exists(p) {
					t.Errorf("%s survived", p)
				}
			}
			x.verifyCurrent("v2", 2)
			x.verify("v1", 1)
			if got := checkNew(x.plan(false)); got != "-" {
				t.Errorf("check-new after the rerun: %q", got)
			}
		})
	}
}

// TestUpdatePartitionAttributes checks the table write of an install:
// label, PartitionUUID=, PartitionFlags= with the NoAuto=/ReadOnly=/
// GrowFileSystem= bits where the type knows them, the backup table, and
// that nothing outside the slot changed.
func TestUpdatePartitionAttributes(t *testing.T) {
	w := t.TempDir()
	disk, src, defs := filepath.Join(w, "disk.img"), filepath.Join(w, "src"), filepath.Join(w, "defs")
	makeDisk(t, disk, 4096, [4]string{"_empty", "_empty", "_empty", "_empty"})
	payload := bytes.Repeat([]byte("imago"), 1000)
	writeFile(t, filepath.Join(src, "usr_7.raw"), string(payload))
	writeFile(t, filepath.Join(defs, "10-usr.conf"), "[Source]\nType=regular-file\nPath="+src+"\nMatchPattern=usr_@v.raw\n"+
		"[Target]\nType=partition\nPath="+disk+"\nMatchPattern=u@v_@u\nMatchPartitionType=root-x86-64\n"+
		"PartitionUUID=0f0e0d0c-0b0a-0908-0706-050403020100\nPartitionFlags=0x4\nPartitionNoAuto=yes\nReadOnly=yes\nPartitionGrowFileSystem=yes\n")
	before, _ := os.ReadFile(disk)
	ts, err := Load(Options{Definitions: defs, Specifiers: &testSpec})
	if err != nil {
		t.Fatal(err)
	}
	p, err := BuildPlan(context.Background(), ts, PlanOptions{Env: Env{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Update(context.Background(), "", UpdateOptions{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(disk)
	f, _ := os.Open(disk)
	defer f.Close()
	tab, err := gpt.Read(f, int64(len(after)), 0)
	if err != nil || tab.UsedBackup || len(tab.Warnings) != 0 {
		t.Fatalf("table after update: %v %+v", err, tab)
	}
	part, _ := tab.Partition(1)
	uuid, _ := gpt.ParseGUID("0f0e0d0c-0b0a-0908-0706-050403020100")
	if part.Name != "u7_0f0e0d0c0b0a09080706050403020100" || part.UniqueGUID != uuid {
		t.Errorf("entry %+v", part)
	}
	if want := uint64(4) | dps.FlagNoAuto | dps.FlagReadOnly | dps.FlagGrowFS; part.Attributes != want {
		t.Errorf("flags %#x, want %#x", part.Attributes, want)
	}
	off, size := part.Bytes(tab.SectorSize)
	if !bytes.Equal(after[off:off+int64(len(payload))], payload) {
		t.Error("payload not at the partition's offset")
	}
	// Outside the slot only the table sectors may differ.
	ss := int64(tab.SectorSize)
	tableEnd := (2 + 32/(ss/512)) * ss
	for _, r := range [][2]int64{{tableEnd, off}, {off + size, int64(len(after)) - tableEnd}} {
		if !bytes.Equal(before[r[0]:r[1]], after[r[0]:r[1]]) {
			t.Errorf("bytes %d-%d changed", r[0], r[1])
		}
	}
	// The backup table says the same: read it alone by breaking the
	// primary header.
	broken := append([]byte(nil), after...)
	copy(broken[ss:], make([]byte, ss))
	bt, err := gpt.Read(bytes.NewReader(broken), int64(len(broken)), tab.SectorSize)
	if err != nil || !bt.UsedBackup {
		t.Fatalf("backup: %v", err)
	}
	if bp, _ := bt.Partition(1); bp != part {
		t.Errorf("backup entry %+v, primary %+v", bp, part)
	}
	// Verity types know ReadOnly and NoAuto but not GrowFileSystem.
	vt, _ := dps.LookupName("root-x86-64-verity", dps.ArchX86_64)
	tr := *ts[0]
	tr.PartitionType = vt
	if got := partitionFlags(&tr, nil, 0); got != 4|dps.FlagNoAuto|dps.FlagReadOnly {
		t.Errorf("verity flags %#x", got)
	}
}

func TestAutoDisk(t *testing.T) {
	w := t.TempDir()
	mi := filepath.Join(w, "mountinfo")
	writeFile(t, mi, "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n"+
		"30 22 253:0 / /usr ro - erofs /dev/mapper/usr ro\n"+
		"31 22 0:25 / /tmp rw - tmpfs tmpfs rw\n"+
		"32 22 259:5 / /mnt/with\\040space rw - ext4 /dev/sdb1 rw\n")
	sys := filepath.Join(w, "sys")
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(sys, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// devices/…/nvme0n1/{nvme0n1p2,nvme0n1p3}, dm-0 on nvme0n1p3.
	mk("devices/pci/nvme0n1/nvme0n1p3")
	mk("devices/pci/nvme0n1/nvme0n1p2")
	writeFile(t, filepath.Join(sys, "devices/pci/nvme0n1/nvme0n1p3/partition"), "3\n")
	writeFile(t, filepath.Join(sys, "devices/pci/nvme0n1/nvme0n1p2/partition"), "2\n")
	writeFile(t, filepath.Join(sys, "devices/pci/nvme0n1/uevent"), "MAJOR=259\nDEVNAME=nvme0n1\n")
	mk("devices/virtual/dm-0/slaves")
	mk("dev/block")
	mk("class/block")
	os.Symlink("../../devices/pci/nvme0n1/nvme0n1p3", filepath.Join(sys, "class/block/nvme0n1p3"))
	os.Symlink("../../devices/pci/nvme0n1/nvme0n1p3", filepath.Join(sys, "devices/virtual/dm-0/slaves/nvme0n1p3"))
	os.Symlink("../../devices/virtual/dm-0", filepath.Join(sys, "dev/block/253:0"))
	os.Symlink("../../devices/pci/nvme0n1/nvme0n1p2", filepath.Join(sys, "dev/block/259:2"))
	if d, err := autoDisk("", mi, sys); err != nil || d != "/dev/nvme0n1" {
		t.Errorf("verity /usr: %q %v", d, err)
	}
	// A root without its own /usr mount: the disk of the root file system.
	if d, err := autoDisk("/mnt/with space", mi, sys); err == nil {
		t.Errorf("unknown device resolved to %q", d)
	}
	if _, err := autoDisk("/tmp", mi, sys); err == nil || !strings.Contains(err.Error(), "virtual") {
		t.Errorf("tmpfs: %v", err)
	}
	writeFile(t, mi, "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n")
	if d, err := autoDisk("", mi, sys); err != nil || d != "/dev/nvme0n1" {
		t.Errorf("plain /usr on the root partition: %q %v", d, err)
	}
}

func TestPending(t *testing.T) {
	x := newT72(t, 512)
	x.publish("v1")
	x.update("v1")
	root := t.TempDir()
	p := x.plan(true)
	if _, _, _, err := Pending(p, root); err == nil {
		t.Error("no os-release accepted")
	}
	writeFile(t, filepath.Join(root, "usr/lib/os-release"), "ID=debian\nIMAGE_VERSION=v0\n")
	if inst, booted, newer, err := Pending(p, root); err != nil || inst != "v1" || booted != "v0" || !newer {
		t.Errorf("pending: %q %q %v %v", inst, booted, newer, err)
	}
	writeFile(t, filepath.Join(root, "etc/os-release"), "ID=debian\nIMAGE_VERSION=v1\n")
	if _, _, newer, err := Pending(p, root); err != nil || newer {
		t.Errorf("booted = installed: %v %v", newer, err)
	}
	writeFile(t, filepath.Join(root, "etc/os-release"), "ID=debian\n")
	if _, _, _, err := Pending(p, root); err == nil || !strings.Contains(err.Error(), "IMAGE_VERSION") {
		t.Errorf("no IMAGE_VERSION: %v", err)
	}
}
