package sysupdate

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// All file operations below go through os.Root, which refuses any path
// that would leave the directory, including through a symlink written by
// an earlier entry of the same archive.

// keptModeBits are the mode bits a tar entry or copied file keeps.
const keptModeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// pendingDir is a directory whose mode and mtime are applied after all
// its contents exist: a read-only mode would stop its own extraction, and
// creating entries changes its mtime.
type pendingDir struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// entryName checks an archive member name and returns it relative to the
// extraction directory ("." for the directory itself).
func entryName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`name contains ".."`)
		}
	}
	return path.Clean(name), nil
}

// ExtractTar unpacks a tar stream (already decompressed) into dir, which
// must exist: regular files, directories, symlinks and hard links with
// their modes and mtimes, and their numeric owners when running as root.
// Entries that would land outside dir (absolute names, "..", a path
// through a symlink pointing out) are refused with an error naming the
// entry. Device nodes, FIFOs and sockets are skipped: an OS tree payload
// does not carry them, and creating them safely needs more than os.Root.
func ExtractTar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("sysupdate: %w", err)
	}
	defer root.Close()
	asRoot := os.Geteuid() == 0
	var dirs []pendingDir
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("sysupdate: tar: %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return fmt.Errorf("sysupdate: tar entry %q: %w", hdr.Name, err)
		}
		if err := extractEntry(root, tr, hdr, name, asRoot, &dirs); err != nil {
			return fmt.Errorf("sysupdate: tar entry %q: %w", hdr.Name, err)
		}
	}
	return finishDirs(root, dirs)
}

func extractEntry(root *os.Root, r io.Reader, hdr *tar.Header, name string, asRoot bool, dirs *[]pendingDir) error {
	mode := hdr.FileInfo().Mode() & keptModeBits
	if name != "." {
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := makeDir(root, name); err != nil {
			return err
		}
		if asRoot {
			if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
				return err
			}
		}
		*dirs = append(*dirs, pendingDir{name, mode, hdr.ModTime})
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		if name == "." {
			return errors.New("a file cannot replace the extraction directory")
		}
		if err := removeNonDir(root, name); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if asRoot {
			if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Chmod(mode); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	case tar.TypeSymlink:
		if name == "." {
			return errors.New("a symlink cannot replace the extraction directory")
		}
		if err := removeNonDir(root, name); err != nil {
			return err
		}
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		if asRoot {
			return root.Lchown(name, hdr.Uid, hdr.Gid)
		}
		return nil
	case tar.TypeLink:
		target, err := entryName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if name == "." || target == name {
			return fmt.Errorf("bad hard link to %q", hdr.Linkname)
		}
		if err := removeNonDir(root, name); err != nil {
			return err
		}
		return root.Link(target, name)
	}
	return nil
}

// makeDir creates a directory, replacing a non-directory of that name.
func makeDir(root *os.Root, name string) error {
	st, err := root.Lstat(name)
	if err == nil && st.IsDir() {
		return nil
	}
	if err == nil {
		if err := root.Remove(name); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return root.Mkdir(name, 0o755)
}

// removeNonDir clears the way for a new file, refusing to replace a
// directory (a later entry of the same name as an earlier directory).
func removeNonDir(root *os.Root, name string) error {
	st, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("a directory of that name exists")
	}
	return root.Remove(name)
}

// finishDirs applies directory modes and mtimes, deepest last-created
// first, once their contents are complete.
func finishDirs(root *os.Root, dirs []pendingDir) error {
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := root.Chmod(d.name, d.mode); err != nil {
			return fmt.Errorf("sysupdate: %s: %w", d.name, err)
		}
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("sysupdate: %s: %w", d.name, err)
		}
	}
	return nil
}

// inode identifies a file for recreating hard links.
type inode struct{ dev, ino uint64 }

// CopyTree copies the directory src recursively into dst (created if
// missing), keeping modes, mtimes, symlinks, hard links and, as root,
// owners. Device nodes, FIFOs and sockets are skipped.
func CopyTree(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("sysupdate: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("sysupdate: %s: not a directory", src)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("sysupdate: %w", err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("sysupdate: %w", err)
	}
	defer root.Close()
	asRoot := os.Geteuid() == 0
	links := map[inode]string{}
	var dirs []pendingDir
	err = filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := de.Info()
		if err != nil {
			return err
		}
		if err := copyEntry(root, p, rel, info, asRoot, links, &dirs); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sysupdate: copying %s to %s: %w", src, dst, err)
	}
	return finishDirs(root, dirs)
}

func copyEntry(root *os.Root, p, rel string, info fs.FileInfo, asRoot bool, links map[inode]string, dirs *[]pendingDir) error {
	mode := info.Mode() & keptModeBits
	sys, _ := info.Sys().(*syscall.Stat_t)
	chown := func(name string) error {
		if !asRoot || sys == nil {
			return nil
		}
		return root.Lchown(name, int(sys.Uid), int(sys.Gid))
	}
	switch {
	case info.IsDir():
		if rel != "." {
			if err := makeDir(root, rel); err != nil {
				return err
			}
		}
		if err := chown(rel); err != nil {
			return err
		}
		*dirs = append(*dirs, pendingDir{rel, mode, info.ModTime()})
	case info.Mode().IsRegular():
		if err := removeNonDir(root, rel); err != nil {
			return err
		}
		if sys != nil && sys.Nlink > 1 {
			key := inode{uint64(sys.Dev), uint64(sys.Ino)}
			if first, ok := links[key]; ok {
				return root.Link(first, rel)
			}
			links[key] = rel
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if asRoot && sys != nil {
			if err := out.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
				out.Close()
				return err
			}
		}
		if err := out.Chmod(mode); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return root.Chtimes(rel, info.ModTime(), info.ModTime())
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := removeNonDir(root, rel); err != nil {
			return err
		}
		if err := root.Symlink(target, rel); err != nil {
			return err
		}
		return chown(rel)
	}
	return nil
}
