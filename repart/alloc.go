package repart

import (
	"math"
	"sort"

	"github.com/imago-os/imago/format/dps"
)

// This file is systemd-repart 252's planner: the partition list, the free
// areas, the first-fit allocation with dropping by priority, the
// weight-based growing and the placement. It works in bytes, on the same
// integers and in the same order as systemd, so that the result is
// identical to the byte.

const unset = math.MaxUint64

// partition is one entry of repart's list: a definition, possibly matched
// to an existing partition, or a foreign existing partition.
type partition struct {
	def *Definition // nil for a foreign partition

	typeUUID     dps.UUID
	currentUUID  dps.UUID
	newUUID      dps.UUID
	newUUIDSet   bool
	currentLabel string // "" when the entry has no label
	newLabel     string
	newLabelSet  bool

	dropped      bool
	factoryReset bool
	priority     int32

	weight, paddingWeight  uint32
	currentSize, newSize   uint64
	sizeMin, sizeMax       uint64
	currentPadding         uint64
	newPadding             uint64
	paddingMin, paddingMax uint64

	partno uint64 // 0-based entry index, unset for new partitions
	offset uint64

	exists      bool
	currentAttr uint64 // attributes of an existing partition

	paddingArea     *freeArea
	allocatedToArea *freeArea

	copyBlocksSize uint64
	rootHash       []byte // of a new Verity=hash partition, once written
	format         string
	encrypt        EncryptMode
	verity         VerityMode
	siblings       [4]*partition
}

func (p *partition) foreign() bool { return p.def == nil }

type freeArea struct {
	after     *partition
	size      uint64
	allocated uint64
}

// planner is repart's Context.
type planner struct {
	parts []*partition
	areas []*freeArea

	start, end, total uint64
	sectorSize        uint64
	grain             uint64
}

func roundDown(v, p uint64) uint64 { return v / p * p }

// roundUp saturates at math.MaxUint64 as systemd's round_up_size does.
func roundUp(v, p uint64) uint64 {
	q := v / p
	if v%p != 0 {
		q++
	}
	if q > math.MaxUint64/p {
		return math.MaxUint64
	}
	return q * p
}

