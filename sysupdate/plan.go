package sysupdate

import (
	"context"
	"fmt"
	"slices"

	"github.com/imago-os/imago/format/vercmp"
)

// Flags describe an update set, with systemd's bit values.
type Flags uint

// Update set flags.
const (
	FlagNewest     Flags = 1 << 0
	FlagAvailable  Flags = 1 << 1
	FlagInstalled  Flags = 1 << 2
	FlagObsolete   Flags = 1 << 3
	FlagProtected  Flags = 1 << 4
	FlagIncomplete Flags = 1 << 5
)

// Assessment is the word systemd-sysupdate list prints for the flags:
// current, candidate, installed, protected, available, each possibly with
// "+obsolete" and "+incomplete", or "n/a".
func (f Flags) Assessment() string {
	var s string
	switch {
	case f&FlagInstalled != 0 && f&FlagNewest != 0:
		s = "current"
	case f&FlagInstalled != 0 && f&FlagProtected != 0:
		s = "protected"
	case f&FlagInstalled != 0:
		s = "installed"
	case f&FlagAvailable != 0 && f&FlagNewest != 0 && f&FlagObsolete == 0:
		s = "candidate"
	case f&FlagAvailable != 0:
		s = "available"
	default:
		return "n/a"
	}
	if f&FlagObsolete != 0 {
		s += "+obsolete"
	}
	if f&FlagIncomplete != 0 {
		s += "+incomplete"
	}
	return s
}

// UpdateSet is one version across all transfers.
type UpdateSet struct {
	Version string
	Flags   Flags
	// Installed and Available hold, per transfer (in transfer order), the
	// target and source instance of this version, nil where missing.
	Installed []*Instance
	Available []*Instance
}

// Plan is the outcome of discovery: what list and check-new report.
type Plan struct {
	// Env is where the resources were discovered; Update and Vacuum act
	// there.
	Env Env
	// Transfers are the enabled transfers, in file-name order.
	Transfers []*Transfer
	// Sources and Targets hold each transfer's discovery, in transfer
	// order. Sources is nil when offline.
	Sources []*Discovery
	Targets []*Discovery
	// Sets, newest version first.
	Sets []*UpdateSet
	// NewestInstalled is the newest installed set, or nil.
	NewestInstalled *UpdateSet
	// Candidate is the set an update would install (check-new), or nil.
	Candidate *UpdateSet
	// Disabled are the transfers whose features are off, and
	// DisabledTargets what their targets hold: left out of the update
	// sets, removed by Vacuum.
	Disabled        []*Transfer
	DisabledTargets []*Discovery
}

// PlanOptions control Plan.
type PlanOptions struct {
	Env Env
	// Offline skips the sources (only installed versions are listed).
	Offline bool
}

// BuildPlan discovers every enabled transfer's installed and (unless
// offline) available instances and groups them into update sets. Disabled
// transfers only have their targets discovered.
func BuildPlan(ctx context.Context, transfers []*Transfer, opts PlanOptions) (*Plan, error) {
	p := &Plan{Env: opts.Env}
	for _, t := range transfers {
		if t.Enabled {
			p.Transfers = append(p.Transfers, t)
			continue
		}
		d, err := t.TargetInstances(ctx, opts.Env)
		if err != nil {
			return nil, err
		}
		p.Disabled = append(p.Disabled, t)
		p.DisabledTargets = append(p.DisabledTargets, d)
	}
	transfers = p.Transfers
	for _, t := range transfers {
		d, err := t.TargetInstances(ctx, opts.Env)
		if err != nil {
			return nil, err
		}
		p.Targets = append(p.Targets, d)
	}
	if !opts.Offline {
		for _, t := range transfers {
			d, err := t.SourceInstances(ctx, opts.Env)
			if err != nil {
				return nil, err
			}
			p.Sources = append(p.Sources, d)
		}
	}
	p.discover(FlagInstalled)
	if !opts.Offline {
		p.discover(FlagAvailable)
	}
	slices.SortStableFunc(p.Sets, func(a, b *UpdateSet) int { return vercmp.Compare(b.Version, a.Version) })
	return p, nil
}

