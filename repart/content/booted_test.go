package content

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
)

func typeUUID(t *testing.T, name string) dps.UUID {
	t.Helper()
	ty, ok := dps.LookupName(name, dps.ArchX86_64)
	if !ok {
		t.Fatalf("unknown type %s", name)
	}
	return ty.UUID
}

// fakeHost builds a mount table, a sysfs and a /dev for a disk sda with an
// ESP (sda1), a root partition (sda2, mounted on /), and a /usr partition
// with its verity partition (sda3, sda4) stacked into dm-0 on /usr. /boot
// is a file system with an anonymous device number on sda1 (as btrfs is),
// when mknod works.
func fakeHost(t *testing.T) (host, map[int]gpt.Partition) {
	t.Helper()
	dir := t.TempDir()
	h := host{mountinfo: filepath.Join(dir, "mountinfo"), sysfs: filepath.Join(dir, "sys"), dev: filepath.Join(dir, "dev")}
	mkfile := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	sda := filepath.Join(h.sysfs, "devices/pci0000:00/block/sda")
	mkfile(filepath.Join(sda, "dev"), "8:0\n")
	mkfile(filepath.Join(sda, "uevent"), "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n")
	mkfile(filepath.Join(sda, "queue/logical_block_size"), "512\n")
	link("../../devices/pci0000:00/block/sda", filepath.Join(h.sysfs, "dev/block/8:0"))
	for n := 1; n <= 4; n++ {
		name := "sda" + string(rune('0'+n))
		p := filepath.Join(sda, name)
		mkfile(filepath.Join(p, "dev"), "8:"+string(rune('0'+n))+"\n")
		mkfile(filepath.Join(p, "uevent"), "DEVNAME="+name+"\nDEVTYPE=partition\n")
		mkfile(filepath.Join(p, "partition"), string(rune('0'+n))+"\n")
		link("../../devices/pci0000:00/block/sda/"+name, filepath.Join(h.sysfs, "dev/block/8:"+string(rune('0'+n))))
	}
	dm := filepath.Join(h.sysfs, "devices/virtual/block/dm-0")
	mkfile(filepath.Join(dm, "dev"), "253:0\n")
	mkfile(filepath.Join(dm, "uevent"), "DEVNAME=dm-0\n")
	link("../../../../pci0000:00/block/sda/sda3", filepath.Join(dm, "slaves/sda3"))
	link("../../../../pci0000:00/block/sda/sda4", filepath.Join(dm, "slaves/sda4"))
	link("../../devices/virtual/block/dm-0", filepath.Join(h.sysfs, "dev/block/253:0"))

	// The disk: a GPT image standing in for /dev/sda.
	const size = 64 << 20
	table, err := gpt.New(size, 512, gpt.GUID{1})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int]gpt.Partition{}
	for i, ty := range []string{"esp", "root-x86-64", "usr-x86-64", "usr-x86-64-verity"} {
		p := gpt.Partition{Number: i + 1, TypeGUID: gpt.GUID(typeUUID(t, ty)), UniqueGUID: gpt.GUID{0xa0 + byte(i), 1, 2, 3},
			FirstLBA: uint64(2048 + i*20480), LastLBA: uint64(2048 + i*20480 + 20479), Name: ty}
		table.Partitions = append(table.Partitions, p)
		parts[i+1] = p
	}
	if err := os.MkdirAll(h.dev, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(h.dev, "sda"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := gpt.Write(f, size, table); err != nil {
		t.Fatal(err)
	}
	mounts := "22 27 0:21 / /proc rw,relatime - proc proc rw\n" +
		"27 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw\n" +
		"30 27 253:0 / /usr ro,relatime shared:5 - erofs /dev/mapper/usr ro\n" +
		"31 27 0:23 / /tmp/with\\040space rw - tmpfs tmpfs rw\n"
	// An anonymous device number on /boot, backed by sda1.
	if syscall.Mknod(filepath.Join(h.dev, "sda1"), syscall.S_IFBLK|0o600, 8<<8|1) == nil {
		mounts += "40 27 0:50 / /boot rw - btrfs /dev/sda1 rw\n"
	}
	mkfile(h.mountinfo, mounts)
	return h, parts
}

func TestFindBootedPartition(t *testing.T) {
	h, parts := fakeHost(t)
	for _, c := range []struct {
		typ    string
		number int
	}{{"root-x86-64", 2}, {"usr-x86-64", 3}, {"usr-x86-64-verity", 4}} {
		got, err := h.findBootedPartition(typeUUID(t, c.typ))
		if err != nil {
			t.Errorf("%s: %v", c.typ, err)
			continue
		}
		p := parts[c.number]
		want := BootedPartition{Device: filepath.Join(h.dev, "sda"+string(rune('0'+c.number))), Major: 8, Minor: uint32(c.number),
			UUID: p.UniqueGUID, Size: int64(p.Sectors()) * 512}
		if got != want {
			t.Errorf("%s: %+v, want %+v", c.typ, got, want)
		}
	}
	for typ, want := range map[string]string{
		"root-x86-64-verity": "no partition of type root-x86-64-verity backs / (",
		"root-arm64":         "no partition of type root-arm64 backs /",
		"home":               "not supported",
		"swap":               "not supported",
	} {
		if _, err := h.findBootedPartition(typeUUID(t, typ)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", typ, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dev, "sda1")); err == nil {
		// ESP: /efi is not mounted, /boot is, on sda1 (through the mount
		// source, its device number being anonymous).
		got, err := h.findBootedPartition(typeUUID(t, "esp"))
		if err != nil || got.Device != filepath.Join(h.dev, "sda1") || got.UUID != parts[1].UniqueGUID {
			t.Errorf("esp: %+v %v", got, err)
		}
		if _, err := h.findBootedPartition(typeUUID(t, "xbootldr")); err == nil || !strings.Contains(err.Error(), "has type esp") {
			t.Errorf("xbootldr: %v", err)
		}
	} else if _, err := h.findBootedPartition(typeUUID(t, "esp")); err == nil || !strings.Contains(err.Error(), "/efi nor /boot is not a mount point") {
		t.Errorf("esp without /boot: %v", err)
	}
	// CopyBlocks= naming a directory: the device its file system is on.
	if dev, err := h.backingDevice(8<<8 | 2); err != nil || dev != filepath.Join(h.dev, "sda2") {
		t.Errorf("backingDevice(8:2) = %q, %v", dev, err)
	}
	if _, err := os.Stat(filepath.Join(h.dev, "sda1")); err == nil {
		if dev, err := h.backingDevice(50); err != nil || dev != filepath.Join(h.dev, "sda1") {
			t.Errorf("backingDevice(0:50) = %q, %v", dev, err)
		}
	}
	if _, err := h.backingDevice(23); err == nil {
		t.Error("backingDevice(0:23), a tmpfs, succeeded")
	}
	// A whole disk is not a partition.
	if err := os.WriteFile(h.mountinfo, []byte("27 1 8:0 / / rw - ext4 /dev/sda rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.findBootedPartition(typeUUID(t, "root-x86-64")); err == nil || !strings.Contains(err.Error(), "sda is not a partition") {
		t.Errorf("whole disk: %v", err)
	}
	if _, err := h.findBootedPartition(typeUUID(t, "usr-x86-64")); err == nil || !strings.Contains(err.Error(), "/usr is not a mount point") {
		t.Errorf("no /usr: %v", err)
	}
}

// TestFindBootedPartitionHere runs against this machine: whatever it finds
// must be consistent, and a failure must say why.
func TestFindBootedPartitionHere(t *testing.T) {
	a, ok := dps.ArchFromGOARCH(runtime.GOARCH)
	if !ok {
		t.Skip("no root partition type for " + runtime.GOARCH)
	}
	ty, _ := dps.LookupName("root", a)
	p, err := FindBootedPartition(ty.UUID)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "content: CopyBlocks=auto") {
			t.Errorf("error %q", err)
		}
		t.Logf("no booted root partition here: %v", err)
		return
	}
	if fi, err := os.Stat(p.Device); err != nil || fi.Mode()&os.ModeDevice == 0 || p.Size <= 0 || p.UUID.IsZero() {
		t.Errorf("found %+v (%v)", p, err)
	}
}
