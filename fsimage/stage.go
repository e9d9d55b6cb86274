package fsimage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"
)

// prepareTree returns the directory mkfs reads the content from, and a
// function that removes it if it is a staging copy.
//
// Like systemd-repart, a single SourceDir (or CopyFiles entry "SRC:/")
// with no MakeDirectories is used as it is; anything else is assembled in
// a staging directory under TempDir: the copies in order, then the
// directories.
func prepareTree(opts Options) (string, func(), error) {
	nothing := func() {}
	copies := opts.copies()
	if len(copies) == 1 && len(opts.MakeDirectories) == 0 && filepath.Clean(copies[0].Target) == "/" {
		src, err := filepath.EvalSymlinks(copies[0].Source)
		if err != nil {
			return "", nothing, fmt.Errorf("fsimage: source %w", err)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return "", nothing, fmt.Errorf("fsimage: source %w", err)
		}
		if !fi.IsDir() {
			return "", nothing, fmt.Errorf("fsimage: source %s is not a directory", copies[0].Source)
		}
		return src, nothing, nil
	}
	root, err := os.MkdirTemp(opts.TempDir, "imago-fsimage-tree-")
	if err != nil {
		return "", nothing, fmt.Errorf("fsimage: %w", err)
	}
	cleanup := func() { os.RemoveAll(root) }
	// The root of the new file system: what mkfs gives a fresh one.
	if err := os.Chmod(root, 0o755); err != nil {
		cleanup()
		return "", nothing, fmt.Errorf("fsimage: %w", err)
	}
	for _, c := range copies {
		if err := copyFiles(root, c); err != nil {
			cleanup()
			return "", nothing, err
		}
	}
	for _, d := range opts.MakeDirectories {
		if _, err := resolveInRoot(root, d, true); err != nil {
			cleanup()
			return "", nothing, fmt.Errorf("fsimage: MakeDirectories %s: %w", d, err)
		}
	}
	return root, cleanup, nil
}

// copyFiles performs one CopyFiles= entry into the staging root, as
// systemd-repart 252's do_copy_files does:
//   - a directory source whose target exists as a directory is merged into
//     it (existing non-directories are replaced; the target directory keeps
//     its own attributes);
//   - a directory source whose target does not exist is copied as the
//     target, with missing parents created 0755;
//   - a regular-file source is copied to a target that must not exist;
//     it keeps its mode, times and extended attributes but, as in systemd,
//     is owned by root.
//
// The source is followed if it is a symlink. Within a copied tree, owners,
// modes, times, extended attributes, symlinks, device nodes, FIFOs, sockets
// and hard links among the copied files are kept.
func copyFiles(root string, c CopyFile) error {
	fail := func(err error) error {
		return fmt.Errorf("fsimage: CopyFiles %s:%s: %w", c.Source, c.Target, err)
	}
	st, err := stat(c.Source, true)
	if err != nil {
		return fail(err)
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		target, err := resolveInRoot(root, c.Target, false)
		if err == nil {
			tst, err := stat(target, false)
			if err != nil {
				return fail(err)
			}
			if tst.Mode&syscall.S_IFMT != syscall.S_IFDIR {
				return fail(fmt.Errorf("target exists and is not a directory"))
			}
			return wrapErr(fail, copyDirectory(c.Source, st, target, newHardlinks()))
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
		parent, name, err := makeParent(root, c.Target)
		if err != nil {
			return fail(err)
		}
		return wrapErr(fail, copyDirectory(c.Source, st, filepath.Join(parent, name), newHardlinks()))
	case syscall.S_IFREG:
		if filepath.Clean(c.Target) == "/" || strings.HasSuffix(c.Target, "/") {
			return fail(fmt.Errorf("target refers to a directory, but the source is a regular file"))
		}
		parent, name, err := makeParent(root, c.Target)
		if err != nil {
			return fail(err)
		}
		return wrapErr(fail, copySingleFile(c.Source, st, filepath.Join(parent, name)))
	default:
		return fail(fmt.Errorf("source is neither a regular file nor a directory"))
	}
}

func wrapErr(wrap func(error) error, err error) error {
	if err == nil {
		return nil
	}
	return wrap(err)
}

// makeParent creates the parent directories of target inside root and
// returns the resolved parent and the last name.
func makeParent(root, target string) (string, string, error) {
	clean := filepath.Clean("/" + target)
	name := filepath.Base(clean)
	if name == "/" || name == "." || name == ".." {
		return "", "", fmt.Errorf("target %q has no file name", target)
	}
	parent, err := resolveInRoot(root, filepath.Dir(clean), true)
	if err != nil {
		return "", "", err
	}
	return parent, name, nil
}

// maxSymlinks bounds symlink resolution inside the staging root, like the
// kernel's limit.
const maxSymlinks = 40

// resolveInRoot resolves the absolute path p inside root, following
// symlinks as if root were "/", and never leaving it. With mkdirs, missing
// directories are created 0755 (owned by the caller, root), otherwise a
// missing component is an error matching os.ErrNotExist.
func resolveInRoot(root, p string, mkdirs bool) (string, error) {
	todo := splitPath(p)
	var done []string // resolved components below root
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		next := filepath.Join(append([]string{root}, append(done, name)...)...)
		fi, err := os.Lstat(next)
		if errors.Is(err, os.ErrNotExist) && mkdirs {
			if err := os.Mkdir(next, 0o755); err != nil {
				return "", err
			}
			// The umask must not narrow the mode.
			if err := os.Chmod(next, 0o755); err != nil {
				return "", err
			}
			done = append(done, name)
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			links++
			if links > maxSymlinks {
				return "", fmt.Errorf("%s: %w", p, syscall.ELOOP)
			}
			dest, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(dest, "/") {
				done = nil
			}
			todo = append(splitPath(dest), todo...)
			continue
		}
		if len(todo) > 0 && !fi.IsDir() {
			return "", fmt.Errorf("%s: %w", next, syscall.ENOTDIR)
		}
		done = append(done, name)
	}
	return filepath.Join(append([]string{root}, done...)...), nil
}

