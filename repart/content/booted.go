package content

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/internal/blockdev"
)

// BootedPartition is the partition CopyBlocks=auto copies from.
type BootedPartition struct {
	// Device is the partition's block device node, e.g. /dev/vda3.
	Device string
	// Major and Minor are its device numbers.
	Major, Minor uint32
	// UUID is its partition UUID. systemd-repart gives it to the new
	// partition when the definition sets no UUID=.
	UUID gpt.GUID
	// Size is its size in bytes.
	Size int64
}

// host is where FindBootedPartition looks: the mount table, sysfs and
// /dev. Tests point it at a fake tree.
type host struct {
	mountinfo string // /proc/self/mountinfo
	sysfs     string // /sys
	dev       string // /dev
}

// hostView is the running system. It is never modified.
var hostView = host{mountinfo: "/proc/self/mountinfo", sysfs: "/sys", dev: "/dev"}

// FindBootedPartition resolves CopyBlocks=auto for a partition of type
// typeUUID as systemd-repart 252 does: it takes the block device of the
// file system mounted where that type belongs (/ for root and root-verity
// types, /usr for usr and usr-verity, /efi then /boot for the ESP, /boot
// for XBOOTLDR), or, when that device is stacked (dm-verity, dm-crypt),
// the devices below it, and picks the one that is a GPT partition of
// exactly this type. Exactly one must match. systemd refuses CopyBlocks=auto
// together with --root=; so should the caller.
func FindBootedPartition(typeUUID dps.UUID) (BootedPartition, error) {
	return hostView.findBootedPartition(typeUUID)
}