// discover runs one pass of update-set discovery over the targets
// (FlagInstalled) or the sources (FlagAvailable). Walking versions from the
// newest down, a version missing on any source is never offered; one
// missing on a target is kept as installed but incomplete, so that it is
// neither wiped nor ignored and can be repaired.
func (p *Plan) discover(flag Flags) {
	sides := p.Targets
	if flag == FlagAvailable {
		sides = p.Sources
	}
	var boundary string
	haveBoundary, newestFound := false, false
	for {
		cursor, found := "", false
		for _, d := range sides {
			for _, in := range d.Instances { // newest first
				v := in.Fields.Version
				if haveBoundary && vercmp.Compare(v, boundary) >= 0 {
					continue
				}
				if !found || vercmp.Compare(v, cursor) > 0 {
					cursor, found = v, true
				}
				break
			}
			if flag == FlagAvailable && !found {
				break // every older version misses this transfer
			}
		}
		if !found {
			break
		}
		boundary, haveBoundary = cursor, true

		var extra Flags
		skip := false
		instances := make([]*Instance, len(p.Transfers))
		for k, t := range p.Transfers {
			m := sides[k].Find(cursor)
			if m == nil {
				if flag == FlagAvailable {
					skip = true
					break
				}
				extra |= FlagIncomplete
			}
			instances[k] = m
			if t.MinVersion != "" && vercmp.Compare(t.MinVersion, cursor) > 0 {
				extra |= FlagObsolete
			}
			if slices.Contains(t.ProtectVersions, cursor) {
				extra |= FlagProtected
			}
		}
		if skip {
			continue
		}
		if us := p.set(cursor); us != nil {
			us.Flags |= flag | extra
			us.attach(flag, instances)
			if us.Flags&(FlagNewest|FlagInstalled|FlagIncomplete|FlagAvailable) == FlagNewest|FlagInstalled|FlagIncomplete|FlagAvailable &&
				p.Candidate == nil && us.Flags&FlagObsolete == 0 {
				p.Candidate = us // repair the newest, incompletely installed version
			}
			newestFound = true
			continue
		}
		us := &UpdateSet{Version: cursor, Flags: flag | extra}
		if !newestFound {
			us.Flags |= FlagNewest
		}
		us.attach(flag, instances)
		p.Sets = append(p.Sets, us)
		newestFound = true
		if us.Flags&(FlagNewest|FlagInstalled) == FlagNewest|FlagInstalled {
			p.NewestInstalled = us
		}
		if us.Flags&(FlagNewest|FlagInstalled|FlagAvailable|FlagObsolete) == FlagNewest|FlagAvailable {
			p.Candidate = us
		}
	}
	if ni := p.NewestInstalled; ni != nil && ni.Flags&FlagIncomplete == 0 &&
		p.Candidate != nil && vercmp.Compare(ni.Version, p.Candidate.Version) >= 0 {
		p.Candidate = nil
	}
}

func (us *UpdateSet) attach(flag Flags, instances []*Instance) {
	if flag == FlagInstalled {
		us.Installed = instances
	} else {
		us.Available = instances
	}
}

func (p *Plan) set(version string) *UpdateSet {
	for _, us := range p.Sets {
		if vercmp.Compare(us.Version, version) == 0 {
			return us
		}
	}
	return nil
}

// Set returns the update set of exactly version v (as list VERSION), or
// nil.
func (p *Plan) Set(v string) *UpdateSet {
	for _, us := range p.Sets {
		if us.Version == v {
			return us
		}
	}
	return nil
}

// CheckNew returns the version an update would install, as
// systemd-sysupdate check-new prints it, and whether there is one.
func (p *Plan) CheckNew() (string, bool) {
	if p.Candidate == nil {
		return "", false
	}
	return p.Candidate.Version, true
}

// Vacuum is what vacuuming one transfer's target would remove.
type Vacuum struct {
	Transfer *Transfer
	// Limit is the number of instances that may remain.
	Limit uint64
	// Remove lists the instances that would be removed, oldest first.
	Remove []*Instance
	// Err is set when vacuuming is impossible (no room can be made).
	Err error
}

// VacuumPlan computes, for each transfer, which target instances a vacuum
// making room for space new instances would remove: the oldest ones not
// protected by ProtectVersion= or extraProtected, until InstancesMax (and
// for partitions the number of slots) allows space more. space 0 is the
// vacuum verb; an update uses 1 and protects the version it installs.
func (p *Plan) VacuumPlan(space uint64, extraProtected string) []Vacuum {
	var out []Vacuum
	for k, t := range p.Transfers {
		out = append(out, vacuumTransfer(t, p.Targets[k], space, extraProtected))
	}
	return out
}

func vacuumTransfer(t *Transfer, d *Discovery, space uint64, extraProtected string) Vacuum {
	v := Vacuum{Transfer: t}
	limit := t.InstancesMax
	if limit != Unlimited {
		switch {
		case space >= limit:
			v.Err = errorf("%s: cannot make room for %d new instance(s) with InstancesMax=%d: one instance must always remain", t.ID, space, limit)
			return v
		default:
			limit -= space
		}
	}
	n := uint64(len(d.Instances))
	if t.Target.Type == Partition {
		empty := uint64(len(d.EmptySlots))
		if empty+n < 2 {
			v.Err = errorf("%s: not enough partition slots of type %s: %d, need at least 2", t.ID, t.PartitionType.Name, empty+n)
			return v
		}
		if space >= empty+n {
			v.Err = errorf("%s: %d new instance(s) do not fit into %d partition slots", t.ID, space, empty+n)
			return v
		}
		rm := uint64(0)
		if space > empty {
			rm = space - empty
		}
		remain := uint64(0)
		if n > rm {
			remain = n - rm
		}
		limit = min(limit, remain)
	}
	v.Limit = limit
	left := n
	for i := len(d.Instances) - 1; i >= 0 && left > limit; i-- {
		in := d.Instances[i]
		ver := in.Fields.Version
		if slices.Contains(t.ProtectVersions, ver) || (extraProtected != "" && ver == extraProtected) {
			continue
		}
		v.Remove = append(v.Remove, in)
		left--
	}
	return v
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("sysupdate: "+format, args...)
}
