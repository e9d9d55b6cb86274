package content

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/imago-os/imago/internal/chase"
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
	host, err := chase.InRoot(root, p, maxSymlinks)
	var pe *fs.PathError
	switch {
	case err == nil:
		return host, nil
	case errors.As(err, &pe) && pe.Op == chase.Op && pe.Err == syscall.ENOTDIR:
		rel, _ := filepath.Rel(root, pe.Path)
		return "", fmt.Errorf("%s: %s is not a directory", displayPath(p), "/"+rel)
	case errors.As(err, &pe) && pe.Op == chase.Op && pe.Err == syscall.ELOOP:
		return "", fmt.Errorf("%s: too many levels of symbolic links", displayPath(p))
	}
	return "", fmt.Errorf("%s: %w", displayPath(p), err)
}

func displayPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/" + p
}
