package repart

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/imago-os/imago/format/gpt"
)

// Disk is what the engine partitions: an image file, a block device, or
// anything else that can be read and written at offsets (tests use memory).
// The optional interfaces below add what only some disks can do.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	// Size returns the size of the disk in bytes.
	Size() (int64, error)
}

// SectorSizer is implemented by disks with a logical sector size of their
// own (block devices). Image files have none; the engine then takes the
// sector size from an existing table, and 512 otherwise.
type SectorSizer interface {
	LogicalSectorSize() (int, error)
}

// Discarder is implemented by disks that can discard a range (punch a hole
// in a file, BLKDISCARD a block device). A discarded range of a file reads
// as zeros. Discard returns an error matching ErrUnsupported when the
// storage cannot do it.
type Discarder interface {
	Discard(offset, length int64) error
}

// Grower is implemented by disks that can be enlarged (image files).
// allocate asks for the space to be allocated rather than left sparse.
type Grower interface {
	Grow(size int64, allocate bool) error
}

// Syncer is implemented by disks that can flush writes to stable storage.
type Syncer interface {
	Sync() error
}

// PartitionRereader is implemented by block devices, whose kernel view of
// the partitions must be updated after the table changed.
type PartitionRereader interface {
	RereadPartitions(old, new *gpt.Table, fromScratch bool) error
}

// ErrUnsupported is matched by errors of operations a disk cannot do.
var ErrUnsupported = errors.New("not supported")

// DeviceFile is a Disk backed by an image file or a block device.
type DeviceFile struct {
	f     *os.File
	path  string
	block bool
}

// OpenDevice opens an existing image file or block device. writable opens
// it for writing and takes an exclusive lock on it, as systemd-repart does
// (so udev leaves a block device alone meanwhile); read-only takes a
// shared lock.
func OpenDevice(path string, writable bool) (*DeviceFile, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("repart: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("repart: %w", err)
	}
	d := &DeviceFile{f: f, path: path}
	switch {
	case fi.Mode().IsRegular():
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		d.block = true
	default:
		f.Close()
		return nil, fmt.Errorf("repart: %s is neither a regular file nor a block device", path)
	}
	if err := lockFile(f, writable); err != nil {
		f.Close()
		return nil, fmt.Errorf("repart: locking %s: %w", path, err)
	}
	return d, nil
}

// CreateImage creates a new, empty image file at path, which must not
// exist yet (--empty=create), and opens it for writing.
func CreateImage(path string) (*DeviceFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return nil, fmt.Errorf("repart: creating image: %w", err)
	}
	if err := lockFile(f, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("repart: locking %s: %w", path, err)
	}
	return &DeviceFile{f: f, path: path}, nil
}

// Path returns the path the device was opened with.
func (d *DeviceFile) Path() string { return d.path }

// File returns the open file of the image or block device, which the
// content step writes partition contents through.
func (d *DeviceFile) File() *os.File { return d.f }

// IsBlockDevice reports whether the device is a block device.
func (d *DeviceFile) IsBlockDevice() bool { return d.block }

// ReadAt implements io.ReaderAt.
func (d *DeviceFile) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// WriteAt implements io.WriterAt.
func (d *DeviceFile) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }

// Sync flushes the device's writes to stable storage.
func (d *DeviceFile) Sync() error { return d.f.Sync() }

// Close closes the device.
func (d *DeviceFile) Close() error { return d.f.Close() }

// Size returns the size in bytes: the file size, or BLKGETSIZE64.
func (d *DeviceFile) Size() (int64, error) {
	if d.block {
		return blockDeviceSize(d.f)
	}
	fi, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// LogicalSectorSize returns BLKSSZGET for a block device. For an image
// file it returns an error matching ErrUnsupported.
func (d *DeviceFile) LogicalSectorSize() (int, error) {
	if !d.block {
		return 0, fmt.Errorf("%s: image files have no sector size: %w", d.path, ErrUnsupported)
	}
	return blockSectorSize(d.f)
}

// Discard punches a hole into an image file (it then reads as zeros) or
// discards the range of a block device with BLKDISCARD (aligned inwards to
// sectors; what it then reads as depends on the device).
func (d *DeviceFile) Discard(offset, length int64) error {
	if length <= 0 {
		return nil
	}
	if d.block {
		ss, err := blockSectorSize(d.f)
		if err != nil {
			return err
		}
		start := (offset + int64(ss) - 1) / int64(ss) * int64(ss)
		end := offset + length
		if end <= start {
			return nil
		}
		n := (end - start) / int64(ss) * int64(ss)
		if n <= 0 {
			return nil
		}
		return blockDiscard(d.f, start, n)
	}
	return punchHole(d.f, offset, length)
}

// Grow enlarges an image file to size bytes; it never shrinks one and
// refuses block devices. allocate uses fallocate() (falling back to
// ftruncate() where unsupported), as systemd-repart does with
// --discard=no.
func (d *DeviceFile) Grow(size int64, allocate bool) error {
	if d.block {
		return fmt.Errorf("cannot resize block device %s: %w", d.path, ErrUnsupported)
	}
	cur, err := d.Size()
	if err != nil {
		return err
	}
	if cur >= size {
		return nil
	}
	if allocate {
		if err := allocateFile(d.f, size); err == nil {
			return nil
		} else if !errors.Is(err, ErrUnsupported) {
			return err
		}
	}
	return d.f.Truncate(size)
}

// RereadPartitions tells the kernel about the new table of a block
// device: the whole table at once after starting from scratch (BLKRRPART),
// otherwise partition by partition (BLKPG), which works while other
// partitions of the disk are in use. It does nothing for image files.
func (d *DeviceFile) RereadPartitions(old, new *gpt.Table, fromScratch bool) error {
	if !d.block {
		return nil
	}
	return rereadPartitions(d.f, old, new, fromScratch)
}

// zeroRange writes zeros over [offset, offset+length).
func zeroRange(w io.WriterAt, offset, length int64) error {
	const chunk = 1 << 20
	buf := make([]byte, min(length, chunk))
	for length > 0 {
		n := min(length, chunk)
		if _, err := w.WriteAt(buf[:n], offset); err != nil {
			return err
		}
		offset += n
		length -= n
	}
	return nil
}
