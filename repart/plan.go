package repart

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/imago-os/imago/format/dps"
)

// Action says what a run does with a partition.
type Action string

// The actions.
const (
	// ActionKeep: an existing partition that stays as it is (a label or
	// UUID may be filled in if it had none).
	ActionKeep Action = "keep"
	// ActionGrow: an existing partition that grows into free space
	// after it.
	ActionGrow Action = "grow"
	// ActionCreate: a new partition.
	ActionCreate Action = "create"
	// ActionFactoryReset: an existing partition removed by a factory
	// reset and created anew.
	ActionFactoryReset Action = "factory-reset"
	// ActionForeign: an existing partition no definition claims (or
	// that cannot grow for its priority); it is never touched.
	ActionForeign Action = "foreign"
	// ActionDrop: a definition whose partition does not fit and is not
	// created, because of its Priority=.
	ActionDrop Action = "drop"
)

// Plan is the outcome of a run: the partitions in systemd-repart's order
// (definitions in file-name order, then foreign partitions), with where
// they go and what is done to them.
type Plan struct {
	// Device names the disk.
	Device string
	// SectorSize is the logical sector size; DiskSize the size in bytes
	// the plan is for.
	SectorSize int
	DiskSize   int64
	// DiskUUID is the GPT disk GUID.
	DiskUUID dps.UUID
	// FromScratch is set when a new partition table replaces whatever
	// was on the disk.
	FromScratch bool
	// Changed is set when the table differs from the one on disk.
	Changed bool
	// Written is set once the table was written.
	Written bool
	// Partitions are all partitions, dropped definitions included.
	Partitions []PlannedPartition
	// Removed are the partitions a factory reset removed (they reappear
	// in Partitions as ActionFactoryReset when their definitions fit).
	Removed []PlannedPartition
}

// PlannedPartition is one partition of a Plan.
type PlannedPartition struct {
	// Type is the partition type; Type.Name is "" for types systemd
	// does not know.
	Type dps.Type
	// Label is the partition label.
	Label string
	// UUID is the partition UUID; UUIDKnown is false for new verity
	// partitions whose UUID comes from the root hash, before contents
	// are written.
	UUID      dps.UUID
	UUIDKnown bool
	// Definition is the definition file, "" for a foreign partition;
	// DropIns its drop-ins.
	Definition string
	DropIns    []string
	// Number is the 1-based entry number (0 for a dropped one) and Node
	// the device node the kernel gives it.
	Number int
	Node   string
	// Offset, OldSize, Size, OldPadding and Padding are in bytes. Old
	// values are 0 for new partitions.
	Offset              uint64
	OldSize, Size       uint64
	OldPadding, Padding uint64
	// Attributes are the GPT attribute bits the partition has after the
	// run.
	Attributes uint64
	// Action says what the run does with the partition.
	Action Action
	// Activity is systemd-repart's word for it: "create", "resize" or
	// "unchanged".
	Activity string
	// RootHash is the verity root hash of a new Verity=hash partition,
	// once its contents are written.
	RootHash []byte
}

// TypeName returns systemd's name for the type, or its UUID.
func (p PlannedPartition) TypeName() string {
	if p.Type.Name != "" {
		return p.Type.Name
	}
	return p.Type.UUID.String()
}

func (e *engine) plan() *Plan {
	plan := &Plan{
		Device:      e.opts.Device,
		SectorSize:  e.sectorSize,
		DiskSize:    e.planSize,
		DiskUUID:    dps.UUID(e.table.DiskGUID),
		FromScratch: e.fromScratch,
		Changed:     e.c.changed(),
		Removed:     e.removed,
	}
	for _, p := range e.c.parts {
		var a Action
		switch {
		case p.dropped:
			a = ActionDrop
		case p.foreign():
			a = ActionForeign
		case !p.exists && e.reset[p.def]:
			a = ActionFactoryReset
		case !p.exists:
			a = ActionCreate
		case p.newSize != p.currentSize:
			a = ActionGrow
		default:
			a = ActionKeep
		}
		plan.Partitions = append(plan.Partitions, e.planned(p, a))
	}
	return plan
}

func (e *engine) planned(p *partition, a Action) PlannedPartition {
	pp := PlannedPartition{
		Type:       dps.Type{UUID: p.typeUUID},
		Label:      p.currentLabel,
		UUID:       p.currentUUID,
		UUIDKnown:  true,
		Action:     a,
		Offset:     p.offset,
		Attributes: p.currentAttr,
	}
	if t, ok := dps.LookupUUID(p.typeUUID); ok {
		pp.Type = t
	}
	if p.newLabelSet {
		pp.Label = p.newLabel
	}
	if p.newUUIDSet {
		pp.UUID = p.newUUID
	} else if !p.exists {
		pp.UUIDKnown = false
	}
	if p.def != nil {
		pp.Definition = p.def.Path
		pp.DropIns = p.def.DropIns
		if !p.exists {
			pp.Attributes = p.def.WriteFlags()
		}
	}
	if p.partno != unset && !p.dropped {
		pp.Number = int(p.partno) + 1
		pp.Node = PartitionNode(e.opts.Device, pp.Number)
	}
	if p.offset == unset || p.dropped {
		pp.Offset = 0
	}
	if p.currentSize != unset {
		pp.OldSize = p.currentSize
	}
	if p.newSize != unset {
		pp.Size = p.newSize
	}
	if p.currentPadding != unset {
		pp.OldPadding = p.currentPadding
	}
	if p.newPadding != unset {
		pp.Padding = p.newPadding
	}
	switch {
	case p.currentSize == unset:
		pp.Activity = "create"
	case p.currentSize != p.newSize:
		pp.Activity = "resize"
	default:
		pp.Activity = "unchanged"
	}
	return pp
}

// PartitionNode returns the device node of partition number n of device,
// the way libfdisk's fdisk_partname() names it: "p" goes between a name
// ending in a digit and the number ("/dev/loop0p1", "/dev/nvme0n1p2"),
// otherwise nothing ("/dev/sda1", "disk.img1").
func PartitionNode(device string, n int) string {
	if device == "" {
		return ""
	}
	sep := ""
	if last := device[len(device)-1]; last >= '0' && last <= '9' {
		sep = "p"
	}
	if strings.HasPrefix(device, "/dev/mapper/") {
		sep = "-part"
	}
	return fmt.Sprintf("%s%s%d", device, sep, n)
}

// DefinitionFile returns the base name of a definition path, "-" for none,
// as systemd-repart shows it.
func DefinitionFile(path string) string {
	if path == "" {
		return "-"
	}
	return filepath.Base(path)
}

// formatBytes is systemd's FORMAT_BYTES(): 1024-based, one decimal,
// suffixes K to E, plain bytes with "B".
func formatBytes(n uint64) string {
	units := []struct {
		suffix string
		factor uint64
	}{
		{"E", 1 << 60}, {"P", 1 << 50}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10},
	}
	for _, u := range units {
		if n >= u.factor {
			return fmt.Sprintf("%d.%d%s", n/u.factor, n%u.factor*10/u.factor, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// FormatBytes formats a size the way systemd-repart prints sizes
// ("64.0M").
func FormatBytes(n uint64) string { return formatBytes(n) }
