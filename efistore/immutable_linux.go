package efistore

import (
	"os"
	"syscall"
	"unsafe"
)

// The inode flag ioctls (linux/fs.h). They are declared with a `long`
// argument, so the size field of the request number follows the word size:
// 0x80086601 and 0x40086602 on 64-bit platforms. The kernel transfers an
// int either way.
const (
	sizeofLong         = 4 << (^uintptr(0) >> 63)
	fsIocGetFlags      = 0x80006601 | sizeofLong<<16
	fsIocSetFlags      = 0x40006602 | sizeofLong<<16
	fsImmutableFl      = 0x00000010
	efivarfsMagic      = 0xde5e81e4
	inodeFlagsOpenMode = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOCTTY
)

// isEfivarfs reports whether dir is on efivarfs.
func isEfivarfs(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return uint32(st.Type) == efivarfsMagic
}

// clearImmutable drops FS_IMMUTABLE_FL from path, which efivarfs sets on
// variables it does not know to be safe to remove, and returns a function
// that puts the flag back. Every failure is ignored: the file may not exist
// yet, or the file system may not support the flag; if the flag did matter,
// the write that follows fails with a clear error.
func clearImmutable(path string) (restore func()) {
	noop := func() {}
	f, err := os.OpenFile(path, inodeFlagsOpenMode, 0)
	if err != nil {
		return noop
	}
	var flags int32
	if ioctl(f, fsIocGetFlags, &flags) != nil || flags&fsImmutableFl == 0 {
		f.Close()
		return noop
	}
	cleared := flags &^ fsImmutableFl
	if ioctl(f, fsIocSetFlags, &cleared) != nil {
		f.Close()
		return noop
	}
	return func() {
		defer f.Close()
		// f still refers to the variable's inode: efivarfs and other file
		// systems update a file in place.
		var now int32
		if ioctl(f, fsIocGetFlags, &now) == nil {
			now |= fsImmutableFl
			_ = ioctl(f, fsIocSetFlags, &now)
		}
	}
}

func ioctl(f *os.File, req uintptr, arg *int32) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := conn.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(arg)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
