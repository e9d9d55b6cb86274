package debian

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Package is one installed package.
type Package struct {
	Name         string
	Version      string
	Architecture string
}

// Manifest lists the installed packages, sorted by name and then
// architecture, each (name, architecture) once.
type Manifest []Package

// Lookup returns the package called name (of any architecture; the first
// in sort order when there are several).
func (m Manifest) Lookup(name string) (Package, bool) {
	i := sort.Search(len(m), func(i int) bool { return m[i].Name >= name })
	if i < len(m) && m[i].Name == name {
		return m[i], true
	}
	return Package{}, false
}

// String returns the manifest as text: one "name<TAB>version<TAB>architecture"
// line per package, the lines `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'`
// prints for the installed packages, in the manifest's order.
func (m Manifest) String() string {
	var b strings.Builder
	for _, p := range m {
		b.WriteString(p.Name)
		b.WriteByte('\t')
		b.WriteString(p.Version)
		b.WriteByte('\t')
		b.WriteString(p.Architecture)
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteTo writes the text form (String) to w.
func (m Manifest) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, m.String())
	return int64(n), err
}

// maxLine bounds one line of a status or manifest file; dpkg's longest
// fields (Description, Conffiles) stay far below it.
const maxLine = 1 << 20

// ErrSyntax is matched (errors.Is) by the errors of ParseStatus and
// ParseManifest for malformed input.
var ErrSyntax = errors.New("syntax error")

// ParseManifest reads the text form written by Manifest.String. Lines must
// be sorted and unique, as String writes them.
func ParseManifest(r io.Reader) (Manifest, error) {
	br := bufio.NewReader(r)
	var m Manifest
	for line := 1; ; line++ {
		l, err := readLine(br)
		if err == io.EOF && l == "" {
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("debian: manifest line %d: %w", line, err)
		}
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("debian: manifest line %d: %d fields, want 3: %w", line, len(f), ErrSyntax)
		}
		p := Package{Name: f[0], Version: f[1], Architecture: f[2]}
		if err := checkPackage(p); err != nil {
			return nil, fmt.Errorf("debian: manifest line %d: %w", line, err)
		}
		if n := len(m); n > 0 && !less(m[n-1], p) {
			return nil, fmt.Errorf("debian: manifest line %d: %s not after %s: %w", line, p.Name, m[n-1].Name, ErrSyntax)
		}
		m = append(m, p)
		if err == io.EOF {
			break
		}
	}
	return m, nil
}

// readLine returns the next line without its newline; io.EOF comes with
// the last line when it has no newline, or with "" at the end.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", fmt.Errorf("line longer than %d bytes: %w", maxLine, ErrSyntax)
		}
		if err != nil {
			return string(b), err
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

func less(a, b Package) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Architecture < b.Architecture
}

// checkPackage rejects names, versions and architectures that the text
// form cannot carry (empty, or with white space or control characters).
func checkPackage(p Package) error {
	for _, f := range []struct{ what, v string }{{"package name", p.Name}, {"version", p.Version}, {"architecture", p.Architecture}} {
		if f.v == "" {
			return fmt.Errorf("empty %s: %w", f.what, ErrSyntax)
		}
		for _, c := range f.v {
			if c <= ' ' || c == 0x7f {
				return fmt.Errorf("%s %q: white space or control character: %w", f.what, f.v, ErrSyntax)
			}
		}
	}
	return nil
}

// ParseStatus reads a dpkg status file (var/lib/dpkg/status) and returns
// the packages whose status is "installed". It reads the Package, Version,
// Architecture and Status fields of each paragraph and ignores the rest.
func ParseStatus(r io.Reader) (Manifest, error) {
	br := bufio.NewReader(r)
	var m Manifest
	var cur map[string]string
	var start int
	lastKey := ""
	finish := func() error {
		if cur == nil {
			return nil
		}
		defer func() { cur = nil }()
		status := strings.Fields(cur["status"])
		if len(status) != 3 {
			return fmt.Errorf("debian: status line %d: package %q: Status %q is not three words: %w", start, cur["package"], cur["status"], ErrSyntax)
		}
		if status[2] != "installed" {
			return nil
		}
		p := Package{Name: cur["package"], Version: cur["version"], Architecture: cur["architecture"]}
		if err := checkPackage(p); err != nil {
			return fmt.Errorf("debian: status line %d: %w", start, err)
		}
		m = append(m, p)
		return nil
	}
	for line := 1; ; line++ {
		l, err := readLine(br)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("debian: status line %d: %w", line, err)
		}
		switch {
		case strings.TrimSpace(l) == "":
			if ferr := finish(); ferr != nil {
				return nil, ferr
			}
			lastKey = ""
		case l[0] == ' ' || l[0] == '\t':
			// A continuation line belongs to the field above it; none of
			// the fields read here is multi-line.
			if lastKey == "" {
				return nil, fmt.Errorf("debian: status line %d: continuation line outside a field: %w", line, ErrSyntax)
			}
		case l[0] == '#':
			// dpkg allows comment lines in control files.
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok || k == "" {
				return nil, fmt.Errorf("debian: status line %d: no field name: %w", line, ErrSyntax)
			}
			if cur == nil {
				cur = map[string]string{}
				start = line
			}
			k = strings.ToLower(k)
			if _, dup := cur[k]; dup {
				return nil, fmt.Errorf("debian: status line %d: field %s repeated: %w", line, k, ErrSyntax)
			}
			cur[k] = strings.TrimSpace(v)
			lastKey = k
		}
		if err == io.EOF {
			break
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	sort.Slice(m, func(i, j int) bool { return less(m[i], m[j]) })
	for i := 1; i < len(m); i++ {
		if !less(m[i-1], m[i]) {
			return nil, fmt.Errorf("debian: status: package %s:%s listed twice: %w", m[i].Name, m[i].Architecture, ErrSyntax)
		}
	}
	return m, nil
}

// ReadManifest returns the installed packages of the tree rooted at tree,
// from its var/lib/dpkg/status.
func ReadManifest(tree string) (Manifest, error) {
	path := filepath.Join(tree, "var/lib/dpkg/status")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("debian: manifest: %w", err)
	}
	defer f.Close()
	m, err := ParseStatus(f)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return m, nil
}
