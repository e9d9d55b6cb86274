// Package hermetic turns a Debian root tree into one whose /usr alone can
// instantiate the system: step 2 of imago build. The image ships /usr (and an
// ESP); on first boot the root file system is new and empty, and systemd 252
// fills /etc and /var from /usr:
//
//   - the tree's /etc, /var and other top-level directories are copied under
//     /usr/share/factory, and a tmpfiles.d file brings each entry back when
//     it is missing: C lines for files and directories (the copy keeps mode,
//     owner, timestamps and user.* extended attributes), L lines for
//     symbolic links;
//   - system users and groups get a sysusers.d file that recreates them with
//     the tree's IDs, and password hashes reach /etc/shadow through
//     credentials of systemd-sysusers.service;
//   - the units the tree enables under /etc/systemd/system become a preset
//     file, which PID 1 applies on first boot before loading units;
//   - /etc/machine-id, caches, logs, package manager state and per-machine
//     secrets are left out;
//   - /usr/lib/os-release gains IMAGE_ID= and IMAGE_VERSION=.
//
// Apply leaves the tree's /etc and /var in place (later build steps run
// tools inside the tree); only /usr is shipped. What it cannot carry over is
// listed in the Report. It matches systemd 252 as Debian 12 ships it; the
// normative description is docs/hermetic.md.
package hermetic

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imago-os/imago/format/osrelease"
)

// Files Apply generates inside the tree.
const (
	FactoryDir      = "/usr/share/factory"
	TmpfilesPath    = "/usr/lib/tmpfiles.d/imago-hermetic.conf"
	SysusersPath    = "/usr/lib/sysusers.d/00-imago-hermetic.conf"
	PresetPath      = "/usr/lib/systemd/system-preset/00-imago-hermetic.preset"
	SysusersDropIn  = "/usr/lib/systemd/system/systemd-sysusers.service.d/imago-hermetic.conf"
	FirstbootDropIn = "/usr/lib/systemd/system/systemd-firstboot.service.d/imago-hermetic.conf"
	JournaldDropIn  = "/usr/lib/systemd/journald.conf.d/imago-hermetic.conf"
)

// Options adjust Apply. The zero value is the default behaviour.
type Options struct {
	// ImageID and ImageVersion are written to /usr/lib/os-release as
	// IMAGE_ID= and IMAGE_VERSION= when not empty.
	ImageID, ImageVersion string
	// RootPasswordHash is a crypt(3) hash that systemd-sysusers gives root
	// when it creates the account on first boot. Empty keeps the tree's
	// (a locked root on Debian).
	RootPasswordHash string
	// Drop replaces DefaultDrop when not nil.
	Drop []Rule
	// KeepAlternativeLinks leaves links in /usr that point into
	// /etc/alternatives as they are. By default they are pointed at the
	// alternative's target, so that they work before /etc is populated.
	KeepAlternativeLinks bool
	// FirstbootPrompts keeps the questions Debian's systemd-firstboot.service
	// asks on the console when /etc is empty. By default a drop-in removes
	// them, so that first boot needs nobody at the console; credentials
	// (firstboot.*, passwd.*) still apply.
	FirstbootPrompts bool
	// SourceDateEpoch, when set, is the modification time of every file,
	// link and directory Apply writes in /usr (factory copies keep the
	// tree's times), so that equal trees give equal bytes.
	SourceDateEpoch *time.Time
	// Progress receives a line per step when not nil.
	Progress func(string)
}

var imageFieldValue = regexp.MustCompile(`^[0-9a-z._-]+$`)

// node is one entry of the tree.
type node struct {
	path   string // absolute inside the tree: "/etc/fstab"
	host   string
	mode   fs.FileMode
	st     *syscall.Stat_t
	target string // of a symbolic link
}

func (n node) typeChar() byte {
	switch {
	case n.mode.IsRegular():
		return 'f'
	case n.mode.IsDir():
		return 'd'
	case n.mode&fs.ModeSymlink != 0:
		return 'l'
	}
	return 'o'
}

type applier struct {
	root  string
	opt   Options
	rules []Rule
	rep   *Report

	decl      map[string]declaration
	acls      map[string]bool // paths whose ACLs a tmpfiles.d a/A line sets
	en        enablement
	lines     []TmpfilesLine
	hardlinks map[[2]uint64]string // device and inode -> factory path
	dirTimes  []node               // factory directories, in creation order
	touched   map[string]bool      // host paths in /usr written or changed
	// persistentJournal: the tree keeps the journal on disk because it has
	// /var/log/journal (journald's Storage=auto).
	persistentJournal bool
}

func (a *applier) progress(format string, args ...any) {
	if a.opt.Progress != nil {
		a.opt.Progress(fmt.Sprintf(format, args...))
	}
}

func (a *applier) host(p string) string { return filepath.Join(a.root, filepath.FromSlash(p)) }