// splitPath splits a path into its names, dropping empty ones and ".".
func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return parts
}

// hardlinks remembers, for one copied tree, where each multiply-linked
// source inode was copied to, so that its other names become links again.
type hardlinks map[[2]uint64]string

func newHardlinks() hardlinks { return hardlinks{} }

func (h hardlinks) key(st *syscall.Stat_t) [2]uint64 { return [2]uint64{uint64(st.Dev), st.Ino} }

// tryLink links dst to an earlier copy of st, reporting whether it did.
func (h hardlinks) tryLink(st *syscall.Stat_t, dst string) (bool, error) {
	if st.Nlink <= 1 {
		return false, nil
	}
	first, ok := h[h.key(st)]
	if !ok {
		return false, nil
	}
	if err := os.Link(first, dst); err != nil {
		return false, err
	}
	return true, nil
}

func (h hardlinks) remember(st *syscall.Stat_t, dst string) {
	if st.Nlink > 1 {
		h[h.key(st)] = dst
	}
}

// copyDirectory copies the directory src (whose stat is st) to dst. If dst
// already exists as a directory the contents are merged and dst keeps its
// attributes, times included; otherwise dst is created and gets src's
// owner, mode, extended attributes and times, the times last.
func copyDirectory(src string, st *syscall.Stat_t, dst string, links hardlinks) error {
	created := true
	var existing *syscall.Stat_t
	if err := os.Mkdir(dst, 0o700); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		existing, err = stat(dst, false)
		if err != nil {
			return err
		}
		if existing.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return fmt.Errorf("%s: %w", dst, syscall.ENOTDIR)
		}
		created = false
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		from := filepath.Join(src, e.Name())
		to := filepath.Join(dst, e.Name())
		est, err := stat(from, false)
		if err != nil {
			return err
		}
		if est.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			if err := copyDirectory(from, est, to, links); err != nil {
				return err
			}
			continue
		}
		err = copyLeaf(from, est, to, links)
		if errors.Is(err, os.ErrExist) {
			// Replace what an earlier copy put there.
			if rerr := os.Remove(to); rerr != nil {
				return err
			}
			err = copyLeaf(from, est, to, links)
		}
		if err != nil {
			return err
		}
	}
	if !created {
		// A directory merged into keeps its times (systemd-repart's
		// COPY_RESTORE_DIRECTORY_TIMESTAMPS, v252.x stable).
		return setTimes(dst, existing, false)
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := syscall.Chmod(dst, st.Mode&0o7777); err != nil {
		return &os.PathError{Op: "chmod", Path: dst, Err: err}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	return setTimes(dst, st, false)
}

// copyLeaf copies one non-directory.
func copyLeaf(src string, st *syscall.Stat_t, dst string, links hardlinks) error {
	kind := st.Mode & syscall.S_IFMT
	if kind != syscall.S_IFLNK {
		linked, err := links.tryLink(st, dst)
		if err != nil || linked {
			return err
		}
	}
	switch kind {
	case syscall.S_IFREG:
		if err := copyContent(src, dst, st.Mode&0o7777); err != nil {
			return err
		}
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := syscall.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
		if err := setTimes(dst, st, false); err != nil {
			return err
		}
		if err := copyXattrs(src, dst); err != nil {
			return err
		}
	case syscall.S_IFLNK:
		dest, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(dest, dst); err != nil {
			return err
		}
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		return setTimes(dst, st, true)
	case syscall.S_IFIFO, syscall.S_IFBLK, syscall.S_IFCHR, syscall.S_IFSOCK:
		if err := syscall.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := syscall.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
		if err := setTimes(dst, st, false); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported file type %#o", src, kind)
	}
	links.remember(st, dst)
	return nil
}

// copySingleFile copies a regular file named directly by CopyFiles=: the
// target must not exist, and it keeps mode, extended attributes and times
// but not the owner (systemd copies only the access mode).
func copySingleFile(src string, st *syscall.Stat_t, dst string) error {
	if err := copyContent(src, dst, 0o700); err != nil {
		return err
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if err := syscall.Chmod(dst, st.Mode&0o7777); err != nil {
		return &os.PathError{Op: "chmod", Path: dst, Err: err}
	}
	return setTimes(dst, st, false)
}

// copyContent creates dst (which must not exist) with src's bytes.
// io.Copy between files uses copy_file_range, which clones extents where
// the file system can.
func copyContent(src, dst string, mode uint32) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(mode&0o777))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

// stat returns the stat of path, following a final symlink if follow.
func stat(path string, follow bool) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	var err error
	if follow {
		err = syscall.Stat(path, &st)
	} else {
		err = syscall.Lstat(path, &st)
	}
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return &st, nil
}

