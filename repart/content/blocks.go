package content

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/imago-os/imago/internal/sparse"
)

// chunkSize is how much is read or written at once.
const chunkSize = 1 << 20

// blockSource is an opened CopyBlocks= source.
type blockSource struct {
	f    *os.File
	size int64
	name string // the path opened, for messages
}

func (b *blockSource) Close() error { return b.f.Close() }

// openCopyBlocks opens a CopyBlocks= source as systemd-repart 252 does
// (context_open_copy_block_paths): the path is resolved inside root; a
// regular file is copied whole, a block device whole, and a directory
// stands for the block device its file system lives on. With a root, only
// regular files are allowed. The size must be a non-zero multiple of 512.
func openCopyBlocks(root, path string) (*blockSource, error) {
	resolved, err := resolveInRoot(root, path)
	if err != nil {
		return nil, fmt.Errorf("content: CopyBlocks=%s: %w", path, err)
	}
	f, err := os.Open(resolved)
	if err != nil {
		return nil, fmt.Errorf("content: CopyBlocks=%s: %w", path, err)
	}
	src, err := sizeBlockSource(f, root, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return src, nil
}

func sizeBlockSource(f *os.File, root, path string) (*blockSource, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("content: CopyBlocks=%s: %w", path, err)
	}
	name := f.Name()
	if !fi.Mode().IsRegular() && root != "" && root != "/" {
		return nil, fmt.Errorf("content: CopyBlocks=%s: only regular files may be copied from inside a root directory, not %s", path, fileKind(fi.Mode()))
	}
	var size int64
	switch {
	case fi.Mode().IsRegular():
		size = fi.Size()
	case fi.IsDir():
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil, fmt.Errorf("content: CopyBlocks=%s: cannot stat", path)
		}
		dev, err := hostView.backingDevice(uint64(st.Dev))
		if err != nil {
			return nil, fmt.Errorf("content: CopyBlocks=%s: finding the block device behind the directory: %w", path, err)
		}
		bf, err := os.Open(dev)
		if err != nil {
			return nil, fmt.Errorf("content: CopyBlocks=%s: %w", path, err)
		}
		f.Close()
		return sizeBlockSource(bf, "", path)
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		size, err = f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("content: CopyBlocks=%s: size of %s: %w", path, name, err)
		}
	default:
		return nil, fmt.Errorf("content: CopyBlocks=%s: %s is a %s, not a regular file, block device or directory", path, name, fileKind(fi.Mode()))
	}
	if size <= 0 {
		return nil, fmt.Errorf("content: CopyBlocks=%s: %s is empty", path, name)
	}
	if size%512 != 0 {
		return nil, fmt.Errorf("content: CopyBlocks=%s: the size of %s, %d bytes, is not a multiple of 512", path, name, size)
	}
	return &blockSource{f: f, size: size, name: name}, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// zeroRange makes f[r] read as zeros: it extends a regular file that ends
// before the range, deallocates the range (a discard, as systemd-repart
// does to new partitions; on block devices the kernel zeroes it with
// WRITE ZEROES where the device can), and writes zeros where that is not
// supported.
func zeroRange(f *os.File, r Range) error {
	punched, err := sparse.Punch(f, r.Offset, r.Size)
	if err != nil || punched {
		return err
	}
	return sparse.WriteZeros(f, r.Offset, r.Size)
}

// copySparse copies the first n bytes of src to dst at off, which must
// already read as zeros: holes of src are not read and zero blocks are not
// written, so an image file stays sparse.
func copySparse(ctx context.Context, dst io.WriterAt, off int64, src *os.File, n int64) error {
	return sparse.Copy(ctx, dst, off, src, n, true)
}

// rangeWriter is an io.WriterAt onto one range of a disk that refuses any
// write reaching outside it, so that no bug above can touch a neighbouring
// partition.
type rangeWriter struct {
	f *os.File
	r Range
}

func (w rangeWriter) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off > w.r.Size || int64(len(b)) > w.r.Size-off {
		return 0, fmt.Errorf("write of %d bytes at %d outside the partition of %d bytes", len(b), off, w.r.Size)
	}
	return w.f.WriteAt(b, w.r.Offset+off)
}
