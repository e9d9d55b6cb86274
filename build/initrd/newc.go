package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The "new ASCII" (newc) cpio format the kernel unpacks an initramfs from
// (Documentation/driver-api/early-userspace/buffer-format.rst): each
// member is a 110-byte header of "070701" (or "070702", with a checksum)
// and thirteen 8-digit hexadecimal fields, the NUL-terminated name padded
// to a multiple of 4 bytes (counting the header), and the data padded the
// same way. A member named TRAILER!!! ends an archive; several archives
// may follow one another, separated by NUL padding.

const (
	newcHeaderSize = 110
	newcTrailer    = "TRAILER!!!"
	// newcMaxName bounds a member name, and newcMaxLink a symlink's
	// target, as PATH_MAX does.
	newcMaxName = 4096
	newcMaxLink = 4096
	// newcMaxKept bounds the data of a member kept in memory.
	newcMaxKept = 16 << 20
)

// File-type bits of a member's mode (S_IFMT and its values).
const (
	modeTypeMask = 0o170000
	modeDir      = 0o040000
	modeRegular  = 0o100000
	modeSymlink  = 0o120000
)

// errNewc is matched (errors.Is) by every error of readNewc about the
// archive's content.
var errNewc = errors.New("malformed newc cpio archive")

// cpioEntry is one archive member.
type cpioEntry struct {
	// Name is the member's path without a leading "./" or "/"; "." is
	// the root.
	Name  string
	Ino   uint32
	Mode  uint32
	UID   uint32
	GID   uint32
	NLink uint32
	MTime uint32
	Size  uint32
	// Major and Minor are the device of the file system the member came
	// from; with Ino they identify hard links.
	Major, Minor uint32
	// RMajor and RMinor are a device node's numbers.
	RMajor, RMinor uint32
	// Data is the content when the caller asked to keep it (always for
	// symlinks, whose content is the target).
	Data []byte
}

// isType says whether the member has the file type t (modeDir, ...).
func (e *cpioEntry) isType(t uint32) bool { return e.Mode&modeTypeMask == t }

// readNewc reads every member of the concatenated newc archives in r. The
// data of regular files is kept when keep returns true for the name, and
// skipped otherwise.
func readNewc(r io.Reader, keep func(name string) bool) ([]cpioEntry, error) {
	br := &countReader{r: bufio.NewReaderSize(r, 1<<16)}
	var entries []cpioEntry
	inArchive := false
	for {
		if !inArchive {
			// Between archives: skip NUL padding; the end of input here
			// is the normal end.
			b, err := br.peekByte()
			if err == io.EOF {
				return entries, nil
			}
			if err != nil {
				return nil, err
			}
			if b == 0 {
				br.skipByte()
				continue
			}
			if br.n%4 != 0 {
				return nil, fmt.Errorf("archive at offset %d not 4-byte aligned: %w", br.n, errNewc)
			}
			inArchive = true
		}
		start := br.n
		e, err := readNewcHeader(br)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("member at offset %d: truncated: %w", start, errNewc)
			}
			return nil, fmt.Errorf("member at offset %d: %w", start, err)
		}
		if e.Name == newcTrailer {
			inArchive = false
			continue
		}
		wantData := e.isType(modeSymlink) || (keep != nil && keep(e.Name))
		if e.isType(modeSymlink) && e.Size > newcMaxLink {
			return nil, fmt.Errorf("%s: symlink target of %d bytes: %w", e.Name, e.Size, errNewc)
		}
		if wantData && e.Size > newcMaxKept {
			return nil, fmt.Errorf("%s: %d bytes, more than the %d read into memory: %w", e.Name, e.Size, newcMaxKept, errNewc)
		}
		if wantData {
			e.Data = make([]byte, e.Size)
			if _, err := io.ReadFull(br, e.Data); err != nil {
				return nil, fmt.Errorf("%s: data: truncated: %w", e.Name, errNewc)
			}
		} else if err := br.skip(int64(e.Size)); err != nil {
			return nil, fmt.Errorf("%s: data: truncated: %w", e.Name, errNewc)
		}
		if err := br.align4(); err != nil {
			return nil, fmt.Errorf("%s: padding: truncated: %w", e.Name, errNewc)
		}
		entries = append(entries, e)
	}
}

// readNewcHeader reads a header and the name after it, with its padding.
func readNewcHeader(br *countReader) (cpioEntry, error) {
	var h [newcHeaderSize]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return cpioEntry{}, err
	}
	magic := string(h[:6])
	if magic != "070701" && magic != "070702" {
		return cpioEntry{}, fmt.Errorf("magic %q, want 070701 or 070702: %w", magic, errNewc)
	}
	var f [13]uint32
	for i := range f {
		field := string(h[6+8*i : 14+8*i])
		v, err := strconv.ParseUint(field, 16, 32)
		if err != nil {
			return cpioEntry{}, fmt.Errorf("header field %d %q: not hexadecimal: %w", i, field, errNewc)
		}
		f[i] = uint32(v)
	}
	nameSize := f[11]
	if nameSize == 0 || nameSize > newcMaxName {
		return cpioEntry{}, fmt.Errorf("name size %d: %w", nameSize, errNewc)
	}
	name := make([]byte, nameSize)
	if _, err := io.ReadFull(br, name); err != nil {
		return cpioEntry{}, io.ErrUnexpectedEOF
	}
	if name[nameSize-1] != 0 {
		return cpioEntry{}, fmt.Errorf("name not NUL-terminated: %w", errNewc)
	}
	n := string(name[:nameSize-1])
	if strings.IndexByte(n, 0) >= 0 {
		return cpioEntry{}, fmt.Errorf("name %q contains NUL: %w", n, errNewc)
	}
	if err := br.align4(); err != nil {
		return cpioEntry{}, io.ErrUnexpectedEOF
	}
	return cpioEntry{
		Name: cleanName(n), Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], NLink: f[4], MTime: f[5], Size: f[6],
		Major: f[7], Minor: f[8], RMajor: f[9], RMinor: f[10],
	}, nil
}

// cleanName removes a leading "./" or "/" (cpio writers differ).
func cleanName(n string) string {
	if n == newcTrailer {
		return n
	}
	for {
		switch {
		case strings.HasPrefix(n, "./"):
			n = n[2:]
		case strings.HasPrefix(n, "/"):
			n = n[1:]
		default:
			if n == "" {
				return "."
			}
			return n
		}
	}
}

// countReader counts the bytes read, for alignment.
type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) peekByte() (byte, error) {
	b, err := c.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (c *countReader) skipByte() {
	if _, err := c.r.ReadByte(); err == nil {
		c.n++
	}
}

func (c *countReader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, c.r, n)
	c.n += m
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (c *countReader) align4() error {
	if pad := (4 - c.n%4) % 4; pad > 0 {
		return c.skip(pad)
	}
	return nil
}
