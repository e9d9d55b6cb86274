package publish

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imago-os/imago/format/sha256sums"
)

// Build is a build output directory whose SHA256SUMS has been checked.
type Build struct {
	// Dir is the build output directory.
	Dir     string
	ImageID string
	Version string
	// Files are the update payloads of the build, one of each Kind, in
	// Kind order.
	Files []BuildFile
}

// BuildFile is one update payload of a build.
type BuildFile struct {
	Payload
	// Path is the file in the build output directory.
	Path string
	Size int64
	// Digest is the SHA-256 the build's SHA256SUMS lists, which the file
	// matched when the build was opened.
	Digest [32]byte
}

// OpenBuild reads dir/SHA256SUMS, checks every file it lists (a missing or
// changed file is an error naming it), and finds the update payloads among
// them: the usr, usr-verity and usr-verity-sig partition images and the
// UKI of a single image version. The disk image, logs and reports are not
// payloads.
func OpenBuild(dir string) (*Build, error) {
	manifestPath := filepath.Join(dir, "SHA256SUMS")
	m, err := sha256sums.ReadFile(manifestPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("publish: %s: not a build output directory: %w", dir, err)
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	bad, err := sha256sums.VerifyTree(dir, m)
	if err != nil {
		return nil, fmt.Errorf("publish: %s: %w", dir, err)
	}
	if len(bad) > 0 {
		var names []string
		for _, b := range bad {
			names = append(names, b.Name)
		}
		return nil, fmt.Errorf("publish: %s: damaged build: %s does not match %s (%d of %d files differ: %s)",
			dir, filepath.Join(dir, bad[0].Name), manifestPath, len(bad), m.Len(), strings.Join(names, ", "))
	}
	b := &Build{Dir: dir}
	seen := map[Kind]string{}
	for _, e := range m.Entries() {
		p, ok := ParseName(e.Name)
		if !ok {
			continue
		}
		if p.Compression != None {
			return nil, fmt.Errorf("publish: %s: %s: a build output holds uncompressed payloads only", dir, e.Name)
		}
		if b.ImageID == "" {
			b.ImageID, b.Version = p.ImageID, p.Version
		} else if p.ImageID != b.ImageID || p.Version != b.Version {
			return nil, fmt.Errorf("publish: %s: %s lists payloads of %s_%s and %s_%s; want one build", dir, manifestPath,
				b.ImageID, b.Version, p.ImageID, p.Version)
		}
		if prev, dup := seen[p.Kind]; dup {
			return nil, fmt.Errorf("publish: %s: %s lists two %s payloads, %s and %s", dir, manifestPath, p.Kind, prev, e.Name)
		}
		seen[p.Kind] = e.Name
		path := filepath.Join(dir, e.Name)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		b.Files = append(b.Files, BuildFile{Payload: p, Path: path, Size: fi.Size(), Digest: e.Digest})
	}
	for _, k := range kinds {
		if _, ok := seen[k]; !ok {
			return nil, fmt.Errorf("publish: %s: %s lists no %s payload (*%s)", dir, manifestPath, k, k.Suffix())
		}
	}
	slices.SortFunc(b.Files, func(x, y BuildFile) int { return int(x.Kind) - int(y.Kind) })
	return b, nil
}