// Apply makes the tree at root hermetic in /usr and reports what it could
// not carry over. Running it again on its own output gives the same result.
func Apply(root string, opt Options) (*Report, error) {
	if opt.ImageID != "" && !imageFieldValue.MatchString(opt.ImageID) {
		return nil, fmt.Errorf("hermetic: IMAGE_ID %q: only 0-9, a-z, '.', '_' and '-' are allowed", opt.ImageID)
	}
	if opt.ImageVersion != "" && !imageFieldValue.MatchString(opt.ImageVersion) {
		return nil, fmt.Errorf("hermetic: IMAGE_VERSION %q: only 0-9, a-z, '.', '_' and '-' are allowed", opt.ImageVersion)
	}
	if opt.RootPasswordHash != "" {
		if err := validHash(opt.RootPasswordHash); err != nil {
			return nil, fmt.Errorf("hermetic: root password: %w", err)
		}
	}
	a := &applier{root: root, opt: opt, rules: opt.Drop, rep: &Report{}, hardlinks: map[[2]uint64]string{}, touched: map[string]bool{}}
	if a.rules == nil {
		a.rules = DefaultDrop
	}
	if err := a.checkTree(); err != nil {
		return nil, err
	}
	a.progress("removing the output of an earlier run")
	if err := a.undoPrevious(); err != nil {
		return nil, err
	}
	var err error
	if a.decl, a.acls, err = existingTmpfiles(root, path.Base(TmpfilesPath)); err != nil {
		return nil, err
	}
	a.progress("planning users and groups")
	cfg, err := readSysusers(root, path.Base(SysusersPath))
	if err != nil {
		return nil, err
	}
	users, err := planUsers(root, cfg, a.rep)
	if err != nil {
		return nil, err
	}
	if opt.RootPasswordHash != "" {
		users.passwords["root"] = opt.RootPasswordHash
		a.rep.add(Changed, "/etc/shadow", "user root: password hash from the image definition")
	}
	for user, h := range users.passwords {
		if err := validHash(h); err != nil {
			delete(users.passwords, user)
			a.rep.add(NotRecreated, "/etc/shadow", "user %s: the password hash cannot be passed as a credential: %v", user, err)
		}
	}
	a.progress("analysing enabled units")
	links, err := a.etcUnitLinks()
	if err != nil {
		return nil, err
	}
	a.en = analyzeEnablement(root, links)

	a.progress("copying defaults to %s", FactoryDir)
	if err := a.walkTop(); err != nil {
		return nil, err
	}
	if err := a.fixDirTimes(); err != nil {
		return nil, err
	}
	if !opt.KeepAlternativeLinks {
		a.progress("resolving links into /etc/alternatives")
		if err := a.resolveAlternatives(); err != nil {
			return nil, err
		}
	}
	a.progress("updating os-release")
	if err := a.osRelease(); err != nil {
		return nil, err
	}
	a.progress("writing tmpfiles.d, sysusers.d and preset files")
	if err := a.writeGenerated(users); err != nil {
		return nil, err
	}
	if err := a.stampTouched(); err != nil {
		return nil, err
	}
	a.rep.sort()
	return a.rep, nil
}

// checkTree refuses a tree without a merged /usr: its /bin, /sbin and /lib
// would not be shipped.
func (a *applier) checkTree() error {
	fi, err := os.Stat(a.host("/usr"))
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("hermetic: %s has no /usr directory", a.root)
	}
	for _, d := range []string{"bin", "sbin", "lib"} {
		fi, err := os.Lstat(a.host("/" + d))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("hermetic: /%s in %s is not a symbolic link into /usr: the tree must have a merged /usr", d, a.root)
		}
	}
	return nil
}

// undoPrevious removes what an earlier Apply put into the factory directory,
// found through the C lines of its tmpfiles.d file, so that entries whose
// source has gone do not linger.
func (a *applier) undoPrevious() error {
	data, err := os.ReadFile(a.host(TmpfilesPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	var dirs []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		l, err := ParseTmpfilesLine(line)
		if err != nil || l.Type != "C" || l.Argument != "" {
			continue
		}
		fp := a.host(path.Join(FactoryDir, l.Path))
		fi, err := os.Lstat(fp)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			dirs = append(dirs, fp)
		} else if err := os.Remove(fp); err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		a.touch(filepath.Dir(fp))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if os.Remove(d) == nil { // only when empty: not everything there is ours
			a.touch(filepath.Dir(d))
		}
	}
	return nil
}

// touch records that the host path p (and so its directory) was written.
func (a *applier) touch(p string) {
	a.touched[p] = true
	a.touched[filepath.Dir(p)] = true
}

