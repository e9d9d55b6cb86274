// Package fsimage makes file-system images: vfat, ext2/ext3/ext4, btrfs,
// xfs, erofs, squashfs and swap, populated from directory trees, in a
// regular file or in a byte range of a file or block device (a partition
// of a disk image), without loop devices and without mounting anything.
//
// It implements the `Format=`, `CopyFiles=` and `MakeDirectories=` part of
// systemd-repart (disk-format spec §4) for imago's repart engine, and makes
// the /usr image of `imago build`. The file-system UUID and label are given
// by the caller (repart derives them as in spec §4.5); each mkfs gets the
// arguments of make_filesystem in systemd 252 as Debian 12 ships it (the
// v252 stable branch), with labels mangled the same way, so a file system
// made here is configured like the one systemd-repart 252 makes. Where
// systemd 252 populates a writable file system by mounting and copying,
// imago lets mkfs populate it from a directory, as systemd does from v253
// on: mkfs.ext4 -d, mkfs.btrfs --rootdir, mkfs.xfs -p with a generated
// protofile, mcopy for vfat. docs/fsimage.md lists every difference.
//
// External programs run through internal/toolexec.
package fsimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// CopyFile is one CopyFiles= entry: the file or directory Source, a path on
// the host (already resolved; repart resolves it against its --root), is
// copied to Target, an absolute path inside the new file system.
type CopyFile struct {
	Source string
	Target string
}

// Options describe the file system to make.
type Options struct {
	// Type is the file-system type: "vfat", "ext2", "ext3", "ext4",
	// "btrfs", "xfs", "erofs", "squashfs" or "swap".
	Type string
	// Label is the volume label before mangling; see MangleLabel.
	// squashfs has none and ignores it.
	Label string
	// UUID is the file-system UUID, its bytes in the order of the string
	// form. vfat uses its first four bytes as the volume ID; squashfs has
	// no UUID and ignores it.
	UUID [16]byte
	// SourceDir, when set, becomes the root directory of the file system:
	// the same as a first CopyFiles entry {SourceDir, "/"}.
	SourceDir string
	// CopyFiles are copied in order, after SourceDir, with systemd-repart's
	// CopyFiles= semantics.
	CopyFiles []CopyFile
	// MakeDirectories are absolute paths created (with missing parents)
	// mode 0755, owned by root, after the copies.
	MakeDirectories []string
	// SourceDateEpoch, when set, makes the build reproducible where the
	// tools allow it: it is passed as SOURCE_DATE_EPOCH (erofs and squashfs
	// then clamp every timestamp to it), and ext2/3/4 and vfat get fixed
	// creation times and hash seeds. When nil, a SOURCE_DATE_EPOCH in
	// imago's own environment is not passed on.
	SourceDateEpoch *time.Time
	// SectorSize is the logical sector size to format for (vfat, ext*,
	// xfs), 0 for the tool's default; systemd passes it from v253 on.
	SectorSize int
	// NoDiscard mirrors systemd-repart --discard=no: mkfs does not discard
	// (punch) the device first.
	NoDiscard bool
	// TempDir holds the staging tree and temporary images; default
	// os.TempDir(). It needs room for a copy of the content when CopyFiles
	// or MakeDirectories are used, and for the image when Make is used.
	TempDir string
}

// Tool is an external program a file-system type needs.
type Tool struct {
	Name    string // the program, e.g. "mkfs.ext4"
	Package string // the Debian package that provides it
}

