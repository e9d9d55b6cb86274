package sysupdate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/vercmp"
	"github.com/imago-os/imago/internal/fsutil"
	"github.com/imago-os/imago/sysupdate/pattern"
)

// tempPrefix starts the name of every temporary file or directory an
// update writes next to its final name (systemd's tempfn_random with the
// "sysupdate" extra): ".#sysupdate<final name><16 hex digits>".
const tempPrefix = ".#sysupdate"

// UpdateOptions control Update, PlanUpdate and Vacuum.
type UpdateOptions struct {
	// InstancesMax overrides every transfer's InstancesMax= (the
	// --instances-max= option); 0 keeps them, 1 counts as 2.
	InstancesMax uint64
	// NoSync skips the fsync calls (--sync=no): faster, but a power loss
	// may then lose a completed update.
	NoSync bool

	// hook, when set (by tests), is called before every step that changes
	// a target; an error stops the update there, as a crash would.
	hook func(step string) error
}

func (o UpdateOptions) step(what string) error {
	if o.hook == nil {
		return nil
	}
	return o.hook(what)
}

// UpdatePlan is what Update would do.
type UpdatePlan struct {
	// Version is the version to install ("" when there is none).
	Version string
	// UpToDate is set when there is nothing to do; Reason says why.
	UpToDate bool
	Reason   string
	// Repair is set when the version is installed but incomplete: only
	// the missing transfers are acquired.
	Repair bool
	// Warnings are noted but do not stop the update (an older version
	// than the newest installed one, for example).
	Warnings []string
	// Vacuum is what is removed first, per transfer that needs room.
	Vacuum []Vacuum
	// Transfers are per transfer, in order.
	Transfers []*TransferPlan
}

// TransferPlan is what an update does for one transfer.
type TransferPlan struct {
	Transfer *Transfer
	// Installed is set when the target already has the version: the
	// transfer is skipped.
	Installed bool
	// Source is the instance to install.
	Source *Instance
	// URL is the download of url-* sources, DownloadSize its size (-1
	// when the server does not say).
	URL          string
	DownloadSize int64
	// SignatureChecked tells whether the source manifest's OpenPGP
	// signature was verified (url-* sources with Verify= in effect).
	SignatureChecked bool
	// Size is the payload size after decompression, -1 when unknown.
	Size int64
	// TargetName is the new instance's file name (relative to the target
	// directory) or partition label.
	TargetName string
	// TargetPath is the final host path of a file or directory, or the
	// disk of a partition.
	TargetPath string
	// Slot is the partition the payload goes to.
	Slot *PartitionInfo
	// Free is the space available for the payload: the slot size, or the
	// bytes free in the target directory's file system (-1 when unknown).
	Free int64

	local  string // payload on the local file system (source or cached download)
	fields pattern.Fields
	uuid   *gpt.GUID
	flags  *uint64
	temp   string // where acquire wrote a file or directory
	// partition is the slot of an already installed partition instance.
	partition *PartitionInfo
}

// UpdateResult is what Update did.
type UpdateResult struct {
	Plan   *UpdatePlan
	Vacuum VacuumResult
	// Installed lists, per transfer acquired, the new instance's host path
	// (file, directory or disk) and name.
	Installed []InstalledInstance
}

// InstalledInstance is one instance an update created.
type InstalledInstance struct {
	Transfer  string
	Name      string
	Path      string
	Partition int // slot number for partitions
}

// PlanUpdate computes, without changing anything, what Update would do
// for version ("" means the candidate): per transfer the source, the
// download and its size, the new instance's name, its slot or path, the
// space available, and what the vacuum removes first. Invalid target names
// and payloads that fit no slot are errors here already.
func (p *Plan) PlanUpdate(ctx context.Context, version string, opts UpdateOptions) (*UpdatePlan, error) {
	return p.prepare(ctx, version, opts, false)
}

