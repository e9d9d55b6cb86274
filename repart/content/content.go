package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/fsimage"
)

// EncryptMode is the value of Encrypt=.
type EncryptMode string

// The modes of Encrypt= in systemd 252.
const (
	EncryptOff         EncryptMode = "off"
	EncryptKeyFile     EncryptMode = "key-file"
	EncryptTPM2        EncryptMode = "tpm2"
	EncryptKeyFileTPM2 EncryptMode = "key-file+tpm2"
)

// ErrTPM2Offline is returned for Encrypt=tpm2: sealing a key to the TPM2 of
// the machine that will boot the image cannot be done while building it.
// Encrypt=key-file+tpm2 is filled with its key-file half only, and the TPM2
// is enrolled on the device at first boot (systemd-cryptenroll).
var ErrTPM2Offline = errors.New("Encrypt=tpm2 needs the TPM2 of the target machine and cannot be done offline; use Encrypt=key-file+tpm2 and enroll the TPM2 at first boot")

// ParseEncryptMode reads an Encrypt= value as systemd 252 does: one of the
// mode names, or a boolean (true means key-file, false off).
func ParseEncryptMode(s string) (EncryptMode, error) {
	switch m := EncryptMode(s); m {
	case EncryptOff, EncryptKeyFile, EncryptTPM2, EncryptKeyFileTPM2:
		return m, nil
	}
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return EncryptKeyFile, nil
	case "0", "no", "n", "false", "f", "off":
		return EncryptOff, nil
	}
	return "", fmt.Errorf("content: invalid Encrypt= mode %q", s)
}

// Spec is what a partition definition says about a new partition's content.
type Spec struct {
	// CopyBlocks is the path of a regular file, block device or directory
	// (whose backing block device is used) to copy in block by block, ""
	// for none. It is resolved inside Root. "auto" must be resolved by the
	// caller (FindBootedPartition).
	CopyBlocks string
	// Format is the file-system type to make: "vfat", "ext2", "ext3",
	// "ext4", "btrfs", "xfs", "squashfs", "swap", or "erofs" (systemd 253).
	// Empty means none, except that CopyFiles, MakeDirectories or Encrypt
	// without CopyBlocks imply ext4, as in systemd (see EffectiveFormat).
	Format string
	// CopyFiles are copied into the new file system in order; each Source
	// is a path inside Root, resolved with its symlinks kept inside Root.
	CopyFiles []fsimage.CopyFile
	// MakeDirectories are created in the new file system after the copies.
	MakeDirectories []string
	// Root is the directory CopyBlocks and CopyFiles sources are resolved
	// in (systemd-repart --root=); "" is the host's root. With a Root,
	// CopyBlocks must name a regular file, as in systemd.
	Root string
	// Label is the file-system label before mangling and the LUKS2 label:
	// systemd uses the partition label for both.
	Label string
	// FSUUID is the file-system UUID (see FileSystemUUID).
	FSUUID gpt.GUID
	// Encrypt is the Encrypt= mode; "" is off.
	Encrypt EncryptMode
	// Key is the passphrase of the key-file slot: the whole content of
	// systemd-repart's --key-file=, empty (a valid, empty passphrase) when
	// none was given.
	Key []byte
	// LUKSUUID is the UUID of the LUKS2 header (see LUKSUUID).
	LUKSUUID gpt.GUID
	// PBKDF, when set, replaces libcryptsetup's benchmarked default for the
	// key-file slot (systemd-repart always uses the default).
	PBKDF *PBKDF
	// SectorSize is the logical sector size of the disk: the LUKS2 sector
	// size (systemd 252 uses the disk's, 512 for image files). 0 means 512.
	SectorSize int
	// SourceDateEpoch makes file systems reproducible where the tools allow
	// it (see fsimage.Options).
	SourceDateEpoch *time.Time
	// NoDiscard mirrors systemd-repart --discard=no for mkfs.
	NoDiscard bool
	// TempDir holds staging trees and scratch images; default os.TempDir().
	TempDir string
	// Rand is the source of the LUKS2 volume key; default crypto/rand.
	Rand io.Reader
}

// PBKDF sets the key-derivation function of the key-file slot explicitly,
// without benchmarking (cryptsetup --pbkdf, --pbkdf-force-iterations,
// --pbkdf-memory, --pbkdf-parallel).
type PBKDF struct {
	Type       string // "argon2id", "argon2i" or "pbkdf2"
	Iterations int    // time cost (argon2, at least 4) or iterations (pbkdf2, at least 1000)
	MemoryKiB  int    // argon2 only
	Parallel   int    // argon2 only
}

