package sysupdate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Components returns the names of the components below root ("" means
// "/"): every <name> for which a directory sysupdate.<name>.d exists in
// one of the definition search directories' parents (/etc, /run,
// /usr/local/lib, /usr/lib), sorted and without duplicates. The default
// component (sysupdate.d) is not listed.
func Components(root string) ([]string, error) {
	var names []string
	for _, d := range SearchDirs("") {
		parent := joinRoot(root, filepath.Dir(d))
		entries, err := os.ReadDir(parent)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("sysupdate: %s: %w", parent, err)
		}
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), "sysupdate.")
			if !ok {
				continue
			}
			name, ok := strings.CutSuffix(rest, ".d")
			if !ok || name == "" || strings.ContainsAny(name, "/.") {
				continue
			}
			// A symlink to a directory counts, as stat() does in systemd.
			if st, err := os.Stat(filepath.Join(parent, e.Name())); err != nil || !st.IsDir() {
				continue
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}
