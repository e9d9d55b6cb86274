// Package sparse copies file data into images without filling them: it
// skips a source file's holes (lseek SEEK_DATA/SEEK_HOLE), leaves out
// all-zero blocks where the destination already reads as zeros, and
// deallocates ranges with fallocate(FALLOC_FL_PUNCH_HOLE) so that image
// files stay sparse. Engines use it; format packages never touch files.
package sparse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
)

// Linux lseek whences and fallocate modes (<unistd.h>, <linux/falloc.h>).
const (
	seekData        = 3
	seekHole        = 4
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
)

// chunkSize is how much is read or written at once.
const chunkSize = 1 << 20

// zeroGranule is the block size at which all-zero data is left out.
const zeroGranule = 4096

// Copy makes dst[off, off+n) equal to the first n bytes of src without
// reading src's holes. When zeroed, dst is known to read as zeros there:
// holes and 4096-byte blocks that are all zero are not written, so the
// destination stays sparse; otherwise holes are written as zeros. ctx is
// checked before every chunk.
func Copy(ctx context.Context, dst io.WriterAt, off int64, src *os.File, n int64, zeroed bool) error {
	buf := make([]byte, chunkSize)
	for pos := int64(0); pos < n; { // everything of [0, pos) is done
		start, end, err := NextData(src, pos, n)
		if err != nil {
			return err
		}
		if !zeroed {
			if err := WriteZeros(dst, off+pos, start-pos); err != nil {
				return err
			}
		}
		for p := start; p < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			m := min(end-p, int64(len(buf)))
			if _, err := src.ReadAt(buf[:m], p); err != nil {
				return err
			}
			if zeroed {
				err = WriteNonZero(dst, off+p, buf[:m])
			} else {
				_, err = dst.WriteAt(buf[:m], off+p)
			}
			if err != nil {
				return err
			}
			p += m
		}
		pos = end
	}
	return nil
}

// NextData returns the next data extent [start, end) of src at or after
// pos, limited to n; start == end == n when only holes remain. A file
// system that cannot report holes has one extent covering everything.
func NextData(src *os.File, pos, n int64) (start, end int64, err error) {
	start, err = src.Seek(pos, seekData)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			return n, n, nil
		}
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
			return pos, n, nil
		}
		return 0, 0, err
	}
	if start >= n {
		return n, n, nil
	}
	end, err = src.Seek(start, seekHole)
	if err != nil || end > n {
		end = n
	}
	return start, end, nil
}

// WriteNonZero writes b at off, leaving out 4096-byte blocks that are all
// zero (the destination is known to read as zeros).
func WriteNonZero(dst io.WriterAt, off int64, b []byte) error {
	var zero [zeroGranule]byte
	for i := 0; i < len(b); {
		for i < len(b) {
			j := min(i+zeroGranule, len(b))
			if !bytes.Equal(b[i:j], zero[:j-i]) {
				break
			}
			i = j
		}
		j := i
		for j < len(b) {
			k := min(j+zeroGranule, len(b))
			if bytes.Equal(b[j:k], zero[:k-j]) {
				break
			}
			j = k
		}
		if j > i {
			if _, err := dst.WriteAt(b[i:j], off+int64(i)); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// WriteZeros writes n zero bytes at off.
func WriteZeros(dst io.WriterAt, off, n int64) error {
	if n <= 0 {
		return nil
	}
	zeros := make([]byte, min(n, chunkSize))
	for n > 0 {
		m := min(n, int64(len(zeros)))
		if _, err := dst.WriteAt(zeros[:m], off); err != nil {
			return err
		}
		off += m
		n -= m
	}
	return nil
}

// Punch deallocates f[off, off+size) so that it reads as zeros, first
// extending a regular file that ends before off+size. It reports whether
// the range was deallocated; when not (the file system or device cannot),
// the caller writes zeros itself. An error is returned only when f could
// not be inspected or extended.
func Punch(f *os.File, off, size int64) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Mode().IsRegular() && fi.Size() < off+size {
		if err := f.Truncate(off + size); err != nil {
			return false, err
		}
	}
	return syscall.Fallocate(int(f.Fd()), fallocPunchHole|fallocKeepSize, off, size) == nil, nil
}
