// Package sha256sums reads and writes SHA256SUMS manifests, the format GNU
// coreutils' sha256sum writes and systemd-sysupdate downloads next to update
// payloads.
//
// A line is 64 hex digits, a blank, a mode marker (" " text, "*" binary) and
// the file name. Names containing a backslash, a line feed or a carriage
// return are written GNU style: the line starts with "\" and those characters
// appear as "\\", "\n" and "\r" (coreutils 9.1).
//
// Parse accepts what `sha256sum --strict -c` accepts in that format.
// ParseSysupdate accepts exactly what systemd-sysupdate 252 accepts, which is
// stricter (no escapes, plain file names, a final newline). Write produces
// lines both read, sorted by name. Sum, Verify and VerifyTree compute and check
// digests of files.
package sha256sums

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Entry is one line of a manifest.
type Entry struct {
	Name   string   // file name as listed, unescaped
	Digest [32]byte // SHA-256 of the file's bytes
	Binary bool     // listed with the "*" (binary mode) marker
}

// String returns e as its manifest line, without the newline.
func (e Entry) String() string {
	line := AppendLine(nil, e)
	return string(line[:len(line)-1])
}

// Manifest is a parsed SHA256SUMS file. Every name appears once.
type Manifest struct {
	entries []Entry
	index   map[string]int
}

// MaxSize is the largest manifest Parse reads.
const MaxSize = 64 << 20

// SyntaxError is a malformed manifest line.
type SyntaxError struct {
	File string // manifest path, when known
	Line int    // 1-based line number; 0 for whole-file problems
	Msg  string
}

// Error formats the error as "sha256sums: FILE:LINE: message".
func (e *SyntaxError) Error() string {
	where := e.File
	if where == "" {
		where = "SHA256SUMS"
	}
	if e.Line > 0 {
		return fmt.Sprintf("sha256sums: %s:%d: %s", where, e.Line, e.Msg)
	}
	return fmt.Sprintf("sha256sums: %s: %s", where, e.Msg)
}

// Lookup returns the digest listed for name.
func (m *Manifest) Lookup(name string) ([32]byte, bool) {
	if i, ok := m.index[name]; ok {
		return m.entries[i].Digest, true
	}
	return [32]byte{}, false
}

// Entries returns a copy of the entries in manifest order.
func (m *Manifest) Entries() []Entry { return append([]Entry(nil), m.entries...) }

// Len returns the number of listed files.
func (m *Manifest) Len() int { return len(m.entries) }

// add records e. A name listed twice with the same digest is kept once; with
// different digests the manifest is refused, since no file can match both and
// systemd-sysupdate would pick one of them arbitrarily.
func (m *Manifest) add(e Entry, line int, lines map[string]int) *SyntaxError {
	if m.index == nil {
		m.index = map[string]int{}
	}
	if i, ok := m.index[e.Name]; ok {
		if m.entries[i].Digest != e.Digest {
			return &SyntaxError{Line: line, Msg: fmt.Sprintf("%q listed again with a different digest (first on line %d)", e.Name, lines[e.Name])}
		}
		return nil
	}
	m.index[e.Name] = len(m.entries)
	lines[e.Name] = line
	m.entries = append(m.entries, e)
	return nil
}

