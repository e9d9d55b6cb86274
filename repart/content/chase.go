package content

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxSymlinks bounds symlink resolution, as systemd's CHASE_SYMLINKS_MAX.
const maxSymlinks = 32

// resolveInRoot resolves p, an absolute or relative path taken from root,
// following every symlink (the last one too) as if root were "/": absolute
// targets start again at root and ".." never climbs above it. This is how
// systemd-repart opens CopyFiles= and CopyBlocks= sources under --root=
// (chase_symlinks with CHASE_PREFIX_ROOT). The result is a host path below
// root that exists.
func resolveInRoot(root, p string) (string, error) {
	if root == "" {
		root = "/"
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", errors.New("empty path")
	}
	todo := splitComponents(p)
	var done []string // resolved components below root
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
			return "", fmt.Errorf("%s: %w", displayPath(p), err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if len(todo) > 0 && !fi.IsDir() {
				return "", fmt.Errorf("%s: %s is not a directory", displayPath(p), "/"+filepath.Join(append(done, c)...))
			}
			done = append(done, c)
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", displayPath(p))
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", fmt.Errorf("%s: %w", displayPath(p), err)
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(splitComponents(target), todo...)
	}
	return filepath.Join(root, filepath.Join(done...)), nil
}

func splitComponents(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

func displayPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/" + p
}
