package repart

import (
	"context"

	"github.com/imago-os/imago/format/dps"
)

// Content fills the partitions a run creates: CopyBlocks=, Format= with
// CopyFiles= and MakeDirectories=, Encrypt= and Verity=. The engine calls
// it at the points where systemd-repart 252 does the same work, so that the
// sizes, the UUIDs and the order of writes stay those of systemd.
//
// Without a Content, a run refuses definitions with CopyBlocks= outright
// (the source's size is part of the allocation), and refuses to write new
// partitions whose definitions ask for any other contents; new partitions
// without contents are left as systemd leaves them: wiped, and discarded
// unless --discard=no.
type Content interface {
	// Prepare is called after the partition table was read and matched,
	// before sizes are allocated, with every partition the run may
	// create (some may be dropped later for lack of space). It sets
	// CopyBlocksSize for CopyBlocks= partitions, and may set UUID and
	// HasUUID (CopyBlocks=auto takes the UUID of the source partition
	// when UUID= is not given). Number, Offset and Size are not known
	// yet. Prepare may be called more than once in a run (--size=auto
	// plans twice; a factory reset that writes first shows it the
	// partitions it will remove and create anew, before removing them,
	// so that it can refuse them while the disk is unchanged).
	Prepare(ctx context.Context, run *ContentRun) error
	// Fill writes the contents of the new partitions, only inside their
	// ranges. It runs after the ranges were wiped and before the
	// partition table is written, and only when the run writes. For a
	// Verity=data or Verity=hash partition without UUID=, it sets UUID
	// (and HasUUID) from the root hash, and RootHash on the hash
	// partition, as systemd 252 does.
	Fill(ctx context.Context, run *ContentRun) error
}

// ContentRun is what a Content works on.
type ContentRun struct {
	// Disk is the disk being partitioned.
	Disk Disk
	// SectorSize is its logical sector size (the verity block size of
	// systemd 252).
	SectorSize int
	// Seed is the seed partition and disk UUIDs are derived from.
	Seed dps.UUID
	// Root is --root, which CopyFiles= and CopyBlocks= sources are
	// relative to ("" for the running system).
	Root string
	// Partitions are the new partitions in definition order.
	Partitions []*ContentPartition
	// DryRun is set when the run only plans (--dry-run=yes): Fill will
	// not be called, and Prepare should refuse only what a dry run
	// cannot show.
	DryRun bool
	// NoDiscard is --discard=no, which mkfs follows too.
	NoDiscard bool
	// Logf receives progress messages.
	Logf func(format string, args ...any)
}

// Sibling returns the partition of the same verity group (VerityMatchKey=)
// with the given mode, nil if there is none in this run.
func (r *ContentRun) Sibling(p *ContentPartition, mode VerityMode) *ContentPartition {
	if p.Definition == nil || mode < VerityData || mode > VeritySignature {
		return nil
	}
	want := p.Definition.Siblings[mode]
	if want == nil {
		return nil
	}
	for _, q := range r.Partitions {
		if q.Definition == want {
			return q
		}
	}
	return nil
}

// ContentPartition is one new partition as the content step sees it.
type ContentPartition struct {
	// Definition is what the partition is made from.
	Definition *Definition
	// Number is the partition's 1-based entry number; Offset and Size
	// its place on the disk in bytes. All three are zero in Prepare.
	Number       int
	Offset, Size uint64
	// UUID is the partition UUID when HasUUID is set. It is not known
	// for Verity=data and Verity=hash partitions without UUID= until
	// Fill sets it from the root hash; systemd 252 then keys the file
	// system UUID of the data partition with the zero UUID (see
	// FileSystemUUID).
	UUID    dps.UUID
	HasUUID bool
	// Label is the partition label (also the file system label).
	Label string
	// CopyBlocksSize is the size in bytes of the CopyBlocks= source, set
	// by Prepare; it becomes part of the minimum size.
	CopyBlocksSize uint64
	// RootHash is the verity root hash, set by Fill on Verity=hash
	// partitions.
	RootHash []byte

	p *partition
}

func (e *engine) contentPartition(p *partition) *ContentPartition {
	cp := &ContentPartition{
		Definition: p.def,
		UUID:       p.newUUID,
		HasUUID:    p.newUUIDSet,
		Label:      p.newLabel,
		p:          p,
	}
	if p.copyBlocksSize != unset {
		cp.CopyBlocksSize = p.copyBlocksSize
	}
	if p.offset != unset && p.partno != unset {
		cp.Number = int(p.partno) + 1
		cp.Offset, cp.Size = p.offset, p.newSize
	}
	return cp
}

func (e *engine) contentRun(parts []*ContentPartition) *ContentRun {
	return &ContentRun{
		Disk:       e.disk,
		SectorSize: e.sectorSize,
		Seed:       e.opts.Seed,
		Root:       e.opts.Root,
		Partitions: parts,
		DryRun:     !e.opts.Write,
		NoDiscard:  e.opts.NoDiscard,
		Logf:       e.opts.logf,
	}
}

// needsContent reports whether a definition asks for contents.
func (d *Definition) needsContent() bool {
	return d.CopyBlocks != "" || d.Format != "" || len(d.CopyFiles) > 0 || len(d.MakeDirectories) > 0 ||
		d.Encrypt != EncryptOff || d.Verity != VerityOff
}