// fsTools lists the programs each type runs.
var fsTools = map[string][]Tool{
	"vfat":     {{"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}},
	"ext2":     {{"mkfs.ext2", "e2fsprogs"}},
	"ext3":     {{"mkfs.ext3", "e2fsprogs"}},
	"ext4":     {{"mkfs.ext4", "e2fsprogs"}},
	"btrfs":    {{"mkfs.btrfs", "btrfs-progs"}},
	"xfs":      {{"mkfs.xfs", "xfsprogs"}},
	"erofs":    {{"mkfs.erofs", "erofs-utils"}},
	"squashfs": {{"mksquashfs", "squashfs-tools"}},
	"swap":     {{"mkswap", "util-linux"}},
}

// Types returns the supported file-system types, sorted.
func Types() []string {
	types := make([]string, 0, len(fsTools))
	for t := range fsTools {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// Tools returns the programs a file-system type needs. vfat needs mcopy
// only to populate.
func Tools(fsType string) ([]Tool, error) {
	tools, ok := fsTools[fsType]
	if !ok {
		return nil, fmt.Errorf("fsimage: unsupported file-system type %q", fsType)
	}
	return append([]Tool(nil), tools...), nil
}

// ReadOnly reports whether fsType can only be written whole by its mkfs
// (erofs, squashfs), so that its natural size is whatever mkfs produced.
func ReadOnly(fsType string) bool { return fsType == "erofs" || fsType == "squashfs" }

// minimalAlign is what the size of a minimal read-only image is rounded up
// to: repart's grain.
const minimalAlign = 4096

// Make writes a new file system of exactly size bytes into dst at
// [offset, offset+size), for example a partition of a disk image. mkfs
// writes a sparse temporary file, which is then copied into place skipping
// its holes; the whole range reads back exactly as that file (zeros beyond
// a read-only image's end). Bytes outside the range are not touched. When
// dst is an *os.File the range is first punched (zeroed without writing),
// and a regular file shorter than offset+size is extended to it.
func Make(ctx context.Context, dst io.WriterAt, offset, size int64, opts Options) error {
	if offset < 0 || size <= 0 {
		return fmt.Errorf("fsimage: bad range offset %d size %d", offset, size)
	}
	if err := opts.validate(size); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(opts.TempDir, "imago-fsimage-*.img")
	if err != nil {
		return fmt.Errorf("fsimage: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if !ReadOnly(opts.Type) {
		if err := tmp.Truncate(size); err != nil {
			return fmt.Errorf("fsimage: %w", err)
		}
	}
	used, err := build(ctx, tmp.Name(), size, opts)
	if err != nil {
		return err
	}
	if used > size {
		return fmt.Errorf("fsimage: %s image of %d bytes does not fit in %d bytes", opts.Type, used, size)
	}
	// Opened anew: a tool may have replaced the file rather than written it.
	src, err := os.Open(tmp.Name())
	if err != nil {
		return fmt.Errorf("fsimage: %w", err)
	}
	defer src.Close()
	if err := copyIntoRange(dst, offset, size, src, used); err != nil {
		return fmt.Errorf("fsimage: writing %s image at offset %d: %w", opts.Type, offset, err)
	}
	return nil
}

// MakeFile creates (or replaces) the file path holding a new file system
// and returns its size. For vfat, ext*, btrfs, xfs and swap, size is
// required. For erofs and squashfs, size 0 means minimal: the file is what
// mkfs produced, padded with zeros to a multiple of 4096; a non-zero size
// pads it to that size (an error if the image is larger). On failure the
// file is removed.
func MakeFile(ctx context.Context, path string, size int64, opts Options) (int64, error) {
	if size < 0 || (size == 0 && !ReadOnly(opts.Type)) {
		return 0, fmt.Errorf("fsimage: %s: a size is required for %s", path, opts.Type)
	}
	if err := opts.validate(size); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("fsimage: %w", err)
	}
	n, err := makeFile(ctx, f, size, opts)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("fsimage: %w", cerr)
	}
	if err != nil {
		os.Remove(path)
		return 0, err
	}
	return n, nil
}

func makeFile(ctx context.Context, f *os.File, size int64, opts Options) (int64, error) {
	if !ReadOnly(opts.Type) {
		if err := f.Truncate(size); err != nil {
			return 0, fmt.Errorf("fsimage: %w", err)
		}
	}
	used, err := build(ctx, f.Name(), size, opts)
	if err != nil {
		return 0, err
	}
	final := size
	if final == 0 {
		final = (used + minimalAlign - 1) / minimalAlign * minimalAlign
	}
	if used > final {
		return 0, fmt.Errorf("fsimage: %s image of %d bytes does not fit in %d bytes", opts.Type, used, final)
	}
	// By name: a tool may have replaced the file rather than written it.
	if err := os.Truncate(f.Name(), final); err != nil {
		return 0, fmt.Errorf("fsimage: %w", err)
	}
	return final, nil
}

func (o *Options) validate(size int64) error {
	if _, ok := fsTools[o.Type]; !ok {
		return fmt.Errorf("fsimage: unsupported file-system type %q", o.Type)
	}
	if o.Type == "swap" && o.hasContent() {
		return errors.New("fsimage: a swap area cannot be populated")
	}
	if o.SectorSize != 0 && (o.SectorSize < 512 || o.SectorSize > 65536 || o.SectorSize&(o.SectorSize-1) != 0) {
		return fmt.Errorf("fsimage: bad sector size %d", o.SectorSize)
	}
	if size%512 != 0 {
		return fmt.Errorf("fsimage: size %d is not a multiple of 512", size)
	}
	if o.SectorSize != 0 && size%int64(o.SectorSize) != 0 {
		return fmt.Errorf("fsimage: size %d is not a multiple of the sector size %d", size, o.SectorSize)
	}
	for _, c := range o.CopyFiles {
		if c.Source == "" || c.Target == "" {
			return fmt.Errorf("fsimage: CopyFiles entry %q:%q: empty path", c.Source, c.Target)
		}
		if !filepath.IsAbs(c.Target) {
			return fmt.Errorf("fsimage: CopyFiles target %q is not absolute", c.Target)
		}
	}
	for _, d := range o.MakeDirectories {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("fsimage: MakeDirectories path %q is not absolute", d)
		}
	}
	if _, err := MangleLabel(o.Type, o.Label); err != nil {
		return err
	}
	return nil
}

func (o *Options) hasContent() bool {
	return o.SourceDir != "" || len(o.CopyFiles) > 0 || len(o.MakeDirectories) > 0
}

// copies returns SourceDir and CopyFiles as one list.
func (o *Options) copies() []CopyFile {
	var c []CopyFile
	if o.SourceDir != "" {
		c = append(c, CopyFile{Source: o.SourceDir, Target: "/"})
	}
	return append(c, o.CopyFiles...)
}

// epochString returns the SOURCE_DATE_EPOCH value for the tools, or "" when
// unset.
func (o *Options) epochString() string {
	if o.SourceDateEpoch == nil {
		return ""
	}
	return strconv.FormatInt(o.SourceDateEpoch.Unix(), 10)
}
