// Package pattern implements the match pattern language of systemd-sysupdate
// transfer definitions (the MatchPattern= setting): compiling a pattern,
// matching a file name or partition label against it to extract the fields
// it encodes, and formatting a pattern from fields to name a new instance.
//
// It follows src/sysupdate/sysupdate-pattern.c of systemd 252, plus the '/'
// separator that systemd 257 allows in patterns (a pattern may then reach
// into subdirectories; Match reports Retry when a name ends where the pattern
// expects a '/', meaning "descend into this directory").
//
// Wildcards: @v version, @u GPT partition UUID, @f GPT partition flags,
// @a NoAuto flag, @r ReadOnly flag, @g GrowFileSystem flag, @t mtime in
// microseconds, @m access mode, @s size, @d tries done, @l tries left,
// @h SHA-256 sum. "@@" is a literal '@'.
package pattern

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/imago-os/imago/format/unitfile"
	"github.com/imago-os/imago/format/vercmp"
)

// Errors returned by Compile, wrapped with the details.
var (
	// ErrInvalid is a pattern that is syntactically wrong (EINVAL in
	// systemd): an unknown or repeated wildcard, a trailing '@', two
	// wildcards without a literal between them, or no @v.
	ErrInvalid = errors.New("invalid pattern")
	// ErrBadChar is a literal character systemd reserves or refuses
	// (EBADRQC in systemd).
	ErrBadChar = errors.New("invalid character in pattern")
	// ErrMissingField is returned by Format when the pattern has a wildcard
	// whose field is not set (ENXIO in systemd).
	ErrMissingField = errors.New("pattern field not set")
)

// Field identifies one wildcard.
type Field byte

// The wildcards, named by their letter.
const (
	Version        Field = 'v'
	PartitionUUID  Field = 'u'
	PartitionFlags Field = 'f'
	NoAuto         Field = 'a'
	ReadOnly       Field = 'r'
	GrowFileSystem Field = 'g'
	MTime          Field = 't'
	Mode           Field = 'm'
	Size           Field = 's'
	TriesDone      Field = 'd'
	TriesLeft      Field = 'l'
	SHA256         Field = 'h'
)

func validField(c byte) bool {
	return strings.IndexByte("vufargtmsdlh", c) >= 0
}

// element is a literal (field 0) or a wildcard.
type element struct {
	field   Field
	literal string
}

// Pattern is a compiled match pattern.
type Pattern struct {
	source   string
	elements []element
	fields   uint64 // bit per letter-'a' of the wildcards present
}

// validLiteralChar reports whether c may appear literally in a pattern:
// printable ASCII except the characters systemd reserves for future
// globbing. '/' is allowed as a directory separator (systemd 257).
func validLiteralChar(c byte) bool {
	if c < ' ' || c >= 127 {
		return false
	}
	return strings.IndexByte("$*?[]!\\|", c) < 0
}