// Update installs version ("" means the candidate) the way
// systemd-sysupdate update does: downloads are fetched and verified, every
// target name and slot is computed, then the vacuum makes room (protecting
// the version), every transfer's payload is written to a temporary file or
// directory or into a slot still labelled _empty, and only after all of
// them succeeded are the files renamed and the partitions labelled, in
// transfer order, followed by each CurrentSymlink=. An interruption at any
// point leaves the versions installed before intact; running Update again
// completes the interrupted one.
func (p *Plan) Update(ctx context.Context, version string, opts UpdateOptions) (*UpdateResult, error) {
	up, err := p.prepare(ctx, version, opts, true)
	if err != nil {
		return nil, err
	}
	res := &UpdateResult{Plan: up}
	if up.UpToDate {
		return res, nil
	}
	env := p.Env
	var vacs []Vacuum
	for _, tp := range up.Transfers {
		if err := removeTemporary(env, tp.Transfer, &res.Vacuum, opts); err != nil {
			return res, err
		}
	}
	vacs = up.Vacuum
	if err := applyVacuum(ctx, env, vacs, opts, &res.Vacuum); err != nil {
		return res, err
	}
	defer func() {
		// A failed update leaves no temporary behind (a crash does; the
		// next run's RemoveTemporary= takes care of those).
		for _, tp := range up.Transfers {
			if tp.temp != "" {
				os.RemoveAll(tp.temp)
			}
		}
	}()
	for _, tp := range up.Transfers {
		if tp.Installed {
			continue
		}
		if err := p.acquire(ctx, tp, opts); err != nil {
			return res, err
		}
	}
	for _, tp := range up.Transfers {
		if !tp.Installed {
			if err := p.install(tp, opts); err != nil {
				return res, err
			}
			in := InstalledInstance{Transfer: tp.Transfer.ID, Name: tp.TargetName, Path: tp.TargetPath}
			if tp.Slot != nil {
				in.Partition = tp.Slot.Number
			}
			res.Installed = append(res.Installed, in)
		}
		// Also for a transfer a crashed run already installed: its
		// symlink may not have been switched yet.
		if err := p.updateSymlink(tp, opts); err != nil {
			return res, err
		}
	}
	// The downloads are installed: the cache keeps only what an
	// interrupted update still needs.
	for _, tp := range up.Transfers {
		if tp.URL != "" && tp.local != "" {
			os.Remove(tp.local)
		}
	}
	return res, nil
}

// chooseSet picks the update set for version and decides whether there is
// anything to do.
func (p *Plan) chooseSet(version string, up *UpdatePlan) (*UpdateSet, error) {
	if p.Sources == nil {
		return nil, errorf("cannot update from an offline plan")
	}
	var us *UpdateSet
	if version == "" {
		if p.Candidate == nil {
			up.UpToDate, up.Reason = true, "no update needed"
			return nil, nil
		}
		us = p.Candidate
	} else {
		if !vercmp.IsValid(version) {
			return nil, errorf("invalid version %q", version)
		}
		if us = p.Set(version); us == nil {
			return nil, errorf("version %s is not available", version)
		}
	}
	up.Version = us.Version
	if us.Flags&FlagInstalled != 0 && us.Flags&FlagIncomplete == 0 {
		up.UpToDate, up.Reason = true, "version "+us.Version+" is already installed"
		return nil, nil
	}
	if us.Flags&FlagAvailable == 0 {
		return nil, errorf("version %s is not available", us.Version)
	}
	if us.Flags&FlagObsolete != 0 {
		return nil, errorf("version %s is obsolete (older than MinVersion=)", us.Version)
	}
	up.Repair = us.Flags&FlagInstalled != 0
	if us.Flags&FlagNewest == 0 {
		up.Warnings = append(up.Warnings, "version "+us.Version+" is not the newest available")
	}
	if ni := p.NewestInstalled; ni != nil && vercmp.Compare(us.Version, ni.Version) < 0 {
		up.Warnings = append(up.Warnings, "version "+us.Version+" is older than the newest installed "+ni.Version)
	}
	return us, nil
}

