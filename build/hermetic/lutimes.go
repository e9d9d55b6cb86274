package hermetic

import (
	"syscall"
	"unsafe"
)

// lutimes sets the access and modification times of p without following a
// symbolic link (utimensat with AT_SYMLINK_NOFOLLOW, which the syscall
// package does not wrap).
func lutimes(p string, ts []syscall.Timespec) error {
	const atFDCWD = -0x64
	const atSymlinkNofollow = 0x100
	ptr, err := syscall.BytePtrFromString(p)
	if err != nil {
		return err
	}
	fd := atFDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fd), uintptr(unsafe.Pointer(ptr)), uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
