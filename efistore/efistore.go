// Package efistore reads, writes and deletes UEFI variables through an
// efivarfs directory, the way systemd's userspace does it
// (src/basic/efivars.c and src/basic/chattr-util.c in systemd v252): one
// file per variable, named `Name-guid`, holding the attribute word and the
// payload (format/efivar encodes both).
//
// Writing follows systemd's rules for efivarfs: a value already in place is
// not written again (every write wears the firmware's flash); the immutable
// flag the kernel puts on most variables is cleared first and put back
// afterwards; the attribute word and the payload go to the kernel in one
// write(); and deleting a variable is unlinking its file.
//
// The directory is normally /sys/firmware/efi/efivars. Any other directory
// works the same (tests use a temporary one); there the file is also
// truncated after writing, which efivarfs does not need, and failing to
// change the immutable flag is not an error (tmpfs and overlayfs may not
// support it), as it is not for systemd.
package efistore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/internal/fsutil"
)

// DefaultDir is where Linux mounts efivarfs.
const DefaultDir = "/sys/firmware/efi/efivars"

// Store is an efivarfs directory.
type Store struct {
	dir string
	// efivarfs is true when dir is a real efivarfs mount, where a write
	// replaces the whole variable and the file must not be truncated.
	efivarfs bool
}

// Open returns the Store for dir, which must be an existing directory. A
// missing DefaultDir means the system was not booted through UEFI (or
// efivarfs is not mounted).
func Open(dir string) (*Store, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && filepath.Clean(dir) == DefaultDir {
			return nil, fmt.Errorf("efistore: %s: %w (not booted with UEFI, or efivarfs not mounted)", dir, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("efistore: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("efistore: %s: not a directory", dir)
	}
	return &Store{dir: dir, efivarfs: isEfivarfs(dir)}, nil
}

// Dir returns the directory the store reads and writes.
func (s *Store) Dir() string { return s.dir }

// IsEfivarfs reports whether the directory is a real efivarfs mount, i.e.
// whether writes reach the firmware.
func (s *Store) IsEfivarfs() bool { return s.efivarfs }

// Path returns the file that holds variable id.
func (s *Store) Path(id efivar.ID) (string, error) {
	name, err := id.FileName()
	if err != nil {
		return "", fmt.Errorf("efistore: %w", err)
	}
	return filepath.Join(s.dir, name), nil
}

// Get reads variable id. A variable that does not exist gives an error
// that matches fs.ErrNotExist.
func (s *Store) Get(id efivar.ID) (efivar.Variable, error) {
	path, err := s.Path(id)
	if err != nil {
		return efivar.Variable{}, err
	}
	file, err := readFile(path)
	if err != nil {
		return efivar.Variable{}, err
	}
	v, err := efivar.Decode(file)
	if err != nil {
		return efivar.Variable{}, fmt.Errorf("efistore: %s: %w", path, err)
	}
	return v, nil
}

// readFile reads an efivarfs file after checking its size, so that a huge
// file is refused without being read.
func readFile(path string) ([]byte, error) {
	data, err := fsutil.ReadFileMax(path, efivar.MaxFileSize)
	if errors.Is(err, fsutil.ErrTooLarge) {
		return nil, fmt.Errorf("efistore: %s: %w", path, efivar.ErrTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("efistore: %w", err)
	}
	return data, nil
}

// Set writes variable id with attributes and payload v. If the variable
// already holds exactly v nothing is written. An empty payload is refused:
// efivarfs would delete the variable, which is what Delete is for.
func (s *Store) Set(id efivar.ID, v efivar.Variable) error {
	path, err := s.Path(id)
	if err != nil {
		return err
	}
	if len(v.Data) == 0 {
		return fmt.Errorf("efistore: %s: refusing to write an empty value (use Delete)", path)
	}
	file := v.Encode()
	if len(file) > efivar.MaxFileSize {
		return fmt.Errorf("efistore: %s: %w", path, efivar.ErrTooLarge)
	}
	if old, err := readFile(path); err == nil && bytes.Equal(old, file) {
		return nil
	}
	restore := clearImmutable(path)
	defer restore()

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOCTTY, 0o644)
	if err != nil {
		return fmt.Errorf("efistore: %w", err)
	}
	// One write() carries the attributes and the payload: efivarfs turns
	// each write into one SetVariable() call.
	n, err := f.Write(file)
	if err == nil && n != len(file) {
		err = io.ErrShortWrite
	}
	if err == nil && !s.efivarfs {
		err = f.Truncate(int64(len(file)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("efistore: write %s: %w", path, err)
	}
	// efivarfs does not update the mtime itself; systemd sets it so that
	// readers caching a variable notice the change. Failing here is harmless.
	now := time.Now()
	_ = os.Chtimes(path, now, now)
	return nil
}

// SetString writes a string variable as systemd's userspace does:
// efivar.EncodeString with efivar.AttributesSystemd.
func (s *Store) SetString(id efivar.ID, value string) error {
	data, err := efivar.EncodeString(value)
	if err != nil {
		return fmt.Errorf("efistore: %s: %w", id, err)
	}
	return s.Set(id, efivar.Variable{Attributes: efivar.AttributesSystemd, Data: data})
}

// Delete removes variable id. A variable that does not exist gives an
// error that matches fs.ErrNotExist.
func (s *Store) Delete(id efivar.ID) error {
	path, err := s.Path(id)
	if err != nil {
		return err
	}
	restore := clearImmutable(path)
	if err := os.Remove(path); err != nil {
		restore()
		return fmt.Errorf("efistore: %w", err)
	}
	return nil
}

// List returns the variables in the directory, in file name order. Files
// whose names are not `Name-GUID` are skipped.
func (s *Store) List() ([]efivar.ID, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("efistore: %w", err)
	}
	var ids []efivar.ID
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if id, err := efivar.ParseFileName(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
