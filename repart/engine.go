package repart

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/format/gpt"
)

// EmptyMode is --empty=: what to do with a disk that has no partition
// table.
type EmptyMode int

// The values of --empty=.
const (
	// EmptyRefuse insists on an existing GPT (the default).
	EmptyRefuse EmptyMode = iota
	// EmptyAllow uses an existing GPT, or creates one on a disk without
	// any partition table.
	EmptyAllow
	// EmptyRequire creates a GPT and refuses a disk with any partition
	// table.
	EmptyRequire
	// EmptyForce creates a GPT, erasing whatever was there.
	EmptyForce
	// EmptyCreate is EmptyForce on an image file that is created new.
	EmptyCreate
)

var emptyNames = [...]string{"refuse", "allow", "require", "force", "create"}

// String returns the --empty= value for m.
func (m EmptyMode) String() string {
	if m < 0 || int(m) >= len(emptyNames) {
		return fmt.Sprintf("EmptyMode(%d)", int(m))
	}
	return emptyNames[m]
}

// ParseEmptyMode parses --empty=; "" means refuse.
func ParseEmptyMode(s string) (EmptyMode, error) {
	if s == "" {
		return EmptyRefuse, nil
	}
	for i, n := range emptyNames {
		if s == n {
			return EmptyMode(i), nil
		}
	}
	return 0, fmt.Errorf("repart: invalid --empty= mode %q (want refuse, allow, require, force or create)", s)
}

// ErrNoGPT is matched by the error Run returns when it leaves a disk alone
// because of its partition table: none with --empty=refuse, a non-GPT one
// with --empty=allow, any with --empty=require. systemd-repart exits with
// status 77 in these cases, which its boot-time service counts as success.
var ErrNoGPT = errors.New("not repartitioning")

// ErrNoSpace is matched by the error Run returns when the partitions do
// not fit even after dropping every partition with a positive Priority=.
var ErrNoSpace = errors.New("not enough free space")