func (h host) findBootedPartition(typeUUID dps.UUID) (BootedPartition, error) {
	t, known := dps.LookupUUID(typeUUID)
	var where []string
	if known {
		switch t.Designator {
		case dps.DesignatorRoot, dps.DesignatorRootVerity:
			where = []string{"/"}
		case dps.DesignatorUsr, dps.DesignatorUsrVerity:
			where = []string{"/usr"}
		case dps.DesignatorESP:
			where = []string{"/efi", "/boot"}
		case dps.DesignatorXBOOTLDR:
			where = []string{"/boot"}
		}
	}
	if where == nil {
		return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto: partition type %s is not supported (only root, usr, their verity partitions, ESP and XBOOTLDR)", typeName(typeUUID))
	}
	mounts, err := h.readMounts()
	if err != nil {
		return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto: %w", err)
	}
	var m *blockdev.Mount
	for _, w := range where {
		if m = blockdev.MountAt(mounts, w); m != nil {
			break
		}
	}
	if m == nil {
		return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto for %s: %s is not a mount point", typeName(typeUUID), strings.Join(where, " nor "))
	}
	devno, err := h.mountDevice(m)
	if err != nil {
		return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto for %s: %s: %w", typeName(typeUUID), m.Point, err)
	}
	candidates := []blockdev.Dev{devno}
	slaves, err := os.ReadDir(h.sysBlock(devno, "slaves"))
	if err == nil {
		candidates = nil
		for _, s := range slaves {
			d, err := readDevNum(filepath.Join(h.sysBlock(devno, "slaves"), s.Name(), "dev"))
			if err != nil {
				return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto: %w", err)
			}
			if d.Major != 0 {
				candidates = append(candidates, d)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto: %w", err)
	}
	if len(candidates) == 0 {
		// Whole disks have an empty slaves directory. systemd fails here
		// too; checking the device itself explains why.
		candidates = []blockdev.Dev{devno}
	}
	var found []BootedPartition
	var why []string
	for _, c := range candidates {
		p, reason, err := h.checkCandidate(c, typeUUID)
		if err != nil {
			return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto: %w", err)
		}
		if reason != "" {
			why = append(why, reason)
			continue
		}
		found = append(found, p)
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto: no partition of type %s backs %s (%s)", typeName(typeUUID), m.Point, strings.Join(why, "; "))
	}
	return BootedPartition{}, fmt.Errorf("content: CopyBlocks=auto: %d partitions of type %s back %s", len(found), typeName(typeUUID), m.Point)
}

func typeName(u dps.UUID) string {
	if t, ok := dps.LookupUUID(u); ok {
		return t.Name
	}
	return u.String()
}

func readDevNum(path string) (blockdev.Dev, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return blockdev.Dev{}, err
	}
	d, err := blockdev.ParseDev(string(b))
	if err != nil {
		return blockdev.Dev{}, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func (h host) sysBlock(d blockdev.Dev, elem ...string) string {
	return filepath.Join(append([]string{h.sysfs, "dev", "block", d.String()}, elem...)...)
}

// readMounts parses the mount table.
func (h host) readMounts() ([]blockdev.Mount, error) {
	return blockdev.ReadMountinfo(h.mountinfo)
}

// mountDevice returns the block device a mount lives on. File systems
// with anonymous device numbers (btrfs) name their device as the mount
// source.
func (h host) mountDevice(m *blockdev.Mount) (blockdev.Dev, error) {
	if m.Dev.Major != 0 {
		return m.Dev, nil
	}
	var st syscall.Stat_t
	if strings.HasPrefix(m.Source, "/") && syscall.Stat(h.hostPath(m.Source), &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
		return blockdev.DevFromStat(st.Rdev), nil
	}
	return blockdev.Dev{}, fmt.Errorf("not backed by a block device (source %q)", m.Source)
}

// hostPath maps a /dev path of the mount table into the host view.
func (h host) hostPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "/dev/"); ok {
		return filepath.Join(h.dev, rest)
	}
	return p
}

// backingDevice returns the device node of the block device with number
// dev (a stat st_dev), or, for file systems with anonymous device numbers,
// of the single device the mount table names.
func (h host) backingDevice(dev uint64) (string, error) {
	d := blockdev.DevFromStat(dev)
	if d.Major == 0 {
		mounts, err := h.readMounts()
		if err != nil {
			return "", err
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			if mounts[i].Dev == d {
				bd, err := h.mountDevice(&mounts[i])
				if err != nil {
					return "", err
				}
				d = bd
				break
			}
		}
		if d.Major == 0 {
			return "", fmt.Errorf("device %s is not a block device", d)
		}
	}
	return h.deviceNode(d)
}

// deviceNode finds the /dev node of a block device from its sysfs uevent.
func (h host) deviceNode(d blockdev.Dev) (string, error) {
	b, err := os.ReadFile(h.sysBlock(d, "uevent"))
	if err != nil {
		return "", fmt.Errorf("block device %s: %w", d, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(l, "DEVNAME="); ok && name != "" {
			return filepath.Join(h.dev, name), nil
		}
	}
	return "", fmt.Errorf("block device %s: no DEVNAME in its uevent", d)
}

// checkCandidate reports whether the block device d is a GPT partition of
// type typeUUID. A mismatch is reported as a reason, not an error.
func (h host) checkCandidate(d blockdev.Dev, typeUUID dps.UUID) (BootedPartition, string, error) {
	node, err := h.deviceNode(d)
	if err != nil {
		return BootedPartition{}, "", err
	}
	partFile := h.sysBlock(d, "partition")
	b, err := os.ReadFile(partFile)
	if errors.Is(err, os.ErrNotExist) {
		return BootedPartition{}, node + " is not a partition", nil
	}
	if err != nil {
		return BootedPartition{}, "", err
	}
	number, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || number <= 0 {
		return BootedPartition{}, "", fmt.Errorf("%s: bad partition number %q", partFile, b)
	}
	self, err := filepath.EvalSymlinks(h.sysBlock(d))
	if err != nil {
		return BootedPartition{}, "", err
	}
	wholeDev, err := readDevNum(filepath.Join(filepath.Dir(self), "dev"))
	if err != nil {
		return BootedPartition{}, "", fmt.Errorf("disk of %s: %w", node, err)
	}
	diskNode, err := h.deviceNode(wholeDev)
	if err != nil {
		return BootedPartition{}, "", err
	}
	disk, err := os.Open(diskNode)
	if err != nil {
		return BootedPartition{}, "", err
	}
	defer disk.Close()
	diskSize, err := disk.Seek(0, io.SeekEnd)
	if err != nil {
		return BootedPartition{}, "", fmt.Errorf("%s: %w", diskNode, err)
	}
	sectorSize := 0 // detect, unless sysfs says
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "queue", "logical_block_size")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			sectorSize = n
		}
	}
	table, err := gpt.Read(disk, diskSize, sectorSize)
	if err != nil {
		return BootedPartition{}, fmt.Sprintf("%s: %v", diskNode, err), nil
	}
	for _, p := range table.Partitions {
		if p.Number != number {
			continue
		}
		if [16]byte(p.TypeGUID) != [16]byte(typeUUID) {
			return BootedPartition{}, fmt.Sprintf("%s has type %s", node, typeName(dps.UUID(p.TypeGUID))), nil
		}
		_, size := p.Bytes(table.SectorSize)
		return BootedPartition{Device: node, Major: d.Major, Minor: d.Minor, UUID: p.UniqueGUID, Size: size}, "", nil
	}
	return BootedPartition{}, fmt.Sprintf("%s has no entry %d", diskNode, number), nil
}