func (p *Plan) prepare(ctx context.Context, version string, opts UpdateOptions, fetch bool) (*UpdatePlan, error) {
	up := &UpdatePlan{}
	us, err := p.chooseSet(version, up)
	if err != nil || us == nil {
		return up, err
	}
	env := p.Env
	cache := env.CacheDir
	if cache == "" {
		cache = joinRoot(env.Root, "/var/cache/imago/sysupdate")
	}
	dl := &Downloader{Client: env.HTTPClient, CacheDir: cache, Progress: env.Progress}
	used := map[string][]int{} // disk → slot numbers already promised
	for k, t := range p.Transfers {
		tp := &TransferPlan{Transfer: t, Source: us.Available[k], DownloadSize: -1, Size: -1, Free: -1}
		up.Transfers = append(up.Transfers, tp)
		if us.Installed != nil && us.Installed[k] != nil {
			tp.Installed, tp.TargetName, tp.TargetPath = true, us.Installed[k].Name, us.Installed[k].Path
			tp.partition = us.Installed[k].Partition
			continue
		}
		src := tp.Source
		if src == nil {
			return up, errorf("%s: version %s is missing on the source", t.ID, us.Version)
		}
		if t.Source.Type.IsURL() {
			if !src.Fields.HasSHA256 {
				return up, errorf("%s: %s: no SHA-256 known for the download, refusing", t.ID, src.Path)
			}
			tp.URL = src.Path
			tp.SignatureChecked = t.Verify
			if env.Verify != nil {
				tp.SignatureChecked = *env.Verify
			}
			if fetch {
				local, err := dl.Fetch(ctx, src.Path, src.Fields.SHA256)
				if err != nil {
					return up, fmt.Errorf("sysupdate: %s: %w", t.ID, err)
				}
				tp.local = local
				if st, err := os.Stat(local); err == nil {
					tp.DownloadSize = st.Size()
				}
			} else if n, err := dl.Size(ctx, src.Path); err == nil {
				tp.DownloadSize = n
			}
		} else {
			tp.local = src.Path
		}
		if err := tp.computeSize(ctx, t.Target.Type == Partition); err != nil {
			return up, err
		}
		tt := effective(t, opts)
		vac := vacuumTransfer(tt, p.Targets[k], 1, us.Version)
		vac.Transfer = t
		if vac.Err != nil {
			return up, vac.Err
		}
		up.Vacuum = append(up.Vacuum, vac)
		if err := p.placeTarget(tp, k, vac, used, us.Version); err != nil {
			return up, err
		}
		if t.Target.Type == Directory && t.ReadOnly != nil && *t.ReadOnly {
			// systemd sets the immutable attribute (chattr +i); imago
			// leaves directories writable and says so.
			up.Warnings = append(up.Warnings, t.ID+": ReadOnly= is not applied to directory targets")
		}
	}
	return up, nil
}

// computeSize finds the payload size after decompression: @s if the
// source name has it, else by decompressing a local regular file (needed
// to choose a partition slot; for file targets only when cheap to know).
func (tp *TransferPlan) computeSize(ctx context.Context, needed bool) error {
	src := tp.Source
	if src.Fields.HasSize {
		tp.Size = int64(src.Fields.Size)
		return nil
	}
	st := tp.Transfer.Source.Type
	if tp.local == "" || (st != RegularFile && st != URLFile) {
		return nil
	}
	f, err := os.Open(tp.local)
	if err != nil {
		return fmt.Errorf("sysupdate: %s: %w", tp.Transfer.ID, err)
	}
	defer f.Close()
	if !needed {
		// The file's own size is only a hint for file targets.
		if fi, err := f.Stat(); err == nil {
			tp.Size = fi.Size()
		}
		return nil
	}
	r, err := Decompress(f)
	if err != nil {
		return fmt.Errorf("sysupdate: %s: %s: %w", tp.Transfer.ID, tp.local, err)
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("sysupdate: %s: decompressing %s: %w", tp.Transfer.ID, tp.local, err)
	}
	tp.Size = n
	return nil
}

