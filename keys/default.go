package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SystemDir is the default key directory of root.
const SystemDir = "/var/lib/imago/keys"

// DefaultDir returns the directory of the key set a build uses when its
// definition names no keys:
//
//   - for root, SystemDir: keys are persistent state of the machine that
//     builds, which the FHS puts under /var/lib, and the same for every way
//     of becoming root (sudo keeps or replaces $HOME depending on its
//     configuration, so a path under $HOME would change with it);
//   - for anyone else, $XDG_CONFIG_HOME/imago/keys, or
//     $HOME/.config/imago/keys when XDG_CONFIG_HOME is unset or not
//     absolute (XDG Base Directory Specification): keys are the user's own
//     settings, kept, backed up and carried along with their configuration.
func DefaultDir() (string, error) {
	return defaultDir(os.Geteuid(), os.Getenv)
}

func defaultDir(euid int, getenv func(string) string) (string, error) {
	if euid == 0 {
		return SystemDir, nil
	}
	if c := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(c) {
		return filepath.Join(c, "imago", "keys"), nil
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".config", "imago", "keys"), nil
	}
	return "", errors.New("keys: no default key directory: neither XDG_CONFIG_HOME nor HOME is an absolute path")
}

// LoadOrGenerate returns the key set in dir, generating it first when dir
// does not exist or is empty; generated reports whether it did. The set is
// made in a temporary directory beside dir and renamed into place, so
// concurrent callers end up with one and the same set and nobody sees a
// partial one. A dir that holds some but not all files of a set is an
// error wrapping ErrIncomplete.
func LoadOrGenerate(dir string) (s *Set, generated bool, err error) {
	empty, err := isEmptyDir(dir)
	if err != nil {
		return nil, false, err
	}
	if !empty {
		s, err := Load(dir)
		return s, false, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if _, err := Generate(tmp, Options{}); err != nil {
		return nil, false, err
	}
	// rename(2) replaces an empty directory and fails on a non-empty one:
	// exactly one of several concurrent callers wins.
	if err := os.Rename(tmp, dir); err != nil {
		if empty, serr := isEmptyDir(dir); serr != nil || empty {
			return nil, false, fmt.Errorf("keys: %w", err)
		}
		s, err := Load(dir)
		return s, false, err
	}
	s, err = Load(dir)
	if err != nil {
		return nil, false, err
	}
	return s, true, nil
}

// isEmptyDir reports whether dir is missing or an empty directory.
func isEmptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	return len(entries) == 0, nil
}
