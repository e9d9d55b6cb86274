package fsimage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"
)

// Linux lseek whences and fallocate modes (<unistd.h>, <linux/falloc.h>).
const (
	seekData          = 3
	seekHole          = 4
	fallocKeepSize    = 0x01
	fallocPunchHole   = 0x02
	copyChunk         = 1 << 20
	zeroCheckGranule  = 4096
	maxZeroWriteChunk = 1 << 20
)

// copyIntoRange makes dst[off, off+size) equal to the first n bytes of src
// followed by zeros. Holes of src are not read. When dst is an *os.File the
// range is punched first, so that zeros need not be written and the
// destination stays sparse; otherwise zeros are written.
func copyIntoRange(dst io.WriterAt, off, size int64, src *os.File, n int64) error {
	zeroed := false
	if f, ok := dst.(*os.File); ok {
		zeroed = punchRange(f, off, size)
	}
	buf := make([]byte, copyChunk)
	var pos int64 // everything of [0, pos) is done
	for pos < n {
		start, end, err := nextData(src, pos, n)
		if err != nil {
			return err
		}
		if !zeroed {
			if err := writeZeros(dst, off+pos, start-pos); err != nil {
				return err
			}
		}
		for p := start; p < end; {
			m := int64(len(buf))
			if end-p < m {
				m = end - p
			}
			if _, err := src.ReadAt(buf[:m], p); err != nil {
				return err
			}
			if err := writeChunk(dst, off+p, buf[:m], zeroed); err != nil {
				return err
			}
			p += m
		}
		pos = end
	}
	if !zeroed {
		return writeZeros(dst, off+n, size-n)
	}
	return nil
}

// nextData returns the next data extent [start, end) of src at or after
// pos, limited to n; start == end == n when only holes remain. A file
// system that cannot report holes has one extent covering everything.
func nextData(src *os.File, pos, n int64) (int64, int64, error) {
	start, err := src.Seek(pos, seekData)
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
	end, err := src.Seek(start, seekHole)
	if err != nil || end > n {
		end = n
	}
	return start, end, nil
}

// writeChunk writes b at off. If the destination is already zero, runs of
// zero blocks are skipped, keeping it sparse.
func writeChunk(dst io.WriterAt, off int64, b []byte, zeroed bool) error {
	if !zeroed {
		_, err := dst.WriteAt(b, off)
		return err
	}
	var zero [zeroCheckGranule]byte
	i := 0
	for i < len(b) {
		// Skip zero blocks.
		for i < len(b) {
			j := min(i+zeroCheckGranule, len(b))
			if !bytes.Equal(b[i:j], zero[:j-i]) {
				break
			}
			i = j
		}
		if i >= len(b) {
			break
		}
		// Write the run of non-zero blocks.
		j := i
		for j < len(b) {
			k := min(j+zeroCheckGranule, len(b))
			if bytes.Equal(b[j:k], zero[:k-j]) {
				break
			}
			j = k
		}
		if _, err := dst.WriteAt(b[i:j], off+int64(i)); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// writeZeros writes n zero bytes at off.
func writeZeros(dst io.WriterAt, off, n int64) error {
	if n <= 0 {
		return nil
	}
	zeros := make([]byte, min(n, maxZeroWriteChunk))
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

// punchRange deallocates f[off, off+size) so that it reads as zeros,
// first extending a regular file that ends before off+size. It reports
// whether that worked; when not, the caller writes zeros itself.
func punchRange(f *os.File, off, size int64) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	if fi.Mode().IsRegular() && fi.Size() < off+size {
		if f.Truncate(off+size) != nil {
			return false
		}
	}
	err = syscall.Fallocate(int(f.Fd()), fallocPunchHole|fallocKeepSize, off, size)
	return err == nil
}
