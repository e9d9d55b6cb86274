package unitfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ConfPaths returns systemd's standard search directories for a
// configuration name such as "repart.d" or "sysupdate.d", highest priority
// first: /etc, /run, /usr/local/lib, /usr/lib (CONF_PATHS in v252). Debian's
// v252 build (split /usr) also searches /lib/NAME last; append it when
// reading a tree where /lib is not a link to /usr/lib.
func ConfPaths(name string) []string {
	return []string{"/etc/" + name, "/run/" + name, "/usr/local/lib/" + name, "/usr/lib/" + name}
}

// maxSymlinks bounds symlink resolution, like the kernel's and systemd's
// limit, so a loop ends in an error.
const maxSymlinks = 32

// nullDevice is where a masking symlink points.
const nullDevice = "dev/null"

// ErrSymlinkLoop is returned when resolving a path meets too many symlinks.
var ErrSymlinkLoop = errors.New("too many levels of symbolic links")

// linkFS is what an fs.FS needs for symlinks to be resolved inside it. It is
// the method set of fs.ReadLinkFS, which os.DirFS and fstest.MapFS have.
type linkFS interface {
	ReadLink(name string) (string, error)
	Lstat(name string) (fs.FileInfo, error)
}

// fsPath turns a directory or file name as callers write it ("/etc/repart.d"
// or "repart.d") into an fs.FS name, and reports whether it was absolute.
func fsPath(p string) (string, bool, error) {
	abs := strings.HasPrefix(p, "/")
	c := path.Clean("/" + p)[1:]
	if !abs {
		c = path.Clean(p)
		if c == ".." || strings.HasPrefix(c, "../") {
			return "", false, fmt.Errorf("unitfile: %q: path leaves the file system root", p)
		}
	}
	if c == "" {
		c = "."
	}
	return c, abs, nil
}

// displayPath turns an fs.FS name back into the caller's style.
func displayPath(name string, abs bool) string {
	if abs {
		return path.Join("/", name)
	}
	return name
}

// resolve follows the symlinks in name inside fsys, component by component,
// so that an absolute link target means a path inside fsys (as systemd's
// chase_symlinks() with a root directory does). A path that ends at /dev/null
// is returned as "dev/null" even if fsys has no such file. If fsys cannot
// read links, name is returned as it is and fsys follows links by itself.
func resolve(fsys fs.FS, name string) (string, error) {
	if name == nullDevice {
		return nullDevice, nil
	}
	lfs, ok := fsys.(linkFS)
	if !ok {
		return name, nil
	}
	var todo []string
	if name != "." {
		todo = strings.Split(name, "/")
	}
	done := "."
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, c)
		if next == nullDevice && len(todo) == 0 {
			return nullDevice, nil
		}
		fi, err := lfs.Lstat(next)
		if err != nil {
			return path.Join(append([]string{next}, todo...)...), err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: name, Err: ErrSymlinkLoop}
		}
		target, err := lfs.ReadLink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = "."
		}
		// A link to /dev/null masks even where fsys has no /dev.
		if path.Join(append([]string{done, target}, todo...)...) == nullDevice {
			return nullDevice, nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return done, nil
}

// hiddenOrBackup is systemd's hidden_or_backup_file(): directory entries
// that conf file enumeration never looks at.
func hiddenOrBackup(name string) bool {
	if strings.HasPrefix(name, ".") || name == "lost+found" || name == "aquota.user" ||
		name == "aquota.group" || strings.HasSuffix(name, "~") {
		return true
	}
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return false
	}
	switch name[dot+1:] {
	case "rpmnew", "rpmsave", "rpmorig", "dpkg-old", "dpkg-new", "dpkg-tmp", "dpkg-dist",
		"dpkg-bak", "dpkg-backup", "dpkg-remove", "ucf-new", "ucf-old", "ucf-dist",
		"swp", "bak", "old", "new":
		return true
	}
	return false
}

// listOptions select between the two ways systemd enumerates.
type listOptions struct {
	// filter: stat each candidate, drop masks (empty files, character
	// devices, links to /dev/null) and everything that is not a regular
	// file. Without it every name counts, as for drop-ins.
	filter bool
}

// listFiles is systemd's conf_files_list_strv(): the names ending in suffix
// in all dirs, one per file name (the earliest directory wins), sorted by
// file name.
func listFiles(fsys fs.FS, dirs []string, suffix string, opt listOptions) ([]string, error) {
	found := map[string]string{}
	masked := map[string]bool{}
	for _, dir := range dirs {
		name, abs, err := fsPath(dir)
		if err != nil {
			return nil, err
		}
		// Like systemd, a directory that is missing or unreadable is
		// skipped.
		resolved, err := resolve(fsys, name)
		if err != nil {
			continue
		}
		entries, err := fs.ReadDir(fsys, resolved)
		if err != nil {
			continue
		}
		for _, de := range entries {
			n := de.Name()
			if hiddenOrBackup(n) || !strings.HasSuffix(n, suffix) {
				continue
			}
			if _, ok := found[n]; ok || masked[n] {
				continue
			}
			if opt.filter {
				kind := classify(fsys, path.Join(resolved, n))
				if kind == kindMask {
					masked[n] = true
				}
				if kind != kindRegular {
					continue
				}
			}
			found[n] = displayPath(path.Join(resolved, n), abs)
		}
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = found[n]
	}
	return out, nil
}

type fileKind int

const (
	kindSkip fileKind = iota // missing, dangling or not a regular file
	kindMask
	kindRegular
)

