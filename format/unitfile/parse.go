package unitfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// LongLineMax is systemd's LONG_LINE_MAX: a physical line must be shorter
// than this many bytes (line terminators not counted), and a logical line
// joined from continuation lines may not exceed it.
const LongLineMax = 1024 * 1024

// whitespace is systemd's WHITESPACE set, stripped around lines, keys and
// values.
const whitespace = " \t\n\r"

// byteOrderMark is skipped at the start of a line until the first one has
// been seen, as systemd does.
const byteOrderMark = "\xef\xbb\xbf"

// Errors that SyntaxError wraps, for errors.Is.
var (
	// ErrLineTooLong: a line, or a line joined from continuation lines,
	// exceeds LongLineMax.
	ErrLineTooLong = errors.New("line too long")
	// ErrInvalidUTF8: a line is not valid UTF-8 by systemd's rules, which
	// also refuse the noncharacters U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF.
	ErrInvalidUTF8 = errors.New("not valid UTF-8")
	// ErrSectionHeader: a line starting with '[' does not end with ']', or
	// the name holds a control character, a quote or a backslash.
	ErrSectionHeader = errors.New("invalid section header")
	// ErrOutsideSection: a line comes before the first section header.
	// systemd ignores such lines with a warning. Parse refuses a Key=Value
	// line there, and reports any other line in File.Warnings.
	ErrOutsideSection = errors.New("assignment outside of a section")
	// ErrMissingEquals: a line is neither a comment, a header nor a
	// Key=Value assignment. systemd ignores it with a warning; Parse reports
	// it in File.Warnings.
	ErrMissingEquals = errors.New("missing '=', line ignored")
	// ErrMissingKey: a line starts with '='. systemd ignores it with a
	// warning; Parse reports it in File.Warnings.
	ErrMissingKey = errors.New("missing key name before '=', line ignored")
)

// SyntaxError is a problem at one line of one file. Its text is
// "file:line: message", or "file:line: Key=: message" when it concerns a key.
type SyntaxError struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *SyntaxError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s:%d: %s=: %v", e.File, e.Line, e.Key, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

// Unwrap returns the underlying error.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Entry is one Key=Value assignment.
type Entry struct {
	Section string // name of the section it belongs to
	Key     string // stripped of surrounding whitespace, never empty
	Value   string // stripped of surrounding whitespace; "" is an empty assignment
	File    string // name of the file it was read from ("" if built in code)
	// Line is the line systemd reports for the assignment: the last physical
	// line of a continued line, or one past the end of the file when the
	// file ends inside a continuation.
	Line int
}

// Position returns "file:line", for messages about this entry.
func (e Entry) Position() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// Errorf returns a SyntaxError that points at this entry, for a caller
// refusing its key or value: "file:line: Key=: message".
func (e Entry) Errorf(format string, args ...any) error {
	return &SyntaxError{File: e.File, Line: e.Line, Key: e.Key, Err: fmt.Errorf(format, args...)}
}

// Section is one section header and the assignments under it, up to the next
// header. A name may occur in several Sections: each header in each file
// starts a new one, and lookups by name see all of them in order.
type Section struct {
	Name    string
	File    string
	Line    int
	Entries []Entry
}

// File is the parsed content of one file or of a file with its drop-ins.
type File struct {
	// Sections in the order they were read: a main file's first, then each
	// drop-in's.
	Sections []Section
	// Sources names every file that was parsed into this File, in order.
	Sources []string
	// Warnings lists the lines that systemd ignores with a warning (a line
	// without '=', or with nothing before it). A caller that wants to be
	// strict returns the first one.
	Warnings []*SyntaxError
}

// Parse reads one file in systemd's INI syntax. name is used in entries and
// error messages. A problem that makes systemd refuse the whole file (line
// too long, invalid UTF-8, bad section header) is returned as a
// *SyntaxError, and so is an assignment before the first section header.
func Parse(name string, r io.Reader) (*File, error) {
	p := &parser{name: name, f: &File{Sources: []string{name}}}
	br := bufio.NewReader(r)
	var continuation []byte
	inContinuation := false
	for {
		raw, n, err := readLine(br, LongLineMax)
		if err != nil {
			if errors.Is(err, ErrLineTooLong) {
				return nil, &SyntaxError{File: name, Line: p.line + 1, Err: err}
			}
			return nil, fmt.Errorf("unitfile: %s:%d: %w", name, p.line+1, err)
		}
		if n == 0 {
			break
		}
		p.line++

		// A comment is recognised on the raw line, before the byte order
		// mark is skipped, and also in the middle of a continuation.
		if t := strings.TrimLeft(raw, whitespace); t != "" && (t[0] == '#' || t[0] == ';') {
			continue
		}
		l := raw
		if !p.bomSeen && strings.HasPrefix(l, byteOrderMark) {
			l = l[len(byteOrderMark):]
			p.bomSeen = true
		}
		if inContinuation {
			if len(continuation)+len(l) > LongLineMax {
				return nil, &SyntaxError{File: name, Line: p.line, Err: fmt.Errorf("continuation %w", ErrLineTooLong)}
			}
			continuation = append(continuation, l...)
		}
		// The joined text so far always ends in a space, so the escape state
		// at the end only depends on the newest piece.
		if endsEscaped(l) {
			if !inContinuation {
				continuation = append(continuation[:0], l...)
				inContinuation = true
			}
			continuation[len(continuation)-1] = ' '
			continue
		}
		logical := l
		if inContinuation {
			logical = string(continuation)
			inContinuation = false
			continuation = continuation[:0]
		}
		if err := p.parseLine(logical); err != nil {
			return nil, err
		}
	}
	if inContinuation {
		p.line++
		if err := p.parseLine(string(continuation)); err != nil {
			return nil, err
		}
	}
	return p.f, nil
}