// Options configure a run. The zero value (with Definitions set) is a dry
// run on a disk that must already have a GPT.
type Options struct {
	// Definitions are the partition definitions, in order (see
	// LoadDefinitions).
	Definitions []*Definition
	// Seed derives partition and disk UUIDs (see ResolveSeed).
	Seed dps.UUID
	// Empty is --empty=.
	Empty EmptyMode
	// Write is --dry-run=no: without it nothing is written, and Run only
	// returns the plan.
	Write bool
	// NoDiscard is --discard=no: new partitions and gaps are not
	// discarded (on image files: hole-punched), only the start and end
	// of new partitions are wiped, and growing a file allocates space.
	NoDiscard bool
	// Size is --size=BYTES (a multiple of 4096; 0 for none): an image
	// file smaller than this is grown first. SizeAuto is --size=auto.
	Size     uint64
	SizeAuto bool
	// FactoryReset is --factory-reset=yes: existing partitions whose
	// definition says FactoryReset=yes are removed, then created anew.
	FactoryReset bool
	// EFIVars, when set, is where the FactoryReset EFI variable is
	// removed after a factory reset removed partitions, as systemd does.
	EFIVars *efistore.Store
	// Content fills new partitions; nil means definitions must not ask
	// for contents (see Content).
	Content Content
	// Root is --root, passed to Content for paths in definitions.
	Root string
	// Device names the disk in the plan (partition nodes are derived
	// from it the way libfdisk names them).
	Device string
	// Split is --split=yes: after writing, each partition with a
	// SplitName= is also written to a file next to the image at Device.
	Split bool
	// Logf receives progress messages, one line each; nil discards them.
	Logf func(format string, args ...any)
	// Rand supplies randomness for UUIDs that cannot be derived (a
	// collision); nil is crypto/rand.
	Rand io.Reader
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// engine is one run.
type engine struct {
	ctx  context.Context
	disk Disk
	opts *Options

	actualSize int64 // the disk's size now
	planSize   int64 // the size planned for (larger in a dry run with --size)
	sectorSize int

	table       *gpt.Table // the table read from disk, nil when none
	original    *gpt.Table // the table before any change, for the kernel
	hasGPT      bool
	hasOther    bool
	fromScratch bool
	noTable     bool // an empty file with --size=auto: nothing loaded yet
	relocated   bool // the backup header moves to the end of the disk

	c *planner

	removed []PlannedPartition // partitions removed by a factory reset
	reset   map[*Definition]bool
}

// Run repartitions disk from the definitions in opts, as systemd-repart
// 252 would, and returns what it planned (and, with opts.Write, did).
//
// The order of writes keeps the disk consistent if the run is interrupted:
// new partitions are wiped and filled before the partition table is
// written, and the table itself is written backup first (see the gpt
// package), so until the very end the old table stays readable.
func Run(ctx context.Context, disk Disk, opts Options) (*Plan, error) {
	e := &engine{ctx: ctx, disk: disk, opts: &opts, reset: map[*Definition]bool{}}
	return e.run()
}

func (e *engine) run() (*Plan, error) {
	o := e.opts
	if len(o.Definitions) == 0 && o.Empty == EmptyRefuse {
		o.logf("Didn't find any partition definition files, nothing to do.")
		return &Plan{Device: o.Device}, nil
	}
	if o.FactoryReset && (o.Empty == EmptyForce || o.Empty == EmptyRequire || o.Empty == EmptyCreate) {
		return nil, fmt.Errorf("repart: --factory-reset=yes cannot be combined with --empty=%s", o.Empty)
	}
	if o.Empty == EmptyCreate && o.Size == 0 && !o.SizeAuto {
		return nil, fmt.Errorf("repart: --empty=create needs --size=")
	}
	if err := LinkDefinitions(o.Definitions); err != nil {
		return nil, err
	}
	for _, d := range o.Definitions {
		for _, w := range d.Warnings() {
			o.logf("%s", w)
		}
	}
	size, err := e.disk.Size()
	if err != nil {
		return nil, fmt.Errorf("repart: %s: size: %w", o.Device, err)
	}
	e.actualSize, e.planSize = size, size
	if o.Size > 0 {
		if err := e.growTo(o.Size); err != nil {
			return nil, err
		}
	}
	if err := e.load(); err != nil {
		return nil, err
	}
	if o.FactoryReset {
		if o.Write {
			// The content step may refuse partitions it cannot make
			// (Encrypt=tpm2): let it, before the reset removes any.
			if err := e.prepareContentFor(func(p *partition) bool { return !p.exists || p.factoryReset }); err != nil {
				return nil, err
			}
		}
		if err := e.factoryReset(); err != nil {
			return nil, err
		}
	}
	if err := e.prepareContent(); err != nil {
		return nil, err
	}
	if o.SizeAuto {
		sum, ok := e.c.autoSize()
		if !ok {
			return nil, fmt.Errorf("repart: image would grow too large, refusing")
		}
		if e.planSize > 0 {
			o.logf("Automatically determined minimal disk image size as %s, current image size is %s.", formatBytes(sum), formatBytes(uint64(e.planSize)))
		} else {
			o.logf("Automatically determined minimal disk image size as %s.", formatBytes(sum))
		}
		if err := e.growTo(sum); err != nil {
			return nil, err
		}
		if err := e.load(); err != nil {
			return nil, err
		}
		if o.FactoryReset && !o.Write {
			// The planned removal was not written: plan it again.
			e.removed, e.reset = nil, map[*Definition]bool{}
			if err := e.factoryReset(); err != nil {
				return nil, err
			}
		}
		if err := e.prepareContent(); err != nil {
			return nil, err
		}
	}
	if e.noTable {
		return nil, fmt.Errorf("repart: %s is empty", o.Device)
	}
	for {
		ok, largest := e.c.allocate()
		if ok {
			break
		}
		if !e.c.dropOnePriority(o.logf) {
			msg := fmt.Sprintf("can't fit requested partitions into available free space (%s), refusing", formatBytes(largest))
			if sum, ok := e.c.autoSize(); ok {
				msg += fmt.Sprintf("; the minimal disk size for them is %s", formatBytes(sum))
			}
			return nil, fmt.Errorf("repart: %s: %w: %s", o.Device, ErrNoSpace, msg)
		}
	}
	if !e.c.grow() {
		return nil, fmt.Errorf("repart: combined weight of partitions exceeds unsigned 64-bit range, refusing")
	}
	e.c.place()
	if err := e.acquireUUIDsAndLabels(); err != nil {
		return nil, err
	}
	plan := e.plan()
	if !e.fromScratch && !plan.Changed {
		o.logf("No changes.")
		if o.Split && o.Write {
			return plan, e.split()
		}
		return plan, nil
	}
	if !o.Write {
		if o.Content == nil {
			for _, p := range e.c.parts {
				if p.allocatedToArea != nil && !p.dropped && p.def.needsContent() {
					o.logf("%s: writing needs the content step (Format=, CopyFiles=, Encrypt=, Verity=, ...), which is not available.", p.def.Path)
				}
			}
		}
		o.logf("Refusing to repartition, please re-run with --dry-run=no.")
		return plan, nil
	}
	if err := e.write(plan); err != nil {
		return plan, err
	}
	plan.Written = true
	if o.Split {
		if err := e.split(); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// growTo enlarges an image file to size bytes (never shrinking it), and
// moves the backup table of a GPT on it to the new end, as systemd does
// before anything else. In a dry run nothing is written: the plan is made
// for the larger size.
func (e *engine) growTo(size uint64) error {
	o := e.opts
	if size > 1<<62 {
		return fmt.Errorf("repart: size %d too large", size)
	}
	// Like systemd, refuse --size= on a block device whatever its size.
	if s, ok := e.disk.(SectorSizer); ok {
		if _, err := s.LogicalSectorSize(); err == nil {
			return fmt.Errorf("repart: cannot resize block device %s", o.Device)
		}
	}
	if int64(size) <= e.planSize {
		if e.planSize > 0 {
			o.logf("File '%s' already is of requested size or larger, not growing. (%s >= %s)", o.Device, formatBytes(uint64(e.planSize)), formatBytes(size))
		}
		return nil
	}
	g, ok := e.disk.(Grower)
	if !ok {
		return fmt.Errorf("repart: cannot resize %s: %w", o.Device, ErrUnsupported)
	}
	if !o.Write {
		o.logf("Would grow '%s' from %s to %s.", o.Device, formatBytes(uint64(e.planSize)), formatBytes(size))
		e.planSize = int64(size)
		return nil
	}
	if err := g.Grow(int64(size), o.NoDiscard); err != nil {
		return fmt.Errorf("repart: growing %s to %d bytes: %w", o.Device, size, err)
	}
	old := e.actualSize
	e.actualSize, e.planSize = int64(size), int64(size)
	if old == 0 {
		o.logf("Sized '%s' to %s.", o.Device, formatBytes(size))
		return nil
	}
	o.logf("File '%s' grown from %s to %s.", o.Device, formatBytes(uint64(old)), formatBytes(size))
	// Rewrite the table so that it takes the new space (systemd's
	// resize_pt): the backup moves to the end, the usable area grows.
	ss, err := e.detectSectorSize()
	if err != nil {
		return err
	}
	t, err := gpt.Read(e.disk, old, ss)
	if err != nil {
		return nil // no GPT: nothing to move
	}
	l, err := t.Layout(e.actualSize)
	if err != nil {
		return fmt.Errorf("repart: %s: %w", o.Device, err)
	}
	t.LastUsableLBA = l.MaxLastUsableLBA
	if err := gpt.Write(e.disk, e.actualSize, t); err != nil {
		return fmt.Errorf("repart: writing resized partition table: %w", err)
	}
	o.logf("Resized partition table.")
	return nil
}

// detectSectorSize returns the logical sector size: the device's own for a
// block device; for an image file the one of the GPT on it, else 512.
// (systemd 252 always uses 512 for image files and so cannot read a GPT
// with 4096-byte sectors in one; imago can.)
func (e *engine) detectSectorSize() (int, error) {
	if s, ok := e.disk.(SectorSizer); ok {
		ss, err := s.LogicalSectorSize()
		if err == nil {
			if ss < 512 || ss&(ss-1) != 0 {
				return 0, fmt.Errorf("repart: sector size %d is not a power of two of at least 512, refusing", ss)
			}
			return ss, nil
		}
		if !errors.Is(err, ErrUnsupported) {
			return 0, fmt.Errorf("repart: %s: %w", e.opts.Device, err)
		}
	}
	if e.actualSize > 0 {
		if ss, err := gpt.DetectSectorSize(e.disk, e.actualSize); err == nil {
			return ss, nil
		}
	}
	return 512, nil
}

// load reads the partition table and matches it to the definitions
// (context_load_partition_table).
func (e *engine) load() error {
	o := e.opts
	e.c = &planner{}
	e.table, e.hasGPT, e.hasOther, e.fromScratch, e.noTable, e.relocated = nil, false, false, false, false, false
	for _, d := range o.Definitions {
		e.c.parts = append(e.c.parts, newPartition(d))
	}
	byDef := map[*Definition]*partition{}
	for _, p := range e.c.parts {
		byDef[p.def] = p
	}
	for _, p := range e.c.parts {
		for m := VerityData; m <= VeritySignature; m++ {
			if s := p.def.Siblings[m]; s != nil {
				p.siblings[m] = byDef[s]
			}
		}
	}
	if e.actualSize == 0 && e.planSize == 0 {
		if !o.SizeAuto {
			return fmt.Errorf("repart: %s is empty (give --size=)", o.Device)
		}
		e.c.sectorSize, e.c.grain = 512, 4096
		e.fromScratch, e.noTable = true, true
		return nil
	}
	ss, err := e.detectSectorSize()
	if err != nil {
		return err
	}
	e.sectorSize = ss
	e.c.sectorSize = uint64(ss)
	e.c.grain = max(4096, uint64(ss))

	var readErr error
	if e.actualSize > 0 {
		e.table, readErr = gpt.Read(e.disk, e.actualSize, ss)
	} else {
		readErr = gpt.ErrNoTable
	}
	if readErr != nil && !errors.Is(readErr, gpt.ErrNoTable) && !errors.Is(readErr, gpt.ErrCorrupt) {
		return fmt.Errorf("repart: %s: %w", o.Device, readErr)
	}
	if readErr == nil {
		e.hasGPT = true
		if e.original == nil {
			e.original = cloneTable(e.table)
		}
	} else {
		e.table = nil
		other, err := hasOtherLabel(e.disk, e.actualSize)
		if err != nil {
			return fmt.Errorf("repart: %s: %w", o.Device, err)
		}
		e.hasOther = other || errors.Is(readErr, gpt.ErrCorrupt)
	}

	switch o.Empty {
	case EmptyRefuse:
		if !e.hasGPT {
			if errors.Is(readErr, gpt.ErrCorrupt) {
				return fmt.Errorf("repart: disk %s has no usable GPT disk label (%v): %w", o.Device, readErr, ErrNoGPT)
			}
			return fmt.Errorf("repart: disk %s has no GPT disk label: %w", o.Device, ErrNoGPT)
		}
	case EmptyRequire:
		if e.hasGPT || e.hasOther {
			return fmt.Errorf("repart: disk %s already has a disk label, refusing: %w", o.Device, ErrNoGPT)
		}
		e.fromScratch = true
	case EmptyAllow:
		if !e.hasGPT {
			if e.hasOther {
				return fmt.Errorf("repart: disk %s has non-GPT disk label: %w", o.Device, ErrNoGPT)
			}
			e.fromScratch = true
		}
	case EmptyForce, EmptyCreate:
		e.fromScratch = true
	default:
		return fmt.Errorf("repart: invalid empty mode %d", int(o.Empty))
	}

	if e.fromScratch {
		t, err := gpt.New(e.planSize, ss, gpt.GUID(DiskUUID(o.Seed)))
		if err != nil {
			return fmt.Errorf("repart: creating partition table for %s: %w", o.Device, err)
		}
		e.table = t
	} else {
		if err := e.matchExisting(); err != nil {
			return err
		}
	}
	e.addInitialFreeArea()
	return nil
}

// matchExisting assigns each existing partition, in entry order, to the
// first definition of its type that has none yet; the rest become foreign.
// It also moves the usable area to the end of a disk that grew.
func (e *engine) matchExisting() error {
	o := e.opts
	t := e.table
	lastLBA := uint64(e.planSize)/uint64(e.sectorSize) - 1
	alt := e.alternateLBA()
	if alt != lastLBA {
		// libfdisk moves the backup to the end when it opens a disk
		// for writing, and with it the end of the usable area.
		l, err := t.Layout(e.planSize)
		if err != nil {
			return fmt.Errorf("repart: %s: %w", o.Device, err)
		}
		t.LastUsableLBA = l.MaxLastUsableLBA
		e.relocated = true
	}
	if t.DiskGUID == (gpt.GUID{}) {
		// systemd 252 means to derive a disk GUID here but calls libfdisk
		// in a way that fails ("Failed to set GPT disk label: Invalid
		// argument"); imago refuses the same disks.
		return fmt.Errorf("repart: %s: the partition table has an all-zero disk GUID, refusing (as systemd-repart 252 does)", o.Device)
	}
	ss := uint64(e.sectorSize)
	for _, gp := range t.Partitions {
		start := gp.FirstLBA * ss
		size := gp.Sectors() * ss
		var p *partition
		for _, q := range e.c.parts {
			if q.def != nil && !q.exists && q.typeUUID == dps.UUID(gp.TypeGUID) {
				p = q
				break
			}
		}
		if p == nil {
			p = newPartition(nil)
			p.typeUUID = dps.UUID(gp.TypeGUID)
			e.c.parts = append(e.c.parts, p)
		}
		p.exists = true
		p.currentUUID = dps.UUID(gp.UniqueGUID)
		p.currentSize = size
		p.offset = start
		p.partno = uint64(gp.Number - 1)
		p.currentLabel = gp.Name
		p.currentAttr = gp.Attributes
		pad, err := e.currentPadding(gp)
		if err != nil {
			return err
		}
		p.currentPadding = pad
		if pad > 0 {
			e.c.addFreeArea(pad, p)
		}
	}
	return nil
}

// alternateLBA returns where the primary header says the backup is (the
// backup's own position when the primary was unusable).
func (e *engine) alternateLBA() uint64 {
	actualLast := uint64(e.actualSize)/uint64(e.sectorSize) - 1
	if e.table.UsedBackup {
		return actualLast
	}
	hdr := make([]byte, 40)
	if _, err := e.disk.ReadAt(hdr, int64(e.sectorSize)); err != nil {
		return actualLast
	}
	return binary.LittleEndian.Uint64(hdr[32:])
}

// currentPadding is determine_current_padding: the free space after a
// partition up to the next one (or the end of the usable area), aligned
// inwards to the grain.
func (e *engine) currentPadding(gp gpt.Partition) (uint64, error) {
	ss := uint64(e.sectorSize)
	offset := (gp.LastLBA + 1) * ss
	next := uint64(unset)
	for _, q := range e.table.Partitions {
		start := q.FirstLBA * ss
		if start >= offset && (next == unset || next > start) {
			next = start
		}
	}
	if next == unset {
		next = (e.table.LastUsableLBA + 1) * ss
		if offset > next {
			return 0, fmt.Errorf("repart: %s: partition %d ends beyond the end of the disk", e.opts.Device, gp.Number)
		}
	}
	offset = roundUp(offset, e.c.grain)
	next = roundDown(next, e.c.grain)
	return lessBy(next, offset), nil
}

func (e *engine) addInitialFreeArea() {
	c := e.c
	ss := uint64(e.sectorSize)
	first := e.table.FirstUsableLBA * ss
	last := (e.table.LastUsableLBA + 1) * ss
	left := uint64(unset)
	if !e.fromScratch {
		for _, p := range e.table.Partitions {
			if s := p.FirstLBA * ss; left == unset || s < left {
				left = s
			}
		}
	}
	first = roundUp(first, c.grain)
	last = roundDown(last, c.grain)
	if left == unset {
		if last > first {
			c.addFreeArea(last-first, nil)
		}
	} else {
		left = roundDown(left, c.grain)
		if left > first {
			c.addFreeArea(left-first, nil)
		}
	}
	c.start, c.end = first, last
	c.total = uint64(e.planSize) / ss * ss
}

// hasOtherLabel reports whether the disk starts with another kind of
// partition table that libfdisk would recognise: an MBR signature on a
// sector that is not a FAT or NTFS boot sector.
func hasOtherLabel(r io.ReaderAt, size int64) (bool, error) {
	if size < 512 {
		return false, nil
	}
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	if b[510] != 0x55 || b[511] != 0xaa {
		return false, nil
	}
	s := string(b)
	if strings.HasPrefix(s[3:], "NTFS    ") || strings.HasPrefix(s[54:], "FAT") || strings.HasPrefix(s[82:], "FAT32   ") {
		return false, nil
	}
	return true, nil
}

func cloneTable(t *gpt.Table) *gpt.Table {
	c := *t
	c.Partitions = append([]gpt.Partition(nil), t.Partitions...)
	c.BootCode = append([]byte(nil), t.BootCode...)
	c.Warnings = append([]string(nil), t.Warnings...)
	return &c
}

// factoryReset removes the existing partitions whose definition says
// FactoryReset=yes, writes that table, and loads it again
// (context_factory_reset). In a dry run the removal is only planned.
func (e *engine) factoryReset() error {
	o := e.opts
	if e.fromScratch {
		return nil
	}
	var gone []*partition
	for _, p := range e.c.parts {
		if p.factoryReset && p.exists {
			gone = append(gone, p)
		}
	}
	if len(gone) == 0 {
		o.logf("Factory reset requested, but no partitions to delete found.")
		return nil
	}
	t := cloneTable(e.table)
	t.Partitions = t.Partitions[:0]
	for _, gp := range e.table.Partitions {
		keep := true
		for _, p := range gone {
			if uint64(gp.Number-1) == p.partno {
				keep = false
			}
		}
		if keep {
			t.Partitions = append(t.Partitions, gp)
		}
	}
	for _, p := range gone {
		if o.Write {
			o.logf("Removing partition %d for factory reset.", p.partno)
		} else {
			o.logf("Would remove partition %d for factory reset.", p.partno)
		}
		e.removed = append(e.removed, e.planned(p, ActionFactoryReset))
		e.reset[p.def] = true
	}
	if o.Write {
		if err := gpt.Write(e.disk, e.planSize, t); err != nil {
			return fmt.Errorf("repart: writing partition table for factory reset: %w", err)
		}
		o.logf("Successfully deleted %d partitions.", len(gone))
		if o.EFIVars != nil {
			err := o.EFIVars.Delete(efivar.SystemdVar(efivar.FactoryReset))
			switch {
			case err == nil:
				o.logf("Successfully unset EFI variable FactoryReset.")
			case errors.Is(err, fs.ErrNotExist):
			default:
				return fmt.Errorf("repart: removing EFI variable FactoryReset: %w", err)
			}
		}
		return e.load()
	}
	// A dry run plans on the reduced table without writing it.
	return e.reloadFrom(t)
}

// reloadFrom repeats load() on a table held in memory.
func (e *engine) reloadFrom(t *gpt.Table) error {
	o := e.opts
	e.c = &planner{sectorSize: uint64(e.sectorSize), grain: max(4096, uint64(e.sectorSize))}
	for _, d := range o.Definitions {
		e.c.parts = append(e.c.parts, newPartition(d))
	}
	byDef := map[*Definition]*partition{}
	for _, p := range e.c.parts {
		byDef[p.def] = p
	}
	for _, p := range e.c.parts {
		for m := VerityData; m <= VeritySignature; m++ {
			if s := p.def.Siblings[m]; s != nil {
				p.siblings[m] = byDef[s]
			}
		}
	}
	e.table = t
	if err := e.matchExisting(); err != nil {
		return err
	}
	e.addInitialFreeArea()
	return nil
}

// prepareContent lets the content step size CopyBlocks= sources of new
// partitions, which raise their minimum size.
func (e *engine) prepareContent() error {
	return e.prepareContentFor(func(p *partition) bool { return !p.exists })
}

// prepareContentFor runs the content step's Prepare on the partitions
// with a definition that include accepts.
func (e *engine) prepareContentFor(include func(*partition) bool) error {
	if e.noTable && !e.opts.SizeAuto {
		return nil
	}
	var parts []*ContentPartition
	for _, p := range e.c.parts {
		if p.def == nil || !include(p) {
			continue
		}
		if p.def.CopyBlocks != "" && e.opts.Content == nil {
			return fmt.Errorf("repart: %s: CopyBlocks= needs the content step, which is not available", p.def.Path)
		}
		parts = append(parts, e.contentPartition(p))
	}
	if e.opts.Content == nil || len(parts) == 0 {
		return nil
	}
	if err := e.opts.Content.Prepare(e.ctx, e.contentRun(parts)); err != nil {
		return fmt.Errorf("repart: %w", err)
	}
	for _, cp := range parts {
		p := cp.p
		if cp.CopyBlocksSize > 0 {
			p.copyBlocksSize = cp.CopyBlocksSize
		}
		if cp.HasUUID && !p.newUUIDSet {
			p.newUUID, p.newUUIDSet = cp.UUID, true
		}
	}
	return nil
}

// acquireUUIDsAndLabels is context_acquire_partition_uuids_and_labels.
func (e *engine) acquireUUIDsAndLabels() error {
	c := e.c
	for i, p := range c.parts {
		if p.foreign() {
			p.newUUID = p.currentUUID
			if p.currentLabel != "" {
				p.newLabel, p.newLabelSet = p.currentLabel, true
			}
			continue
		}
		if !p.currentUUID.IsZero() {
			p.newUUID = p.currentUUID
		} else if !p.newUUIDSet && p.verity != VerityData && p.verity != VerityHash {
			u, err := e.partitionUUID(i)
			if err != nil {
				return err
			}
			p.newUUID, p.newUUIDSet = u, true
		}
		if p.currentLabel != "" {
			p.newLabel, p.newLabelSet = p.currentLabel, true
		} else if !p.newLabelSet {
			p.newLabel, p.newLabelSet = c.defaultLabel(i), true
		}
	}
	return nil
}

func (e *engine) partitionUUID(i int) (dps.UUID, error) {
	c := e.c
	p := c.parts[i]
	var k uint64
	for _, q := range c.parts[:i] {
		if q.typeUUID == p.typeUUID {
			k++
		}
	}
	u := PartitionUUID(e.opts.Seed, p.typeUUID, k)
	for _, q := range c.parts {
		if q != p && (q.currentUUID == u || q.newUUID == u) {
			e.opts.logf("Partition UUID calculated from seed for partition %d already used, reverting to randomized UUID.", p.partno)
			r := e.opts.Rand
			if r == nil {
				r = rand.Reader
			}
			g, err := gpt.NewRandomGUID(r)
			if err != nil {
				return dps.UUID{}, fmt.Errorf("repart: random UUID: %w", err)
			}
			return dps.UUID(g), nil
		}
	}
	return u, nil
}

// typeName is systemd's name for a type UUID (the first entry of its table
// with that UUID), "" for types it does not know.
func typeName(u dps.UUID) string {
	if t, ok := dps.LookupUUID(u); ok {
		return t.Name
	}
	return ""
}

// defaultLabel is partition_acquire_label: the type name, made unique
// against the partitions before it with "-2", "-3", ...
func (c *planner) defaultLabel(i int) string {
	prefix := typeName(c.parts[i].typeUUID)
	if prefix == "" {
		prefix = "linux"
	}
	label := prefix
	for k := 1; ; {
		taken := false
		for _, q := range c.parts[:i] {
			if label == q.currentLabel && q.currentLabel != "" || q.newLabelSet && label == q.newLabel {
				taken = true
				break
			}
		}
		if !taken {
			return label
		}
		k++
		label = fmt.Sprintf("%s-%d", prefix, k)
	}
}

// CanFactoryReset reports whether a factory reset would remove any
// partition of disk: whether an existing partition is matched by a
// definition with FactoryReset=yes (--can-factory-reset). Nothing is
// written.
func CanFactoryReset(ctx context.Context, disk Disk, opts Options) (bool, error) {
	opts.Write = false
	e := &engine{ctx: ctx, disk: disk, opts: &opts, reset: map[*Definition]bool{}}
	if err := LinkDefinitions(opts.Definitions); err != nil {
		return false, err
	}
	size, err := disk.Size()
	if err != nil {
		return false, fmt.Errorf("repart: %s: size: %w", opts.Device, err)
	}
	e.actualSize, e.planSize = size, size
	if err := e.load(); err != nil {
		return false, err
	}
	for _, p := range e.c.parts {
		if p.factoryReset && p.exists {
			return true, nil
		}
	}
	return false, nil
}