func lessBy(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

func newPartition(d *Definition) *partition {
	p := &partition{
		def:            d,
		weight:         DefaultWeight,
		currentSize:    unset,
		newSize:        unset,
		sizeMin:        unset,
		sizeMax:        unset,
		currentPadding: unset,
		newPadding:     unset,
		paddingMin:     unset,
		paddingMax:     unset,
		partno:         unset,
		offset:         unset,
		copyBlocksSize: unset,
	}
	if d != nil {
		p.typeUUID = d.Type.UUID
		p.newUUID, p.newUUIDSet = d.UUID, d.HasUUID
		p.newLabel, p.newLabelSet = d.Label, d.HasLabel
		p.factoryReset = d.FactoryReset
		p.priority = d.Priority
		p.weight, p.paddingWeight = d.Weight, d.PaddingWeight
		p.sizeMin, p.sizeMax = d.SizeMin, d.SizeMax
		p.paddingMin, p.paddingMax = d.PaddingMin, d.PaddingMax
		p.format = d.Format
		p.encrypt = d.Encrypt
		p.verity = d.Verity
	}
	return p
}

// foreignize makes an existing partition foreign: it keeps its place and
// size and is no longer managed (partition_foreignize).
func (p *partition) foreignize() {
	p.def = nil
	p.newLabel, p.newLabelSet = "", false
	p.newUUID, p.newUUIDSet = dps.UUID{}, false
	p.priority = 0
	p.weight, p.paddingWeight = DefaultWeight, 0
	p.sizeMin, p.sizeMax = unset, unset
	p.paddingMin, p.paddingMax = unset, unset
	p.format = ""
	p.verity = VerityOff
	p.copyBlocksSize = unset
}

func (c *planner) addFreeArea(size uint64, after *partition) {
	a := &freeArea{size: size, after: after}
	c.areas = append(c.areas, a)
	if after != nil {
		after.paddingArea = a
	}
}

func (c *planner) dropOrForeignize(p *partition, logf func(string, ...any)) {
	if p == nil || p.dropped || p.foreign() {
		return
	}
	if p.exists {
		label := p.currentLabel
		if label == "" && p.newLabelSet {
			label = p.newLabel
		}
		logf("Can't grow existing partition %s of priority %d, ignoring.", orNA(label), p.priority)
		p.foreignize()
		return
	}
	logf("Can't fit partition %s of priority %d, dropping.", p.def.Path, p.priority)
	p.dropped = true
	p.allocatedToArea = nil
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// dropOneMinPriority drops (or makes foreign) every partition of the
// highest priority, with its verity siblings; it reports false when the
// highest priority is 0 or less, which may not be dropped.
func (c *planner) dropOnePriority(logf func(string, ...any)) bool {
	var prio int32
	for _, p := range c.parts {
		if !p.dropped && p.priority > prio {
			prio = p.priority
		}
	}
	if prio <= 0 {
		return false
	}
	for _, p := range c.parts {
		if p.priority < prio {
			continue
		}
		sib := p.siblings
		c.dropOrForeignize(p, logf)
		for _, s := range sib[VerityData:] {
			c.dropOrForeignize(s, logf)
		}
	}
	return true
}

func (c *planner) minSize(p *partition) uint64 {
	if p.foreign() {
		return p.currentSize
	}
	if p.verity == VeritySignature {
		return VeritySigSize
	}
	sz := uint64(HardMinSize)
	if p.currentSize != unset {
		sz = p.currentSize
	}
	if !p.exists {
		var d uint64
		if p.encrypt != EncryptOff {
			d += roundUp(LUKS2MetadataSize, c.grain)
		}
		if p.copyBlocksSize != unset {
			d += roundUp(p.copyBlocksSize, c.grain)
		} else if p.format != "" || p.encrypt != EncryptOff {
			f := uint64(unset)
			if p.format != "" {
				f = roundUp(minimalFileSystemSize(p.format), c.grain)
			}
			if f == unset {
				d += c.grain
			} else {
				d += f
			}
		}
		if d > sz {
			sz = d
		}
	}
	m := uint64(DefaultMinSize)
	if p.sizeMin != unset {
		m = p.sizeMin
	}
	return max(roundUp(m, c.grain), sz)
}

// minimalFileSystemSize is systemd 252's minimal_size_by_fs_name(); unset
// for file systems it has no figure for.
func minimalFileSystemSize(fstype string) uint64 {
	switch fstype {
	case "ext4":
		return 1 << 20
	case "xfs":
		return 14 << 20
	case "btrfs":
		return 256 << 20
	}
	return unset
}

func (c *planner) maxSize(p *partition) uint64 {
	if p.foreign() {
		return p.currentSize
	}
	if p.verity == VeritySignature {
		return VeritySigSize
	}
	if p.sizeMax == unset {
		return unset
	}
	sm := roundDown(p.sizeMax, c.grain)
	if p.currentSize != unset {
		sm = max(p.currentSize, sm)
	}
	return max(c.minSize(p), sm)
}

func minPadding(p *partition) uint64 {
	if p.paddingMin != unset {
		return p.paddingMin
	}
	return 0
}

func (c *planner) minSizeWithPadding(p *partition) uint64 {
	sz := c.minSize(p) + minPadding(p)
	if p.exists {
		return roundUp(p.offset+sz, c.grain) - p.offset
	}
	return roundUp(sz, c.grain)
}

func (a *freeArea) available() uint64 { return a.size - a.allocated }

func (c *planner) areaCurrentEnd(a *freeArea) uint64 {
	if a.after == nil {
		return a.available()
	}
	return roundUp(a.after.offset+a.after.currentSize, c.grain) + a.available()
}

func (c *planner) areaMinEnd(a *freeArea) uint64 {
	if a.after == nil {
		return 0
	}
	return roundUp(a.after.offset+c.minSizeWithPadding(a.after), c.grain)
}

func (c *planner) areaAvailableForNew(a *freeArea) uint64 {
	return lessBy(c.areaCurrentEnd(a), c.areaMinEnd(a))
}

// allocate is context_allocate_partitions: a first fit of every new
// partition into the free areas, smallest area first.
func (c *planner) allocate() (ok bool, largest uint64) {
	for _, a := range c.areas {
		a.allocated = 0
	}
	// glibc's qsort_r() is a merge sort for arrays this small, so equal
	// areas keep their order; SliceStable does the same.
	sort.SliceStable(c.areas, func(i, j int) bool {
		return c.areaAvailableForNew(c.areas[i]) < c.areaAvailableForNew(c.areas[j])
	})
	if len(c.areas) > 0 {
		largest = c.areaAvailableForNew(c.areas[len(c.areas)-1])
	}
	for _, a := range c.areas {
		if c.areaCurrentEnd(a) < c.areaMinEnd(a) {
			return false, largest
		}
	}
	for _, p := range c.parts {
		if p.dropped || p.exists {
			continue
		}
		required := c.minSizeWithPadding(p)
		var fit *freeArea
		for _, a := range c.areas {
			if c.areaAvailableForNew(a) >= required {
				fit = a
				break
			}
		}
		if fit == nil {
			return false, largest
		}
		p.allocatedToArea = fit
		fit.allocated += required
	}
	return true, largest
}

func (c *planner) sumWeights(a *freeArea) (uint64, bool) {
	var sum uint64
	for _, p := range c.parts {
		if p.paddingArea != a && p.allocatedToArea != a {
			continue
		}
		if uint64(p.weight) > math.MaxUint64-sum {
			return 0, false
		}
		sum += uint64(p.weight)
		if uint64(p.paddingWeight) > math.MaxUint64-sum {
			return 0, false
		}
		sum += uint64(p.paddingWeight)
	}
	return sum, true
}

func scaleByWeight(value, weight, weightSum uint64) uint64 {
	for {
		if weight == 0 {
			return 0
		}
		if weight == weightSum {
			return value
		}
		if value <= math.MaxUint64/weight {
			return value * weight / weightSum
		}
		weightSum = (weightSum + 1) / 2
		weight /= 2
	}
}

const (
	phaseForeign = iota
	phaseOvercharge
	phaseUndercharge
	phaseDistribute
	phaseCount
)

func (c *planner) chargeSize(total, amount uint64) uint64 {
	return lessBy(total, roundUp(amount, c.grain))
}

func chargeWeight(total, amount uint64) uint64 { return lessBy(total, amount) }

// clamp is systemd's CLAMP(): the upper bound wins if the bounds cross.
func clamp(v, lo, hi uint64) uint64 {
	switch {
	case v > hi:
		return hi
	case v < lo:
		return lo
	}
	return v
}

// growPhase is one pass of context_grow_partitions_phase; it reports
// whether the phase is complete.
func (c *planner) growPhase(a *freeArea, phase int, span, weightSum *uint64) bool {
	tryAgain := false
	for _, p := range c.parts {
		if p.allocatedToArea != a && p.paddingArea != a {
			continue
		}
		if p.newSize == unset {
			share := scaleByWeight(*span, uint64(p.weight), *weightSum)
			rsz, xsz := c.minSize(p), c.maxSize(p)
			charge := false
			switch {
			case phase == phaseForeign && p.foreign():
				p.newSize = p.currentSize
				charge = true
			case phase == phaseOvercharge && rsz > share:
				p.newSize = rsz
				charge, tryAgain = true, true
			case phase == phaseUndercharge && xsz < share:
				p.newSize = xsz
				charge, tryAgain = true, true
			case phase == phaseDistribute:
				p.newSize = clamp(roundDown(share, c.grain), rsz, xsz)
				charge = true
			}
			if charge {
				*span = c.chargeSize(*span, p.newSize)
				*weightSum = chargeWeight(*weightSum, uint64(p.weight))
			}
		}
		if p.newPadding == unset {
			share := scaleByWeight(*span, uint64(p.paddingWeight), *weightSum)
			rsz, xsz := minPadding(p), p.paddingMax
			charge := false
			switch {
			case phase == phaseOvercharge && rsz > share:
				p.newPadding = rsz
				charge, tryAgain = true, true
			case phase == phaseUndercharge && xsz < share:
				p.newPadding = xsz
				charge, tryAgain = true, true
			case phase == phaseDistribute:
				p.newPadding = clamp(roundDown(share, c.grain), rsz, xsz)
				charge = true
			}
			if charge {
				*span = c.chargeSize(*span, p.newPadding)
				*weightSum = chargeWeight(*weightSum, uint64(p.paddingWeight))
			}
		}
	}
	return !tryAgain
}

func (c *planner) growOne(a *freeArea, p *partition, span *uint64) {
	if *span == 0 || p.allocatedToArea != a || p.foreign() {
		return
	}
	m := roundDown(p.newSize+*span, c.grain)
	m = max(m, p.newSize)
	m = min(m, c.maxSize(p))
	*span = c.chargeSize(*span, m-p.newSize)
	p.newSize = m
}

func (c *planner) growArea(a *freeArea) bool {
	weightSum, ok := c.sumWeights(a)
	if !ok {
		return false
	}
	span := a.size
	if a.after != nil {
		span += roundUp(a.after.offset+a.after.currentSize, c.grain) - a.after.offset
	}
	for phase := 0; phase < phaseCount; {
		if c.growPhase(a, phase, &span, &weightSum) {
			phase++
		}
	}
	if span > 0 && a.after != nil {
		c.growOne(a, a.after, &span)
	}
	if span > 0 {
		for _, p := range c.parts {
			c.growOne(a, p, &span)
			if span == 0 {
				break
			}
		}
	}
	if span > 0 && a.after != nil {
		a.after.newPadding += span
	}
	return true
}

// grow is context_grow_partitions.
func (c *planner) grow() bool {
	for _, a := range c.areas {
		if !c.growArea(a) {
			return false
		}
	}
	for _, p := range c.parts {
		if p.dropped {
			continue
		}
		if !p.exists || p.paddingArea != nil {
			continue
		}
		p.newSize = p.currentSize
		p.newPadding = p.currentPadding
	}
	return true
}

// place is context_place_partitions: new partitions go into their area
// back to back after the partition before it, numbered on from the
// highest existing number.
func (c *planner) place() {
	var partno uint64
	for _, p := range c.parts {
		if p.exists && p.partno >= partno {
			partno = p.partno + 1
		}
	}
	for _, a := range c.areas {
		var start uint64
		if a.after != nil {
			start = a.after.offset + a.after.newSize + a.after.newPadding
		} else {
			start = c.start
		}
		start = roundUp(start, c.grain)
		for _, p := range c.parts {
			if p.allocatedToArea != a {
				continue
			}
			p.offset = start
			p.partno = partno
			partno++
			start += p.newSize + p.newPadding
		}
	}
}

// autoSize is determine_auto_size: the smallest disk that holds the table
// and every partition at its minimum size and padding.
func (c *planner) autoSize() (uint64, bool) {
	sum := roundUp(GPTMetadataSize, 4096)
	for _, p := range c.parts {
		if p.dropped {
			continue
		}
		m := c.minSizeWithPadding(p)
		if m > math.MaxUint64-sum {
			return 0, false
		}
		sum += m
	}
	return sum, true
}

// changed is context_changed: whether the table needs writing.
func (c *planner) changed() bool {
	for _, p := range c.parts {
		if p.dropped {
			continue
		}
		if p.allocatedToArea != nil || p.newSize != p.currentSize {
			return true
		}
	}
	return false
}
