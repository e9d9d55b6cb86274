// Package build is the pipeline of `imago build`: it turns an image definition
// (build/config) into a GPT disk image and the update artifacts of one version.
//
// Each step is a function with explicit inputs and outputs, run in this order:
//
//  1. packages: a Debian root tree (build/debian, cached), then the
//     definition's content steps (extra trees, scripts, removals) and its
//     repart.d and sysupdate.d installed as /usr/lib/repart.d and
//     /usr/lib/sysupdate.d;
//  2. initrd: a systemd initrd from the tree (build/initrd, cached). It runs
//     before the hermetic step because dracut reads the tree's /etc;
//  3. hermetic: /usr made self-sufficient (build/hermetic), its report
//     written beside the outputs;
//  4. usr: the /usr file system (erofs or squashfs, fsimage), padded to the
//     size of the usr slot;
//  5. verity: the hash tree (format/verity) with the salt and superblock UUID
//     derived from the build seed, and the signature partition
//     (format/veritysig);
//  6. uki: systemd-stub, kernel, initrd, .cmdline with usrhash=, .osrel and
//     .uname (format/uki);
//  7. esp: the FAT ESP with systemd-boot and the UKI (esp);
//  8. image: the GPT disk image assembled by the repart engine from
//     generated partition definitions (ESP, usr, usr-verity, usr-verity-sig);
//  9. artifacts: the update files, SHA256SUMS, the package manifest and the
//     build log.
//
// Every UUID and salt comes from a seed derived from the definition's hash,
// so that with a SourceDateEpoch and the same package set two builds give the
// same bytes. The layout matches what systemd 252 (Debian 12) reads: the
// Discoverable Partitions Specification, dm-verity found through usrhash=,
// and systemd-boot's Boot Loader Specification type 2 entries.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imago-os/imago/build/config"
	"github.com/imago-os/imago/build/debian"
	"github.com/imago-os/imago/build/hermetic"
	"github.com/imago-os/imago/build/initrd"
	"github.com/imago-os/imago/esp"
	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/sha256sums"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/format/veritysig"
	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/internal/toolexec"
	"github.com/imago-os/imago/keys"
	"github.com/imago-os/imago/repart"
)

// Options adjust a build. The zero value builds with the default cache and
// key set, without a SourceDateEpoch, and refuses to overwrite outputs.
type Options struct {
	// Force replaces the outputs of an earlier build of the same version.
	Force bool
	// SourceDateEpoch, when set, is the time every timestamp is clamped
	// to. The definition's SourceDateEpoch= wins over it.
	SourceDateEpoch *time.Time
	// CacheDir is imago's cache; "" means the definition's
	// CacheDirectory=, else the default (see DefaultCacheDir).
	CacheDir string
	// KeysDir holds the key set used when the definition names no verity
	// key; "" means keys.DefaultDir().
	KeysDir string
	// KeepWorkDir leaves OUTPUT/.work in place after a successful build.
	KeepWorkDir bool
	// Progress receives one line per event when not nil.
	Progress func(msg string)
	// ImagoBinary is the imago executable that InstallImago=yes puts into
	// the image; the command line passes its own.
	ImagoBinary string
}

// Artifact is one file the build wrote into the output directory.
type Artifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// StepTime is how long one step took.
type StepTime struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// Result describes a finished build.
type Result struct {
	// OutputDir is the directory the artifacts are in.
	OutputDir string `json:"output_dir"`
	// Image is the path of the disk image.
	Image string `json:"image"`
	// Label is "<ImageID>_<ImageVersion>".
	Label string `json:"label"`
	// RootHash is the dm-verity root hash of /usr, in hex.
	RootHash string `json:"root_hash"`
	// Cmdline is the UKI's kernel command line.
	Cmdline string `json:"cmdline"`
	// KernelVersion is the kernel in the UKI.
	KernelVersion string `json:"kernel_version"`
	// Packages is the number of installed packages.
	Packages int `json:"packages"`
	// PackagesCached and InitrdCached say whether those steps came from
	// the cache.
	PackagesCached bool `json:"packages_cached"`
	InitrdCached   bool `json:"initrd_cached"`
	// HermeticProblems counts the hermetic report's findings that leave
	// first boot short of the tree.
	HermeticProblems int `json:"hermetic_problems"`
	// Artifacts are the files written, sorted by name.
	Artifacts []Artifact `json:"artifacts"`
	// Steps are the step times in order; Total the whole build.
	Steps []StepTime    `json:"steps"`
	Total time.Duration `json:"total_ns"`
}

// DefaultCacheDir returns imago's cache directory: $IMAGO_CACHE_DIR, else
// /var/cache/imago for root, else $XDG_CACHE_HOME/imago (~/.cache/imago).
func DefaultCacheDir() string {
	if d := os.Getenv("IMAGO_CACHE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/imago"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "imago")
	}
	return filepath.Join(os.TempDir(), "imago-cache")
}

