package repart

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/repart/content"
)

// ErrTPM2Offline is matched by the error a run returns when it would have
// to create a partition with Encrypt=tpm2: the key must be sealed to the
// TPM2 of the machine that boots the image, so such partitions are made
// by systemd-repart on the device at first boot.
var ErrTPM2Offline = content.ErrTPM2Offline

// ContentOptions configure the content step NewContent returns.
type ContentOptions struct {
	// Signer and Certificate sign Verity=signature partitions
	// (--private-key=, --certificate=).
	Signer      crypto.Signer
	Certificate *x509.Certificate
	// Key is the passphrase of the key slot of Encrypt= partitions: the
	// whole content of --key-file=. Without one the passphrase is empty,
	// as with systemd-repart 252.
	Key []byte
	// ReproducibleVerity gives every new verity hash partition the salt
	// and superblock UUID systemd-repart 255 and later derive from the
	// seed (VeritySalt, VerityUUID) instead of the random ones of
	// systemd-repart 252, so that a build with a fixed seed is
	// reproducible. The partition table does not change, except that the
	// verity partition UUIDs, which come from the root hash, are
	// reproducible too.
	ReproducibleVerity bool
	// VerityParams, when set, chooses the salt and superblock UUID of a
	// new hash partition (ok false: as without it). It is there to
	// reproduce a hash partition made elsewhere with random values, as
	// the conformance tests do with systemd-repart 252's.
	VerityParams func(hash *ContentPartition) (salt []byte, uuid dps.UUID, ok bool)
	// PBKDF replaces the key-derivation costs libcryptsetup benchmarks
	// for the key slot (systemd-repart always benchmarks); nil keeps the
	// benchmark.
	PBKDF *content.PBKDF
	// SourceDateEpoch makes file systems reproducible where the tools
	// allow it, as SOURCE_DATE_EPOCH does for the mkfs systemd-repart
	// runs.
	SourceDateEpoch *time.Time
	// TempDir holds staging trees and scratch images; "" is
	// os.TempDir().
	TempDir string
	// Rand is the source of LUKS2 volume keys and of random verity salts
	// and UUIDs; nil is crypto/rand.
	Rand io.Reader
	// FindBooted resolves CopyBlocks=auto; nil is
	// content.FindBootedPartition.
	FindBooted func(dps.UUID) (content.BootedPartition, error)
}

// NewContent returns the content step that fills new partitions as
// systemd-repart 252 does, with the repart/content package: CopyBlocks=,
// Format= with CopyFiles= and MakeDirectories=, Encrypt= with a key file,
// and verity groups (hash tree, partition UUIDs from the root hash,
// signature).
func NewContent(o ContentOptions) Content {
	return &contentStep{o: o, booted: map[*Definition]content.BootedPartition{}}
}

type contentStep struct {
	o ContentOptions
	// booted remembers what CopyBlocks=auto resolved to, from Prepare to
	// Fill.
	booted map[*Definition]content.BootedPartition
}

// FileDisk is implemented by disks backed by an open file (DeviceFile),
// which the content step needs to run mkfs and cryptsetup against.
type FileDisk interface {
	File() *os.File
}

