// Package chase resolves paths inside an OS tree the way systemd's
// chase_symlinks() does with CHASE_PREFIX_ROOT (systemd 252): every symbolic
// link is followed as if the tree's root were "/", so absolute link targets
// restart at the root and ".." never climbs above it. A link in an image
// therefore never reaches the host.
package chase

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Op is the operation named by the *fs.PathError InRoot returns for a
// component that is not a directory (syscall.ENOTDIR) and for too many
// symbolic links (syscall.ELOOP); its Path is the host path concerned.
const Op = "resolve"

// InRoot maps p, a path inside the tree at root ("" for "/"), absolute or
// taken from root, to a host path below root that exists, following every
// symbolic link (the last one too) and at most maxLinks of them. Errors of
// lstat and readlink are returned as they are.
func InRoot(root, p string, maxLinks int) (string, error) {
	if root == "" {
		root = "/"
	}
	var done []string // resolved components below root, none a symlink
	todo := splitPath(p)
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		host := filepath.Join(root, filepath.Join(append(done, c)...))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(todo) > 0 && !fi.IsDir() {
				return "", &fs.PathError{Op: Op, Path: host, Err: syscall.ENOTDIR}
			}
			done = append(done, c)
			continue
		}
		links++
		if links > maxLinks {
			return "", &fs.PathError{Op: Op, Path: host, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(splitPath(target), todo...)
	}
	return filepath.Join(root, filepath.Join(done...)), nil
}

// splitPath returns the non-empty components of p.
func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
