package repart

import (
	"errors"
	"fmt"
	"sort"

	"github.com/imago-os/imago/format/gpt"
)

// wipeSize is how much of the start and of the end of a new partition (or
// of the whole disk, from scratch) is zeroed. systemd erases the
// signatures libblkid finds there; every file system, RAID and partition
// table signature it knows lies within the first or the last MiB.
const wipeSize = 1 << 20

// write carries out a plan (context_write_partition_table): wipe and
// discard, contents, then the table.
func (e *engine) write(plan *Plan) error {
	o := e.opts
	c := e.c
	o.logf("Applying changes.")

	if e.fromScratch {
		if err := e.wipeEnds(0, c.total); err != nil {
			return err
		}
		o.logf("Wiped block device.")
		if !o.NoDiscard {
			switch err := e.discard(0, c.total); {
			case errors.Is(err, ErrUnsupported):
				o.logf("Storage does not support discard, not discarding entire block device data.")
			case err != nil:
				return fmt.Errorf("repart: discarding entire block device: %w", err)
			default:
				o.logf("Discarded entire block device.")
			}
		}
	}

	var created []*partition
	for _, p := range c.parts {
		if p.allocatedToArea != nil && !p.dropped {
			created = append(created, p)
		}
	}
	for _, p := range created {
		if err := e.wipeEnds(p.offset, p.newSize); err != nil {
			return err
		}
		o.logf("Successfully wiped file system signatures from future partition %d.", p.partno)
		if e.fromScratch {
			continue
		}
		if err := e.discardPartition(p); err != nil {
			return err
		}
		if err := e.discardGapAfter(p); err != nil {
			return err
		}
	}
	if !e.fromScratch {
		if err := e.discardGapAfter(nil); err != nil {
			return err
		}
	}

	if err := e.fillContent(created); err != nil {
		return err
	}

	t, err := e.newTable()
	if err != nil {
		return err
	}
	o.logf("Writing new partition table.")
	if err := gpt.Write(e.disk, e.planSize, t); err != nil {
		return fmt.Errorf("repart: writing partition table: %w", err)
	}
	if s, ok := e.disk.(Syncer); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("repart: syncing %s: %w", o.Device, err)
		}
	}
	if r, ok := e.disk.(PartitionRereader); ok {
		if err := r.RereadPartitions(e.original, t, e.fromScratch); err != nil {
			return fmt.Errorf("repart: %w", err)
		}
	}
	// The plan shows what was written, including verity UUIDs and root
	// hashes.
	for i, p := range c.parts {
		if p.newUUIDSet {
			plan.Partitions[i].UUID, plan.Partitions[i].UUIDKnown = p.newUUID, true
		}
		plan.Partitions[i].RootHash = p.rootHash
	}
	o.logf("All done.")
	return nil
}

// wipeEnds zeroes the first and last wipeSize bytes of a range.
func (e *engine) wipeEnds(offset, size uint64) error {
	n := min(size, wipeSize)
	if err := zeroRange(e.disk, int64(offset), int64(n)); err != nil {
		return fmt.Errorf("repart: wiping at offset %d: %w", offset, err)
	}
	if size > n {
		tail := min(size-n, wipeSize)
		if err := zeroRange(e.disk, int64(offset+size-tail), int64(tail)); err != nil {
			return fmt.Errorf("repart: wiping at offset %d: %w", offset+size-tail, err)
		}
	}
	return nil
}

func (e *engine) discard(offset, size uint64) error {
	if size == 0 {
		return nil
	}
	d, ok := e.disk.(Discarder)
	if !ok {
		return ErrUnsupported
	}
	return d.Discard(int64(offset), int64(size))
}

func (e *engine) discardPartition(p *partition) error {
	if e.opts.NoDiscard {
		return nil
	}
	switch err := e.discard(p.offset, p.newSize); {
	case errors.Is(err, ErrUnsupported):
		e.opts.logf("Storage does not support discard, not discarding data in future partition %d.", p.partno)
	case err != nil:
		return fmt.Errorf("repart: discarding data for future partition %d: %w", p.partno, err)
	default:
		e.opts.logf("Successfully discarded data from future partition %d.", p.partno)
	}
	return nil
}