// EffectiveFormat returns the file system Fill makes: Format, or ext4 when
// systemd 252 implies it (CopyFiles=, MakeDirectories=, or Encrypt=
// without CopyBlocks=), or "" for none.
func (s *Spec) EffectiveFormat() string {
	if s.Format != "" {
		return s.Format
	}
	if s.CopyBlocks != "" {
		return ""
	}
	if len(s.CopyFiles) > 0 || len(s.MakeDirectories) > 0 || s.encrypt() != EncryptOff {
		return "ext4"
	}
	return ""
}

func (s *Spec) encrypt() EncryptMode {
	if s.Encrypt == "" {
		return EncryptOff
	}
	return s.Encrypt
}

func (s *Spec) sectorSize() int {
	if s.SectorSize == 0 {
		return 512
	}
	return s.SectorSize
}

// validate checks the combination of keys the way systemd-repart 252
// checks a definition, so that a caller that skipped a check still gets a
// clear error rather than a surprising partition.
func (s *Spec) validate() error {
	switch s.encrypt() {
	case EncryptOff, EncryptKeyFile, EncryptKeyFileTPM2:
	case EncryptTPM2:
		return fmt.Errorf("content: %w", ErrTPM2Offline)
	default:
		return fmt.Errorf("content: invalid Encrypt= mode %q", s.Encrypt)
	}
	if s.CopyBlocks != "" && (s.Format != "" || len(s.CopyFiles) > 0 || len(s.MakeDirectories) > 0) {
		return errors.New("content: Format=/CopyFiles=/MakeDirectories= and CopyBlocks= cannot be combined")
	}
	if s.CopyBlocks == "auto" {
		return errors.New("content: CopyBlocks=auto must be resolved to a device first (FindBootedPartition)")
	}
	if f := s.EffectiveFormat(); f != "" {
		if _, err := fsimage.Tools(f); err != nil {
			return fmt.Errorf("content: Format=%s: unsupported file-system type", f)
		}
		if f == "swap" && (len(s.CopyFiles) > 0 || len(s.MakeDirectories) > 0) {
			return errors.New("content: Format=swap and CopyFiles=/MakeDirectories= cannot be combined")
		}
	}
	switch s.sectorSize() {
	case 512, 1024, 2048, 4096:
	default:
		return fmt.Errorf("content: bad sector size %d", s.SectorSize)
	}
	return nil
}

// Range is a byte range of a disk: a partition.
type Range struct {
	Offset, Size int64
}

// String shows the range as [start, end).
func (r Range) String() string { return fmt.Sprintf("[%d, %d)", r.Offset, r.Offset+r.Size) }

func (r Range) check(align int) error {
	if r.Offset < 0 || r.Size <= 0 || r.Offset > (1<<62)-r.Size {
		return fmt.Errorf("content: bad range offset %d size %d", r.Offset, r.Size)
	}
	if r.Offset%int64(align) != 0 || r.Size%int64(align) != 0 {
		return fmt.Errorf("content: range %v is not aligned to %d bytes", r, align)
	}
	return nil
}

// Fill writes the content of a new partition into [offset, offset+size) of
// disk, an image file or a block device, as systemd-repart 252 does between
// allocating the partition and writing the partition table:
//
//   - Encrypt=: a LUKS2 header, then the content encrypted after it;
//   - CopyBlocks=: the source's bytes at the start of the range;
//   - Format=: a new file system filling the range, populated from
//     CopyFiles= and MakeDirectories=;
//   - none of these: nothing but zeros.
//
// Whatever the content leaves over reads as zeros afterwards: the range is
// punched (discarded) where the disk supports it, written with zeros
// otherwise. Bytes outside the range are never written; a regular file
// shorter than offset+size is extended. The verity hash and signature
// partitions are written by FormatVerityHash and WriteVeritySignature.
// The data is synced to the disk before Fill returns.
func Fill(ctx context.Context, disk *os.File, offset, size int64, s Spec) error {
	if err := fill(ctx, disk, offset, size, s); err != nil {
		return err
	}
	// Durable before the caller writes the partition table that names it.
	if err := disk.Sync(); err != nil {
		return fmt.Errorf("content: %w", err)
	}
	return nil
}

func fill(ctx context.Context, disk *os.File, offset, size int64, s Spec) error {
	if err := s.validate(); err != nil {
		return err
	}
	r := Range{offset, size}
	align := 512
	if s.encrypt() != EncryptOff {
		align = s.sectorSize()
	}
	if err := r.check(align); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("content: %w", err)
	}
	if s.encrypt() != EncryptOff {
		return fillEncrypted(ctx, disk, r, &s)
	}
	if s.CopyBlocks != "" {
		src, err := openCopyBlocks(s.Root, s.CopyBlocks)
		if err != nil {
			return err
		}
		defer src.Close()
		if src.size > size {
			return fmt.Errorf("content: CopyBlocks=%s: %d bytes do not fit in the partition of %d bytes", src.name, src.size, size)
		}
		if err := zeroRange(disk, r); err != nil {
			return fmt.Errorf("content: %w", err)
		}
		if err := copySparse(ctx, rangeWriter{disk, r}, 0, src.f, src.size); err != nil {
			return fmt.Errorf("content: copying %s: %w", src.name, err)
		}
		return nil
	}
	if f := s.EffectiveFormat(); f != "" {
		opts, err := s.fsOptions(f)
		if err != nil {
			return err
		}
		if err := fsimage.Make(ctx, disk, offset, size, opts); err != nil {
			return fmt.Errorf("content: %w", err)
		}
		return nil
	}
	if err := zeroRange(disk, r); err != nil {
		return fmt.Errorf("content: %w", err)
	}
	return nil
}

