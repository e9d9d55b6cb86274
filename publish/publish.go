package publish

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/imago-os/imago/format/sha256sums"
	"github.com/imago-os/imago/format/vercmp"
	"github.com/imago-os/imago/internal/fsutil"
	"github.com/imago-os/imago/keys"
)

// The names of the manifest and its signature in the publication
// directory, where systemd-sysupdate looks for them beside the payloads.
const (
	ManifestName  = "SHA256SUMS"
	SignatureName = "SHA256SUMS.gpg"
)

// Options tune Run.
type Options struct {
	// Dir is the publication directory; it is created if missing.
	Dir string
	// Signer signs SHA256SUMS. Required.
	Signer *keys.UpdateSigner
	// Compression of the copied payloads; "" means DefaultCompression.
	Compression Compression
	// Keep, when positive, keeps only the Keep newest versions of each
	// image ID in Dir and removes the payloads of older ones. Zero never
	// removes anything.
	Keep int
	// Now is the signature time; zero means the current time.
	Now time.Time
	// Progress, when not nil, is told about every file written, kept or
	// removed, one line each.
	Progress func(msg string)
}

// Version is an image version.
type Version struct {
	ImageID string `json:"image_id"`
	Version string `json:"version"`
}

// String returns the label "<id>_<version>".
func (v Version) String() string { return v.ImageID + "_" + v.Version }

// File is a file in the publication directory.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Written is a payload Run copied into the publication directory.
type Written struct {
	File
	// Source is the build's file, with its size and digest: what the
	// file decompresses to.
	Source       string `json:"source"`
	SourceSize   int64  `json:"source_size"`
	SourceSHA256 string `json:"source_sha256"`
}

// Result says what Run did.
type Result struct {
	Directory string `json:"directory"`
	// Published are the versions of the builds, all now in Directory.
	Published []Version `json:"published"`
	// Written are the payloads copied in this run.
	Written []Written `json:"written"`
	// Unchanged are payloads that were already published with the same
	// content, and so were not copied again.
	Unchanged []string `json:"unchanged"`
	// Removed are the versions retired by Options.Keep, RemovedFiles
	// their payloads.
	Removed      []Version `json:"removed"`
	RemovedFiles []string  `json:"removed_files"`
	// Listed is what SHA256SUMS lists, sorted by name.
	Listed []File `json:"listed"`
	// ManifestWritten is false when SHA256SUMS already listed exactly
	// these files and SHA256SUMS.gpg verified, so neither was touched.
	ManifestWritten bool `json:"manifest_written"`
	// SignedBy is the fingerprint of the update signing key.
	SignedBy string `json:"signed_by"`
}

// LoadSigner returns the update signer at path: a key set directory (see
// keys.Load) or an OpenPGP secret key file. An empty path means the
// default key set directory, keys.DefaultDir; it is not generated here,
// since a fresh key would not be the one the images trust.
func LoadSigner(path string) (*keys.UpdateSigner, error) {
	if path == "" {
		dir, err := keys.DefaultDir()
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		path = dir
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("publish: update signing key: %w", err)
	}
	if !fi.IsDir() {
		return keys.ReadUpdateSigner(path)
	}
	set, err := keys.Load(path)
	if err != nil {
		return nil, err
	}
	return set.UpdateSigner()
}

// published is a payload found in the publication directory.
type published struct {
	Payload
	name string
}