// stampTouched gives everything Apply wrote in /usr, and every directory
// above it up to /usr, the time SourceDateEpoch says, deepest first.
func (a *applier) stampTouched() error {
	if a.opt.SourceDateEpoch == nil {
		return nil
	}
	usr := a.host("/usr")
	a.touched[a.host(FactoryDir)] = true
	seen := map[string]bool{}
	var paths []string
	for p := range a.touched {
		for q := p; strings.HasPrefix(q, usr) && !seen[q]; q = filepath.Dir(q) {
			seen[q] = true
			paths = append(paths, q)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	ts := []syscall.Timespec{syscall.NsecToTimespec(a.opt.SourceDateEpoch.UnixNano()), syscall.NsecToTimespec(a.opt.SourceDateEpoch.UnixNano())}
	for _, p := range paths {
		if err := lutimes(p, ts); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hermetic: setting the time of %s: %w", p, err)
		}
	}
	return nil
}

func (a *applier) lstat(p string) (node, error) {
	host := a.host(p)
	fi, err := os.Lstat(host)
	if err != nil {
		return node{}, err
	}
	n := node{path: p, host: host, mode: fi.Mode(), st: fi.Sys().(*syscall.Stat_t)}
	if n.mode&fs.ModeSymlink != 0 {
		if n.target, err = os.Readlink(host); err != nil {
			return node{}, err
		}
	}
	return n, nil
}

// children lists the entries of a directory of the tree, sorted.
func (a *applier) children(p string) ([]node, error) {
	ents, err := os.ReadDir(a.host(p))
	if err != nil {
		return nil, fmt.Errorf("hermetic: %w", err)
	}
	out := make([]node, 0, len(ents))
	for _, e := range ents {
		n, err := a.lstat(path.Join(p, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("hermetic: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// count returns how many entries the subtree at n has, n included.
func (a *applier) count(n node) int {
	c := 1
	if n.mode.IsDir() {
		_ = filepath.WalkDir(n.host, func(_ string, _ fs.DirEntry, err error) error {
			if err == nil {
				c++
			}
			return nil
		})
		c-- // WalkDir visits n itself too
	}
	return c
}

// etcUnitLinks returns the symbolic links under /etc/systemd/system, by path
// relative to it.
func (a *applier) etcUnitLinks() (map[string]string, error) {
	links := map[string]string{}
	base := a.host(etcSystemUnits)
	if _, err := os.Lstat(base); errors.Is(err, fs.ErrNotExist) {
		return links, nil
	}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			links[filepath.ToSlash(rel)] = t
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hermetic: %w", err)
	}
	return links, nil
}

// apiDirs are mounted or populated by the kernel and systemd at boot.
var apiDirs = map[string]string{
	"proc": "API file system mounted at boot",
	"sys":  "API file system mounted at boot",
	"dev":  "API file system mounted at boot (devtmpfs provides the device nodes)",
	"run":  "tmpfs mounted at boot",
	"tmp":  "temporary files",
}

// baseFilesystem is what systemd's switch-root creates on an empty root
// before PID 1 runs (base_filesystem_create() in 252): directories with
// these modes, owned by root.
var baseFilesystem = map[string]uint32{"/root": 0o750, "/etc": 0o755, "/var": 0o755, "/usr": 0o755}

func (a *applier) walkTop() error {
	top, err := a.children("/")
	if err != nil {
		return err
	}
	for _, n := range top {
		name := strings.TrimPrefix(n.path, "/")
		switch {
		case name == "usr" || name == "lost+found":
			continue
		case apiDirs[name] != "":
			if c := a.count(n) - 1; c > 0 && n.mode.IsDir() {
				a.rep.Findings = append(a.rep.Findings, Finding{Path: n.path, Kind: Dropped, Reason: apiDirs[name] + "; the tree's content is not shipped", Entries: c})
			}
			continue
		case n.mode&fs.ModeSymlink != 0:
			t := strings.TrimPrefix(n.target, "/")
			if t == "usr" || strings.HasPrefix(t, "usr/") {
				// The merged-/usr links. switch-root makes bin, sbin, lib
				// and lib64 itself; the lines make the others and serve
				// boots without switch-root.
				if d, ok := a.decl[n.path]; ok {
					a.compareDeclared(n, d)
				} else {
					a.addLine(TmpfilesLine{Type: "L", Path: n.path, Argument: n.target})
				}
				continue
			}
			a.rep.add(Dropped, n.path, "a link at the top of the tree that does not point into /usr")
			continue
		case !n.mode.IsDir():
			a.rep.add(Dropped, n.path, "a file at the top of the tree is not shipped")
			continue
		}
		if name == "boot" || name == "efi" {
			if c := a.count(n) - 1; c > 0 {
				a.rep.Findings = append(a.rep.Findings, Finding{Path: n.path, Kind: Dropped, Reason: "the kernel and initrd are shipped in the unified kernel image, not in /usr; the directory itself is recreated empty", Entries: c})
			}
			// The empty directory is recreated; systemd-gpt-auto-generator
			// mounts the ESP there (or on /efi), creating it if need be.
			if err := a.handle(n, true); err != nil {
				return err
			}
			continue
		}
		if err := a.walk(n); err != nil {
			return err
		}
	}
	return nil
}

// walk handles n and, for a directory, everything beneath it.
func (a *applier) walk(n node) error {
	t := n.typeChar()
	for _, r := range a.rules {
		if r.match(n.path, t, n.st.Size) {
			a.rep.Findings = append(a.rep.Findings, Finding{Path: n.path, Kind: Dropped, Reason: r.Reason, Entries: a.count(n)})
			return nil
		}
	}
	switch n.path {
	case "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow":
		// systemd-sysusers writes these (passwd and group 0644, shadow and
		// gshadow 0000); a z line restores the tree's mode and owner.
		want := map[string]uint32{"/etc/passwd": 0o644, "/etc/group": 0o644}[n.path]
		if n.st.Mode&0o7777 != want || n.st.Uid != 0 || n.st.Gid != 0 {
			a.addLine(TmpfilesLine{Type: "z", Path: n.path, Mode: fmt.Sprintf("%04o", n.st.Mode&0o7777), User: strconv.FormatUint(uint64(n.st.Uid), 10), Group: strconv.FormatUint(uint64(n.st.Gid), 10)})
		}
		return nil
	case "/etc/os-release":
		// systemd reads /etc/os-release first; it must follow the one in
		// /usr that carries IMAGE_ID= and IMAGE_VERSION=.
		if n.target != "../usr/lib/os-release" && n.target != "/usr/lib/os-release" {
			a.rep.add(Fixed, n.path, "recreated as a link to ../usr/lib/os-release, which holds the same content plus the image fields")
		}
		a.addLine(TmpfilesLine{Type: "L", Path: n.path, Argument: "../usr/lib/os-release"})
		return nil
	}
	if n.path == "/var/log/journal" && n.mode.IsDir() {
		a.persistentJournal = true
	}
	recurse := n.mode.IsDir()
	if d, ok := a.decl[n.path]; ok {
		a.compareDeclared(n, d)
		if d.Line.Type[0] == 'L' || !n.mode.IsDir() {
			recurse = false
		}
		if mode, ok := baseFilesystem[n.path]; ok {
			a.fixBaseDir(n, mode)
		}
		// The factory still needs the directory as the parent of the
		// entries beneath it.
	} else if err := a.handle(n, true); err != nil {
		return err
	}
	if !recurse {
		return nil
	}
	kids, err := a.children(n.path)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := a.walk(k); err != nil {
			return err
		}
	}
	return nil
}

// fixBaseDir adds a z line when switch-root would create a top-level
// directory with another mode or owner than the tree's.
func (a *applier) fixBaseDir(n node, mode uint32) {
	if n.st.Mode&0o7777 != mode || n.st.Uid != 0 || n.st.Gid != 0 {
		a.addLine(TmpfilesLine{Type: "z", Path: n.path, Mode: fmt.Sprintf("%04o", n.st.Mode&0o7777), User: strconv.FormatUint(uint64(n.st.Uid), 10), Group: strconv.FormatUint(uint64(n.st.Gid), 10)})
	}
}

// handle copies n into the factory and adds its tmpfiles.d line.
func (a *applier) handle(n node, line bool) error {
	if strings.HasPrefix(n.path, etcSystemUnits+"/") {
		rel := strings.TrimPrefix(n.path, etcSystemUnits+"/")
		if a.en.covered[rel] {
			return nil
		}
		switch {
		case n.mode&fs.ModeSymlink != 0 && n.target == "/dev/null":
			a.rep.add(Late, n.path, "unit masked in /etc: first boot loads units before tmpfiles restores the mask")
		case n.mode&fs.ModeSymlink != 0:
			a.rep.add(Late, n.path, "link in /etc/systemd/system that no preset recreates: first boot loads units before tmpfiles restores it")
		case n.mode.IsRegular():
			a.rep.add(Late, n.path, "unit file or drop-in in /etc: first boot loads units before tmpfiles restores it; ship it in /usr/lib/systemd/system")
		}
	} else {
		a.checkLate(n)
	}
	if mode, ok := baseFilesystem[n.path]; ok {
		a.fixBaseDir(n, mode)
		line = false // it exists before tmpfiles runs
	}
	switch {
	case n.mode&fs.ModeSymlink != 0:
		l := TmpfilesLine{Type: "L", Path: n.path, Argument: n.target}
		if n.st.Uid != 0 || n.st.Gid != 0 {
			l.User, l.Group = strconv.FormatUint(uint64(n.st.Uid), 10), strconv.FormatUint(uint64(n.st.Gid), 10)
		}
		a.addLine(l)
		return nil
	case n.mode&fs.ModeSocket != 0:
		a.rep.add(NotRecreated, n.path, "a socket is runtime state; tmpfiles cannot create one")
		return nil
	}
	if err := a.copyToFactory(n); err != nil {
		return err
	}
	if line {
		a.addLine(TmpfilesLine{Type: "C", Path: n.path})
	}
	return nil
}

func (a *applier) addLine(l TmpfilesLine) {
	if _, err := l.Format(); err != nil {
		a.rep.add(NotRecreated, l.Path, "%v", err)
		return
	}
	a.lines = append(a.lines, l)
}

// checkLate reports configuration that first boot reads before
// systemd-tmpfiles-setup.service restores it.
func (a *applier) checkLate(n node) {
	if strings.HasPrefix(n.path, "/etc/init.d/") && n.mode.IsRegular() && n.mode&0o111 != 0 {
		// systemd-sysv-generator names the unit after the script, without
		// a ".sh" suffix; a native unit of that name (or a mask) wins.
		name := strings.TrimSuffix(path.Base(n.path), ".sh")
		for _, dir := range systemUnitDirs {
			if _, err := os.Lstat(a.host(path.Join(dir, name+".service"))); err == nil {
				return
			}
		}
		a.rep.add(Late, n.path, "SysV init script without a native unit: systemd-sysv-generator runs before tmpfiles restores it")
		return
	}
	if !isEarlyConfig(n.path) {
		return
	}
	var data []byte
	switch {
	case n.mode&fs.ModeSymlink != 0:
		if n.path == "/etc/localtime" {
			zone := n.target
			if i := strings.Index(zone, "zoneinfo/"); i >= 0 {
				zone = zone[i+len("zoneinfo/"):]
			}
			if utcZones[zone] {
				return
			}
			a.rep.add(Late, n.path, "PID 1 reads the time zone before tmpfiles restores it")
			return
		}
		if n.target == "/dev/null" {
			a.rep.add(Late, n.path, "masks configuration that first boot reads before tmpfiles restores the mask")
			return
		}
		target := n.target
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(n.path), target)
		}
		d, err := readInRoot(a.root, target)
		if err != nil {
			return
		}
		data = d
	case n.mode.IsRegular():
		d, err := os.ReadFile(n.host)
		if err != nil {
			return
		}
		data = d
	default:
		return
	}
	if effective(data) {
		a.rep.add(Late, n.path, "read early on first boot, before tmpfiles restores it: in effect from the second boot on")
	}
}

// compareDeclared reports when another package's tmpfiles.d line recreates
// a path differently from the tree.
func (a *applier) compareDeclared(n node, d declaration) {
	l := d.Line
	diff := func(format string, args ...any) {
		a.rep.add(Changed, n.path, "recreated by %s (%s): %s", d.Source, l.Type, fmt.Sprintf(format, args...))
	}
	switch l.Type[0] {
	case 'L':
		want := l.Argument
		if want == "" {
			want = path.Join(FactoryDir, l.Path)
		}
		if n.mode&fs.ModeSymlink == 0 {
			diff("a link to %s instead of the tree's %s", want, typeName(n))
		} else if n.target != want {
			diff("a link to %s instead of %s", want, n.target)
		}
		return
	case 'd', 'D', 'v', 'q', 'Q':
		if !n.mode.IsDir() {
			diff("a directory instead of the tree's %s", typeName(n))
			return
		}
		a.compareAttrs(n, l, 0o755, diff)
	case 'f', 'F':
		if !n.mode.IsRegular() {
			diff("a file instead of the tree's %s", typeName(n))
			return
		}
		if l.Argument == "" && n.st.Size != 0 {
			diff("empty, while the tree's file has %d bytes", n.st.Size)
		} else if l.Argument != "" {
			if data, err := os.ReadFile(n.host); err != nil || string(data) != l.Argument {
				diff("with other content than the tree's")
			}
		}
		a.compareAttrs(n, l, 0o644, diff)
	}
}

func (a *applier) compareAttrs(n node, l TmpfilesLine, defMode uint32, diff func(string, ...any)) {
	if m := strings.TrimLeft(l.Mode, ":"); l.Mode != "-" && !strings.HasPrefix(m, "~") {
		if v, err := strconv.ParseUint(m, 8, 32); err == nil && uint32(v) != n.st.Mode&0o7777 {
			diff("mode %04o instead of %04o", v, n.st.Mode&0o7777)
		}
	} else if l.Mode == "-" && n.st.Mode&0o7777 != defMode {
		diff("mode %04o (the default) instead of %04o when it is missing", defMode, n.st.Mode&0o7777)
	}
	if id, ok := a.lookupID("/etc/passwd", strings.TrimPrefix(l.User, ":")); ok && id != n.st.Uid {
		diff("owner %d instead of %d", id, n.st.Uid)
	}
	if id, ok := a.lookupID("/etc/group", strings.TrimPrefix(l.Group, ":")); ok && id != n.st.Gid {
		diff("group %d instead of %d", id, n.st.Gid)
	}
}

// lookupID resolves a user or group column through the tree's files.
func (a *applier) lookupID(file, name string) (uint32, bool) {
	if name == "-" || name == "" {
		return 0, false
	}
	if v, err := parseID(name); err == nil {
		return v, true
	}
	data, err := readInRoot(a.root, file)
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 3 && f[0] == name {
			if v, err := parseID(f[2]); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

func typeName(n node) string {
	switch n.typeChar() {
	case 'f':
		return "regular file"
	case 'd':
		return "directory"
	case 'l':
		return "link to " + n.target
	}
	return "special file"
}

// copyToFactory copies n to the same path under the factory directory,
// keeping type, content, mode, owner, timestamps, extended attributes and
// hard links between copied files.
func (a *applier) copyToFactory(n node) error {
	fp := path.Join(FactoryDir, n.path)
	dst := a.host(fp)
	if err := a.ensureFactoryParent(path.Dir(n.path)); err != nil {
		return err
	}
	if fi, err := os.Lstat(dst); err == nil && !(fi.IsDir() && n.mode.IsDir()) {
		if err := os.RemoveAll(dst); err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
	}
	a.rep.FactoryEntries++
	key := [2]uint64{n.st.Dev, n.st.Ino}
	switch {
	case n.mode.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("hermetic: %w", err)
		}
		a.dirTimes = append(a.dirTimes, node{path: n.path, host: dst, st: n.st})
	case n.mode.IsRegular():
		if n.st.Nlink > 1 {
			if first, ok := a.hardlinks[key]; ok {
				if err := os.Link(a.host(first), dst); err != nil {
					return fmt.Errorf("hermetic: %w", err)
				}
				a.rep.add(Changed, n.path, "hard link to %s: restored as a link only when tmpfiles copies a directory holding both, otherwise as a separate copy", strings.TrimPrefix(first, FactoryDir))
				return nil
			}
			a.hardlinks[key] = fp
		}
		if err := copyContent(n.host, dst); err != nil {
			return err
		}
	default: // FIFO or device node
		if err := syscall.Mknod(dst, n.st.Mode, int(n.st.Rdev)); err != nil {
			return fmt.Errorf("hermetic: mknod %s: %w", dst, err)
		}
	}
	if err := os.Lchown(dst, int(n.st.Uid), int(n.st.Gid)); err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	// chmod after chown: chown clears the set-ID bits.
	if err := syscall.Chmod(dst, n.st.Mode&0o7777); err != nil {
		return fmt.Errorf("hermetic: chmod %s: %w", dst, err)
	}
	if n.mode.IsRegular() || n.mode.IsDir() {
		names, err := copyXattrs(n.host, dst)
		if err != nil {
			return err
		}
		var lost []string
		for _, name := range names {
			if !(strings.HasPrefix(name, "system.posix_acl_") && a.acls[n.path]) {
				lost = append(lost, name)
			}
		}
		if len(lost) > 0 {
			a.rep.add(NotRecreated, n.path, "extended attributes %s: tmpfiles' C copies only user.* attributes", strings.Join(lost, ", "))
		}
	}
	if !n.mode.IsDir() {
		return setTimes(dst, n.st)
	}
	return nil
}

// ensureFactoryParent creates the factory copies of p and its parents that
// are missing (a parent whose own path is declared elsewhere or is one of the
// base directories is not copied by walk), with the tree's metadata.
func (a *applier) ensureFactoryParent(p string) error {
	dst := a.host(path.Join(FactoryDir, p))
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return nil
	}
	if p != "/" {
		if err := a.ensureFactoryParent(path.Dir(p)); err != nil {
			return err
		}
	}
	src, err := a.lstat(p)
	if err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	if p == "/" {
		// /usr/share/factory itself: mode and owner of a /usr directory.
		return os.MkdirAll(dst, 0o755)
	}
	if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("hermetic: %w", err)
	}
	if err := os.Lchown(dst, int(src.st.Uid), int(src.st.Gid)); err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	if err := syscall.Chmod(dst, src.st.Mode&0o7777); err != nil {
		return fmt.Errorf("hermetic: chmod %s: %w", dst, err)
	}
	a.dirTimes = append(a.dirTimes, node{path: p, host: dst, st: src.st})
	return nil
}

// fixDirTimes gives the factory directories the tree's timestamps, deepest
// first, after their content is in place.
func (a *applier) fixDirTimes() error {
	sort.SliceStable(a.dirTimes, func(i, j int) bool { return a.dirTimes[i].path > a.dirTimes[j].path })
	for _, d := range a.dirTimes {
		if err := setTimes(d.host, d.st); err != nil {
			return err
		}
	}
	return nil
}

func setTimes(p string, st *syscall.Stat_t) error {
	at := time.Unix(st.Atim.Sec, st.Atim.Nsec)
	mt := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if err := os.Chtimes(p, at, mt); err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	return nil
}

func copyContent(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("hermetic: copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	return nil
}

// copyXattrs copies all extended attributes and returns the names of those
// tmpfiles' C will not copy on (anything but user.*), sorted.
func copyXattrs(src, dst string) ([]string, error) {
	size, err := syscall.Listxattr(src, nil)
	if err != nil {
		if errors.Is(err, syscall.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("hermetic: listxattr %s: %w", src, err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = syscall.Listxattr(src, buf)
	if err != nil {
		return nil, fmt.Errorf("hermetic: listxattr %s: %w", src, err)
	}
	var lost []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsize, err := syscall.Getxattr(src, name, nil)
		if err != nil {
			return nil, fmt.Errorf("hermetic: getxattr %s %s: %w", src, name, err)
		}
		val := make([]byte, vsize)
		if vsize, err = syscall.Getxattr(src, name, val); err != nil {
			return nil, fmt.Errorf("hermetic: getxattr %s %s: %w", src, name, err)
		}
		if err := syscall.Setxattr(dst, name, val[:vsize], 0); err != nil {
			return nil, fmt.Errorf("hermetic: setxattr %s %s: %w", dst, name, err)
		}
		if !strings.HasPrefix(name, "user.") {
			lost = append(lost, name)
		}
	}
	sort.Strings(lost)
	return lost, nil
}

// resolveAlternatives points links in /usr that lead into /etc/alternatives
// straight at the alternative's target, so that /usr works before /etc is
// populated (and with an empty /etc at all).
func (a *applier) resolveAlternatives() error {
	usr := a.host("/usr")
	return filepath.WalkDir(usr, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		rel, _ := filepath.Rel(a.root, p)
		inTree := "/" + filepath.ToSlash(rel)
		abs := target
		if !path.IsAbs(abs) {
			abs = path.Join(path.Dir(inTree), abs)
		}
		if !strings.HasPrefix(abs, "/etc/alternatives/") {
			return nil
		}
		final := ""
		for hops := 0; hops < 40 && strings.HasPrefix(abs, "/etc/"); hops++ {
			t, err := os.Readlink(a.host(abs))
			if err != nil {
				return nil // not a link chain we can follow: leave it
			}
			final = t
			if !path.IsAbs(t) {
				t = path.Join(path.Dir(abs), t)
			}
			abs = t
		}
		if strings.HasPrefix(abs, "/etc/") {
			return nil
		}
		if h, err := resolveInRoot(a.root, abs); err != nil || !exists(h) {
			a.rep.add(NotRecreated, inTree, "points through /etc/alternatives at %s, which the tree does not have", final)
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		if err := os.Symlink(final, p); err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
		a.touch(p)
		a.rep.add(Fixed, inTree, "pointed at %s directly instead of through %s, so that it works before /etc is populated", final, target)
		return nil
	})
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// osRelease makes /usr/lib/os-release a regular file with the image fields.
func (a *applier) osRelease() error {
	usrLib := a.host(osrelease.UsrLibOSReleasePath)
	var rel *osrelease.Release
	fi, err := os.Lstat(usrLib)
	if err == nil && fi.Mode().IsRegular() {
		if rel, err = osrelease.ReadFile(a.root, osrelease.UsrLibOSReleasePath); err != nil {
			return fmt.Errorf("hermetic: %w", err)
		}
	} else {
		if rel, _, err = osrelease.Load(a.root); err != nil {
			return fmt.Errorf("hermetic: the tree has no os-release: %w", err)
		}
		a.rep.add(Fixed, osrelease.UsrLibOSReleasePath, "made a regular file in /usr")
	}
	for _, kv := range [][2]string{{osrelease.KeyImageID, a.opt.ImageID}, {osrelease.KeyImageVersion, a.opt.ImageVersion}} {
		if kv[1] == "" {
			continue
		}
		if err := rel.Set(kv[0], kv[1]); err != nil {
			return fmt.Errorf("hermetic: os-release: %w", err)
		}
	}
	a.touch(usrLib)
	return writeFile(usrLib, rel.Format(), 0o644)
}

// writeFile replaces p with data (a link at p is replaced, not followed),
// owned by root.
func writeFile(p string, data []byte, mode uint32) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	tmp := p + ".imago-tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("hermetic: %w", err)
	}
	if err := os.Chown(tmp, 0, 0); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hermetic: %w", err)
	}
	if err := syscall.Chmod(tmp, mode); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hermetic: chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hermetic: %w", err)
	}
	return nil
}

// journalStorageSet reports whether journald.conf or a drop-in in /etc or
// /usr (other than ours) sets Storage=.
func (a *applier) journalStorageSet() bool {
	files := []string{"/etc/systemd/journald.conf"}
	for _, dir := range []string{"/etc/systemd/journald.conf.d", "/usr/local/lib/systemd/journald.conf.d", "/usr/lib/systemd/journald.conf.d"} {
		ents, _ := os.ReadDir(a.host(dir))
		for _, e := range ents {
			if p := path.Join(dir, e.Name()); p != JournaldDropIn {
				files = append(files, p)
			}
		}
	}
	for _, f := range files {
		data, err := readInRoot(a.root, f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "Storage=") {
				return true
			}
		}
	}
	return false
}