// atSymlinkNofollow is AT_SYMLINK_NOFOLLOW from <fcntl.h>.
const atSymlinkNofollow = 0x100

// setTimes gives path the access and modification times of st, of the
// symlink itself when nofollow.
func setTimes(path string, st *syscall.Stat_t, nofollow bool) error {
	ts := [2]syscall.Timespec{st.Atim, st.Mtim}
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	flags := 0
	if nofollow {
		flags = atSymlinkNofollow
	}
	atFDCWD := -100
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&ts[0])), uintptr(flags), 0, 0)
	if errno != 0 {
		return &os.PathError{Op: "utimensat", Path: path, Err: errno}
	}
	return nil
}

// copyXattrs copies every extended attribute of src to dst (neither a
// symlink). A file system without xattr support on either side is not an
// error: there is nothing to copy, or nowhere to put it, as with systemd.
func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		if errors.Is(err, syscall.ENOTSUP) {
			return nil
		}
		return &os.PathError{Op: "listxattr", Path: src, Err: err}
	}
	for _, name := range names {
		val, err := getXattr(src, name)
		if errors.Is(err, syscall.ENODATA) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "getxattr " + name, Path: src, Err: err}
		}
		if err := syscall.Setxattr(dst, name, val, 0); err != nil {
			return &os.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	for size := 1024; ; size *= 4 {
		buf := make([]byte, size)
		n, err := syscall.Listxattr(path, buf)
		if errors.Is(err, syscall.ERANGE) && size < 1<<24 {
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	for size := 4096; ; size *= 4 {
		buf := make([]byte, size)
		n, err := syscall.Getxattr(path, name, buf)
		if errors.Is(err, syscall.ERANGE) && size < 1<<24 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
