package debian

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kernel is a kernel installed in a tree.
type Kernel struct {
	// Version is the kernel release (`uname -r`), e.g. "6.1.0-56-amd64".
	Version string
	// Image is the path of the kernel image on the host: Debian's
	// boot/vmlinuz-VERSION, or usr/lib/modules/VERSION/vmlinuz.
	Image string
	// ModulesDir is the path of usr/lib/modules/VERSION on the host.
	ModulesDir string
}

// FindKernel returns the kernel of the tree rooted at tree: the one
// directory of usr/lib/modules that has a kernel image. It is an error when
// there is none or more than one.
func FindKernel(tree string) (Kernel, error) {
	modules := filepath.Join(tree, "usr/lib/modules")
	entries, err := os.ReadDir(modules)
	if err != nil {
		return Kernel{}, fmt.Errorf("debian: kernel: %w", err)
	}
	var found []Kernel
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		k, err := kernelOf(tree, e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Kernel{}, err
		}
		found = append(found, k)
	}
	switch len(found) {
	case 0:
		return Kernel{}, fmt.Errorf("debian: kernel: no kernel image for any of %s/*: install a linux-image package", modules)
	case 1:
		return found[0], nil
	}
	var versions []string
	for _, k := range found {
		versions = append(versions, k.Version)
	}
	sort.Strings(versions)
	return Kernel{}, fmt.Errorf("debian: kernel: %d kernels in the tree (%s); name the one to use", len(found), strings.Join(versions, ", "))
}

// KernelVersion returns the kernel of version in the tree rooted at tree.
func KernelVersion(tree, version string) (Kernel, error) {
	if version == "" || strings.ContainsAny(version, "/\x00") || version == "." || version == ".." {
		return Kernel{}, fmt.Errorf("debian: kernel version %q: not a kernel release name", version)
	}
	k, err := kernelOf(tree, version)
	if err != nil {
		return Kernel{}, fmt.Errorf("debian: kernel %s: %w", version, err)
	}
	return k, nil
}

func kernelOf(tree, version string) (Kernel, error) {
	k := Kernel{Version: version, ModulesDir: filepath.Join(tree, "usr/lib/modules", version)}
	if fi, err := os.Stat(k.ModulesDir); err != nil {
		return Kernel{}, err
	} else if !fi.IsDir() {
		return Kernel{}, fmt.Errorf("%s: not a directory: %w", k.ModulesDir, os.ErrNotExist)
	}
	for _, p := range []string{filepath.Join(tree, "boot", "vmlinuz-"+version), filepath.Join(k.ModulesDir, "vmlinuz")} {
		// The image is a regular file; Lstat so that a link out of the
		// tree is not followed.
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			k.Image = p
			return k, nil
		}
	}
	return Kernel{}, fmt.Errorf("no kernel image boot/vmlinuz-%s or usr/lib/modules/%s/vmlinuz: %w", version, version, os.ErrNotExist)
}