// classify is systemd's null_or_empty() test plus its regular-file filter.
func classify(fsys fs.FS, name string) fileKind {
	resolved, err := resolve(fsys, name)
	if err != nil {
		return kindSkip
	}
	if resolved == nullDevice {
		return kindMask
	}
	fi, err := fs.Stat(fsys, resolved)
	if err != nil {
		return kindSkip
	}
	switch m := fi.Mode(); {
	case m.IsRegular() && fi.Size() <= 0:
		return kindMask
	case m&fs.ModeCharDevice != 0:
		return kindMask
	case m.IsRegular():
		return kindRegular
	}
	return kindSkip
}

// ListConfFiles enumerates configuration files the way systemd does for
// repart.d, sysupdate.d and the like (conf_files_list_strv() with
// CONF_FILES_REGULAR|CONF_FILES_FILTER_MASKED in v252).
//
// dirs are searched in order of priority. Of several files with the same
// name the one in the earliest directory is used. A file that is empty, a
// character device or a symlink to /dev/null masks the name: it and every
// same-named file in later directories are left out. Entries that are not
// regular files, dangling symlinks, hidden files (".name") and backup files
// ("name~", ".dpkg-old" and the like) are skipped, as are directories that
// do not exist. An empty suffix accepts any name. The result is sorted by
// file name (bytewise) and holds each file as its directory was given,
// joined with the name, after following symlinks in the directory's path.
//
// dirs may be absolute ("/etc/repart.d") or relative ("repart.d"); both
// name paths inside fsys. Symlinks are resolved inside fsys when it can read
// them (os.DirFS, fstest.MapFS), so an image tree read with
// os.DirFS(root) behaves like systemd's --root=.
func ListConfFiles(fsys fs.FS, dirs []string, suffix string) ([]string, error) {
	return listFiles(fsys, dirs, suffix, listOptions{filter: true})
}

// ListDropIns enumerates the drop-ins for a file: the *.conf files in
// dir/dropInDir for each dir, one per file name (the earliest directory
// wins), sorted by file name. As in systemd (config_get_dropin_files()),
// names are not checked further: a masking drop-in is listed and reads as
// empty.
func ListDropIns(fsys fs.FS, dirs []string, dropInDir string) ([]string, error) {
	ds := make([]string, len(dirs))
	for i, d := range dirs {
		ds[i] = path.Join(d, dropInDir)
	}
	return listFiles(fsys, ds, ".conf", listOptions{})
}

// ReadFile parses the file at name in fsys (a path written as for
// ListConfFiles). A symlink to /dev/null reads as an empty file. A missing
// file is an error satisfying errors.Is(err, fs.ErrNotExist).
func ReadFile(fsys fs.FS, name string) (*File, error) {
	p, _, err := fsPath(name)
	if err != nil {
		return nil, err
	}
	resolved, err := resolve(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("unitfile: %s: %w", name, err)
	}
	var data []byte
	if resolved != nullDevice {
		data, err = fs.ReadFile(fsys, resolved)
		if err != nil {
			return nil, fmt.Errorf("unitfile: %s: %w", name, err)
		}
	}
	return Parse(name, bytes.NewReader(data))
}

// LoadWithDropIns reads the configuration file called name the way systemd's
// config_parse_many() does: the main file is dir/name from the first of dirs
// that has it (a symlink to /dev/null there reads as empty and so masks the
// later ones), then the drop-ins dir/name.d/*.conf across all dirs in
// ListDropIns order. Neither needs to exist; Sources tells what was read.
func LoadWithDropIns(fsys fs.FS, dirs []string, name string) (*File, error) {
	candidates := make([]string, len(dirs))
	for i, d := range dirs {
		candidates[i] = path.Join(d, name)
	}
	return loadMany(fsys, candidates, dirs, name+".d")
}

// LoadFileWithDropIns reads the file at file (usually one returned by
// ListConfFiles) and then its drop-ins: BASENAME.d/*.conf across dirs, in
// ListDropIns order. This is how systemd-repart reads each repart.d file.
func LoadFileWithDropIns(fsys fs.FS, file string, dirs []string) (*File, error) {
	return loadMany(fsys, []string{file}, dirs, path.Base(file)+".d")
}

// LoadAll reads every file ListConfFiles finds, each with its drop-ins (see
// LoadFileWithDropIns), in ListConfFiles order.
func LoadAll(fsys fs.FS, dirs []string, suffix string) ([]*File, error) {
	files, err := ListConfFiles(fsys, dirs, suffix)
	if err != nil {
		return nil, err
	}
	out := make([]*File, 0, len(files))
	for _, f := range files {
		parsed, err := LoadFileWithDropIns(fsys, f, dirs)
		if err != nil {
			return nil, err
		}
		out = append(out, parsed)
	}
	return out, nil
}

func loadMany(fsys fs.FS, candidates, dirs []string, dropInDir string) (*File, error) {
	parts := []*File{}
	for _, c := range candidates {
		f, err := ReadFile(fsys, c)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
		break
	}
	dropIns, err := ListDropIns(fsys, dirs, dropInDir)
	if err != nil {
		return nil, err
	}
	for _, d := range dropIns {
		f, err := ReadFile(fsys, d)
		if errors.Is(err, fs.ErrNotExist) {
			// A dangling drop-in still hides same-named ones in later
			// directories; systemd then skips it silently.
			continue
		}
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
	}
	return Merge(parts...), nil
}
