package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/sha256sums"
	"github.com/imago-os/imago/format/vercmp"
	"github.com/imago-os/imago/sysupdate/pattern"
)

// emptyLabel marks a free partition slot.
const emptyLabel = "_empty"

// maxDepth bounds the descent into subdirectories for patterns with '/'.
const maxDepth = 16

// PartitionInfo describes the GPT entry of a partition instance or slot.
type PartitionInfo struct {
	Number       int
	Offset, Size int64 // bytes
	Type         gpt.GUID
	UUID         gpt.GUID
	Flags        uint64
	Label        string
}

// Instance is one version found on a source or target.
type Instance struct {
	// Name is what was matched: a file name relative to the resource's
	// directory, a manifest entry or a partition label.
	Name string
	// Path is the file's host path, the URL, or for partitions the disk
	// path.
	Path string
	// Fields holds what the pattern extracted, completed with metadata
	// (mtime and mode of files; UUID, flags and read-only bit of
	// partitions; the manifest's SHA-256 for URL sources).
	Fields pattern.Fields
	// Partition is set for partition targets.
	Partition *PartitionInfo
}

// Version is the instance's version.
func (i *Instance) Version() string { return i.Fields.Version }

// Discovery is what a resource holds.
type Discovery struct {
	// Instances, newest version first (ties ordered by path).
	Instances []*Instance
	// EmptySlots are the partitions of the right type labelled _empty.
	EmptySlots []PartitionInfo
}

// Find returns the instance of version v, or nil.
func (d *Discovery) Find(v string) *Instance {
	if d == nil {
		return nil
	}
	for _, i := range d.Instances {
		if i.Fields.Version == v {
			return i
		}
	}
	return nil
}