// discardGapAfter discards the free space after p (or at the start of the
// usable area) up to the next partition.
func (e *engine) discardGapAfter(p *partition) error {
	if e.opts.NoDiscard {
		return nil
	}
	c := e.c
	gap := c.start
	if p != nil {
		gap = p.offset + p.newSize
	}
	next := uint64(unset)
	for _, q := range c.parts {
		if q.dropped {
			continue
		}
		if q.offset >= gap && (next == unset || q.offset < next) {
			next = q.offset
		}
	}
	if next == unset {
		next = c.end
		if gap > next {
			return fmt.Errorf("repart: partition end beyond disk end")
		}
	}
	err := e.discard(gap, next-gap)
	switch {
	case errors.Is(err, ErrUnsupported):
	case err != nil:
		return fmt.Errorf("repart: discarding gap at offset %d: %w", gap, err)
	}
	return nil
}

// fillContent runs the content step on the new partitions.
func (e *engine) fillContent(created []*partition) error {
	var parts []*ContentPartition
	needs := false
	for _, p := range created {
		parts = append(parts, e.contentPartition(p))
		if p.def.needsContent() {
			needs = true
		}
	}
	if !needs {
		return nil
	}
	if e.opts.Content == nil {
		for _, p := range created {
			if p.def.needsContent() {
				return fmt.Errorf("repart: %s: Format=/CopyFiles=/CopyBlocks=/MakeDirectories=/Encrypt=/Verity= need the content step, which is not available", p.def.Path)
			}
		}
	}
	if err := e.opts.Content.Fill(e.ctx, e.contentRun(parts)); err != nil {
		return fmt.Errorf("repart: %w", err)
	}
	for _, cp := range parts {
		p := cp.p
		if cp.HasUUID && !p.newUUIDSet {
			p.newUUID, p.newUUIDSet = cp.UUID, true
		}
		if len(cp.RootHash) > 0 {
			p.rootHash = append([]byte(nil), cp.RootHash...)
		}
	}
	return nil
}

// newTable builds the partition table to write (context_mangle_partitions).
func (e *engine) newTable() (*gpt.Table, error) {
	t := cloneTable(e.table)
	ss := uint64(e.sectorSize)
	count := int(t.EntryCount)
	if count == 0 {
		count = gpt.DefaultEntryCount
	}
	byNumber := map[int]int{}
	for i, gp := range t.Partitions {
		byNumber[gp.Number] = i
	}
	for _, p := range e.c.parts {
		if p.dropped {
			continue
		}
		if p.exists {
			if p.foreign() {
				continue
			}
			i, ok := byNumber[int(p.partno)+1]
			if !ok {
				return nil, fmt.Errorf("repart: partition %d vanished from the table", p.partno+1)
			}
			gp := &t.Partitions[i]
			if p.newSize != p.currentSize {
				gp.LastLBA = (p.offset+p.newSize)/ss - 1
				e.opts.logf("Growing existing partition %d.", p.partno)
			}
			if p.newUUID != p.currentUUID {
				gp.UniqueGUID = gpt.GUID(p.newUUID)
				e.opts.logf("Initializing UUID of existing partition %d.", p.partno)
			}
			if p.newLabel != p.currentLabel {
				gp.Name = p.newLabel
				e.opts.logf("Setting partition label of existing partition %d.", p.partno)
			}
			continue
		}
		if (p.verity == VerityData || p.verity == VerityHash) && !p.newUUIDSet {
			return nil, fmt.Errorf("repart: %s: the UUID of a Verity=%s partition comes from its root hash, which the content step did not provide", p.def.Path, p.verity)
		}
		number := int(p.partno) + 1
		if number > count {
			return nil, fmt.Errorf("repart: %s: partition number %d exceeds the %d entries of the table", p.def.Path, number, count)
		}
		if p.offset%ss != 0 || p.newSize%ss != 0 {
			return nil, fmt.Errorf("repart: %s: partition not aligned to the sector size", p.def.Path)
		}
		e.opts.logf("Adding new partition %d to partition table.", p.partno)
		t.Partitions = append(t.Partitions, gpt.Partition{
			Number:     number,
			TypeGUID:   gpt.GUID(p.typeUUID),
			UniqueGUID: gpt.GUID(p.newUUID),
			FirstLBA:   p.offset / ss,
			LastLBA:    (p.offset+p.newSize)/ss - 1,
			Attributes: p.def.WriteFlags(),
			Name:       p.newLabel,
		})
	}
	sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Number < t.Partitions[j].Number })
	return t, nil
}