// Run publishes the builds in buildDirs into opts.Dir:
//
//  1. every build's SHA256SUMS is checked (OpenBuild) and the payloads
//     are compared with what the directory already holds for the same
//     versions; nothing is written unless all of that succeeds, so a
//     damaged build or a conflict leaves the directory as it was;
//  2. payloads not yet published are copied, compressed;
//  3. with opts.Keep, older versions are removed;
//  4. SHA256SUMS is rewritten to list every payload in the directory, then
//     SHA256SUMS.gpg.
//
// A version already published with the same content is left as it is;
// the same payload with different content is an error.
func Run(ctx context.Context, buildDirs []string, opts Options) (*Result, error) {
	if opts.Signer == nil {
		return nil, errors.New("publish: no update signing key")
	}
	if opts.Dir == "" {
		return nil, errors.New("publish: no publication directory")
	}
	if opts.Keep < 0 {
		return nil, fmt.Errorf("publish: keep %d: want a positive number of versions, or 0 to keep all", opts.Keep)
	}
	comp := opts.Compression
	if comp == "" {
		comp = DefaultCompression
	}
	if _, err := ParseCompression(string(comp)); err != nil {
		return nil, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	dir := opts.Dir
	res := &Result{Directory: dir, SignedBy: opts.Signer.Fingerprint()}

	// 1. Check everything before touching the directory.
	var builds []*Build
	byVersion := map[Version]*Build{}
	for _, bd := range buildDirs {
		b, err := OpenBuild(bd)
		if err != nil {
			return nil, err
		}
		v := Version{b.ImageID, b.Version}
		if prev, ok := byVersion[v]; ok {
			if !sameFiles(prev, b) {
				return nil, fmt.Errorf("publish: %s and %s are different builds of %s", prev.Dir, b.Dir, v)
			}
			continue
		}
		byVersion[v] = b
		builds = append(builds, b)
		res.Published = append(res.Published, v)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer unlock()
	existing, err := scan(dir)
	if err != nil {
		return nil, err
	}
	type job struct {
		src  BuildFile
		dest Payload
	}
	var jobs []job
	for _, b := range builds {
		for _, f := range b.Files {
			same := 0
			for _, e := range existing {
				if e.Uncompressed() == f.Payload {
					d, err := contentDigest(ctx, filepath.Join(dir, e.name), e.Compression)
					if err != nil {
						return nil, fmt.Errorf("publish: reading the published %w", err)
					}
					if d != f.Digest {
						return nil, fmt.Errorf("publish: %s: %s is already published with different content than %s; a published version is never replaced (publish the build under a new version)",
							dir, e.name, f.Path)
					}
					res.Unchanged = append(res.Unchanged, e.name)
					progress(fmt.Sprintf("unchanged %s (same content as %s)", e.name, f.Path))
					same++
				} else if e.ImageID == f.ImageID && e.Version == f.Version && e.Kind == f.Kind {
					return nil, fmt.Errorf("publish: %s: %s is already published for version %s; %s differs from it",
						dir, e.name, Version{f.ImageID, f.Version}, f.Path)
				}
			}
			if same == 0 {
				dest := f.Payload
				dest.Compression = comp
				jobs = append(jobs, job{f, dest})
			}
		}
	}

	// 2. Copy.
	digests := map[string]File{}
	for _, j := range jobs {
		name := j.dest.Name()
		d, size, err := copyPayload(ctx, j.src.Path, dir, name, j.dest.Compression, j.src.Digest)
		if err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		f := File{Name: name, Size: size, SHA256: hex.EncodeToString(d[:])}
		digests[name] = f
		res.Written = append(res.Written, Written{File: f, Source: j.src.Path, SourceSize: j.src.Size,
			SourceSHA256: hex.EncodeToString(j.src.Digest[:])})
		progress(fmt.Sprintf("wrote %s (%d bytes from %d, sha256 %s)", name, size, j.src.Size, f.SHA256))
	}
	if len(jobs) > 0 {
		if err := fsutil.SyncDir(dir); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
	}

	// 3. Retire old versions. Their files go before SHA256SUMS is
	// rewritten: until it is, the old manifest lists files that are gone,
	// and a client that picks one of those old versions gets a download
	// error; clients pick the newest version, which is still there.
	if existing, err = scan(dir); err != nil {
		return res, err
	}
	if opts.Keep > 0 {
		old := retired(existing, opts.Keep)
		var kept []published
		for _, e := range existing {
			v := Version{e.ImageID, e.Version}
			if !slices.Contains(old, v) {
				kept = append(kept, e)
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return res, fmt.Errorf("publish: %w", err)
			}
			res.RemovedFiles = append(res.RemovedFiles, e.name)
			progress("removed " + e.name)
		}
		res.Removed = old
		existing = kept
		if len(old) > 0 {
			if err := fsutil.SyncDir(dir); err != nil {
				return res, fmt.Errorf("publish: %w", err)
			}
		}
	}

	// 4. The manifest and its signature.
	var entries []sha256sums.Entry
	for _, e := range existing {
		f, ok := digests[e.name]
		if !ok {
			d, size, err := fileDigest(ctx, filepath.Join(dir, e.name))
			if err != nil {
				return res, fmt.Errorf("publish: %w", err)
			}
			f = File{Name: e.name, Size: size, SHA256: hex.EncodeToString(d[:])}
		}
		d, _ := hex.DecodeString(f.SHA256)
		entries = append(entries, sha256sums.Entry{Name: e.name, Digest: [32]byte(d)})
		res.Listed = append(res.Listed, f)
	}
	var manifest bytes.Buffer
	if err := sha256sums.WriteSysupdate(&manifest, entries); err != nil {
		return res, fmt.Errorf("publish: %s: %w", filepath.Join(dir, ManifestName), err)
	}
	slices.SortFunc(res.Listed, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	if current(dir, manifest.Bytes(), opts.Signer) {
		progress("unchanged " + ManifestName + " and " + SignatureName)
	} else {
		sig, err := opts.Signer.Sign(bytes.NewReader(manifest.Bytes()), opts.Now)
		if err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		// SHA256SUMS goes first, then its signature. In between, a client
		// fetches the new manifest with the old signature, which fails to
		// verify: it refuses the update and tries again later. It never
		// accepts a manifest that is not signed.
		if err := writeFileAtomic(dir, ManifestName, manifest.Bytes()); err != nil {
			return res, fmt.Errorf("publish: %s: %w", filepath.Join(dir, ManifestName), err)
		}
		progress(fmt.Sprintf("wrote %s (%d files)", ManifestName, len(entries)))
		if err := writeFileAtomic(dir, SignatureName, sig); err != nil {
			return res, fmt.Errorf("publish: %s: %w", filepath.Join(dir, SignatureName), err)
		}
		progress(fmt.Sprintf("wrote %s (key %s)", SignatureName, res.SignedBy))
		res.ManifestWritten = true
	}
	res.fill()
	return res, nil
}

// fill replaces nil lists by empty ones, so the JSON has [] not null.
func (r *Result) fill() {
	if r.Published == nil {
		r.Published = []Version{}
	}
	if r.Written == nil {
		r.Written = []Written{}
	}
	if r.Unchanged == nil {
		r.Unchanged = []string{}
	}
	if r.Removed == nil {
		r.Removed = []Version{}
	}
	if r.RemovedFiles == nil {
		r.RemovedFiles = []string{}
	}
	if r.Listed == nil {
		r.Listed = []File{}
	}
}

// sameFiles reports whether two builds have the same payloads.
func sameFiles(a, b *Build) bool {
	return slices.EqualFunc(a.Files, b.Files, func(x, y BuildFile) bool {
		return x.Payload == y.Payload && x.Digest == y.Digest
	})
}

// scan lists the payloads in dir, sorted by name. Hidden files (our
// temporary files among them) and everything that is not a payload are
// skipped.
func scan(dir string) ([]published, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	var out []published
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		if p, ok := ParseName(de.Name()); ok {
			out = append(out, published{p, de.Name()})
		}
	}
	return out, nil
}

// retired returns the versions of each image ID beyond the keep newest,
// in the UAPI version order systemd-sysupdate uses to pick the newest.
func retired(ps []published, keep int) []Version {
	byID := map[string][]string{}
	for _, p := range ps {
		if !slices.Contains(byID[p.ImageID], p.Version) {
			byID[p.ImageID] = append(byID[p.ImageID], p.Version)
		}
	}
	var old []Version
	for id, vs := range byID {
		vercmp.Sort(vs)
		if len(vs) > keep {
			for _, v := range vs[:len(vs)-keep] {
				old = append(old, Version{id, v})
			}
		}
	}
	slices.SortFunc(old, func(a, b Version) int {
		if c := strings.Compare(a.ImageID, b.ImageID); c != 0 {
			return c
		}
		return vercmp.Compare(a.Version, b.Version)
	})
	return old
}

// current reports whether dir already has manifest as SHA256SUMS with a
// SHA256SUMS.gpg by signer that verifies it.
func current(dir string, manifest []byte, signer *keys.UpdateSigner) bool {
	have, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil || !bytes.Equal(have, manifest) {
		return false
	}
	sig, err := os.ReadFile(filepath.Join(dir, SignatureName))
	if err != nil {
		return false
	}
	ring, err := signer.Keyring()
	if err != nil {
		return false
	}
	fpr, err := keys.VerifyUpdateManifest(bytes.NewReader(ring), bytes.NewReader(manifest), bytes.NewReader(sig))
	return err == nil && fpr == signer.Fingerprint()
}