// placeTarget computes the new instance's name and where it goes: a path
// in the target directory, or the smallest free slot large enough (slots
// the vacuum frees count as free).
func (p *Plan) placeTarget(tp *TransferPlan, k int, vac Vacuum, used map[string][]int, version string) error {
	t := tp.Transfer
	f := tp.Source.Fields
	f.Version = version
	if t.TriesLeft != nil {
		f.TriesLeft, f.HasTriesLeft = *t.TriesLeft, true
	} else if !f.HasTriesLeft {
		f.TriesLeft, f.HasTriesLeft = 3, true
	}
	if t.TriesDone != nil {
		f.TriesDone, f.HasTriesDone = *t.TriesDone, true
	} else if !f.HasTriesDone {
		f.TriesDone, f.HasTriesDone = 0, true
	}
	if t.ReadOnly != nil {
		f.ReadOnly = t.ReadOnly
	}
	if tp.Size >= 0 && !f.HasSize {
		f.Size, f.HasSize = uint64(tp.Size), true
	}
	if t.Target.Type == Partition {
		d := p.Targets[k]
		disk, err := t.diskPath(p.Env)
		if err != nil {
			return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
		}
		free := slices.Clone(d.EmptySlots)
		for _, in := range vac.Remove {
			free = append(free, *in.Partition)
		}
		var best *PartitionInfo
		for i := range free {
			s := &free[i]
			if slices.Contains(used[disk], s.Number) || (tp.Size >= 0 && s.Size < tp.Size) {
				continue
			}
			if best == nil || s.Size < best.Size || (s.Size == best.Size && s.Number < best.Number) {
				best = s
			}
		}
		if best == nil {
			need := "the payload"
			if tp.Size >= 0 {
				need = fmt.Sprintf("%d bytes", tp.Size)
			}
			return fmt.Errorf("sysupdate: %s: %s: no free partition slot of type %s large enough for %s: %w", t.ID, disk, t.PartitionType.Name, need, syscall.ENOSPC)
		}
		used[disk] = append(used[disk], best.Number)
		slot := *best
		tp.Slot, tp.TargetPath, tp.Free = &slot, disk, slot.Size
		uuid := slot.UUID
		switch {
		case t.PartitionUUID != nil:
			uuid = *t.PartitionUUID
		case f.HasPartitionUUID:
			uuid = gpt.GUID(f.PartitionUUID)
		}
		flags := partitionFlags(t, tp.Source, slot.Flags)
		tp.uuid, tp.flags = &uuid, &flags
		f.PartitionUUID, f.HasPartitionUUID = uuid, true
		f.PartitionFlags, f.HasPartitionFlags = flags, true
		if f.NoAuto == nil {
			b := t.NoAuto != nil && *t.NoAuto
			f.NoAuto = &b
		}
		if f.GrowFileSystem == nil {
			b := t.GrowFileSystem != nil && *t.GrowFileSystem
			f.GrowFileSystem = &b
		}
		if f.ReadOnly == nil {
			b := false
			f.ReadOnly = &b
		}
		name, err := t.Target.Patterns[0].Format(f)
		if err != nil {
			return fmt.Errorf("sysupdate: %s: naming the new partition: %w", t.ID, err)
		}
		if err := gpt.CheckName(name); err != nil {
			return fmt.Errorf("sysupdate: %s: invalid partition label: %w", t.ID, err)
		}
		if name == emptyLabel {
			return errorf("%s: the new partition label would be %q", t.ID, emptyLabel)
		}
		tp.TargetName, tp.fields = name, f
		return nil
	}
	if t.Mode != nil {
		f.Mode, f.HasMode = *t.Mode, true
	} else if !f.HasMode {
		f.Mode, f.HasMode = 0o644, true
	}
	if !f.HasMTime {
		f.MTime, f.HasMTime = uint64(time.Now().UnixMicro()), true
	}
	if f.ReadOnly == nil {
		b := false
		f.ReadOnly = &b
	}
	name, err := t.Target.Patterns[0].Format(f)
	if err != nil {
		return fmt.Errorf("sysupdate: %s: naming the new instance: %w", t.ID, err)
	}
	if !validRelName(name) {
		return errorf("%s: %q is not a valid file name for the new instance", t.ID, name)
	}
	dir, err := t.TargetDir(p.Env)
	if err != nil {
		return fmt.Errorf("sysupdate: %w", err)
	}
	tp.TargetName, tp.TargetPath, tp.fields = name, filepath.Join(dir, filepath.FromSlash(name)), f
	tp.Free = freeBytes(filepath.Dir(tp.TargetPath))
	return nil
}

