package content

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"unsafe"
)

// memfdCreate is the memfd_create(2) system call number per architecture;
// the syscall package lacks it on some.
var memfdCreate = map[string]uintptr{
	"amd64": 319, "386": 356, "arm64": 279, "arm": 385, "riscv64": 279,
	"loong64": 279, "ppc64le": 360, "ppc64": 360, "s390x": 350,
}

const mfdCloexec = 1

// secretFile hands key material to a child process by path. It lives in an
// anonymous memory file the child opens through /proc/<pid>/fd/<fd>, so it
// never reaches a file system; where memfd_create is missing it is a 0600
// file in the caller's private scratch directory.
type secretFile struct {
	f    *os.File
	path string
	temp bool
}

func newSecretFile(scratch, name string, data []byte) (*secretFile, error) {
	if s, err := newMemfdSecret(name, data); err == nil {
		return s, nil
	}
	path := filepath.Join(scratch, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &secretFile{f: f, path: path, temp: true}, nil
}

func newMemfdSecret(name string, data []byte) (*secretFile, error) {
	nr, ok := memfdCreate[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("no memfd_create on %s", runtime.GOARCH)
	}
	p, err := syscall.BytePtrFromString("imago-" + name)
	if err != nil {
		return nil, err
	}
	fd, _, errno := syscall.Syscall(nr, uintptr(unsafe.Pointer(p)), mfdCloexec, 0)
	if errno != 0 {
		return nil, errno
	}
	f := os.NewFile(fd, "memfd:"+name)
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	// A child can only open it if /proc is there.
	if _, err := os.Stat(path); err != nil {
		f.Close()
		return nil, err
	}
	return &secretFile{f: f, path: path}, nil
}

// Close overwrites and releases the secret.
func (s *secretFile) Close() error {
	if fi, err := s.f.Stat(); err == nil && fi.Size() > 0 {
		s.f.WriteAt(make([]byte, fi.Size()), 0)
	}
	err := s.f.Close()
	if s.temp {
		os.Remove(s.path)
	}
	return err
}
