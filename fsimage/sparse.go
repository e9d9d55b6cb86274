package fsimage

import (
	"context"
	"io"
	"os"

	"github.com/imago-os/imago/internal/sparse"
)

// copyIntoRange makes dst[off, off+size) equal to the first n bytes of src
// followed by zeros. Holes of src are not read. When dst is an *os.File the
// range is punched first, so that zeros need not be written and the
// destination stays sparse; otherwise zeros are written.
func copyIntoRange(dst io.WriterAt, off, size int64, src *os.File, n int64) error {
	zeroed := false
	if f, ok := dst.(*os.File); ok {
		punched, err := sparse.Punch(f, off, size)
		zeroed = err == nil && punched
	}
	if err := sparse.Copy(context.Background(), dst, off, src, n, zeroed); err != nil {
		return err
	}
	if !zeroed {
		return sparse.WriteZeros(dst, off+n, size-n)
	}
	return nil
}