func (d *Discovery) sort() {
	slices.SortStableFunc(d.Instances, func(a, b *Instance) int {
		if c := vercmp.Compare(b.Fields.Version, a.Fields.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
}

// Env is where a transfer's resources live.
type Env struct {
	// Root is the OS tree local paths are relative to; "" means "/".
	Root string
	// ESP and XBOOTLDR are host paths for PathRelativeTo=.
	ESP, XBOOTLDR string
	// Image stands for partition targets with Path=auto.
	Image string
	// HTTPClient fetches manifests and payloads; nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// Verify, when not nil, overrides every transfer's Verify= (the
	// --verify= option): false skips only the SHA256SUMS.gpg check.
	Verify *bool
	// Keyring is the OpenPGP public keyring SHA256SUMS.gpg is checked
	// against; "" means systemd's locations below Root.
	Keyring string
	// CacheDir holds downloads, complete and partial, so that an
	// interrupted download resumes; "" means /var/cache/imago/sysupdate
	// below Root.
	CacheDir string
	// Progress, when not nil, is told how a download or a write
	// advances: the instance name, bytes done and total (-1 if unknown).
	Progress func(name string, done, total int64)
}

func joinRoot(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	return filepath.Join(root, p)
}

// TargetDir returns the host path of a file or directory target, taking
// PathRelativeTo= into account.
func (t *Transfer) TargetDir(env Env) (string, error) {
	r := &t.Target
	switch r.PathRelativeTo {
	case RelativeToESP:
		if env.ESP == "" {
			return "", fmt.Errorf("%s: PathRelativeTo=esp but no ESP is known", t.ID)
		}
		return filepath.Join(env.ESP, r.Path), nil
	case RelativeToXBOOTLDR:
		if env.XBOOTLDR == "" {
			return "", fmt.Errorf("%s: PathRelativeTo=xbootldr but no XBOOTLDR partition is known", t.ID)
		}
		return filepath.Join(env.XBOOTLDR, r.Path), nil
	case RelativeToBoot:
		// XBOOTLDR if there is one, else the ESP.
		switch {
		case env.XBOOTLDR != "":
			return filepath.Join(env.XBOOTLDR, r.Path), nil
		case env.ESP != "":
			return filepath.Join(env.ESP, r.Path), nil
		}
		return "", fmt.Errorf("%s: PathRelativeTo=boot but neither XBOOTLDR nor ESP is known", t.ID)
	}
	return joinRoot(env.Root, r.Path), nil
}

// SourceInstances discovers the instances available on the source.
func (t *Transfer) SourceInstances(ctx context.Context, env Env) (*Discovery, error) {
	r := &t.Source
	var d *Discovery
	var err error
	switch r.Type {
	case URLFile, URLTar:
		d, err = webInstances(ctx, env, t)
	case RegularFile, Tar:
		d, err = dirInstances(joinRoot(env.Root, r.Path), r.Patterns, false)
	case Directory:
		d, err = dirInstances(joinRoot(env.Root, r.Path), r.Patterns, true)
	default:
		err = fmt.Errorf("source type %s is not supported yet", r.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %s: source: %w", t.ID, err)
	}
	return d, nil
}

// TargetInstances discovers the instances installed on the target.
func (t *Transfer) TargetInstances(ctx context.Context, env Env) (*Discovery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var d *Discovery
	var err error
	switch t.Target.Type {
	case Partition:
		var disk string
		if disk, err = t.diskPath(env); err == nil {
			d, err = partitionInstances(disk, t)
			if err != nil && t.Target.Path == "auto" {
				err = fmt.Errorf("disk for Path=auto: %w", err)
			}
		}
	case RegularFile, Directory:
		var dir string
		if dir, err = t.TargetDir(env); err == nil {
			d, err = dirInstances(dir, t.Target.Patterns, t.Target.Type == Directory)
		}
	default:
		err = fmt.Errorf("target type %s is not supported yet", t.Target.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %s: target: %w", t.ID, err)
	}
	return d, nil
}

// hiddenOrBackup reports names systemd's directory iteration skips.
func hiddenOrBackup(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	for _, s := range []string{".rpmnew", ".rpmsave", ".rpmorig", ".dpkg-old", ".dpkg-new", ".dpkg-tmp", ".dpkg-dist", ".dpkg-bak", ".dpkg-backup", ".dpkg-remove", ".ucf-new", ".ucf-old", ".ucf-dist", ".swp", ".bak", ".old", ".new"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// dirInstances lists the regular files (or directories, if wantDir) in dir
// whose names match, descending into subdirectories when a pattern asks
// for it. A missing directory holds no instances.
func dirInstances(dir string, patterns []*pattern.Pattern, wantDir bool) (*Discovery, error) {
	d := &Discovery{}
	if err := scanDir(d, dir, "", patterns, wantDir, 0); err != nil {
		return nil, err
	}
	d.sort()
	return d, nil
}

func scanDir(d *Discovery, base, rel string, patterns []*pattern.Pattern, wantDir bool, depth int) error {
	dir := filepath.Join(base, rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && depth == 0 {
			return nil
		}
		return err
	}
	for _, de := range entries {
		if hiddenOrBackup(de.Name()) {
			continue
		}
		name := path.Join(rel, de.Name())
		full := filepath.Join(base, name)
		res, f, _ := pattern.MatchAny(patterns, name)
		if res == pattern.NoMatch {
			continue
		}
		st, err := os.Stat(full)
		if err != nil {
			continue // dangling symlink or vanished entry
		}
		if res == pattern.Retry {
			if st.IsDir() && depth < maxDepth {
				if err := scanDir(d, base, name, patterns, wantDir, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		if st.IsDir() != wantDir || (!wantDir && !st.Mode().IsRegular()) {
			continue
		}
		if !f.HasMTime {
			f.MTime, f.HasMTime = uint64(st.ModTime().UnixMicro()), true
		}
		if !f.HasMode {
			f.Mode, f.HasMode = uint32(st.Mode().Perm())&0o775, true
		}
		d.Instances = append(d.Instances, &Instance{Name: name, Path: full, Fields: f})
	}
	return nil
}

// partitionInstances reads the GPT of a disk or image file.
func partitionInstances(disk string, t *Transfer) (*Discovery, error) {
	f, err := os.Open(disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	table, err := gpt.Read(f, size, 0)
	if err != nil {
		if errors.Is(err, gpt.ErrNoTable) {
			return nil, fmt.Errorf("%s has no GPT disk label, not suitable", disk)
		}
		return nil, fmt.Errorf("%s: %w", disk, err)
	}
	want := gpt.GUID(t.PartitionType.UUID)
	d := &Discovery{}
	for _, p := range table.Partitions {
		if p.TypeGUID != want {
			continue
		}
		off, sz := p.Bytes(table.SectorSize)
		info := PartitionInfo{Number: p.Number, Offset: off, Size: sz, Type: p.TypeGUID, UUID: p.UniqueGUID, Flags: p.Attributes, Label: p.Name}
		if p.Name == emptyLabel {
			d.EmptySlots = append(d.EmptySlots, info)
			continue
		}
		res, fields, _ := pattern.MatchAny(t.Target.Patterns, p.Name)
		if res != pattern.Matched {
			continue
		}
		if !fields.HasPartitionUUID {
			fields.PartitionUUID, fields.HasPartitionUUID = p.UniqueGUID, true
		}
		if !fields.HasPartitionFlags {
			fields.PartitionFlags, fields.HasPartitionFlags = p.Attributes, true
		}
		if fields.ReadOnly == nil {
			ro := p.Attributes&dps.FlagReadOnly != 0
			fields.ReadOnly = &ro
		}
		in := info
		d.Instances = append(d.Instances, &Instance{Name: p.Name, Path: disk, Fields: fields, Partition: &in})
	}
	d.sort()
	return d, nil
}

// manifestURL returns the SHA256SUMS location under a source Path=.
func manifestURL(base string) string {
	return strings.TrimSuffix(base, "/") + "/SHA256SUMS"
}

// FetchManifest downloads and parses <base>/SHA256SUMS with the syntax
// systemd-sysupdate accepts. file:// URLs are read from the local file
// system. The signature is not checked here; source discovery checks it
// when the transfer's Verify= asks for it.
func FetchManifest(ctx context.Context, client *http.Client, base string) (*sha256sums.Manifest, error) {
	u := manifestURL(base)
	data, err := fetchSmall(ctx, client, u, sha256sums.MaxSize)
	if err != nil {
		return nil, err
	}
	return parseManifest(u, data)
}

func parseManifest(u string, data []byte) (*sha256sums.Manifest, error) {
	m, err := sha256sums.ParseSysupdateBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return m, nil
}

// readAtMost reads all of r, refusing more than limit bytes.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// fetchSmall reads the whole of a small file (a manifest or signature)
// from an http(s) or file:// URL. A file the server does not have yields
// an error wrapping fs.ErrNotExist.
func fetchSmall(ctx context.Context, client *http.Client, u string, limit int64) ([]byte, error) {
	if p, ok := strings.CutPrefix(u, "file://"); ok {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		data, err := readAtMost(f, limit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		return data, nil
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return nil, fmt.Errorf("%s: HTTP status %s: %w", u, resp.Status, fs.ErrNotExist)
	default:
		return nil, fmt.Errorf("%s: HTTP status %s", u, resp.Status)
	}
	data, err := readAtMost(resp.Body, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return data, nil
}

// sourceManifest fetches the transfer's SHA256SUMS and, when Verify= (or
// Env.Verify, which overrides it) asks for it, checks SHA256SUMS.gpg
// beside it before the manifest is parsed, as systemd-pull does.
func sourceManifest(ctx context.Context, env Env, t *Transfer) (*sha256sums.Manifest, error) {
	u := manifestURL(t.Source.Path)
	data, err := fetchSmall(ctx, env.HTTPClient, u, sha256sums.MaxSize)
	if err != nil {
		return nil, err
	}
	verify := t.Verify
	if env.Verify != nil {
		verify = *env.Verify
	}
	if verify {
		keyring := env.Keyring
		if keyring == "" {
			if keyring, err = findKeyring(env.Root); err != nil {
				return nil, fmt.Errorf("%s: %w: %w", u, ErrSignature, err)
			}
		}
		sig, err := fetchSmall(ctx, env.HTTPClient, u+".gpg", maxSignatureSize)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s.gpg: %w: the signature is missing (Verify=no skips the check)", u, ErrSignature)
		}
		if err != nil {
			return nil, fmt.Errorf("%s.gpg: %w: %w", u, ErrSignature, err)
		}
		if err := verifyManifest(keyring, data, sig, u); err != nil {
			return nil, err
		}
	}
	return parseManifest(u, data)
}

func webInstances(ctx context.Context, env Env, t *Transfer) (*Discovery, error) {
	r := &t.Source
	m, err := sourceManifest(ctx, env, t)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(r.Path, "/") + "/"
	d := &Discovery{}
	for _, e := range m.Entries() {
		res, f, _ := pattern.MatchAny(r.Patterns, e.Name)
		if res != pattern.Matched {
			continue
		}
		if f.HasSHA256 && f.SHA256 != e.Digest {
			return nil, fmt.Errorf("%s: SHA256 sum parsed from file name and manifest don't match", e.Name)
		}
		f.SHA256, f.HasSHA256 = e.Digest, true
		d.Instances = append(d.Instances, &Instance{Name: e.Name, Path: base + e.Name, Fields: f})
	}
	d.sort()
	return d, nil
}

// Instances discovers both sides of the transfer: the versions available
// on the source and those installed on the target.
func (t *Transfer) Instances(ctx context.Context, env Env) (source, target *Discovery, err error) {
	if target, err = t.TargetInstances(ctx, env); err != nil {
		return nil, nil, err
	}
	if source, err = t.SourceInstances(ctx, env); err != nil {
		return nil, nil, err
	}
	return source, target, nil
}
