// Package reference holds imago's reference image definition, embedded in
// the binary: imago.conf, the first-boot partition layout (repart.d/), the
// update transfers (sysupdate.d/) and a tree of extra files (extra/). It is
// what `imago build` builds when no definition is given, and what
// `imago init` writes out as a starting point.
//
// The definition targets Debian 12 with systemd 252; the meaning of every
// key is documented in docs/definition.md. This package only stores the
// files and writes them out; build/config parses them.
package reference

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed imago.conf repart.d sysupdate.d extra
var files embed.FS

// FS returns the reference definition as a read-only file system whose root
// is the definition directory.
func FS() fs.FS { return files }

// Files returns the slash-separated paths of every file of the reference
// definition, sorted.
func Files() []string {
	var out []string
	// WalkDir visits entries in lexical order; an embed.FS cannot fail here.
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	return out
}

// WriteTo writes the reference definition into dir, creating dir and its
// subdirectories as needed (mode 0755; files 0644, scripts, which start
// with "#!", 0755: an embedded file system keeps no modes). Unless overwrite is set,
// nothing is written when any of the files already exists: the error is
// then an *fs.PathError for that file that matches fs.ErrExist. It returns
// the paths it wrote, in the order of Files.
func WriteTo(dir string, overwrite bool) ([]string, error) {
	names := Files()
	if !overwrite {
		for _, n := range names {
			p := filepath.Join(dir, filepath.FromSlash(n))
			if _, err := os.Lstat(p); err == nil {
				return nil, &fs.PathError{Op: "write", Path: p, Err: fs.ErrExist}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("reference: %w", err)
			}
		}
	}
	var written []string
	for _, n := range names {
		data, err := fs.ReadFile(files, n)
		if err != nil {
			return written, fmt.Errorf("reference: %w", err)
		}
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, fmt.Errorf("reference: %w", err)
		}
		mode := os.FileMode(0o644)
		if bytes.HasPrefix(data, []byte("#!")) {
			mode = 0o755
		}
		if err := writeFile(p, data, mode); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

// writeFile replaces p through a temporary file and a rename, so that an
// interrupted write never leaves a truncated definition file behind.
func writeFile(p string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".imago-init-*")
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("reference: %s: %w", p, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("reference: %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("reference: %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	return nil
}
