package initrd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imago-os/imago/build/debian"
	"github.com/imago-os/imago/internal/toolexec"
)

// Spec says what initrd to build.
type Spec struct {
	// Tree is the root tree the initrd is built from: as build/debian
	// made it, with dracut installed, before /etc is emptied (dracut
	// reads the tree's /etc/passwd, /etc/group and ld.so.conf).
	Tree string
	// KernelVersion is the kernel to build for; "" means the tree's only
	// kernel.
	KernelVersion string
	// Modules are dracut's modules (--modules); nil means DefaultModules.
	Modules []string
	// Drivers are the kernel modules besides the file systems
	// (--drivers); nil means DefaultDrivers.
	Drivers []string
	// Filesystems are the file-system kernel modules (--filesystems); nil
	// means DefaultFilesystems.
	Filesystems []string
	// Install are further files, as glob patterns of absolute paths in
	// the tree, each of which must match; dracut adds the libraries they
	// link. nil means DefaultInstall.
	Install []string
	// Files are further files written into the initrd, such as unit
	// drop-ins; nil means DefaultFiles.
	Files []File
	// RepartDir is a directory on the host whose *.conf files become
	// /usr/lib/repart.d in the initrd; the mkfs programs their Format=
	// lines name are installed too. "" means none.
	RepartDir string
	// Compression is "zstd" (the default), "gzip" or "none".
	Compression string
	// CompressionLevel is zstd's (1-19) or gzip's (1-9) level; 0 means 9
	// for both, which for zstd is within 2% of the size of level 15 at a
	// small part of the time.
	CompressionLevel int
	// SourceDateEpoch, when set, is passed to dracut as
	// SOURCE_DATE_EPOCH. dracut --reproducible makes the archive the same
	// for the same inputs with or without it.
	SourceDateEpoch *time.Time
}