type parser struct {
	name    string
	f       *File
	line    int
	bomSeen bool
}

func (p *parser) parseLine(l string) error {
	l = strings.Trim(l, whitespace)
	if l == "" {
		return nil
	}
	if !validUTF8(l) {
		return &SyntaxError{File: p.name, Line: p.line, Err: ErrInvalidUTF8}
	}
	if l[0] == '[' {
		if l[len(l)-1] != ']' {
			return &SyntaxError{File: p.name, Line: p.line, Err: fmt.Errorf("%w %q", ErrSectionHeader, l)}
		}
		name := l[1 : len(l)-1]
		if !safeSectionName(name) {
			return &SyntaxError{File: p.name, Line: p.line, Err: fmt.Errorf("%w %q: bad characters", ErrSectionHeader, l)}
		}
		p.f.Sections = append(p.f.Sections, Section{Name: name, File: p.name, Line: p.line})
		return nil
	}
	eq := strings.IndexByte(l, '=')
	if len(p.f.Sections) == 0 {
		// systemd ignores every line here with a warning; imago refuses a
		// real assignment, since its setting would silently be lost.
		err := &SyntaxError{File: p.name, Line: p.line, Err: ErrOutsideSection}
		if eq > 0 {
			return err
		}
		p.f.Warnings = append(p.f.Warnings, err)
		return nil
	}
	if eq < 0 {
		p.f.Warnings = append(p.f.Warnings, &SyntaxError{File: p.name, Line: p.line, Err: ErrMissingEquals})
		return nil
	}
	if eq == 0 {
		p.f.Warnings = append(p.f.Warnings, &SyntaxError{File: p.name, Line: p.line, Err: ErrMissingKey})
		return nil
	}
	s := &p.f.Sections[len(p.f.Sections)-1]
	s.Entries = append(s.Entries, Entry{
		Section: s.Name,
		Key:     strings.TrimRight(l[:eq], whitespace),
		Value:   strings.Trim(l[eq+1:], whitespace),
		File:    p.name,
		Line:    p.line,
	})
	return nil
}

// endsEscaped reports whether s ends in a backslash that is not itself
// escaped by the one before it, which makes the line continue on the next.
func endsEscaped(s string) bool {
	escaped := false
	for i := 0; i < len(s); i++ {
		if escaped {
			escaped = false
		} else if s[i] == '\\' {
			escaped = true
		}
	}
	return escaped
}

// Line terminator kinds, as systemd's read_line() tells them apart.
const (
	eolNewline = 1 << iota
	eolReturn
	eolNUL
)

// readLine reads one line the way systemd's read_line() does: "\n", "\r" and
// NUL end a line, and so does any combination that uses each of them at most
// once with the NUL last ("\r\n", "\n\r", "\r\n\0", ...). It returns the line
// without its terminator and the number of bytes consumed, 0 at the end of
// input. A line of limit bytes or more is ErrLineTooLong.
func readLine(r *bufio.Reader, limit int) (string, int, error) {
	var buf []byte
	count := 0
	previous := 0
	for {
		if len(buf) >= limit {
			return "", count, ErrLineTooLong
		}
		c, err := r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", count, err
		}
		eol := 0
		switch c {
		case '\n':
			eol = eolNewline
		case '\r':
			eol = eolReturn
		case 0:
			eol = eolNUL
		}
		if previous&eolNUL != 0 || (eol == 0 && previous != 0) || (eol != 0 && previous&eol != 0) {
			// The byte belongs to the next line; UnreadByte cannot fail
			// right after ReadByte.
			_ = r.UnreadByte()
			break
		}
		count++
		if eol != 0 {
			previous |= eol
			continue
		}
		buf = append(buf, c)
	}
	return string(buf), count, nil
}

// validUTF8 is systemd's utf8_is_valid(): well-formed UTF-8 without
// surrogates, and also without the noncharacters U+FDD0..U+FDEF and
// U+xxFFFE/U+xxFFFF, which Go's utf8.ValidString accepts.
func validUTF8(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE {
			return false
		}
		i += size
	}
	return true
}

// safeSectionName is systemd's string_is_safe(): no control characters, no
// quotes, no backslash, no DEL.
func safeSectionName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c > 0 && c < ' ') || c == '"' || c == '\'' || c == '\\' || c == 0x7f {
			return false
		}
	}
	return true
}