// Compile parses a pattern. The error names the problem and wraps ErrInvalid
// or ErrBadChar.
func Compile(s string) (*Pattern, error) {
	p := &Pattern{source: s}
	lastLiteral := true
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.elements = append(p.elements, element{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '@' {
			if i+1 >= len(s) {
				return nil, fmt.Errorf("%w %q: trailing '@'", ErrInvalid, s)
			}
			i++
			c = s[i]
			if c != '@' {
				if !validField(c) {
					return nil, fmt.Errorf("%w %q: unknown field marker '@%c'", ErrInvalid, s, c)
				}
				bit := uint64(1) << (c - 'a')
				if p.fields&bit != 0 {
					return nil, fmt.Errorf("%w %q: field marker '@%c' appears twice", ErrInvalid, s, c)
				}
				if !lastLiteral {
					return nil, fmt.Errorf("%w %q: two field markers without a separating literal", ErrInvalid, s)
				}
				flush()
				p.elements = append(p.elements, element{field: Field(c)})
				p.fields |= bit
				lastLiteral = false
				continue
			}
			// "@@" is a literal '@'.
		} else if !validLiteralChar(c) {
			return nil, fmt.Errorf("%w %q: character 0x%02x", ErrBadChar, s, c)
		}
		lit.WriteByte(c)
		lastLiteral = true
	}
	flush()
	if !p.Has(Version) {
		return nil, fmt.Errorf("%w %q: version field marker '@v' missing", ErrInvalid, s)
	}
	return p, nil
}

// MustCompile is Compile for patterns known to be valid; it panics otherwise
// and is meant for tests and constants only.
func MustCompile(s string) *Pattern {
	p, err := Compile(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.source }

// Has reports whether the pattern contains the wildcard f.
func (p *Pattern) Has(f Field) bool {
	if f < 'a' || f > 'z' {
		return false
	}
	return p.fields&(uint64(1)<<(f-'a')) != 0
}

// HasSlash reports whether the pattern reaches into subdirectories.
func (p *Pattern) HasSlash() bool {
	for _, e := range p.elements {
		if e.field == 0 && strings.Contains(e.literal, "/") {
			return true
		}
	}
	return false
}

// Fields are the values a pattern encodes. A field that is absent from the
// name is left at its zero value with its Has flag (or nil pointer) unset.
type Fields struct {
	Version string

	PartitionUUID    [16]byte
	HasPartitionUUID bool

	PartitionFlags    uint64
	HasPartitionFlags bool

	// MTime is in microseconds since the epoch.
	MTime    uint64
	HasMTime bool

	Mode    uint32
	HasMode bool

	Size    uint64
	HasSize bool

	TriesDone    uint64
	HasTriesDone bool

	TriesLeft    uint64
	HasTriesLeft bool

	NoAuto         *bool
	ReadOnly       *bool
	GrowFileSystem *bool

	SHA256    [32]byte
	HasSHA256 bool
}

// Result is the outcome of a match.
type Result int

// Match results.
const (
	// NoMatch: the name is not an instance of the pattern.
	NoMatch Result = iota
	// Matched: the name is an instance; the fields are filled in.
	Matched
	// Retry: the name is a directory on the way to an instance (the name
	// ends where the pattern expects a '/'); fields seen so far are filled
	// in.
	Retry
)

// timeTMaxSeconds bounds @t so that it fits a 64-bit time_t.
const timeTMaxSeconds = 1<<63 - 1

// components splits the elements at each '/' into per-directory lists.
func (p *Pattern) components() [][]element {
	comps := [][]element{nil}
	for _, e := range p.elements {
		if e.field != 0 {
			comps[len(comps)-1] = append(comps[len(comps)-1], e)
			continue
		}
		for i, part := range strings.Split(e.literal, "/") {
			if i > 0 {
				comps = append(comps, nil)
			}
			if part != "" {
				comps[len(comps)-1] = append(comps[len(comps)-1], element{literal: part})
			}
		}
	}
	return comps
}

// Match matches name against the pattern. With '/' in the pattern each
// path component is matched on its own; a name with fewer components whose
// components all match yields Retry.
func (p *Pattern) Match(name string) (Result, Fields) {
	var f Fields
	comps := p.components()
	parts := strings.Split(name, "/")
	if len(parts) > len(comps) {
		return NoMatch, Fields{}
	}
	for i, part := range parts {
		if !matchComponent(&f, comps[i], part) {
			return NoMatch, Fields{}
		}
	}
	if len(parts) < len(comps) {
		return Retry, f
	}
	return Matched, f
}

// matchComponent matches one path component left to right: a literal must
// match where it stands, a wildcard's value runs to the first occurrence
// of the following literal, or to the end.
func matchComponent(f *Fields, elems []element, s string) bool {
	rest := s
	for i, e := range elems {
		if e.field == 0 {
			var ok bool
			if rest, ok = strings.CutPrefix(rest, e.literal); !ok {
				return false
			}
			continue
		}
		end := len(rest)
		if i+1 < len(elems) {
			// Compile guarantees a literal follows a wildcard within a
			// component.
			end = strings.Index(rest, elems[i+1].literal)
			if end < 0 {
				return false
			}
		}
		if !parseField(f, e.field, rest[:end]) {
			return false
		}
		rest = rest[end:]
	}
	return rest == ""
}

// parseUint parses an unsigned number the way systemd's safe_atou64 family
// does: leading whitespace and '+' allowed, base 16 also accepts "0x".
func parseUint(s string, base int) (uint64, bool) {
	s = strings.TrimLeft(s, " \t\n\r")
	s = strings.TrimPrefix(s, "+")
	if base == 16 && len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, base, 64)
	return v, err == nil
}

func parseBool(s string) *bool {
	b, err := unitfile.ParseBool(s)
	if err != nil {
		return nil
	}
	return &b
}

// ParseID128 parses a UUID as sd_id128_from_string does: 32 hex digits, or
// 36 characters with dashes in the UUID positions.
func ParseID128(s string) ([16]byte, bool) {
	var id [16]byte
	switch len(s) {
	case 32:
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return id, false
		}
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	default:
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, true
}

func parseField(f *Fields, field Field, v string) bool {
	switch field {
	case Version:
		if !vercmp.IsValid(v) {
			return false
		}
		f.Version = v
	case PartitionUUID:
		id, ok := ParseID128(v)
		if !ok {
			return false
		}
		f.PartitionUUID, f.HasPartitionUUID = id, true
	case PartitionFlags:
		n, ok := parseUint(v, 16)
		if !ok {
			return false
		}
		f.PartitionFlags, f.HasPartitionFlags = n, true
	case MTime:
		n, ok := parseUint(v, 10)
		if !ok || n == ^uint64(0) || n/1000000 > timeTMaxSeconds {
			return false
		}
		f.MTime, f.HasMTime = n, true
	case Mode:
		n, ok := parseMode(v)
		if !ok || n&^0o775 != 0 {
			return false
		}
		f.Mode, f.HasMode = n, true
	case Size, TriesDone, TriesLeft:
		n, ok := parseUint(v, 10)
		if !ok || n == ^uint64(0) {
			return false
		}
		switch field {
		case Size:
			f.Size, f.HasSize = n, true
		case TriesDone:
			f.TriesDone, f.HasTriesDone = n, true
		default:
			f.TriesLeft, f.HasTriesLeft = n, true
		}
	case NoAuto, ReadOnly, GrowFileSystem:
		b := parseBool(v)
		if b == nil {
			return false
		}
		switch field {
		case NoAuto:
			f.NoAuto = b
		case ReadOnly:
			f.ReadOnly = b
		default:
			f.GrowFileSystem = b
		}
	case SHA256:
		if len(v) != 64 {
			return false
		}
		if _, err := hex.Decode(f.SHA256[:], []byte(v)); err != nil {
			return false
		}
		f.HasSHA256 = true
	default:
		return false
	}
	return true
}

// parseMode parses an octal access mode as systemd's parse_mode does
// (at most 07777).
func parseMode(s string) (uint32, bool) {
	n, ok := parseUint(s, 8)
	if !ok || n > 0o7777 {
		return 0, false
	}
	return uint32(n), true
}

// MatchAny matches name against each pattern in order; the first that
// matches or asks to retry wins (pattern_match_many).
func MatchAny(patterns []*Pattern, name string) (Result, Fields, *Pattern) {
	for _, p := range patterns {
		if r, f := p.Match(name); r != NoMatch {
			return r, f, p
		}
	}
	return NoMatch, Fields{}, nil
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Format builds a name from the pattern and fields, writing each field in
// the canonical form systemd writes. A wildcard whose field is not set is an
// error wrapping ErrMissingField.
func (p *Pattern) Format(f Fields) (string, error) {
	var b strings.Builder
	missing := func(c Field) error {
		return fmt.Errorf("pattern %q: %w: @%c", p.source, ErrMissingField, c)
	}
	// num and flag write a field that is set and report whether it is.
	num := func(has bool, v uint64, base int) bool {
		b.WriteString(strconv.FormatUint(v, base))
		return has
	}
	flag := func(v *bool) bool {
		if v != nil {
			b.WriteString(boolDigit(*v))
		}
		return v != nil
	}
	for _, e := range p.elements {
		var ok = true
		switch e.field {
		case 0:
			b.WriteString(e.literal)
		case Version:
			ok = f.Version != ""
			b.WriteString(f.Version)
		case PartitionUUID:
			ok = f.HasPartitionUUID
			b.WriteString(hex.EncodeToString(f.PartitionUUID[:]))
		case PartitionFlags:
			ok = num(f.HasPartitionFlags, f.PartitionFlags, 16)
		case MTime:
			ok = num(f.HasMTime, f.MTime, 10)
		case Mode:
			ok = f.HasMode
			fmt.Fprintf(&b, "%03o", f.Mode)
		case Size:
			ok = num(f.HasSize, f.Size, 10)
		case TriesDone:
			ok = num(f.HasTriesDone, f.TriesDone, 10)
		case TriesLeft:
			ok = num(f.HasTriesLeft, f.TriesLeft, 10)
		case NoAuto:
			ok = flag(f.NoAuto)
		case ReadOnly:
			ok = flag(f.ReadOnly)
		case GrowFileSystem:
			ok = flag(f.GrowFileSystem)
		case SHA256:
			ok = f.HasSHA256
			b.WriteString(hex.EncodeToString(f.SHA256[:]))
		}
		if !ok {
			return "", missing(e.field)
		}
	}
	return b.String(), nil
}