// Options say where Build caches and whom it tells.
type Options struct {
	// CacheDir is imago's cache directory; Build keeps initrds in
	// CacheDir/initrd. "" means no cache.
	CacheDir string
	// Progress, when set, receives one line per step, and dracut's
	// messages while it runs.
	Progress func(msg string)
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// Result is a built initrd.
type Result struct {
	// Path is the initrd file, as passed to Build.
	Path string
	// KernelVersion is the kernel it is for.
	KernelVersion string
	// Size is the size of the file; UncompressedSize that of the cpio
	// archive in it.
	Size, UncompressedSize int64
	// Files is the number of archive members.
	Files int
	// Modules are the required drivers and file systems present as .ko
	// files; Builtin are those the kernel has built in instead.
	Modules, Builtin []string
	// Key is the cache key, the SHA-256 of every input, in hex.
	Key string
	// CacheHit says that the initrd came from the cache.
	CacheHit bool
}

// recipeVersion changes whenever Build would make a different initrd from
// the same inputs, so that old cache entries are not reused.
const recipeVersion = "imago-initrd-1"

// resolved is a Spec with defaults filled in and its inputs read.
type resolved struct {
	Spec
	kernel    debian.Kernel
	manifest  debian.Manifest
	install   []string // absolute paths in the tree, including mkfs tools
	repart    []repartFile
	dracutCfg string // the tree's dracut configuration, for the key
	level     int
}

var wordPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

func resolve(spec Spec) (*resolved, error) {
	if spec.Tree == "" {
		return nil, errors.New("initrd: no tree")
	}
	tree, err := filepath.Abs(spec.Tree)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	spec.Tree = tree
	r := &resolved{Spec: spec}
	if r.Modules == nil {
		r.Modules = DefaultModules()
	}
	if r.Drivers == nil {
		r.Drivers = DefaultDrivers()
	}
	if r.Filesystems == nil {
		r.Filesystems = DefaultFilesystems()
	}
	if r.Install == nil {
		r.Install = DefaultInstall()
	}
	if r.Files == nil {
		r.Files = DefaultFiles()
	}
	for _, f := range r.Files {
		if err := f.check(); err != nil {
			return nil, err
		}
	}
	for _, list := range [][]string{r.Modules, r.Drivers, r.Filesystems} {
		for _, w := range list {
			if !wordPattern.MatchString(w) {
				return nil, fmt.Errorf("initrd: %q: not a dracut or kernel module name", w)
			}
		}
	}
	switch r.Compression {
	case "":
		r.Compression = "zstd"
	case "zstd", "gzip", "none":
	default:
		return nil, fmt.Errorf("initrd: compression %q: want zstd, gzip or none", r.Compression)
	}
	r.level = r.CompressionLevel
	if r.level == 0 {
		r.level = 9
	}
	if max := map[string]int{"zstd": 19, "gzip": 9, "none": 9}[r.Compression]; r.level < 1 || r.level > max {
		return nil, fmt.Errorf("initrd: %s level %d: want 1 to %d", r.Compression, r.level, max)
	}

	if spec.KernelVersion == "" {
		r.kernel, err = debian.FindKernel(spec.Tree)
	} else {
		r.kernel, err = debian.KernelVersion(spec.Tree, spec.KernelVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	if r.manifest, err = debian.ReadManifest(spec.Tree); err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	if _, err := findProgram(spec.Tree, "dracut"); err != nil {
		return nil, fmt.Errorf("%w: install dracut in the tree", err)
	}
	if r.install, err = resolveInstall(spec.Tree, r.Install); err != nil {
		return nil, err
	}
	var tools []string
	if r.repart, tools, err = readRepartDir(spec.RepartDir); err != nil {
		return nil, err
	}
	for _, t := range tools {
		p, err := findProgram(spec.Tree, t)
		if err != nil {
			return nil, fmt.Errorf("%w, which repart.d's Format= needs", err)
		}
		r.install = append(r.install, p)
	}
	sort.Strings(r.install)
	if r.dracutCfg, err = dracutConfig(spec.Tree); err != nil {
		return nil, err
	}
	return r, nil
}

// dracutConfig returns the tree's dracut configuration files with their
// content, which the package manifest does not cover (an extra tree may
// add some).
func dracutConfig(tree string) (string, error) {
	var files []string
	for _, pattern := range []string{"/etc/dracut.conf", "/etc/dracut.conf.d/*.conf", "/usr/lib/dracut/dracut.conf.d/*.conf"} {
		m, err := filepath.Glob(filepath.Join(tree, pattern))
		if err != nil {
			return "", fmt.Errorf("initrd: %w", err)
		}
		files = append(files, m...)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("initrd: dracut configuration: %w", err)
		}
		rel, _ := filepath.Rel(tree, f)
		fmt.Fprintf(&b, "%s %s\n", rel, sha256Hex(data))
	}
	return b.String(), nil
}

// key returns the cache key: the SHA-256 of the recipe and every input,
// one quoted value per line.
func (r *resolved) key() string {
	var b strings.Builder
	field := func(name string, values ...string) {
		b.WriteString(name)
		for _, v := range values {
			b.WriteByte(' ')
			b.WriteString(strconv.Quote(v))
		}
		b.WriteByte('\n')
	}
	field("recipe", recipeVersion)
	field("manifest", sha256Hex([]byte(r.manifest.String())))
	field("dracut-config", r.dracutCfg)
	field("kernel", r.kernel.Version)
	field("modules", r.Modules...)
	field("drivers", r.Drivers...)
	field("filesystems", r.Filesystems...)
	field("install", r.install...)
	for _, f := range r.repart {
		field("repart", f.Name, sha256Hex(f.Data))
	}
	for _, f := range r.Files {
		field("file", f.Path, sha256Hex(f.Data))
	}
	field("compression", r.Compression, strconv.Itoa(r.level))
	epoch := ""
	if r.SourceDateEpoch != nil {
		epoch = strconv.FormatInt(r.SourceDateEpoch.Unix(), 10)
	}
	field("source-date-epoch", epoch)
	return sha256Hex([]byte(b.String()))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Cache entry files.
const (
	initrdName = "initrd.img"
	entryName  = "entry.json"
)

// Build builds the initrd spec describes, or takes it from the cache, and
// writes it to out. It needs root (it chroots into the tree).
func Build(ctx context.Context, spec Spec, out string, opts Options) (*Result, error) {
	r, err := resolve(spec)
	if err != nil {
		return nil, err
	}
	res := &Result{Path: out, KernelVersion: r.kernel.Version, Key: r.key()}
	var entry string
	if opts.CacheDir != "" {
		entry = filepath.Join(opts.CacheDir, "initrd", res.Key)
		if cached, err := readEntry(entry); err == nil {
			opts.progress("initrd: cached %s", entry)
			cached.Path, cached.CacheHit = out, true
			if err := copyFile(filepath.Join(entry, initrdName), out); err != nil {
				return nil, err
			}
			return cached, nil
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("initrd: building an initrd needs root: dracut runs in a chroot of the tree")
	}

	start := time.Now()
	opts.progress("initrd: dracut for kernel %s (%d modules, %d drivers, %d files)", r.kernel.Version, len(r.Modules), len(r.Drivers)+len(r.Filesystems), len(r.install))
	archive, err := runDracut(ctx, r, opts)
	if err != nil {
		return nil, err
	}
	opts.progress("initrd: dracut done in %s: %d bytes", time.Since(start).Round(time.Millisecond), len(archive))

	c, err := listArchive(bytes.NewReader(archive))
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(r.kernel.ModulesDir)
	if err != nil {
		return nil, err
	}
	req := requirements{repart: r.repart, drivers: append(append([]string(nil), r.Drivers...), r.Filesystems...),
		kernel: r.kernel.Version, builtin: builtin}
	for _, m := range r.Modules {
		req.files = append(req.files, moduleFiles[m]...)
	}
	for _, p := range r.install {
		req.files = append(req.files, strings.TrimPrefix(p, "/"))
	}
	for _, f := range r.Files {
		req.files = append(req.files, strings.TrimPrefix(f.Path, "/"))
	}
	dc, err := c.check(req)
	if err != nil {
		return nil, err
	}
	res.UncompressedSize = int64(len(archive))
	res.Files = len(c.entries)
	res.Modules, res.Builtin = dc.modules, dc.builtin

	start = time.Now()
	compressed, err := compress(ctx, archive, r.Compression, r.level)
	if err != nil {
		return nil, err
	}
	res.Size = int64(len(compressed))
	opts.progress("initrd: %s -%d in %s: %d bytes", r.Compression, r.level, time.Since(start).Round(time.Millisecond), len(compressed))

	if entry != "" {
		if err := writeEntry(entry, compressed, res); err != nil {
			return nil, err
		}
	}
	if err := writeFileAtomic(out, compressed); err != nil {
		return nil, err
	}
	return res, nil
}

// dracutScript runs in the private mount namespace with the tree as $1, a
// work directory on the host as $2, and dracut's arguments after them. It
// mounts /proc and the host's /dev into the tree (dracut needs /proc/self
// and /dev/null; /dev/fd points into /proc), puts the work directory over
// the tree's /var/tmp, where dracut keeps its temporary files, where the
// repart.d files go in and the archive comes out, and runs the tree's
// dracut in a chroot. The fixed paths matter: dracut records its command
// line in the initrd.
const dracutScript = `set -e; root=$1; work=$2; shift 2; ` +
	`mount -t proc proc "$root/proc"; mount --bind /dev "$root/dev"; mount --bind "$work" "$root/var/tmp"; ` +
	`exec chroot "$root" /usr/bin/dracut "$@"`

// runDracut runs dracut in the tree and returns the uncompressed archive.
// The tree is not changed: everything dracut writes goes to a temporary
// directory on the host.
func runDracut(ctx context.Context, r *resolved, opts Options) ([]byte, error) {
	if fi, err := os.Stat(filepath.Join(r.Tree, "var/tmp")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("initrd: the tree has no /var/tmp directory: %v", err)
	}
	work, err := os.MkdirTemp("", "imago-initrd-")
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	defer os.RemoveAll(work)
	// dracut runs as root in the chroot; the directory is its /var/tmp.
	if err := os.Chmod(work, 0o1777); err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}

	args := []string{"--force", "--quiet", "--no-hostonly", "--no-hostonly-cmdline", "--reproducible", "--no-early-microcode",
		"--no-compress", "--nostrip", "--kver", r.kernel.Version,
		"--modules", strings.Join(r.Modules, " "),
		"--drivers", strings.Join(r.Drivers, " "),
		"--filesystems", strings.Join(r.Filesystems, " "),
	}
	if len(r.install) > 0 {
		args = append(args, "--install", strings.Join(r.install, " "))
	}
	if len(r.repart) > 0 {
		dir := filepath.Join(work, "imago-repart.d")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("initrd: %w", err)
		}
		for _, f := range r.repart {
			if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
				return nil, fmt.Errorf("initrd: %w", err)
			}
		}
		args = append(args, "--include", "/var/tmp/imago-repart.d", "/usr/lib/repart.d")
	}
	if len(r.Files) > 0 {
		dir := filepath.Join(work, "imago-files")
		for _, f := range r.Files {
			p := filepath.Join(dir, f.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, fmt.Errorf("initrd: %w", err)
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				return nil, fmt.Errorf("initrd: %w", err)
			}
		}
		args = append(args, "--include", "/var/tmp/imago-files", "/")
	}
	args = append(args, "/var/tmp/imago-initrd.cpio")

	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "HOME=/root"}
	if r.SourceDateEpoch != nil {
		env = append(env, "SOURCE_DATE_EPOCH="+strconv.FormatInt(r.SourceDateEpoch.Unix(), 10))
	}
	unshare := append([]string{"--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
		"--", "/bin/sh", "-c", dracutScript, "sh", r.Tree, work}, args...)
	lw := toolexec.LineWriter(func(l string) {
		// dracut reads the host's firmware search path from /sys, which
		// is not mounted on purpose.
		if !strings.Contains(l, "/sys/module/firmware_class") {
			opts.progress("dracut: %s", l)
		}
	})
	if _, err := toolexec.Run(ctx, "unshare", unshare, toolexec.CleanEnv(), toolexec.Env(env...), toolexec.Stderr(lw)); err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	archive, err := os.ReadFile(filepath.Join(work, "imago-initrd.cpio"))
	if err != nil {
		return nil, fmt.Errorf("initrd: dracut wrote no archive: %w", err)
	}
	return archive, nil
}

