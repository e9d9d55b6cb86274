package sha256sums

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotListed is returned by Verify for a name the manifest does not list.
var ErrNotListed = errors.New("sha256sums: not listed in the manifest")

// Mismatch is a listed file that failed its check.
type Mismatch struct {
	Name string
	Want [32]byte // digest the manifest lists
	Got  [32]byte // digest of the content; zero when Err is set
	Err  error    // set when the file could not be read
}

// Error describes the failed check.
func (m *Mismatch) Error() string {
	if m.Err != nil {
		return fmt.Sprintf("sha256sums: %q: %v", m.Name, m.Err)
	}
	return fmt.Sprintf("sha256sums: %q: digest %s, manifest lists %s", m.Name, hex.EncodeToString(m.Got[:]), hex.EncodeToString(m.Want[:]))
}

// Unwrap returns the read error, if any.
func (m *Mismatch) Unwrap() error { return m.Err }

// Digest returns the SHA-256 of everything r yields.
func Digest(r io.Reader) ([32]byte, error) {
	var d [32]byte
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return d, err
	}
	h.Sum(d[:0])
	return d, nil
}

// Verify hashes r as it streams and checks it against the digest listed for
// name. It returns nil on a match, an error wrapping ErrNotListed, a
// *Mismatch, or the read error.
func (m *Manifest) Verify(name string, r io.Reader) error {
	want, ok := m.Lookup(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotListed, name)
	}
	got, err := Digest(r)
	if err != nil {
		return fmt.Errorf("sha256sums: %q: %w", name, err)
	}
	if got != want {
		return &Mismatch{Name: name, Want: want, Got: got}
	}
	return nil
}

// Sum hashes the named files of fsys and returns their entries (text mode)
// in the order given.
func Sum(fsys fs.FS, names []string) ([]Entry, error) {
	entries := make([]Entry, 0, len(names))
	for _, name := range names {
		d, err := digestFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("sha256sums: %w", err)
		}
		entries = append(entries, Entry{Name: name, Digest: d})
	}
	return entries, nil
}

// SumDir is Sum over the directory dir. Symbolic links are followed only
// while they stay inside dir.
func SumDir(dir string, names []string) ([]Entry, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("sha256sums: %w", err)
	}
	defer root.Close()
	return Sum(rootFS{root}, names)
}

func digestFile(fsys fs.FS, name string) ([32]byte, error) {
	if !fs.ValidPath(name) {
		return [32]byte{}, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a relative path inside the tree")}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return [32]byte{}, err
	}
	if fi.IsDir() {
		return [32]byte{}, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	d, err := Digest(f)
	if err != nil {
		return d, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return d, nil
}

// VerifyFS checks every file the manifest lists against its content in fsys,
// in manifest order, and returns those that differ or cannot be read. Names
// that are not plain relative paths (absolute, or with "." or ".."
// elements) are reported as mismatches rather than opened.
func VerifyFS(fsys fs.FS, m *Manifest) []Mismatch {
	var bad []Mismatch
	for _, e := range m.entries {
		got, err := digestFile(fsys, e.Name)
		if err != nil {
			bad = append(bad, Mismatch{Name: e.Name, Want: e.Digest, Err: err})
		} else if got != e.Digest {
			bad = append(bad, Mismatch{Name: e.Name, Want: e.Digest, Got: got})
		}
	}
	return bad
}

// VerifyTree is VerifyFS over the directory root; symbolic links are
// followed only while they stay inside root. The error reports a root that
// cannot be opened; problems with single files are mismatches.
func VerifyTree(root string, m *Manifest) ([]Mismatch, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("sha256sums: %w", err)
	}
	defer r.Close()
	return VerifyFS(rootFS{r}, m), nil
}

// rootFS presents an os.Root as an fs.FS.
type rootFS struct{ r *os.Root }

func (f rootFS) Open(name string) (fs.File, error) { return f.r.Open(name) }
