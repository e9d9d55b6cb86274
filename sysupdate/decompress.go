package sysupdate

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Magic numbers of the compression formats systemd's importers detect.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte{'B', 'Z', 'h'}
)

// zstdMaxWindow is the largest zstd window accepted: libzstd's default
// limit for decompression (window log 27), which is what systemd's
// importer gets, so larger windows fail here as they would there.
const zstdMaxWindow = 1 << 27

// Decompress detects gzip, xz, zstd and bzip2 by their magic bytes and
// returns a reader of the decompressed data; anything else, including a
// stream shorter than any magic (such as a 2-byte file), passes through
// unchanged. Close releases decoder resources; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(magicXz))
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("sysupdate: reading the payload: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("sysupdate: gzip: %w", err)
		}
		return z, nil
	case bytes.HasPrefix(head, magicXz):
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("sysupdate: xz: %w", err)
		}
		return io.NopCloser(z), nil
	case bytes.HasPrefix(head, magicZstd):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("sysupdate: zstd: %w", err)
		}
		return zstdCloser{z}, nil
	case len(head) >= 4 && bytes.HasPrefix(head, magicBzip2) && head[3] >= '1' && head[3] <= '9':
		return io.NopCloser(errPrefix{"bzip2", bzip2.NewReader(br)}), nil
	}
	return io.NopCloser(br), nil
}

// zstdCloser adapts the decoder, whose Close returns nothing.
type zstdCloser struct{ d *zstd.Decoder }

func (z zstdCloser) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("sysupdate: zstd: %w", err)
	}
	return n, err
}

func (z zstdCloser) Close() error {
	z.d.Close()
	return nil
}

// errPrefix names the format in decoder errors.
type errPrefix struct {
	format string
	r      io.Reader
}

func (e errPrefix) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("sysupdate: %s: %w", e.format, err)
	}
	return n, err
}
