package publish

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imago-os/imago/internal/fsutil"
)

// compressor returns a writer that compresses into w with c. Closing it
// flushes the compressed stream but does not close w.
func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case None, "":
		return nopCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	case XZ:
		return xz.NewWriter(w)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	}
	return nil, fmt.Errorf("compression %q is not supported", c)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// decompressor returns a reader of the decompressed content of r.
func decompressor(r io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case None, "":
		return io.NopCloser(r), nil
	case Gzip:
		return gzip.NewReader(r)
	case XZ:
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(x), nil
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("compression %q is not supported", c)
}

// ctxReader stops reading once ctx is done, so that a long copy can be
// interrupted.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// fileDigest returns the SHA-256 and size of the file at path.
func fileDigest(ctx context.Context, path string) ([32]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return [32]byte{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	return [32]byte(h.Sum(nil)), n, nil
}

// contentDigest returns the SHA-256 of the decompressed content of the
// payload file at path.
func contentDigest(ctx context.Context, path string, c Compression) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	d, err := decompressor(f, c)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%s: %w", path, err)
	}
	defer d.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, d}); err != nil {
		return [32]byte{}, fmt.Errorf("%s: %w", path, err)
	}
	return [32]byte(h.Sum(nil)), nil
}

// errPublished is wrapped by the error of a write that would replace a
// published file.
var errPublished = errors.New("already published")

// copyPayload copies src into dir/name, compressed with c, through a
// temporary file that is synced and then linked into place, so that the
// name never shows a partial file and an existing file is never replaced.
// It checks that src still has the digest want and returns the digest and
// size of the written file.
func copyPayload(ctx context.Context, src, dir, name string, c Compression, want [32]byte) (digest [32]byte, size int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return digest, 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return digest, 0, err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	outHash := sha256.New()
	counter := &countWriter{}
	comp, err := compressor(io.MultiWriter(tmp, outHash, counter), c)
	if err != nil {
		return digest, 0, err
	}
	inHash := sha256.New()
	if _, err := io.Copy(comp, io.TeeReader(ctxReader{ctx, in}, inHash)); err != nil {
		comp.Close()
		return digest, 0, fmt.Errorf("%s: %w", src, err)
	}
	if err := comp.Close(); err != nil {
		return digest, 0, fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	if got := [32]byte(inHash.Sum(nil)); got != want {
		return digest, 0, fmt.Errorf("%s changed while it was copied: its digest no longer matches the build's SHA256SUMS", src)
	}
	// The web server reads the files as another user.
	if err := tmp.Chmod(0o644); err != nil {
		return digest, 0, err
	}
	if err := tmp.Sync(); err != nil {
		return digest, 0, err
	}
	if err := tmp.Close(); err != nil {
		return digest, 0, err
	}
	final := filepath.Join(dir, name)
	// link(2) fails when the name exists, where rename(2) would replace
	// it: a concurrent writer cannot make us overwrite a published file.
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return digest, 0, fmt.Errorf("%s: %w", final, errPublished)
		}
		// File systems without hard links: the directory lock keeps
		// other publishers out, so check and rename.
		if _, serr := os.Lstat(final); serr == nil {
			return digest, 0, fmt.Errorf("%s: %w", final, errPublished)
		}
		if err := os.Rename(tmp.Name(), final); err != nil {
			return digest, 0, err
		}
	}
	os.Remove(tmp.Name())
	tmp = nil
	return [32]byte(outHash.Sum(nil)), counter.n, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// writeFileAtomic replaces dir/name with data through a synced temporary
// file and a rename, so readers see the old or the new file, never a
// mixture.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	tmp = nil
	return fsutil.SyncDir(dir)
}

// lockDir takes an exclusive flock(2) on the directory itself, so that two
// publishers do not interleave their writes and manifests. It does not
// wait: a second publisher is told, not queued.
func lockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: another publish is running", dir)
		}
		return nil, fmt.Errorf("%s: lock: %w", dir, err)
	}
	return func() { d.Close() }, nil
}