// Prepare resolves CopyBlocks= sources (CopyBlocks=auto through the
// booted partition of the same type, whose UUID the new partition takes
// unless UUID= is given) and their sizes, and refuses, before anything is
// written, what cannot be made: Encrypt=tpm2, and signature partitions
// without a key.
func (c *contentStep) Prepare(_ context.Context, run *ContentRun) error {
	for _, p := range run.Partitions {
		d := p.Definition
		if d == nil {
			continue
		}
		switch d.Encrypt {
		case EncryptTPM2:
			if !run.DryRun {
				return fmt.Errorf("%s: %w", d.Path, ErrTPM2Offline)
			}
			run.logf("%s: Encrypt=tpm2 cannot be done offline; this partition is for systemd-repart on the device.", d.Path)
		case EncryptKeyFileTPM2:
			run.logf("%s: Encrypt=key-file+tpm2: only the key-file slot is made; enroll the TPM2 on the device (systemd-cryptenroll).", d.Path)
		}
		if d.Verity == VeritySignature && !run.DryRun && (c.o.Signer == nil || c.o.Certificate == nil) {
			return fmt.Errorf("%s: a verity signature partition needs a private key and a certificate (--private-key=, --certificate=)", d.Path)
		}
		if d.CopyBlocks == "" {
			continue
		}
		if d.CopyBlocks == "auto" {
			b, err := c.resolveAuto(run, d)
			if err != nil {
				return err
			}
			p.CopyBlocksSize = uint64(b.Size)
			if !p.HasUUID {
				p.UUID, p.HasUUID = dps.UUID(b.UUID), true
			}
			continue
		}
		// MinSize with a grain of 1 and nothing else is the source's size.
		n, err := content.MinSize(content.Spec{CopyBlocks: d.CopyBlocks, Root: run.Root}, 1)
		if err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
		if n <= 0 {
			return fmt.Errorf("%s: CopyBlocks=%s is empty", d.Path, d.CopyBlocks)
		}
		p.CopyBlocksSize = uint64(n)
	}
	return nil
}

// resolveAuto finds the booted partition for CopyBlocks=auto, once per
// definition and run.
func (c *contentStep) resolveAuto(run *ContentRun, d *Definition) (content.BootedPartition, error) {
	if b, ok := c.booted[d]; ok {
		return b, nil
	}
	if run.Root != "" {
		// systemd accepts no block device as a source with --root=.
		return content.BootedPartition{}, fmt.Errorf("%s: CopyBlocks=auto cannot be used with --root=", d.Path)
	}
	find := c.o.FindBooted
	if find == nil {
		find = content.FindBootedPartition
	}
	b, err := find(d.Type.UUID)
	if err != nil {
		return b, fmt.Errorf("%s: CopyBlocks=auto: %w", d.Path, err)
	}
	run.logf("Mapped CopyBlocks=auto for %s to %s.", d.TypeName(), b.Device)
	c.booted[d] = b
	return b, nil
}

// Fill writes the contents in systemd-repart 252's order
// (context_copy_blocks, context_mkfs, context_verity_hash,
// context_verity_sig): CopyBlocks= partitions, then file systems, then
// the hash trees (which set the verity partition UUIDs), then the
// signatures. The engine writes the partition table afterwards.
func (c *contentStep) Fill(ctx context.Context, run *ContentRun) error {
	fd, ok := run.Disk.(FileDisk)
	if !ok {
		return errors.New("partition contents can only be written to an image file or a block device")
	}
	disk := fd.File()
	var copies, formats, hashes, sigs []*ContentPartition
	for _, p := range run.Partitions {
		d := p.Definition
		if d == nil || !d.needsContent() {
			continue
		}
		switch {
		case d.Verity == VerityHash:
			hashes = append(hashes, p)
		case d.Verity == VeritySignature:
			sigs = append(sigs, p)
		case d.CopyBlocks != "":
			copies = append(copies, p)
		default:
			formats = append(formats, p)
		}
	}
	for _, p := range append(copies, formats...) {
		spec, err := c.spec(run, p)
		if err != nil {
			return err
		}
		if spec.CopyBlocks == "" && spec.EffectiveFormat() == "" && spec.Encrypt == "" {
			// A Verity=data partition without contents: it stays as the
			// wipe left it, as with systemd.
			continue
		}
		what := "Formatting"
		if spec.CopyBlocks != "" {
			what = "Copying blocks into"
		}
		run.logf("%s future partition %d (%s).", what, p.Number-1, p.Definition.Path)
		if err := content.Fill(ctx, disk, int64(p.Offset), int64(p.Size), spec); err != nil {
			return fmt.Errorf("%s: %w", p.Definition.Path, err)
		}
	}
	for _, p := range hashes {
		if err := c.verityHash(ctx, disk, run, p); err != nil {
			return fmt.Errorf("%s: %w", p.Definition.Path, err)
		}
	}
	for _, p := range sigs {
		hp := run.Sibling(p, VerityHash)
		if hp == nil || len(hp.RootHash) == 0 {
			return fmt.Errorf("%s: the root hash to sign is not known: the Verity=hash partition is not created in this run", p.Definition.Path)
		}
		if c.o.Signer == nil || c.o.Certificate == nil {
			return fmt.Errorf("%s: a verity signature partition needs a private key and a certificate (--private-key=, --certificate=)", p.Definition.Path)
		}
		run.logf("Writing verity signature into future partition %d.", p.Number-1)
		if err := content.WriteVeritySignature(disk, rangeOf(p), hp.RootHash, c.o.Certificate, c.o.Signer); err != nil {
			return fmt.Errorf("%s: %w", p.Definition.Path, err)
		}
	}
	return nil
}

