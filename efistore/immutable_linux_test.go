package efistore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/imago-os/imago/format/efivar"
)

func setImmutable(path string, on bool) error {
	f, err := os.OpenFile(path, inodeFlagsOpenMode, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var flags int32
	if err := ioctl(f, fsIocGetFlags, &flags); err != nil {
		return err
	}
	if on {
		flags |= fsImmutableFl
	} else {
		flags &^= fsImmutableFl
	}
	return ioctl(f, fsIocSetFlags, &flags)
}

func isImmutable(path string) (bool, error) {
	f, err := os.OpenFile(path, inodeFlagsOpenMode, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var flags int32
	if err := ioctl(f, fsIocGetFlags, &flags); err != nil {
		return false, err
	}
	return flags&fsImmutableFl != 0, nil
}

func TestIoctlNumbers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	switch runtime.GOARCH {
	case "amd64", "arm64", "riscv64", "loong64":
		if fsIocGetFlags != 0x80086601 || fsIocSetFlags != 0x40086602 {
			t.Errorf("ioctl numbers %#x %#x", fsIocGetFlags, fsIocSetFlags)
		}
	case "386", "arm":
		if fsIocGetFlags != 0x80046601 || fsIocSetFlags != 0x40046602 {
			t.Errorf("ioctl numbers %#x %#x", fsIocGetFlags, fsIocSetFlags)
		}
	}
}

// TestImmutableFlag writes and deletes a variable whose file carries the
// immutable flag, as efivarfs sets it: without clearing it first, even root
// gets EPERM. Needs a file system with inode flags (ext4, tmpfs >= 6.0) and
// CAP_LINUX_IMMUTABLE.
func TestImmutableFlag(t *testing.T) {
	s, dir := openTemp(t)
	id := efivar.SystemdVar(efivar.FactoryReset)
	if err := s.SetString(id, "0"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "FactoryReset-8cf2644b-4b0b-428f-9387-6d876050dc67")
	if err := setImmutable(path, true); err != nil {
		t.Skipf("cannot set the immutable flag here: %v", err)
	}
	t.Cleanup(func() { _ = setImmutable(path, false) })
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Fatal("an immutable file opened for writing; the test proves nothing here")
	}

	if err := s.SetString(id, "1"); err != nil {
		t.Fatalf("Set on immutable file: %v", err)
	}
	if got := readHex(t, path); got != "0700000031000000" {
		t.Errorf("file = %s", got)
	}
	if imm, err := isImmutable(path); err != nil || !imm {
		t.Errorf("immutable flag not restored after Set: %v, %v", imm, err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatalf("Delete on immutable file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file survived Delete: %v", err)
	}
}