// fsOptions turns the spec into fsimage options, resolving the CopyFiles
// sources inside Root. The sector size is left to mkfs: systemd 252 makes
// the file system on a loop device of 512-byte sectors, or on the
// dm-crypt device of an encrypted partition.
func (s *Spec) fsOptions(fsType string) (fsimage.Options, error) {
	opts := fsimage.Options{
		Type:            fsType,
		Label:           s.Label,
		UUID:            [16]byte(s.FSUUID),
		MakeDirectories: s.MakeDirectories,
		SourceDateEpoch: s.SourceDateEpoch,
		NoDiscard:       s.NoDiscard,
		TempDir:         s.TempDir,
	}
	for _, c := range s.CopyFiles {
		src, err := resolveInRoot(s.Root, c.Source)
		if err != nil {
			return opts, fmt.Errorf("content: CopyFiles=%s:%s: %w", c.Source, c.Target, err)
		}
		opts.CopyFiles = append(opts.CopyFiles, fsimage.CopyFile{Source: src, Target: c.Target})
	}
	return opts, nil
}

// Sizes systemd-repart 252 reserves for content (src/partition/repart.c and
// src/shared/resize-fs.h).
const (
	// LUKS2MetadataSize is what Encrypt= adds to a partition's minimum
	// size.
	LUKS2MetadataSize = 16 << 20
	ext4MinimalSize   = 1 << 20
	xfsMinimalSize    = 14 << 20
	btrfsMinimalSize  = 256 << 20
)

// MinSize returns the part of a new partition's minimum size that its
// content imposes, as systemd-repart 252 computes it (partition_min_size):
// 16 MiB for a LUKS2 header when encrypted, plus the CopyBlocks= source's
// size, or else the least size of the file system (ext4 1 MiB, xfs 14 MiB,
// btrfs 256 MiB, one grain for the others); each rounded up to grain. It is
// 0 when there is no content. The caller takes the largest of this, 4096
// and the rounded SizeMinBytes= (default 10 MiB).
func MinSize(s Spec, grain int64) (int64, error) {
	if grain <= 0 {
		return 0, fmt.Errorf("content: bad grain %d", grain)
	}
	if s.CopyBlocks == "auto" {
		return 0, errors.New("content: CopyBlocks=auto must be resolved to a device first (FindBootedPartition)")
	}
	roundUp := func(n int64) int64 { return (n + grain - 1) / grain * grain }
	var d int64
	if s.encrypt() != EncryptOff {
		d += roundUp(LUKS2MetadataSize)
	}
	switch f := s.EffectiveFormat(); {
	case s.CopyBlocks != "":
		src, err := openCopyBlocks(s.Root, s.CopyBlocks)
		if err != nil {
			return 0, err
		}
		src.Close()
		d += roundUp(src.size)
	case f == "ext4":
		d += roundUp(ext4MinimalSize)
	case f == "xfs":
		d += roundUp(xfsMinimalSize)
	case f == "btrfs":
		d += roundUp(btrfsMinimalSize)
	case f != "" || s.encrypt() != EncryptOff:
		d += grain
	}
	return d, nil
}

// MinimizedSize makes the read-only file system (erofs, squashfs) of s in a
// scratch file and returns its size rounded up to 4096: what Minimize=best
// (systemd 253) sizes such a partition to. Encrypted partitions are not
// supported.
func MinimizedSize(ctx context.Context, s Spec) (int64, error) {
	if err := s.validate(); err != nil {
		return 0, err
	}
	f := s.EffectiveFormat()
	if !fsimage.ReadOnly(f) {
		return 0, fmt.Errorf("content: Minimize= needs a read-only file system, not %q", f)
	}
	if s.encrypt() != EncryptOff {
		return 0, errors.New("content: Minimize= is not supported with Encrypt=")
	}
	opts, err := s.fsOptions(f)
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(s.TempDir, "imago-minimize-*.img")
	if err != nil {
		return 0, fmt.Errorf("content: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	n, err := fsimage.MakeFile(ctx, tmp.Name(), 0, opts)
	if err != nil {
		return 0, fmt.Errorf("content: %w", err)
	}
	return n, nil
}