func readAll(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("sha256sums: read: %w", err)
	}
	if len(data) > MaxSize {
		return nil, &SyntaxError{Msg: fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	return data, nil
}

// Parse reads a manifest in the format sha256sum writes, as `sha256sum
// --strict -c` reads it: lines starting with "#" and empty lines are
// skipped, one trailing carriage return per line is dropped, blanks before
// the digest are allowed, digits may be upper or lower case, and the final
// newline is optional. Every other line must be a valid entry; the first
// malformed one is reported with its line number. BSD-style ("SHA256 (name)
// = ...") and single-separator lines are not accepted.
func Parse(r io.Reader) (*Manifest, error) {
	data, err := readAll(r)
	if err != nil {
		return nil, err
	}
	return ParseBytes(data)
}

// ParseBytes is Parse for data already in memory.
func ParseBytes(data []byte) (*Manifest, error) {
	m := &Manifest{}
	lines := map[string]int{}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) > 0 && line[0] == '#' {
			continue
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		e, msg := parseGNULine(line)
		if msg != "" {
			return nil, &SyntaxError{Line: n, Msg: msg}
		}
		if err := m.add(e, n, lines); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func parseGNULine(line []byte) (Entry, string) {
	var e Entry
	i := 0
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	escaped := i < len(line) && line[i] == '\\'
	if escaped {
		i++
	}
	if strings.HasPrefix(string(line[i:]), "SHA256 (") {
		return e, "BSD-style (--tag) lines are not supported"
	}
	if len(line)-i < 64 {
		return e, "line too short for a SHA-256 digest"
	}
	if _, err := hex.Decode(e.Digest[:], line[i:i+64]); err != nil {
		return e, "digest is not 64 hex digits"
	}
	i += 64
	if i >= len(line) || !isBlank(line[i]) {
		return e, "no blank after the digest"
	}
	i++
	if i >= len(line) || (line[i] != ' ' && line[i] != '*') {
		return e, `no " " or "*" mode marker after the digest`
	}
	e.Binary = line[i] == '*'
	i++
	name := line[i:]
	if len(name) == 0 {
		return e, "empty file name"
	}
	if bytes.IndexByte(name, 0) >= 0 {
		return e, "file name contains a NUL byte"
	}
	if !escaped {
		e.Name = string(name)
		return e, ""
	}
	var b strings.Builder
	for j := 0; j < len(name); j++ {
		if name[j] != '\\' {
			b.WriteByte(name[j])
			continue
		}
		j++
		if j == len(name) {
			return e, "file name ends in a lone backslash"
		}
		switch name[j] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return e, fmt.Sprintf(`invalid escape "\%c" in file name (only \\, \n and \r)`, name[j])
		}
	}
	e.Name = b.String()
	return e, ""
}

// ReadFile parses the manifest at path with Parse; errors name the file.
func ReadFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sha256sums: %w", err)
	}
	defer f.Close()
	m, err := Parse(bufio.NewReader(f))
	var se *SyntaxError
	if errors.As(err, &se) {
		se.File = path
	}
	return m, err
}

// needsEscape reports whether name must be written on an escaped line.
func needsEscape(name string) bool { return strings.ContainsAny(name, "\\\n\r") }

// AppendLine appends the manifest line for e, as sha256sum prints it: the
// lower-case digest, two blanks or a blank and "*", the name, and "\n", with
// the leading "\" and escapes when the name needs them.
func AppendLine(dst []byte, e Entry) []byte { return appendLine(dst, e, true) }

func appendLine(dst []byte, e Entry, mayEscape bool) []byte {
	escape := mayEscape && needsEscape(e.Name)
	if escape {
		dst = append(dst, '\\')
	}
	dst = hex.AppendEncode(dst, e.Digest[:])
	if e.Binary {
		dst = append(dst, ' ', '*')
	} else {
		dst = append(dst, ' ', ' ')
	}
	if !escape {
		dst = append(dst, e.Name...)
	} else {
		for i := 0; i < len(e.Name); i++ {
			switch c := e.Name[i]; c {
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '\n')
}

// Write writes entries as a manifest sorted by name (byte order, as
// LC_ALL=C sort does), so equal inputs give identical files. A name listed
// twice with the same digest is written once; empty names, names with a NUL
// byte and names listed with different digests are refused before anything
// is written.
func Write(w io.Writer, entries []Entry) error { return write(w, entries, true) }

func write(w io.Writer, entries []Entry, mayEscape bool) error {
	sorted := append([]Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var out []byte
	for i, e := range sorted {
		if e.Name == "" {
			return errors.New("sha256sums: empty file name")
		}
		if strings.IndexByte(e.Name, 0) >= 0 {
			return fmt.Errorf("sha256sums: file name %q contains a NUL byte", e.Name)
		}
		if i > 0 && sorted[i-1].Name == e.Name {
			if sorted[i-1].Digest != e.Digest {
				return fmt.Errorf("sha256sums: %q given twice with different digests", e.Name)
			}
			continue
		}
		out = appendLine(out, e, mayEscape)
	}
	_, err := w.Write(out)
	return err
}

// WriteTo writes the manifest with Write.
func (m *Manifest) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	if err := Write(&b, m.entries); err != nil {
		return 0, err
	}
	return b.WriteTo(w)
}