// Artifact name suffixes, as the reference sysupdate.d matches them.
const (
	suffixUsr       = ".usr.raw"
	suffixVerity    = ".usr-verity.raw"
	suffixVeritySig = ".usr-verity-sig.raw"
)

// builder carries what the steps share: the definition, the options and
// the paths of the work directory.
type builder struct {
	def      *config.Definition
	opts     Options
	epoch    *time.Time
	seed     dps.UUID
	label    string
	out      string
	work     string
	tree     string
	cacheDir string
	log      bytes.Buffer
	steps    []StepTime
	keys     *keys.Set          // see keySet
	update   *keys.UpdateSigner // see updateSigner
}

func (b *builder) progress(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(&b.log, "%s\n", msg)
	if b.opts.Progress != nil {
		b.opts.Progress(msg)
	}
}

// step runs fn as the step called name, timing it.
func (b *builder) step(name string, fn func() error) error {
	b.progress("==> %s", name)
	start := time.Now()
	err := fn()
	d := time.Since(start)
	b.steps = append(b.steps, StepTime{Name: name, Duration: d})
	if err != nil {
		return fmt.Errorf("build: %s: %w", name, err)
	}
	b.progress("<== %s (%s)", name, d.Round(time.Millisecond))
	return nil
}

// Run builds def and returns what it wrote. It needs root: the tree has
// files of several owners and device nodes, and the initrd step chroots.
func Run(ctx context.Context, def *config.Definition, opts Options) (*Result, error) {
	start := time.Now()
	if def.Output.ImageVersion == "" {
		return nil, errors.New("build: no image version: set ImageVersion= or pass --image-version")
	}
	if def.Output.Format != "" && def.Output.Format != "disk" {
		return nil, fmt.Errorf("build: Format=%s: only disk is built", def.Output.Format)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("build: must run as root (the tree has files of several owners and device nodes)")
	}
	b := &builder{def: def, opts: opts, label: def.Output.Label(), out: def.Output.OutputDirectory}
	b.epoch = opts.SourceDateEpoch
	if def.Content.SourceDateEpoch != nil {
		b.epoch = def.Content.SourceDateEpoch
	}
	b.cacheDir = opts.CacheDir
	if b.cacheDir == "" {
		b.cacheDir = def.Build.CacheDirectory
	}
	if b.cacheDir == "" {
		b.cacheDir = DefaultCacheDir()
	}
	// Where the outputs and the cache go changes no byte of the outputs,
	// so neither feeds the seed.
	seedDef := *def
	seedDef.Output.OutputDirectory, seedDef.Build.CacheDirectory = "", ""
	hash, err := seedDef.Hash()
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	b.seed = deriveSeed(hash, b.label)
	if err := b.prepareOutput(); err != nil {
		return nil, err
	}
	b.progress("building %s into %s (seed %s)", b.label, b.out, b.seed)

	var (
		deb       *debian.Result
		initrdRes *initrd.Result
		report    *hermetic.Report
		usrSize   int64
		vr        *verityResult
		ukiRes    *ukiResult
		espPath   = filepath.Join(b.work, "esp.img")
		img       *imageResult
		initrdOut = filepath.Join(b.work, "initrd.img")
		usrPath   = filepath.Join(b.work, "usr.img")
	)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"packages", func() (err error) { deb, err = b.packages(ctx); return err }},
		{"initrd", func() (err error) { initrdRes, err = b.initrd(ctx, initrdOut); return err }},
		{"hermetic", func() (err error) { report, err = b.hermetic(); return err }},
		{"usr", func() (err error) { usrSize, err = b.usrImage(ctx, usrPath); return err }},
		{"verity", func() (err error) { vr, err = b.verity(usrPath, usrSize); return err }},
		{"uki", func() (err error) { ukiRes, err = b.uki(initrdOut, vr.rootHash); return err }},
		{"esp", func() error { return b.esp(ctx, espPath, ukiRes.path) }},
		{"image", func() (err error) { img, err = b.image(ctx, espPath, usrPath, vr); return err }},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.step(s.name, s.fn); err != nil {
			return nil, err
		}
	}
	res := &Result{
		OutputDir:        b.out,
		Label:            b.label,
		RootHash:         hex.EncodeToString(vr.rootHash),
		Cmdline:          ukiRes.cmdline,
		KernelVersion:    ukiRes.kernelVersion,
		Packages:         len(deb.Manifest),
		PackagesCached:   deb.CacheHit,
		InitrdCached:     initrdRes.CacheHit,
		HermeticProblems: len(report.Problems()),
	}
	if err := b.step("artifacts", func() error {
		return b.artifacts(res, deb.Manifest, report, img, vr, ukiRes)
	}); err != nil {
		return nil, err
	}
	res.Total = time.Since(start)
	res.Steps = b.steps
	// The build log is written last and is the one output that is not
	// reproducible: it records times.
	b.progress("done in %s", res.Total.Round(time.Millisecond))
	logName := b.label + ".build.log"
	if err := os.WriteFile(filepath.Join(b.out, logName), b.log.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if a, err := describe(b.out, logName); err == nil {
		res.Artifacts = append(res.Artifacts, a)
		sort.Slice(res.Artifacts, func(i, j int) bool { return res.Artifacts[i].Name < res.Artifacts[j].Name })
	}
	if !opts.KeepWorkDir {
		if err := os.RemoveAll(b.work); err != nil {
			return nil, fmt.Errorf("build: removing %s: %w", b.work, err)
		}
	}
	return res, nil
}