// validRelName reports whether a new instance's name is a safe relative
// path: normalized, no "." or ".." and no hidden component (the scanner
// would not see it), each component a valid file name.
func validRelName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name || strings.ContainsRune(name, 0) {
		return false
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || strings.HasPrefix(c, ".") || len(c) > 255 {
			return false
		}
	}
	return true
}

// freeBytes returns the bytes available to unprivileged writers on the
// file system of dir or of its nearest existing parent, -1 if unknown.
func freeBytes(dir string) int64 {
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			return int64(st.Bavail) * int64(st.Bsize)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return -1
		}
		dir = parent
	}
}

// randomSuffix is the 16 hex digits of a temporary name.
func randomSuffix() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// acquire writes one transfer's payload: into a temporary sibling of the
// final name, or into the chosen slot (whose label stays _empty).
func (p *Plan) acquire(ctx context.Context, tp *TransferPlan, opts UpdateOptions) error {
	t := tp.Transfer
	sync := !opts.NoSync
	if err := opts.step("write " + tp.TargetName); err != nil {
		return err
	}
	progress := func(done int64) {
		if p.Env.Progress != nil {
			p.Env.Progress(tp.TargetName, done, tp.Size)
		}
	}
	if t.Target.Type == Partition {
		f, err := os.Open(tp.local)
		if err != nil {
			return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
		}
		defer f.Close()
		r, err := Decompress(f)
		if err != nil {
			return fmt.Errorf("sysupdate: %s: %s: %w", t.ID, tp.local, err)
		}
		defer r.Close()
		n, err := writeSlot(ctx, tp.TargetPath, tp.Slot.Number, tp.Slot.Offset, tp.Slot.Size, r, sync, progress)
		if err != nil {
			return fmt.Errorf("sysupdate: %s: writing %s into partition %d: %w", t.ID, tp.local, tp.Slot.Number, err)
		}
		progress(n)
		return opts.step("written " + tp.TargetName)
	}

	parent := filepath.Dir(tp.TargetPath)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
	}
	suffix, err := randomSuffix()
	if err != nil {
		return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
	}
	tmp := filepath.Join(parent, tempPrefix+filepath.Base(tp.TargetPath)+suffix)
	tp.temp = tmp
	switch t.Source.Type {
	case RegularFile, URLFile:
		err = writeTempFile(ctx, tp, tmp, sync, progress)
	case Tar, URLTar:
		err = extractTo(tp.local, tmp)
	case Directory:
		err = CopyTree(tp.local, tmp)
	default:
		err = fmt.Errorf("source type %s is not supported", t.Source.Type)
	}
	if err != nil {
		return fmt.Errorf("sysupdate: %s: writing %s: %w", t.ID, tmp, err)
	}
	if t.Target.Type == Directory && sync {
		if err := syncTree(tmp); err != nil {
			return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
		}
	}
	if sync {
		if err := fsutil.SyncDir(parent); err != nil {
			return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
		}
	}
	return opts.step("written " + tp.TargetName)
}

// writeTempFile decompresses the payload into tmp and applies mode and mtime.
func writeTempFile(ctx context.Context, tp *TransferPlan, tmp string, sync bool, progress func(int64)) error {
	in, err := os.Open(tp.local)
	if err != nil {
		return err
	}
	defer in.Close()
	r, err := Decompress(in)
	if err != nil {
		return fmt.Errorf("%s: %w", tp.local, err)
	}
	defer r.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	n, err := io.Copy(out, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("%s: %w", tp.local, err)
	}
	progress(n)
	mode := fs.FileMode(tp.fields.Mode & 0o7777)
	if ro := tp.fields.ReadOnly; ro != nil && *ro {
		mode &^= 0o222
	}
	if err := out.Chmod(mode); err != nil {
		return err
	}
	// The times are set before the sync, so that it covers them.
	mt := time.UnixMicro(int64(tp.fields.MTime))
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		return err
	}
	if sync {
		if err := out.Sync(); err != nil {
			return err
		}
	}
	return out.Close()
}

// extractTo unpacks a (possibly compressed) tarball into a new directory.
func extractTo(tarball, dir string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := Decompress(f)
	if err != nil {
		return fmt.Errorf("%s: %w", tarball, err)
	}
	defer r.Close()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return ExtractTar(r, dir)
}