// spec is what the content package needs for a data partition.
func (c *contentStep) spec(run *ContentRun, p *ContentPartition) (content.Spec, error) {
	d := p.Definition
	s := content.Spec{
		CopyBlocks:      d.CopyBlocks,
		Format:          d.Format,
		MakeDirectories: d.MakeDirectories,
		Root:            run.Root,
		Label:           p.Label,
		SectorSize:      run.SectorSize,
		SourceDateEpoch: c.o.SourceDateEpoch,
		NoDiscard:       run.NoDiscard,
		TempDir:         c.o.TempDir,
		Rand:            c.o.Rand,
		PBKDF:           c.o.PBKDF,
	}
	for _, f := range d.CopyFiles {
		s.CopyFiles = append(s.CopyFiles, fsimage.CopyFile{Source: f.Source, Target: f.Target})
	}
	if d.CopyBlocks == "auto" {
		b, err := c.resolveAuto(run, d)
		if err != nil {
			return s, err
		}
		// The device node is a host path, not one inside --root (which
		// CopyBlocks=auto does not allow).
		s.CopyBlocks, s.Root = b.Device, ""
	}
	// A Verity=data partition without UUID= is formatted before its UUID
	// is known; systemd 252 then keys the file system UUID with the zero
	// UUID, which is what p.UUID holds.
	var key dps.UUID
	if p.HasUUID {
		key = p.UUID
	}
	s.FSUUID = content.FileSystemUUID(gpt.GUID(key))
	switch d.Encrypt {
	case EncryptOff:
	case EncryptKeyFile, EncryptKeyFileTPM2:
		s.Encrypt = content.EncryptKeyFile
		s.Key = c.o.Key
		s.LUKSUUID = content.LUKSUUID(gpt.GUID(key))
	case EncryptTPM2:
		return s, fmt.Errorf("%s: %w", d.Path, ErrTPM2Offline)
	}
	return s, nil
}

// verityHash formats a new hash partition over its data partition, and
// gives both the UUIDs systemd derives from the root hash unless UUID=
// set them.
func (c *contentStep) verityHash(ctx context.Context, disk *os.File, run *ContentRun, p *ContentPartition) error {
	dp := run.Sibling(p, VerityData)
	if dp == nil {
		return errors.New("the Verity=data partition of the group is not created in this run, so its hash tree cannot be made")
	}
	o := content.VerityOptions{BlockSize: run.SectorSize, Rand: c.o.Rand}
	if c.o.ReproducibleVerity {
		o.Salt, o.UUID = content.VeritySeeded(run.Seed)
	}
	if c.o.VerityParams != nil {
		if salt, u, ok := c.o.VerityParams(p); ok {
			o.Salt, o.UUID = salt, gpt.GUID(u)
		}
	}
	run.logf("Writing verity hash tree of future partition %d into future partition %d.", dp.Number-1, p.Number-1)
	root, err := content.FormatVerityHash(ctx, disk, rangeOf(dp), rangeOf(p), o)
	if err != nil {
		return err
	}
	p.RootHash = root
	d, h, err := content.VerityPartitionUUIDs(root)
	if err != nil {
		return err
	}
	if !dp.HasUUID {
		dp.UUID, dp.HasUUID = dps.UUID(d), true
	}
	if !p.HasUUID {
		p.UUID, p.HasUUID = dps.UUID(h), true
	}
	return nil
}

func rangeOf(p *ContentPartition) content.Range {
	return content.Range{Offset: int64(p.Offset), Size: int64(p.Size)}
}

func (r *ContentRun) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}