func (a *applier) writeGenerated(users *usersPlan) error {
	var gen []string
	put := func(p string, data []byte, mode uint32) error {
		gen = append(gen, p)
		a.touch(a.host(p))
		return writeFile(a.host(p), data, mode)
	}

	sortTmpfiles(a.lines)
	var tf bytes.Buffer
	tf.WriteString("# Generated by imago: recreates the image's defaults outside /usr on an\n# empty root file system, from " + FactoryDir + ".\n")
	for _, l := range a.lines {
		s, _ := l.Format() // checked in addLine
		tf.WriteString(s + "\n")
	}
	a.rep.TmpfilesLines = len(a.lines)
	if err := put(TmpfilesPath, tf.Bytes(), 0o644); err != nil {
		return err
	}

	var su bytes.Buffer
	su.WriteString("# Generated by imago: the image's system users and groups with their IDs.\n")
	for _, l := range users.lines {
		su.WriteString(l + "\n")
	}
	a.rep.Users, a.rep.Groups = users.users, users.groups
	if err := put(SysusersPath, su.Bytes(), 0o644); err != nil {
		return err
	}

	haveSystemd := false
	if fi, err := os.Stat(a.host("/usr/lib/systemd/system")); err == nil && fi.IsDir() {
		haveSystemd = true
	}
	unitExists := func(name string) bool {
		_, err := os.Lstat(a.host("/usr/lib/systemd/system/" + name))
		return err == nil
	}
	for _, p := range []string{SysusersDropIn, FirstbootDropIn, JournaldDropIn} {
		if err := os.Remove(a.host(p)); err == nil {
			a.touch(filepath.Dir(a.host(p)))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hermetic: %w", err)
		}
	}
	if a.persistentJournal && haveSystemd && !a.journalStorageSet() {
		// systemd-journal-flush.service runs before systemd-tmpfiles-setup,
		// so with Storage=auto the first boot would find no /var/log/journal
		// and keep its journal in /run. Storage=persistent makes journald
		// create the directory, which the tree's journal setting amounts to.
		data := "# Generated by imago: the image keeps its journal on disk, from the first boot on.\n[Journal]\nStorage=persistent\n"
		if err := put(JournaldDropIn, []byte(data), 0o644); err != nil {
			return err
		}
		a.rep.add(Fixed, "/var/log/journal", "journald is set to Storage=persistent: with Storage=auto the first boot's journal would stay in /run, because journalctl --flush runs before tmpfiles creates /var/log/journal")
	}
	if haveSystemd {
		var pr bytes.Buffer
		pr.WriteString("# Generated by imago: the units the image enables. PID 1 applies this on\n# first boot; everything else stays disabled.\n")
		for _, p := range a.en.presets {
			pr.WriteString(p + "\n")
		}
		pr.WriteString("disable *\n")
		a.rep.EnabledUnits = nil
		for _, p := range a.en.presets {
			a.rep.EnabledUnits = append(a.rep.EnabledUnits, strings.TrimPrefix(p, "enable "))
		}
		if err := put(PresetPath, pr.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if len(users.passwords) > 0 && unitExists("systemd-sysusers.service") {
		var b bytes.Buffer
		b.WriteString("# Generated by imago: password hashes systemd-sysusers gives the accounts\n# it creates; a credential passed at boot takes precedence.\n[Service]\n")
		names := make([]string, 0, len(users.passwords))
		for n := range users.passwords {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "SetCredential=passwd.hashed-password.%s:%s\n", n, users.passwords[n])
		}
		// Readable by root only: the hashes are secrets of a kind.
		if err := put(SysusersDropIn, b.Bytes(), 0o600); err != nil {
			return err
		}
	}
	if !a.opt.FirstbootPrompts && unitExists("systemd-firstboot.service") {
		data := "# Generated by imago: first boot must not wait for answers on the console.\n[Service]\nExecStart=\nExecStart=systemd-firstboot\n"
		if err := put(FirstbootDropIn, []byte(data), 0o644); err != nil {
			return err
		}
	}
	a.rep.Generated = gen
	return nil
}
