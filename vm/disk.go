package vm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// workingCopyName is the grown copy of the image in the state directory,
// and workingCopySource records which image it was made from.
const (
	workingCopyName   = "disk.raw"
	workingCopySource = "disk.source"
)

// copySource identifies the image a working copy was made from; when the
// image changes (a rebuild), the copy is made again.
type copySource struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Device  uint64 `json:"device"`
	Inode   uint64 `json:"inode"`
}

func sourceOf(path string) (copySource, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return copySource{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return copySource{}, err
	}
	s := copySource{Path: abs, Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.Device, s.Inode = uint64(st.Dev), st.Ino
	}
	return s, nil
}

// workingCopy returns the path of a copy of image in stateDir that is size
// bytes long. An existing copy of the same, unchanged image is reused (so
// that what the guest wrote survives a reboot) and grown when size asks for
// more; otherwise the copy is made anew, sparse. The image itself is never
// written.
func workingCopy(image, stateDir string, size int64, progress func(string)) (string, error) {
	src, err := sourceOf(image)
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	if size < src.Size {
		return "", fmt.Errorf("vm: disk size %d is smaller than the image %s (%d bytes)", size, image, src.Size)
	}
	dst := filepath.Join(stateDir, workingCopyName)
	record := filepath.Join(stateDir, workingCopySource)
	if old, err := os.ReadFile(record); err == nil {
		var prev copySource
		if json.Unmarshal(old, &prev) == nil && prev == src {
			if fi, err := os.Stat(dst); err == nil && fi.Size() <= size {
				if fi.Size() < size {
					progress(fmt.Sprintf("growing %s to %d bytes", dst, size))
					if err := os.Truncate(dst, size); err != nil {
						return "", fmt.Errorf("vm: %w", err)
					}
				}
				return dst, nil
			}
		}
	}
	progress(fmt.Sprintf("copying %s to %s (%d bytes)", image, dst, size))
	// The record goes first: a copy interrupted half-way has none, and is
	// made again next time.
	if err := os.Remove(record); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("vm: %w", err)
	}
	tmp := dst + ".tmp"
	if err := copySparse(tmp, image); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("vm: copying %s: %w", image, err)
	}
	if err := os.Truncate(tmp, size); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("vm: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	b, _ := json.Marshal(src)
	if err := os.WriteFile(record, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	return dst, nil
}

// ficlone is the FICLONE ioctl: share all blocks of a file (btrfs, xfs).
const ficlone = 0x40049409

// Linux lseek whence values for sparse files.
const (
	seekData = 3
	seekHole = 4
)

// copySparse copies src to a new file dst, sharing blocks when the file
// system can, else copying only the data regions of src and leaving holes
// where src has holes or all-zero blocks.
func copySparse(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, out.Fd(), ficlone, in.Fd())
	if errno == 0 {
		return out.Close()
	}
	if err := copyDataRegions(out, in, fi.Size()); err != nil {
		out.Close()
		return err
	}
	if err := out.Truncate(fi.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyDataRegions copies the data regions of in (SEEK_DATA/SEEK_HOLE, or
// the whole file where the file system cannot tell) to out at the same
// offsets, skipping blocks of zeros.
func copyDataRegions(out, in *os.File, size int64) error {
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	zero := make([]byte, chunk)
	off := int64(0)
	for off < size {
		start, err := in.Seek(off, seekData)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				return nil // only a hole remains
			}
			// No SEEK_DATA support: treat the rest as data.
			start = off
		}
		end, err := in.Seek(start, seekHole)
		if err != nil {
			end = size
		}
		for p := start; p < end; {
			n := int64(chunk)
			if end-p < n {
				n = end - p
			}
			if _, err := in.ReadAt(buf[:n], p); err != nil && err != io.EOF {
				return err
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, err := out.WriteAt(buf[:n], p); err != nil {
					return err
				}
			}
			p += n
		}
		off = end
	}
	return nil
}

// copyFile copies a small file (a firmware variable store) with mode perm.
func copyFile(dst, src string, perm os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// copyDir copies the regular files of src (the swtpm state) into dst.
func copyDir(dst, src string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(dst, e.Name()), filepath.Join(src, e.Name()), 0o600); err != nil {
			return err
		}
	}
	return nil
}