// signManifest writes SHA256SUMS.gpg, the detached OpenPGP signature of
// SHA256SUMS, when the definition asks for it.
func (b *builder) signManifest(res *Result) error {
	u, err := b.updateSigner()
	if err != nil || u == nil {
		return err
	}
	f, err := os.Open(filepath.Join(b.out, "SHA256SUMS"))
	if err != nil {
		return err
	}
	defer f.Close()
	var at time.Time
	if b.epoch != nil {
		at = *b.epoch
	}
	sig, err := u.Sign(f, at)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.out, "SHA256SUMS.gpg"), sig, 0o644); err != nil {
		return err
	}
	a, err := describe(b.out, "SHA256SUMS.gpg")
	if err != nil {
		return err
	}
	res.Artifacts = append(res.Artifacts, a)
	b.progress("artifact %s: signed by %s", a.Name, u.Fingerprint())
	return nil
}

// deriveSeed returns the seed of every UUID and salt of the build: the
// definition's hash and the version label, hashed, as a version 4 UUID.
func deriveSeed(defHash, label string) dps.UUID {
	sum := sha256.Sum256([]byte("imago-build\x00" + defHash + "\x00" + label))
	var u dps.UUID
	copy(u[:], sum[:16])
	return repart.MakeV4(u)
}

// derive returns a UUID for a purpose, from the seed.
func (b *builder) derive(token string) dps.UUID {
	return repart.DeriveUUID(b.seed, token)
}

