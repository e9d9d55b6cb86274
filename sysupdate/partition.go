package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/internal/blockdev"
)

// Partition targets are written in place: the payload goes to the byte
// offset of a slot labelled _empty on the disk or image file, and only
// afterwards one partition-table write gives the slot its label. Block
// devices and image files take the same path (no loop devices).

// diskPath resolves a partition target's Path= (a disk, an image file, or
// "auto").
func (t *Transfer) diskPath(env Env) (string, error) {
	if t.Target.Path != "auto" {
		return t.Target.Path, nil
	}
	if env.Image != "" {
		return env.Image, nil
	}
	disk, err := AutoDisk(env.Root)
	if err != nil {
		return "", fmt.Errorf("disk for Path=auto: %w", err)
	}
	return disk, nil
}

// patch is one change to a partition entry: the final label and
// attributes of a newly written slot, or the _empty label of a vacuumed
// one.
type patch struct {
	Number int
	Label  string
	UUID   *gpt.GUID
	Flags  *uint64
}

// lockDisk opens disk for writing and takes flock(LOCK_EX) on it, which
// keeps udev from probing a block device while its table changes.
func lockDisk(disk string) (*os.File, error) {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: locking: %w", disk, err)
	}
	return f, nil
}

// diskSize returns the size of an open disk or image file.
func diskSize(f *os.File) (int64, error) {
	return f.Seek(0, io.SeekEnd)
}

// patchTable applies changes to the GPT of disk in one table write
// (primary and backup, with their CRCs), under the disk lock.
func patchTable(disk string, changes []patch, sync bool) error {
	f, err := lockDisk(disk)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := diskSize(f)
	if err != nil {
		return fmt.Errorf("%s: %w", disk, err)
	}
	table, err := gpt.Read(f, size, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", disk, err)
	}
	for _, c := range changes {
		found := false
		for i := range table.Partitions {
			p := &table.Partitions[i]
			if p.Number != c.Number {
				continue
			}
			found = true
			if err := gpt.CheckName(c.Label); err != nil {
				return fmt.Errorf("%s: partition %d: %w", disk, c.Number, err)
			}
			p.Name = c.Label
			if c.UUID != nil {
				p.UniqueGUID = *c.UUID
			}
			if c.Flags != nil {
				p.Attributes = *c.Flags
			}
		}
		if !found {
			return fmt.Errorf("%s: partition %d vanished from the table", disk, c.Number)
		}
	}
	if err := gpt.Write(f, size, table); err != nil {
		return fmt.Errorf("%s: %w", disk, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("%s: %w", disk, err)
		}
	}
	return f.Close()
}

// errNoFit is wrapped when a payload is larger than its slot.
var errNoFit = errors.New("does not fit")

// slotWriter writes sequentially into a partition slot of an open disk and
// refuses to go past its end.
type slotWriter struct {
	f           *os.File
	off, size   int64
	written     int64
	disk        string
	number      int
	progress    func(done int64)
	lastProgres int64
}

func (w *slotWriter) Write(b []byte) (int, error) {
	if w.written+int64(len(b)) > w.size {
		return 0, fmt.Errorf("%s: payload %w partition %d (%d bytes)", w.disk, errNoFit, w.number, w.size)
	}
	n, err := w.f.WriteAt(b, w.off+w.written)
	w.written += int64(n)
	if w.progress != nil && w.written-w.lastProgres >= 1<<20 {
		w.lastProgres = w.written
		w.progress(w.written)
	}
	return n, err
}

// writeSlot copies r into the slot at off (size bytes) of disk. The slot's
// label is not touched, so an interrupted write leaves a free slot.
func writeSlot(ctx context.Context, disk string, number int, off, size int64, r io.Reader, sync bool, progress func(int64)) (int64, error) {
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := &slotWriter{f: f, off: off, size: size, disk: disk, number: number, progress: progress}
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		return w.written, err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return w.written, fmt.Errorf("%s: %w", disk, err)
		}
	}
	return w.written, f.Close()
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// partitionFlags computes a new instance's attribute bits: PartitionFlags=
// or @f replace the slot's bits, then NoAuto=, ReadOnly= and
// GrowFileSystem= (or @a, @r, @g) set or clear their bit where the
// partition type gives it a meaning.
func partitionFlags(t *Transfer, src *Instance, slot uint64) uint64 {
	flags := slot
	switch {
	case t.PartitionFlags != nil:
		flags = *t.PartitionFlags
	case src != nil && src.Fields.HasPartitionFlags:
		flags = src.Fields.PartitionFlags
	}
	pick := func(setting, field *bool) *bool {
		if setting != nil {
			return setting
		}
		return field
	}
	var f struct{ na, ro, gr *bool }
	if src != nil {
		f.na, f.ro, f.gr = src.Fields.NoAuto, src.Fields.ReadOnly, src.Fields.GrowFileSystem
	}
	d := t.PartitionType.Designator
	set := func(v *bool, bit uint64, knows bool) {
		if v == nil || !knows {
			return
		}
		if *v {
			flags |= bit
		} else {
			flags &^= bit
		}
	}
	set(pick(t.NoAuto, f.na), dps.FlagNoAuto, d.KnowsNoAuto())
	set(pick(t.ReadOnly, f.ro), dps.FlagReadOnly, d.KnowsReadOnly())
	set(pick(t.GrowFileSystem, f.gr), dps.FlagGrowFS, d.KnowsGrowFS())
	return flags
}

// AutoDisk finds the whole disk backing <root>/usr (root "" means "/"),
// the disk a partition target with Path=auto updates. A dm-verity (or
// other device-mapper) /usr is followed to its first underlying device; a
// partition is followed to its disk.
func AutoDisk(root string) (string, error) {
	return autoDisk(root, "/proc/self/mountinfo", "/sys")
}

func autoDisk(root, mountinfo, sysfs string) (string, error) {
	usr := filepath.Clean(joinRoot(root, "/usr"))
	dev, err := mountDevice(mountinfo, usr)
	if err != nil {
		return "", fmt.Errorf("sysupdate: finding the disk backing %s: %w", usr, err)
	}
	dir := filepath.Join(sysfs, "dev/block", dev.String())
	for range 8 {
		slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
		if len(slaves) == 0 {
			break
		}
		dir = filepath.Join(sysfs, "class/block", slaves[0].Name())
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("sysupdate: finding the disk backing %s: %w", usr, err)
	}
	if _, err := os.Stat(filepath.Join(real, "partition")); err == nil {
		real = filepath.Dir(real)
	}
	name := filepath.Base(real)
	if b, err := os.ReadFile(filepath.Join(real, "uevent")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				name = v
			}
		}
	}
	return filepath.Join("/dev", name), nil
}

// mountDevice returns the device number of the mount that holds dir,
// which must be on a disk.
func mountDevice(mountinfo, dir string) (blockdev.Dev, error) {
	mounts, err := blockdev.ReadMountinfo(mountinfo)
	if err != nil {
		return blockdev.Dev{}, err
	}
	m := blockdev.MountHolding(mounts, dir)
	if m == nil {
		return blockdev.Dev{}, fmt.Errorf("%s: no mount holds %s", mountinfo, dir)
	}
	if m.Dev.Major == 0 {
		return blockdev.Dev{}, fmt.Errorf("%s is on a virtual file system (device %s), not on a disk", dir, m.Dev)
	}
	return m.Dev, nil
}