// syncTree fsyncs every regular file and directory below root (what
// syncfs would do for a directory target, limited to the new tree).
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// syncPath fsyncs the file or directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// install makes an acquired instance visible: rename to the final name,
// or one table write giving the slot its label, UUID and flags.
func (p *Plan) install(tp *TransferPlan, opts UpdateOptions) error {
	t := tp.Transfer
	sync := !opts.NoSync
	if err := opts.step("install " + tp.TargetName); err != nil {
		return err
	}
	if t.Target.Type == Partition {
		ch := patch{Number: tp.Slot.Number, Label: tp.TargetName, UUID: tp.uuid, Flags: tp.flags}
		if err := patchTable(tp.TargetPath, []patch{ch}, sync); err != nil {
			return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
		}
	} else {
		if st, err := os.Lstat(tp.TargetPath); err == nil && st.IsDir() {
			// A directory cannot be replaced by rename; the target does
			// not have this version, so whatever is there is debris.
			if err := os.RemoveAll(tp.TargetPath); err != nil {
				return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
			}
		}
		if err := os.Rename(tp.temp, tp.TargetPath); err != nil {
			return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
		}
		tp.temp = ""
		if sync {
			// On FAT (the ESP), a file's size and first cluster live in
			// its directory entry, and a rename writes a new entry without
			// them until the file itself is written back: syncing only
			// the directory would leave an empty file after a power cut.
			if err := syncPath(tp.TargetPath); err != nil {
				return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
			}
			if err := fsutil.SyncDir(filepath.Dir(tp.TargetPath)); err != nil {
				return fmt.Errorf("sysupdate: %s: %w", t.ID, err)
			}
		}
	}
	return nil
}

// updateSymlink points CurrentSymlink= at the transfer's instance of the
// version, unless it already does.
func (p *Plan) updateSymlink(tp *TransferPlan, opts UpdateOptions) error {
	t := tp.Transfer
	if t.CurrentSymlink == "" {
		return nil
	}
	linkTo := tp.TargetPath
	if t.Target.Type == Partition {
		n := 0
		switch {
		case tp.Slot != nil:
			n = tp.Slot.Number
		case tp.partition != nil:
			n = tp.partition.Number
		}
		linkTo = partitionNode(tp.TargetPath, n)
	}
	if linkTo == "" {
		return nil
	}
	link := t.CurrentSymlink
	if filepath.IsAbs(link) {
		link = joinRoot(p.Env.Root, link)
	} else {
		dir, err := t.TargetDir(p.Env)
		if err != nil {
			return fmt.Errorf("sysupdate: %w", err)
		}
		link = filepath.Join(dir, link)
	}
	if cur, err := os.Readlink(link); err == nil {
		if rel, err := filepath.Rel(filepath.Dir(link), linkTo); err == nil && rel == cur {
			return nil
		}
	}
	if err := opts.step("symlink " + t.CurrentSymlink); err != nil {
		return err
	}
	if err := symlinkAtomic(linkTo, link); err != nil {
		return fmt.Errorf("sysupdate: %s: CurrentSymlink=%s: %w", t.ID, t.CurrentSymlink, err)
	}
	if !opts.NoSync {
		if err := fsutil.SyncDir(filepath.Dir(link)); err != nil {
			return fmt.Errorf("sysupdate: %s: CurrentSymlink=%s: %w", t.ID, t.CurrentSymlink, err)
		}
	}
	return nil
}

// symlinkAtomic points link at target with a relative symlink, replacing
// an existing one by rename so that readers never see it missing.
func symlinkAtomic(target, link string) error {
	dir := filepath.Dir(link)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		return err
	}
	suffix, err := randomSuffix()
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".#"+filepath.Base(link)+suffix)
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// partitionNode returns the device node of partition n of a block device
// disk ("/dev/sda" → "/dev/sda3", "/dev/nvme0n1" → "/dev/nvme0n1p3"), or
// "" for an image file, which has none.
func partitionNode(disk string, n int) string {
	st, err := os.Stat(disk)
	if err != nil || st.Mode()&fs.ModeDevice == 0 {
		return ""
	}
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}
