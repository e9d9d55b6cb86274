package config

import (
	"fmt"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/unitfile"
)

// emptyLabel marks a free update slot (systemd-sysupdate's convention).
const emptyLabel = "_empty"

// slotGrain is the alignment systemd-repart gives partition sizes.
const slotGrain = 4096

// readSlots reads the B slot sizes from repart.d. systemd-repart matches
// existing partitions to definitions by type, in file-name order, so the
// first definition of each usr type must describe the shipped slot A and
// the "_empty" ones after it the B slot. Only the keys needed for that are
// read here; the files as a whole are for systemd-repart (and imago's
// repart engine) to check.
func (p *parser) readSlots() (Slots, error) {
	files, err := unitfile.LoadAll(p.fsys, []string{"repart.d"}, ".conf")
	if err != nil {
		return Slots{}, rebaseError(p.dir, err)
	}
	type found struct {
		size   int64
		source string // "file:line" of the Label= that made it a slot
	}
	slots := map[dps.Designator][]found{}
	seen := map[dps.Designator]bool{}
	for _, f := range files {
		rebase(p.dir, f)
		if len(f.Warnings) > 0 {
			return Slots{}, fmt.Errorf("config: %w", f.Warnings[0])
		}
		te, ok := f.Get("Partition", "Type")
		if !ok || te.Value == "" {
			continue // systemd-repart refuses it; not ours to explain
		}
		t, err := dps.ParseType(te.Value, p.d.Distribution.Architecture)
		if err != nil {
			return Slots{}, fmt.Errorf("config: %w", te.Errorf("%v", err))
		}
		d := t.Designator
		if t.Arch != p.d.Distribution.Architecture ||
			(d != dps.DesignatorUsr && d != dps.DesignatorUsrVerity && d != dps.DesignatorUsrVeritySig) {
			continue
		}
		first := !seen[d]
		seen[d] = true
		le, ok := f.Get("Partition", "Label")
		if !ok || le.Value != emptyLabel {
			continue
		}
		if first {
			return Slots{}, fmt.Errorf("config: %w", le.Errorf(
				"the first %s definition is matched to the partition the image is shipped with (slot A); put the %s slot after it", d, emptyLabel))
		}
		size, err := fixedSize(f, le)
		if err != nil {
			return Slots{}, err
		}
		slots[d] = append(slots[d], found{size: size, source: le.Position()})
	}

	var out Slots
	for _, c := range []struct {
		d   dps.Designator
		dst *int64
	}{{dps.DesignatorUsr, &out.Usr}, {dps.DesignatorUsrVerity, &out.UsrVerity}, {dps.DesignatorUsrVeritySig, &out.UsrVeritySig}} {
		for i, s := range slots[c.d] {
			if i > 0 && s.size != *c.dst {
				return Slots{}, fmt.Errorf("config: %s: every %s slot must have the same size (%d bytes here, %d before)", s.source, c.d, s.size, *c.dst)
			}
			*c.dst = s.size
		}
	}
	if (out.Usr == 0) != (out.UsrVerity == 0) || (out.Usr == 0) != (out.UsrVeritySig == 0) {
		return Slots{}, fmt.Errorf("config: %s: a B slot needs three %s partitions, of types usr, usr-verity and usr-verity-sig (found sizes %d, %d, %d)",
			p.d.RepartDir, emptyLabel, out.Usr, out.UsrVerity, out.UsrVeritySig)
	}
	return out, nil
}

// fixedSize returns the size of a slot definition, which must be fixed:
// SizeMinBytes= equal to SizeMaxBytes=, a multiple of 4096 so that
// systemd-repart's rounding cannot change it.
func fixedSize(f *unitfile.File, label unitfile.Entry) (int64, error) {
	var sizes [2]uint64
	for i, k := range []string{"SizeMinBytes", "SizeMaxBytes"} {
		e, ok := f.Get("Partition", k)
		if !ok || e.Value == "" {
			return 0, fmt.Errorf("config: %w", label.Errorf(
				"a %s slot needs a fixed size: set SizeMinBytes= and SizeMaxBytes= to the same value", emptyLabel))
		}
		n, err := unitfile.ParseSize(e.Value, 1024)
		if err != nil {
			return 0, fmt.Errorf("config: %w", e.Errorf("%q: %v", e.Value, err))
		}
		if n == 0 || n%slotGrain != 0 || n > 1<<62 {
			return 0, fmt.Errorf("config: %w", e.Errorf("%q: a slot size must be a non-zero multiple of %d", e.Value, slotGrain))
		}
		sizes[i] = n
	}
	if sizes[0] != sizes[1] {
		return 0, fmt.Errorf("config: %w", label.Errorf(
			"a %s slot needs a fixed size: SizeMinBytes= (%d) differs from SizeMaxBytes= (%d)", emptyLabel, sizes[0], sizes[1]))
	}
	return int64(sizes[0]), nil
}