// compress returns the archive compressed as the kernel unpacks it.
func compress(ctx context.Context, archive []byte, method string, level int) ([]byte, error) {
	var args []string
	switch method {
	case "none":
		return archive, nil
	case "zstd":
		// -T0 uses every core; zstd's output does not depend on the
		// number of threads. The checksum is kept, as the kernel checks it.
		args = []string{"-q", "-c", "-T0", "-" + strconv.Itoa(level)}
	case "gzip":
		// -n leaves out the name and time stamp.
		args = []string{"-c", "-n", "-" + strconv.Itoa(level)}
	}
	out, err := toolexec.Run(ctx, method, args, toolexec.Stdin(bytes.NewReader(archive)))
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	return out, nil
}

// writeEntry stores an initrd and its description in the cache, under a
// temporary name first.
func writeEntry(entry string, initrd []byte, res *Result) error {
	parent := filepath.Dir(entry)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("initrd: cache: %w", err)
	}
	staging, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return fmt.Errorf("initrd: cache: %w", err)
	}
	defer os.RemoveAll(staging)
	desc, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("initrd: cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, initrdName), initrd, 0o644); err != nil {
		return fmt.Errorf("initrd: cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, entryName), append(desc, '\n'), 0o644); err != nil {
		return fmt.Errorf("initrd: cache: %w", err)
	}
	if err := os.Rename(staging, entry); err != nil {
		if _, serr := os.Stat(filepath.Join(entry, entryName)); serr == nil {
			return nil // another build stored it meanwhile
		}
		return fmt.Errorf("initrd: cache: %w", err)
	}
	return nil
}

// readEntry returns the description of a complete cache entry.
func readEntry(entry string) (*Result, error) {
	b, err := os.ReadFile(filepath.Join(entry, entryName))
	if err != nil {
		return nil, err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.Join(entry, initrdName))
	if err != nil {
		return nil, err
	}
	if fi.Size() != res.Size {
		return nil, fmt.Errorf("%s: %d bytes, its description says %d", entry, fi.Size(), res.Size)
	}
	return &res, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	return writeFileAtomic(dst, b)
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("initrd: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("initrd: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	return nil
}
