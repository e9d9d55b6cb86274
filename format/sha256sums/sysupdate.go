package sha256sums

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// ParseSysupdate reads a manifest with the rules systemd-sysupdate 252
// applies to a downloaded SHA256SUMS (resource_load_from_web):
//
//   - no NUL byte anywhere and valid UTF-8 throughout;
//   - every line is 64 hex digits, one space, " " or "*", a file name and
//     "\n" (a missing final newline is refused as truncated);
//   - no comments, no blank lines, no escaped ("\"-prefixed) lines;
//   - the name is a plain file name: not "." or "..", no "/", at most 255
//     bytes, no control characters.
//
// systemd 252 keeps a name listed twice as two instances and uses either;
// ParseSysupdate keeps identical repeats once and refuses conflicting ones,
// like Parse.
func ParseSysupdate(r io.Reader) (*Manifest, error) {
	data, err := readAll(r)
	if err != nil {
		return nil, err
	}
	return ParseSysupdateBytes(data)
}

// sysupdateMinLeft is the fewest bytes systemd accepts as the rest of the
// manifest: a digest, the two separator characters and a newline.
const sysupdateMinLeft = 64 + 2 + 1

// ParseSysupdateBytes is ParseSysupdate for data already in memory.
func ParseSysupdateBytes(data []byte) (*Manifest, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, &SyntaxError{Msg: "manifest contains a NUL byte"}
	}
	if !utf8.Valid(data) {
		return nil, &SyntaxError{Msg: "manifest is not valid UTF-8"}
	}
	m := &Manifest{}
	lines := map[string]int{}
	for n := 1; len(data) > 0; n++ {
		if len(data) < sysupdateMinLeft {
			return nil, &SyntaxError{Line: n, Msg: "line too short"}
		}
		if data[0] == '\\' {
			return nil, &SyntaxError{Line: n, Msg: "file names with escapes are not supported by systemd-sysupdate"}
		}
		var e Entry
		if _, err := hex.Decode(e.Digest[:], data[:64]); err != nil {
			return nil, &SyntaxError{Line: n, Msg: "digest is not 64 hex digits"}
		}
		if data[64] != ' ' {
			return nil, &SyntaxError{Line: n, Msg: "no space after the digest"}
		}
		if data[65] != ' ' && data[65] != '*' {
			return nil, &SyntaxError{Line: n, Msg: `no " " or "*" mode marker after the digest`}
		}
		e.Binary = data[65] == '*'
		rest := data[66:]
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			return nil, &SyntaxError{Line: n, Msg: "no newline at end of line (truncated manifest)"}
		}
		if end == 0 {
			return nil, &SyntaxError{Line: n, Msg: "empty file name"}
		}
		e.Name = string(rest[:end])
		if msg := sysupdateNameProblem(e.Name); msg != "" {
			return nil, &SyntaxError{Line: n, Msg: msg}
		}
		if err := m.add(e, n, lines); err != nil {
			return nil, err
		}
		data = rest[end+1:]
	}
	return m, nil
}

// CheckSysupdateName reports why systemd-sysupdate 252 would refuse a
// manifest line listing name, or nil if it accepts it.
func CheckSysupdateName(name string) error {
	msg := sysupdateNameProblem(name)
	switch {
	case name == "":
		msg = "empty file name"
	case msg != "":
	case !utf8.ValidString(name):
		msg = "file name is not valid UTF-8"
	default:
		return nil
	}
	return fmt.Errorf("sha256sums: %q: %s", name, msg)
}

// WriteSysupdate writes entries like Write, for systemd-sysupdate: every name
// must pass CheckSysupdateName, and lines are never escaped. The output
// differs from Write's only for names containing a backslash, which
// sha256sum would escape and systemd-sysupdate cannot read escaped; written
// plainly, sha256sum -c and systemd-sysupdate both read them back unchanged.
func WriteSysupdate(w io.Writer, entries []Entry) error {
	for _, e := range entries {
		if err := CheckSysupdateName(e.Name); err != nil {
			return err
		}
	}
	return write(w, entries, false)
}

// sysupdateNameProblem applies systemd 252's filename_is_valid and
// string_has_cc to a listed name.
func sysupdateNameProblem(name string) string {
	switch {
	case name == "." || name == "..":
		return "file name is . or .."
	case strings.ContainsRune(name, '/'):
		return "file name contains /"
	case len(name) > 255:
		return "file name longer than 255 bytes"
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return "file name contains control characters"
		}
	}
	return ""
}
