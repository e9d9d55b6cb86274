package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imago-os/imago/sysupdate/pattern"
)

// RemovedInstance is one instance a vacuum removed.
type RemovedInstance struct {
	Transfer string
	Version  string
	// Name is the file name (relative to the target directory) or the
	// partition label it had.
	Name string
	// Path is the removed file or directory, or the disk.
	Path string
	// Partition is the slot number for partitions (now labelled _empty).
	Partition int
}

// VacuumResult is what a vacuum did.
type VacuumResult struct {
	Removed []RemovedInstance
	// Temporary lists the leftover temporary files and directories that
	// RemoveTemporary= deleted.
	Temporary []string
	// Errors are transfers that could not be vacuumed (for example
	// InstancesMax= leaving no room); the others were.
	Errors []error
}

// effective returns t as the options see it: InstancesMax overridden.
func effective(t *Transfer, opts UpdateOptions) *Transfer {
	if opts.InstancesMax == 0 {
		return t
	}
	c := *t
	c.InstancesMax = max(opts.InstancesMax, 2) // one must always remain
	return &c
}

// Vacuum enforces InstancesMax= on every enabled transfer's target
// (removing the oldest unprotected instances, partitions by relabelling
// them _empty), removes every unprotected instance of the disabled
// transfers, and first deletes temporary leftovers where RemoveTemporary=
// allows. It works offline, on what the plan discovered.
func (p *Plan) Vacuum(ctx context.Context, opts UpdateOptions) (*VacuumResult, error) {
	res := &VacuumResult{}
	var vacs []Vacuum
	for k, t := range p.Transfers {
		v := vacuumTransfer(effective(t, opts), p.Targets[k], 0, "")
		v.Transfer = t
		if v.Err != nil {
			res.Errors = append(res.Errors, v.Err)
			v.Remove = nil
		}
		vacs = append(vacs, v)
	}
	for k, t := range p.Disabled {
		v := Vacuum{Transfer: t}
		for _, in := range p.DisabledTargets[k].Instances {
			if !slices.Contains(t.ProtectVersions, in.Version()) {
				v.Remove = append(v.Remove, in)
			}
		}
		vacs = append(vacs, v)
	}
	for _, v := range vacs {
		if err := removeTemporary(p.Env, v.Transfer, res, opts); err != nil {
			return res, err
		}
	}
	if err := applyVacuum(ctx, p.Env, vacs, opts, res); err != nil {
		return res, err
	}
	return res, nil
}

// applyVacuum removes what vacs list: files and directories with rm -rf
// (and the directories a pattern with '/' leaves empty, up to the target
// directory), partitions by relabelling them _empty, with one table write
// per disk.
func applyVacuum(ctx context.Context, env Env, vacs []Vacuum, opts UpdateOptions, res *VacuumResult) error {
	type diskPatches struct {
		disk    string
		patches []patch
		removed []RemovedInstance
	}
	var disks []*diskPatches
	for _, v := range vacs {
		t := v.Transfer
		for _, in := range v.Remove {
			if err := ctx.Err(); err != nil {
				return err
			}
			r := RemovedInstance{Transfer: t.ID, Version: in.Version(), Name: in.Name, Path: in.Path}
			if in.Partition != nil {
				r.Partition = in.Partition.Number
				i := slices.IndexFunc(disks, func(d *diskPatches) bool { return d.disk == in.Path })
				if i < 0 {
					disks = append(disks, &diskPatches{disk: in.Path})
					i = len(disks) - 1
				}
				disks[i].patches = append(disks[i].patches, patch{Number: in.Partition.Number, Label: emptyLabel})
				disks[i].removed = append(disks[i].removed, r)
				continue
			}
			if err := opts.step("vacuum " + in.Path); err != nil {
				return err
			}
			if err := removeInstance(env, t, in); err != nil {
				return err
			}
			res.Removed = append(res.Removed, r)
		}
	}
	for _, d := range disks {
		if err := opts.step("vacuum " + d.disk); err != nil {
			return err
		}
		if err := patchTable(d.disk, d.patches, !opts.NoSync); err != nil {
			return fmt.Errorf("sysupdate: vacuum: %w", err)
		}
		res.Removed = append(res.Removed, d.removed...)
	}
	return nil
}

// removeInstance deletes a file or directory instance and then the
// directories its name's '/' components leave empty.
func removeInstance(env Env, t *Transfer, in *Instance) error {
	if err := os.RemoveAll(in.Path); err != nil {
		return fmt.Errorf("sysupdate: %s: removing %s: %w", t.ID, in.Path, err)
	}
	dir, err := t.TargetDir(env)
	if err != nil {
		return fmt.Errorf("sysupdate: %w", err)
	}
	for rel := path.Dir(in.Name); rel != "." && rel != "/"; rel = path.Dir(rel) {
		err := os.Remove(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			break // not empty (or already gone): stop climbing
		}
	}
	return nil
}

// removeTemporary deletes what an interrupted run left in a file or
// directory target: every ".#*" entry of the target directory (as systemd
// does), and the ".#sysupdate*" temporaries in the subdirectories that
// lead to instances when the patterns contain '/'.
func removeTemporary(env Env, t *Transfer, res *VacuumResult, opts UpdateOptions) error {
	if !t.RemoveTemporary || t.Target.Type == Partition {
		return nil
	}
	dir, err := t.TargetDir(env)
	if err != nil {
		return fmt.Errorf("sysupdate: %w", err)
	}
	return cleanTemp(dir, "", t.Target.Patterns, res, opts, 0)
}

func cleanTemp(base, rel string, patterns []*pattern.Pattern, res *VacuumResult, opts UpdateOptions, depth int) error {
	dir := filepath.Join(base, rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("sysupdate: %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		prefix := ".#"
		if depth > 0 {
			prefix = tempPrefix
		}
		if strings.HasPrefix(name, prefix) {
			p := filepath.Join(dir, name)
			if err := opts.step("vacuum " + p); err != nil {
				return err
			}
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("sysupdate: removing %s: %w", p, err)
			}
			res.Temporary = append(res.Temporary, p)
			continue
		}
		sub := path.Join(rel, name)
		if e.IsDir() && depth < maxDepth {
			if r, _, _ := pattern.MatchAny(patterns, sub); r == pattern.Retry {
				if err := cleanTemp(base, sub, patterns, res, opts, depth+1); err != nil {
					return err
				}
				// A directory an interrupted run created for a name with
				// '/' holds nothing now; non-empty ones stay.
				os.Remove(filepath.Join(base, sub))
			}
		}
	}
	return nil
}