// prepareOutput creates the output directory, refuses (without Force) to
// overwrite an earlier build of the same version, and makes the work
// directory.
func (b *builder) prepareOutput() error {
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	entries, err := os.ReadDir(b.out)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	var existing []string
	for _, e := range entries {
		if !e.IsDir() && isOutputName(b.label, e.Name()) {
			existing = append(existing, e.Name())
		}
	}
	if len(existing) > 0 && !b.opts.Force {
		return fmt.Errorf("build: %s already holds %s; use --force to overwrite", b.out, existing[0])
	}
	for _, n := range existing {
		if err := os.Remove(filepath.Join(b.out, n)); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	b.work = filepath.Join(b.out, ".work")
	if err := os.RemoveAll(b.work); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	if err := os.MkdirAll(b.work, 0o700); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	b.tree = filepath.Join(b.work, "tree")
	return nil
}

// isOutputName says whether name is one of the files a build of label
// writes. Anything else in the output directory (other versions, a virtual
// machine's state beside the image) is left alone.
func isOutputName(label, name string) bool {
	switch name {
	case "SHA256SUMS", "SHA256SUMS.gpg", label + ".raw", label + ".efi", label + ".verity.crt",
		label + ".manifest", label + ".hermetic.txt", label + ".build.log":
		return true
	}
	rest, ok := strings.CutPrefix(name, label+"_")
	if !ok || len(rest) < 33 || rest[32] != '.' {
		return false
	}
	if _, err := hex.DecodeString(rest[:32]); err != nil {
		return false
	}
	switch rest[32:] {
	case suffixUsr, suffixVerity, suffixVeritySig:
		return true
	}
	return false
}

// packages is step 1: the root tree from Debian packages, then the
// definition's own content.
func (b *builder) packages(ctx context.Context) (*debian.Result, error) {
	d := b.def.Distribution
	arch := d.DebianArchitecture()
	if arch == "" {
		return nil, fmt.Errorf("architecture %s: not built by imago", d.Architecture)
	}
	spec := debian.Spec{
		Release:          d.Release,
		Sources:          debian.Sources(d.Mirror, d.SecurityMirror, d.Release, d.Repositories),
		Architecture:     arch,
		Packages:         append(debian.DefaultPackages(arch), b.def.Content.Packages...),
		WithRecommends:   b.def.Content.WithRecommends,
		IgnoreValidUntil: d.Snapshot != "",
		SourceDateEpoch:  b.epoch,
	}
	res, err := debian.Bootstrap(ctx, spec, b.tree, debian.Options{CacheDir: b.cacheDir, Progress: b.opts.Progress})
	if err != nil {
		return nil, err
	}
	b.progress("tree: %d packages (cache hit %v)", len(res.Manifest), res.CacheHit)
	if err := b.content(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// installImago copies the imago executable to /usr/bin/imago in the tree.
func (b *builder) installImago() error {
	if b.opts.ImagoBinary == "" {
		return errors.New("no imago executable given to copy into the image")
	}
	src, err := os.Open(b.opts.ImagoBinary)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := filepath.Join(b.tree, "usr/bin/imago")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// content applies the definition's content steps to the tree, in the order
// docs/definition.md gives, and installs repart.d and sysupdate.d.
func (b *builder) content(ctx context.Context) error {
	c := b.def.Content
	for _, t := range c.ExtraTrees {
		target := filepath.Join(b.tree, t.Target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		// cp -a keeps modes, owners, links and extended attributes.
		if _, err := toolexec.Run(ctx, "cp", []string{"-a", "--no-target-directory", t.Source + "/.", target}); err != nil {
			return fmt.Errorf("content: ExtraTrees=%s: %w", t.Source, err)
		}
	}
	if c.InstallImago {
		if err := b.installImago(); err != nil {
			return fmt.Errorf("content: InstallImago=yes: %w", err)
		}
	}
	env := []string{"BUILDROOT=" + b.tree, "SRCDIR=" + b.def.Dir, "IMAGE_ID=" + b.def.Output.ImageID, "IMAGE_VERSION=" + b.def.Output.ImageVersion}
	if b.epoch != nil {
		env = append(env, "SOURCE_DATE_EPOCH="+strconv.FormatInt(b.epoch.Unix(), 10))
	}
	for _, s := range c.PostInstallationScripts {
		if _, err := toolexec.Run(ctx, s, nil, toolexec.Env(env...), toolexec.Dir(b.def.Dir)); err != nil {
			return fmt.Errorf("content: PostInstallationScripts=%s: %w", s, err)
		}
	}
	if len(c.RemovePackages) > 0 {
		return errors.New("content: RemovePackages= is not supported by the build yet")
	}
	for _, pattern := range c.RemoveFiles {
		matches, err := filepath.Glob(filepath.Join(b.tree, pattern))
		if err != nil {
			return fmt.Errorf("content: RemoveFiles=%s: %w", pattern, err)
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return fmt.Errorf("content: RemoveFiles=%s: %w", pattern, err)
			}
		}
	}
	if c.Hostname != "" {
		if err := os.WriteFile(filepath.Join(b.tree, "etc/hostname"), []byte(c.Hostname+"\n"), 0o644); err != nil {
			return fmt.Errorf("content: Hostname=: %w", err)
		}
	}
	for _, s := range c.FinalizeScripts {
		if _, err := toolexec.Run(ctx, s, nil, toolexec.Env(env...), toolexec.Dir(b.def.Dir)); err != nil {
			return fmt.Errorf("content: FinalizeScripts=%s: %w", s, err)
		}
	}
	if err := b.installConfDir(b.def.RepartDir, "usr/lib/repart.d"); err != nil {
		return err
	}
	if err := b.installConfDir(b.def.SysupdateDir, "usr/lib/sysupdate.d"); err != nil {
		return err
	}
	return b.installUpdateKeyring()
}

// UpdateKeyringPath is where the image carries the public key that signs
// its updates' SHA256SUMS: the keyring systemd-sysupdate and `imago
// update` check SHA256SUMS.gpg against when /etc has none.
const UpdateKeyringPath = "usr/lib/systemd/import-pubring.gpg"

// installUpdateKeyring puts the update signing key's public half into the
// tree, so that the image trusts the updates its builder signs.
func (b *builder) installUpdateKeyring() error {
	u, err := b.updateSigner()
	if err != nil || u == nil {
		return err
	}
	ring, err := u.Keyring()
	if err != nil {
		return err
	}
	p := filepath.Join(b.tree, UpdateKeyringPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, ring, 0o644); err != nil {
		return err
	}
	b.progress("content: update signing key %s in /%s", u.Fingerprint(), UpdateKeyringPath)
	if b.epoch != nil {
		return os.Chtimes(p, *b.epoch, *b.epoch)
	}
	return nil
}

// installConfDir copies the *.conf files of src into the tree at dst,
// mode 0644, owned by root, with the epoch as their time.
func (b *builder) installConfDir(src, dst string) error {
	if src == "" {
		return nil
	}
	names, err := filepath.Glob(filepath.Join(src, "*.conf"))
	if err != nil {
		return err
	}
	dir := filepath.Join(b.tree, dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Base(n))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o644); err != nil {
			return err
		}
		if b.epoch != nil {
			if err := os.Chtimes(p, *b.epoch, *b.epoch); err != nil {
				return err
			}
		}
	}
	if b.epoch != nil {
		return os.Chtimes(dir, *b.epoch, *b.epoch)
	}
	return nil
}

// initrd is step 2: the systemd initrd, with the definition's repart.d.
func (b *builder) initrd(ctx context.Context, out string) (*initrd.Result, error) {
	res, err := initrd.Build(ctx, initrd.Spec{
		Tree:            b.tree,
		RepartDir:       b.def.RepartDir,
		SourceDateEpoch: b.epoch,
	}, out, initrd.Options{CacheDir: b.cacheDir, Progress: b.opts.Progress})
	if err != nil {
		return nil, err
	}
	b.progress("initrd: %s, %d files, %d bytes (cache hit %v)", res.KernelVersion, res.Files, res.Size, res.CacheHit)
	return res, nil
}

// hermetic is step 3: /usr made self-sufficient; its report is written
// into the work directory and copied out with the artifacts.
func (b *builder) hermetic() (*hermetic.Report, error) {
	hash, err := b.rootPasswordHash()
	if err != nil {
		return nil, err
	}
	rep, err := hermetic.Apply(b.tree, hermetic.Options{
		ImageID:          b.def.Output.ImageID,
		ImageVersion:     b.def.Output.ImageVersion,
		RootPasswordHash: hash,
		SourceDateEpoch:  b.epoch,
		Progress:         b.opts.Progress,
	})
	if err != nil {
		return nil, err
	}
	b.progress("hermetic: %d factory entries, %d tmpfiles lines, %d problems", rep.FactoryEntries, rep.TmpfilesLines, len(rep.Problems()))
	return rep, nil
}

// rootPasswordHash returns the crypt(3) hash for RootPassword=. A plain
// password is hashed with SHA-512 crypt and a salt derived from the build
// seed, so that the output stays reproducible.
func (b *builder) rootPasswordHash() (string, error) {
	p := b.def.Content.RootPassword
	if p == nil {
		return "", nil
	}
	if p.Hashed {
		return p.Value, nil
	}
	salt := b.derive("root-password-salt")
	out, err := toolexec.Run(context.Background(), "openssl",
		[]string{"passwd", "-6", "-salt", hex.EncodeToString(salt[:8]), "-stdin"},
		toolexec.Stdin(strings.NewReader(p.Value)))
	if err != nil {
		return "", fmt.Errorf("content: RootPassword=: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// usrImage is step 4: the /usr file system, padded with zeros to the usr
// slot size so that it is the partition's exact content (the verity tree
// covers the whole partition, as systemd-repart's does).
func (b *builder) usrImage(ctx context.Context, path string) (int64, error) {
	size, err := fsimage.MakeFile(ctx, path, b.def.Slots.Usr, fsimage.Options{
		Type:            b.def.Output.UsrFileSystem,
		Label:           b.label,
		UUID:            repart.FileSystemUUID(b.derive("usr-filesystem")),
		SourceDir:       filepath.Join(b.tree, "usr"),
		SourceDateEpoch: b.epoch,
		TempDir:         b.work,
	})
	if err != nil {
		return 0, err
	}
	b.progress("usr: %s, %d bytes", b.def.Output.UsrFileSystem, size)
	return size, nil
}

// verityResult is the outcome of step 5.
type verityResult struct {
	rootHash          []byte
	hashPath, sigPath string
	cert              *x509.Certificate
	usrUUID, hashUUID dps.UUID
}

// verity is step 5: the hash tree of the usr partition and the signed root
// hash. The salt and superblock UUID come from the seed as systemd-repart
// 255's --reproducible semantics derive them.
func (b *builder) verity(usrPath string, usrSize int64) (*verityResult, error) {
	const blockSize = 4096
	if usrSize%blockSize != 0 {
		return nil, fmt.Errorf("usr image size %d is not a multiple of %d", usrSize, blockSize)
	}
	p := verity.DefaultParams(uint64(usrSize / blockSize))
	p.Salt = verity.SaltFromSeed(b.seed)
	p.UUID = verity.UUIDFromSeed(b.seed)
	hashSize, err := verity.HashDeviceSize(p)
	if err != nil {
		return nil, err
	}
	if s := b.def.Slots.UsrVerity; s > 0 {
		if hashSize > s {
			return nil, fmt.Errorf("verity hash tree of %d bytes does not fit the usr-verity slot of %d bytes", hashSize, s)
		}
		hashSize = s
	}
	hashSize = (hashSize + blockSize - 1) / blockSize * blockSize
	usr, err := os.Open(usrPath)
	if err != nil {
		return nil, err
	}
	defer usr.Close()
	res := &verityResult{hashPath: filepath.Join(b.work, "usr-verity.img"), sigPath: filepath.Join(b.work, "usr-verity-sig.img")}
	hash, err := os.Create(res.hashPath)
	if err != nil {
		return nil, err
	}
	defer hash.Close()
	if err := hash.Truncate(hashSize); err != nil {
		return nil, err
	}
	res.rootHash, err = verity.Format(usr, hash, p)
	if err != nil {
		return nil, err
	}
	if err := hash.Close(); err != nil {
		return nil, err
	}
	data, hashUUID, err := verity.PartitionUUIDs(res.rootHash)
	if err != nil {
		return nil, err
	}
	res.usrUUID, res.hashUUID = dps.UUID(data), dps.UUID(hashUUID)

	cert, key, err := b.verityKey()
	if err != nil {
		return nil, err
	}
	sig, err := veritysig.Sign(res.rootHash, cert, key)
	if err != nil {
		return nil, err
	}
	sigSize := int(b.def.Slots.UsrVeritySig)
	if sigSize == 0 {
		sigSize = veritysig.PartitionSize
	}
	content, err := sig.MarshalPartition(sigSize)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(res.sigPath, content, 0o644); err != nil {
		return nil, err
	}
	res.cert = cert
	b.progress("verity: root hash %x", res.rootHash)
	return res, nil
}

// ukiResult is the outcome of step 6.
type ukiResult struct {
	path, cmdline, kernelVersion string
}

// stubNames are the systemd-stub and systemd-boot file names per
// architecture, in /usr/lib/systemd/boot/efi of the tree.
var stubNames = map[dps.Arch][2]string{
	dps.ArchX86_64: {"linuxx64.efi.stub", "systemd-bootx64.efi"},
	dps.ArchARM64:  {"linuxaa64.efi.stub", "systemd-bootaa64.efi"},
}

// uki is step 6: the unified kernel image. The command line is usrhash=,
// root=gpt-auto and rw (see baseCmdline) followed by the definition's
// KernelCommandLine=.
func (b *builder) uki(initrdPath string, rootHash []byte) (*ukiResult, error) {
	names, ok := stubNames[b.def.Distribution.Architecture]
	if !ok {
		return nil, fmt.Errorf("architecture %s: no systemd-stub name known", b.def.Distribution.Architecture)
	}
	stub, err := os.ReadFile(filepath.Join(b.tree, "usr/lib/systemd/boot/efi", names[0]))
	if err != nil {
		return nil, fmt.Errorf("systemd-stub (package systemd-boot-efi): %w", err)
	}
	k, err := debian.FindKernel(b.tree)
	if err != nil {
		return nil, err
	}
	linux, err := os.ReadFile(k.Image)
	if err != nil {
		return nil, err
	}
	rd, err := os.ReadFile(initrdPath)
	if err != nil {
		return nil, err
	}
	osrel, err := os.ReadFile(filepath.Join(b.tree, "usr/lib/os-release"))
	if err != nil {
		return nil, err
	}
	cmdline := strings.Join(append(b.baseCmdline(rootHash), b.def.Content.KernelCommandLine...), " ")
	var opts uki.BuildOptions
	if opts.PCR, err = b.pcrSigning(); err != nil {
		return nil, err
	}
	if opts.SecureBootCertificate, opts.SecureBootKey, err = b.secureBootKey(); err != nil {
		return nil, err
	}
	if b.epoch != nil {
		opts.SecureBootTime = *b.epoch
	}
	image, err := uki.BuildSigned(stub, &uki.Input{
		Linux:     linux,
		Initrds:   [][]byte{rd},
		Cmdline:   []byte(cmdline),
		OSRelease: osrel,
		Uname:     []byte(k.Version),
	}, opts)
	if err != nil {
		return nil, err
	}
	if opts.PCR != nil {
		b.progress("uki: PCR 11 predictions signed (.pcrsig, .pcrpkey)")
	}
	if opts.SecureBootCertificate != nil {
		b.progress("uki: signed for Secure Boot by %s", opts.SecureBootCertificate.Subject)
	}
	res := &ukiResult{path: filepath.Join(b.work, "uki.efi"), cmdline: cmdline, kernelVersion: k.Version}
	if err := os.WriteFile(res.path, image, 0o644); err != nil {
		return nil, err
	}
	b.progress("uki: %s, %d bytes, cmdline %q", k.Version, len(image), cmdline)
	return res, nil
}

// baseCmdline returns the parameters imago puts first on the UKI's command
// line: usrhash=, then root=gpt-auto and rw unless KernelCommandLine= has
// its own root= or ro/rw. root=gpt-auto is systemd's default spelled out:
// dracut's command line hook wants a root= it knows, and
// systemd-gpt-auto-generator then mounts the root partition of the boot
// disk, which first-boot systemd-repart creates. rw because that root is
// new and empty: systemd must create /usr and the rest on it before
// switching to it, and without rw systemd 252 mounts it read-only.
func (b *builder) baseCmdline(rootHash []byte) []string {
	params := []string{"usrhash=" + hex.EncodeToString(rootHash)}
	var hasRoot, hasMode bool
	for _, p := range b.def.Content.KernelCommandLine {
		for _, f := range strings.Fields(p) {
			hasRoot = hasRoot || strings.HasPrefix(f, "root=")
			hasMode = hasMode || f == "ro" || f == "rw"
		}
	}
	if !hasRoot {
		params = append(params, "root=gpt-auto")
	}
	if !hasMode {
		params = append(params, "rw")
	}
	return params
}

// esp is step 7: the ESP with systemd-boot and the UKI, unsigned.
func (b *builder) esp(ctx context.Context, out, ukiPath string) error {
	arch := b.def.Distribution.Architecture
	names, ok := stubNames[arch]
	if !ok {
		return fmt.Errorf("architecture %s: no systemd-boot name known", arch)
	}
	name, err := esp.UKIName(b.def.Output.ImageID, b.def.Output.ImageVersion, nil)
	if err != nil {
		return err
	}
	loader, err := b.signBootLoader(filepath.Join(b.tree, "usr/lib/systemd/boot/efi", names[1]))
	if err != nil {
		return err
	}
	enroll, err := b.autoEnrollKeys()
	if err != nil {
		return err
	}
	var conf esp.LoaderConf
	if enroll != nil {
		// systemd-boot 252 enrolls loader/keys/auto/ without asking when
		// the firmware is in setup mode, then resets the machine.
		conf.SecureBootEnroll = "force"
	}
	volume := b.derive("esp-volume")
	res, err := esp.Build(ctx, esp.Spec{
		Architecture:    arch,
		BootLoader:      loader,
		UKIs:            []esp.UKI{{Source: ukiPath, Name: name}},
		Loader:          conf,
		SecureBootKeys:  enroll,
		UUID:            (*[16]byte)(&volume),
		SourceDateEpoch: b.epoch,
		TempDir:         b.work,
	}, out)
	if err != nil {
		return err
	}
	b.progress("esp: volume %s", res.VolumeID)
	return nil
}

// imageResult is the outcome of step 8.
type imageResult struct {
	path    string
	sigUUID dps.UUID
}

// image is step 8: the GPT disk image, from generated partition definitions
// whose contents are the images of steps 4, 5 and 7 (CopyBlocks=). The
// usr and usr-verity UUIDs are the halves of the root hash; the rest comes
// from the seed as systemd-repart derives it.
func (b *builder) image(ctx context.Context, espPath, usrPath string, vr *verityResult) (*imageResult, error) {
	dir := filepath.Join(b.work, "repart.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := map[string]string{
		"10-esp.conf": "[Partition]\nType=esp\nLabel=ESP\nCopyBlocks=" + espPath + "\n",
		"20-usr.conf": "[Partition]\nType=usr\nLabel=" + b.label + "\nUUID=" + vr.usrUUID.String() +
			"\nCopyBlocks=" + usrPath + "\nReadOnly=yes\n",
		"21-usr-verity.conf": "[Partition]\nType=usr-verity\nLabel=" + b.label + "\nUUID=" + vr.hashUUID.String() +
			"\nCopyBlocks=" + vr.hashPath + "\nReadOnly=yes\n",
		"22-usr-verity-sig.conf": "[Partition]\nType=usr-verity-sig\nLabel=" + b.label +
			"\nCopyBlocks=" + vr.sigPath + "\n",
	}
	// Each partition is exactly as large as its content, which steps 4
	// and 5 sized to the slot; without the limits the engine would give
	// small partitions its 10 MiB default minimum.
	for name, path := range map[string]string{"10-esp.conf": espPath, "20-usr.conf": usrPath, "21-usr-verity.conf": vr.hashPath, "22-usr-verity-sig.conf": vr.sigPath} {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		files[name] += fmt.Sprintf("SizeMinBytes=%d\nSizeMaxBytes=%d\n", fi.Size(), fi.Size())
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	defs, err := repart.LoadDefinitions(repart.LoadOptions{
		ParseOptions: repart.ParseOptions{Arch: b.def.Distribution.Architecture, Specifiers: &repart.Specifiers{}},
		Dirs:         []string{dir},
	})
	if err != nil {
		return nil, err
	}
	path := filepath.Join(b.work, b.label+".raw")
	disk, err := repart.CreateImage(path)
	if err != nil {
		return nil, err
	}
	defer disk.Close()
	plan, err := repart.Run(ctx, disk, repart.Options{
		Definitions: defs,
		Seed:        b.seed,
		Empty:       repart.EmptyCreate,
		Write:       true,
		SizeAuto:    true,
		Content:     repart.NewContent(repart.ContentOptions{SourceDateEpoch: b.epoch, TempDir: b.work, ReproducibleVerity: true}),
		Device:      path,
		Logf:        func(f string, a ...any) { b.progress("repart: "+f, a...) },
	})
	if err != nil {
		return nil, err
	}
	if err := disk.Close(); err != nil {
		return nil, err
	}
	res := &imageResult{path: path}
	for _, p := range plan.Partitions {
		if p.Type.Designator == dps.DesignatorUsrVeritySig {
			res.sigUUID = p.UUID
		}
		b.progress("image: partition %d %s %q %s, %d bytes at %d", p.Number, p.TypeName(), p.Label, p.UUID, p.Size, p.Offset)
	}
	return res, nil
}

// artifacts is step 9: the files of the output directory.
func (b *builder) artifacts(res *Result, manifest debian.Manifest, report *hermetic.Report, img *imageResult, vr *verityResult, u *ukiResult) error {
	uuidHex := func(u dps.UUID) string { return strings.ReplaceAll(u.String(), "-", "") }
	moves := []struct{ from, to string }{
		{img.path, b.label + ".raw"},
		{filepath.Join(b.work, "usr.img"), b.label + "_" + uuidHex(vr.usrUUID) + suffixUsr},
		{vr.hashPath, b.label + "_" + uuidHex(vr.hashUUID) + suffixVerity},
		{vr.sigPath, b.label + "_" + uuidHex(img.sigUUID) + suffixVeritySig},
		{u.path, b.label + ".efi"},
	}
	var names []string
	for _, m := range moves {
		if err := os.Rename(m.from, filepath.Join(b.out, m.to)); err != nil {
			return err
		}
		names = append(names, m.to)
	}
	// The verity certificate travels with the build so that the image can
	// be checked (imago dissect --verify --certificate=).
	certName := b.label + ".verity.crt"
	if err := os.WriteFile(filepath.Join(b.out, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vr.cert.Raw}), 0o644); err != nil {
		return err
	}
	manifestName := b.label + ".manifest"
	if err := os.WriteFile(filepath.Join(b.out, manifestName), []byte(manifest.String()), 0o644); err != nil {
		return err
	}
	var rep bytes.Buffer
	if err := report.WriteText(&rep); err != nil {
		return err
	}
	reportName := b.label + ".hermetic.txt"
	if err := os.WriteFile(filepath.Join(b.out, reportName), rep.Bytes(), 0o644); err != nil {
		return err
	}
	names = append(names, certName, manifestName, reportName)
	sort.Strings(names)
	// Each file is read once: its digest serves the summary and SHA256SUMS.
	var entries []sha256sums.Entry
	for _, n := range names {
		a, err := describe(b.out, n)
		if err != nil {
			return err
		}
		res.Artifacts = append(res.Artifacts, a)
		e := sha256sums.Entry{Name: n}
		if _, err := hex.Decode(e.Digest[:], []byte(a.SHA256)); err != nil {
			return err
		}
		entries = append(entries, e)
		b.progress("artifact %s: %d bytes, sha256 %s", a.Name, a.Size, a.SHA256)
	}
	if b.def.Validation.Checksum {
		f, err := os.Create(filepath.Join(b.out, "SHA256SUMS"))
		if err != nil {
			return err
		}
		if err := sha256sums.Write(f, entries); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		a, err := describe(b.out, "SHA256SUMS")
		if err != nil {
			return err
		}
		res.Artifacts = append(res.Artifacts, a)
		b.progress("artifact %s: %d bytes, sha256 %s", a.Name, a.Size, a.SHA256)
		if err := b.signManifest(res); err != nil {
			return err
		}
	}
	res.Image = filepath.Join(b.out, b.label+".raw")
	return nil
}

// describe returns the size and SHA-256 of the file name in dir.
func describe(dir, name string) (Artifact, error) {
	p := filepath.Join(dir, name)
	f, err := os.Open(p)
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: %w", p, err)
	}
	return Artifact{Name: name, Path: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// WriteSummary writes the result for people: the artifacts with sizes and
// SHA-256, the step times and the hermetic report's problem count.
func (r *Result) WriteSummary(w io.Writer) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "image:     %s\n", r.Image)
	fmt.Fprintf(&buf, "root hash: %s\n", r.RootHash)
	fmt.Fprintf(&buf, "cmdline:   %s\n", r.Cmdline)
	fmt.Fprintf(&buf, "kernel:    %s\n", r.KernelVersion)
	fmt.Fprintf(&buf, "packages:  %d (cached %v), initrd cached %v\n", r.Packages, r.PackagesCached, r.InitrdCached)
	fmt.Fprintf(&buf, "hermetic:  %d problems (see %s.hermetic.txt)\n", r.HermeticProblems, r.Label)
	fmt.Fprintf(&buf, "\nartifacts in %s:\n", r.OutputDir)
	for _, a := range r.Artifacts {
		fmt.Fprintf(&buf, "  %12d  %s  %s\n", a.Size, a.SHA256, a.Name)
	}
	fmt.Fprintf(&buf, "\nsteps:\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&buf, "  %-10s %10s\n", s.Name, s.Duration.Round(time.Millisecond))
	}
	fmt.Fprintf(&buf, "  %-10s %10s\n", "total", r.Total.Round(time.Millisecond))
	_, err := w.Write(buf.Bytes())
	return err
}
