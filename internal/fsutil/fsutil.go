// Package fsutil holds the small file-system helpers that several
// engines and pipelines need alike: making directory changes durable and
// reading a file of bounded size.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// SyncDir fsyncs the directory dir, making the renames, links, creations
// and removals in it durable: fsync of a file does not cover its name.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

// ErrTooLarge is wrapped by ReadFileMax's error for a file over its limit.
var ErrTooLarge = errors.New("too large")

// ReadFileMax reads the file at path if it holds at most max bytes. A
// regular file's size is checked before reading, so that a huge file is
// refused without being read; a file that grows past max meanwhile, or
// one whose size stat does not tell (a pipe), is refused after reading
// max+1 bytes at most.
func ReadFileMax(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().IsRegular() && fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, %w (at most %d)", path, fi.Size(), ErrTooLarge, max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", path, max, ErrTooLarge)
	}
	return data, nil
}
