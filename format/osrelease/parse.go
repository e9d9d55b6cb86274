package osrelease

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxSize is the largest file Parse reads. os-release files are a few hundred
// bytes; the cap only keeps a hostile input from exhausting memory.
const MaxSize = 4 << 20

// ErrNUL is returned for input containing a NUL byte, which systemd refuses
// (the whole file, with EBADMSG).
var ErrNUL = errors.New("osrelease: file contains a NUL byte")

// Warning describes a line systemd skips while still accepting the file, or a
// construct whose meaning differs between systemd releases.
type Warning struct {
	Line    int    // 1-based line where the construct starts
	Message string // what was skipped and why
}

// String formats the warning as "line N: message".
func (w Warning) String() string { return fmt.Sprintf("line %d: %s", w.Line, w.Message) }

// The character classes systemd's env-file parser works with.
const (
	whitespace      = " \t\n\r"
	newline         = "\n\r"
	commentStarts   = "#;"
	shellNeedEscape = "\"\\`$"
)

func in(c byte, set string) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

type parseState int

const (
	stPreKey parseState = iota
	stKey
	stPreValue
	stValue
	stValueEscape
	stSingleQuote
	stDoubleQuote
	stDoubleQuoteEscape
	stComment
	stCommentEscape
)

// Parse reads an os-release style file (os-release, initrd-release,
// extension-release) the way systemd 252's env-file parser does.
//
// Assignments whose key is not a valid environment variable name and lines
// without "=" are skipped and reported in Release.Warnings. Invalid UTF-8 in
// an assignment or a NUL byte anywhere makes the whole file invalid, as it
// does for systemd. A key assigned twice keeps its first position and its last
// value.
func Parse(r io.Reader) (*Release, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("osrelease: read: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("osrelease: file larger than %d bytes", MaxSize)
	}
	return ParseBytes(data)
}

// ParseBytes is Parse for data already in memory.
func ParseBytes(data []byte) (*Release, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, ErrNUL
	}
	p := parser{rel: &Release{}, line: 1}
	for _, c := range data {
		p.step(c)
		if c == '\n' {
			p.line++
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.rel, p.err
}

type parser struct {
	rel   *Release
	state parseState
	line  int // current physical line (counted by '\n')

	key, value []byte
	keyLine    int
	// keyTrim and valueTrim mark where a run of trailing blanks starts
	// (-1: none); systemd strips trailing blanks from keys and from the
	// unquoted part of a value, but not escaped or quoted blanks.
	keyTrim, valueTrim int

	commentLine int
	err         error
}

func (p *parser) step(c byte) {
	switch p.state {
	case stPreKey:
		if in(c, commentStarts) {
			p.state = stComment
			p.commentLine = p.line
		} else if !in(c, whitespace) {
			p.state = stKey
			p.key = append(p.key[:0], c)
			p.keyLine = p.line
			p.keyTrim = -1
		}

	case stKey:
		switch {
		case in(c, newline):
			p.state = stPreKey
			p.warn(p.keyLine, fmt.Sprintf("no \"=\" in %q, line ignored", trimmed(p.key, p.keyTrim)))
		case c == '=':
			p.state = stPreValue
			p.value = p.value[:0]
			p.valueTrim = -1
		default:
			if !in(c, whitespace) {
				p.keyTrim = -1
			} else if p.keyTrim < 0 {
				p.keyTrim = len(p.key)
			}
			p.key = append(p.key, c)
		}

	case stPreValue:
		switch {
		case in(c, newline):
			p.state = stPreKey
			p.push()
		case c == '\'':
			p.state = stSingleQuote
		case c == '"':
			p.state = stDoubleQuote
		case c == '\\':
			p.state = stValueEscape
		case !in(c, whitespace):
			p.state = stValue
			p.value = append(p.value, c)
		}

	case stValue:
		switch {
		case in(c, newline):
			p.state = stPreKey
			if p.valueTrim >= 0 {
				p.value = p.value[:p.valueTrim]
			}
			p.push()
		case c == '\\':
			p.state = stValueEscape
			p.valueTrim = -1
		default:
			if !in(c, whitespace) {
				p.valueTrim = -1
			} else if p.valueTrim < 0 {
				p.valueTrim = len(p.value)
			}
			p.value = append(p.value, c)
		}

	case stValueEscape:
		// Outside quotes a backslash takes the next character literally; a
		// backslash before a line break joins the lines.
		p.state = stValue
		if !in(c, newline) {
			p.value = append(p.value, c)
		}

	case stSingleQuote:
		if c == '\'' {
			p.state = stPreValue
		} else {
			p.value = append(p.value, c)
		}

	case stDoubleQuote:
		switch c {
		case '"':
			p.state = stPreValue
		case '\\':
			p.state = stDoubleQuoteEscape
		default:
			p.value = append(p.value, c)
		}

	case stDoubleQuoteEscape:
		// Inside double quotes only the shell's special characters are
		// escapes; before any other character the backslash stays, as in sh.
		p.state = stDoubleQuote
		switch {
		case in(c, shellNeedEscape):
			p.value = append(p.value, c)
		case c != '\n':
			p.value = append(p.value, '\\', c)
		}

	case stComment:
		switch {
		case c == '\\':
			p.state = stCommentEscape
		case in(c, newline):
			p.state = stPreKey
		}

	case stCommentEscape:
		// systemd 252 keeps a comment going across a backslash-newline, so
		// the following line is part of the comment. systemd 254 changed
		// this; warn because the two read such a file differently.
		p.state = stComment
		if in(c, newline) {
			p.warn(p.commentLine, "comment ends in a backslash; systemd 252 treats the next line as comment too (254 and later do not)")
		}
	}
}

func (p *parser) finish() error {
	switch p.state {
	case stKey:
		p.warn(p.keyLine, fmt.Sprintf("no \"=\" in %q at end of file, ignored", trimmed(p.key, p.keyTrim)))
	case stValue:
		if p.valueTrim >= 0 {
			p.value = p.value[:p.valueTrim]
		}
		p.push()
	case stSingleQuote, stDoubleQuote, stDoubleQuoteEscape:
		p.warn(p.keyLine, "quote not closed before end of file")
		p.push()
	case stPreValue, stValueEscape:
		p.push()
	}
	return p.err
}

func trimmed(key []byte, trim int) []byte {
	if trim >= 0 {
		return key[:trim]
	}
	return key
}

func (p *parser) warn(line int, msg string) {
	p.rel.Warnings = append(p.rel.Warnings, Warning{Line: line, Message: msg})
}

// push completes one assignment, mirroring what systemd's loaders do with it.
func (p *parser) push() {
	if p.err != nil {
		return
	}
	key := string(trimmed(p.key, p.keyTrim))
	value := string(p.value)
	if !utf8.ValidString(key) {
		p.err = fmt.Errorf("osrelease: line %d: invalid UTF-8 in key %q", p.keyLine, key)
		return
	}
	if !utf8.ValidString(value) {
		p.err = fmt.Errorf("osrelease: line %d: invalid UTF-8 in value of %s", p.keyLine, key)
		return
	}
	if !ValidKey(key) {
		p.warn(p.keyLine, fmt.Sprintf("%q is not a valid variable name, assignment ignored", key))
		return
	}
	if i := p.rel.index(key); i >= 0 {
		p.warn(p.keyLine, fmt.Sprintf("%s assigned again, the later value wins", key))
		p.rel.fields[i].Value = value
		return
	}
	p.rel.fields = append(p.rel.fields, Field{Key: key, Value: value})
}
