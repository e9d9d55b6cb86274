package repart

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/imago-os/imago/format/gpt"
)

// Block device ioctls (linux/fs.h, linux/blkpg.h).
const (
	ioctlBLKRRPART    = 0x125f
	ioctlBLKSSZGET    = 0x1268
	ioctlBLKPG        = 0x1269
	ioctlBLKDISCARD   = 0x1277
	ioctlBLKGETSIZE64 = 0x80081272

	blkpgAddPartition    = 1
	blkpgDelPartition    = 2
	blkpgResizePartition = 3

	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
)

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg))
	runtime.KeepAlive(f)
	if e != 0 {
		return e
	}
	return nil
}

func blockDeviceSize(f *os.File) (int64, error) {
	var n uint64
	if err := ioctl(f, ioctlBLKGETSIZE64, unsafe.Pointer(&n)); err != nil {
		return 0, fmt.Errorf("BLKGETSIZE64 on %s: %w", f.Name(), err)
	}
	return int64(n), nil
}

func blockSectorSize(f *os.File) (int, error) {
	var n int32
	if err := ioctl(f, ioctlBLKSSZGET, unsafe.Pointer(&n)); err != nil {
		return 0, fmt.Errorf("BLKSSZGET on %s: %w", f.Name(), err)
	}
	return int(n), nil
}

func notSupported(err error) bool {
	return errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.ENOSYS)
}

func blockDiscard(f *os.File, offset, length int64) error {
	r := [2]uint64{uint64(offset), uint64(length)}
	if err := ioctl(f, ioctlBLKDISCARD, unsafe.Pointer(&r)); err != nil {
		if notSupported(err) {
			return fmt.Errorf("BLKDISCARD: %w", ErrUnsupported)
		}
		return fmt.Errorf("BLKDISCARD on %s: %w", f.Name(), err)
	}
	return nil
}

func punchHole(f *os.File, offset, length int64) error {
	if err := syscall.Fallocate(int(f.Fd()), fallocPunchHole|fallocKeepSize, offset, length); err != nil {
		if notSupported(err) {
			return fmt.Errorf("punching a hole: %w", ErrUnsupported)
		}
		return fmt.Errorf("punching a hole into %s: %w", f.Name(), err)
	}
	return nil
}

func allocateFile(f *os.File, size int64) error {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if notSupported(err) {
			return fmt.Errorf("fallocate: %w", ErrUnsupported)
		}
		return fmt.Errorf("allocating %s: %w", f.Name(), err)
	}
	return nil
}

func lockFile(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	return syscall.Flock(int(f.Fd()), how)
}

// blkpgPartition and blkpgArg are struct blkpg_partition and struct
// blkpg_ioctl_arg.
type blkpgPartition struct {
	Start, Length int64
	Pno           int32
	Devname       [64]byte
	Volname       [64]byte
}

type blkpgArg struct {
	Op, Flags, Datalen int32
	Data               unsafe.Pointer
}

func blkpg(f *os.File, op int32, pno int, start, length int64) error {
	p := blkpgPartition{Start: start, Length: length, Pno: int32(pno)}
	a := blkpgArg{Op: op, Datalen: int32(unsafe.Sizeof(p)), Data: unsafe.Pointer(&p)}
	err := ioctl(f, ioctlBLKPG, unsafe.Pointer(&a))
	runtime.KeepAlive(&p)
	return err
}

// rereadPartitions updates the kernel's partitions of a block device. A
// device without partition support (a loop device without partition
// scanning) is left alone.
func rereadPartitions(f *os.File, old, new *gpt.Table, fromScratch bool) error {
	if fromScratch || old == nil {
		err := ioctl(f, ioctlBLKRRPART, nil)
		if err != nil && !errors.Is(err, syscall.EINVAL) && !notSupported(err) {
			return fmt.Errorf("BLKRRPART on %s: %w", f.Name(), err)
		}
		return nil
	}
	ss := int64(new.SectorSize)
	oldByNum := map[int]gpt.Partition{}
	for _, p := range old.Partitions {
		oldByNum[p.Number] = p
	}
	newByNum := map[int]gpt.Partition{}
	for _, p := range new.Partitions {
		newByNum[p.Number] = p
	}
	for n, o := range oldByNum {
		if p, ok := newByNum[n]; !ok || p.FirstLBA != o.FirstLBA {
			if err := blkpg(f, blkpgDelPartition, n, 0, 0); err != nil && !errors.Is(err, syscall.ENXIO) {
				if errors.Is(err, syscall.EINVAL) || notSupported(err) {
					return nil
				}
				return fmt.Errorf("removing partition %d from the kernel's view of %s: %w", n, f.Name(), err)
			}
		}
	}
	for n, p := range newByNum {
		o, had := oldByNum[n]
		var op int32
		switch {
		case !had || o.FirstLBA != p.FirstLBA:
			op = blkpgAddPartition
		case o.LastLBA != p.LastLBA:
			op = blkpgResizePartition
		default:
			continue
		}
		if err := blkpg(f, op, n, int64(p.FirstLBA)*ss, int64(p.Sectors())*ss); err != nil {
			if errors.Is(err, syscall.EINVAL) || notSupported(err) {
				return nil
			}
			return fmt.Errorf("telling the kernel about partition %d of %s: %w", n, f.Name(), err)
		}
	}
	return nil
}

// sameDevice reports whether two files are on the same file system (a
// directory on another one than its parent is a mount point).
func sameDevice(a, b os.FileInfo) bool {
	sa, okA := a.Sys().(*syscall.Stat_t)
	sb, okB := b.Sys().(*syscall.Stat_t)
	return !okA || !okB || sa.Dev == sb.Dev
}
