package unitfile

import (
	"errors"
	"fmt"
	"strings"
)

// ExtractFlags select how Words splits a value, as systemd's
// extract_first_word() flags do (same names, same bit values).
type ExtractFlags uint

// The flags of systemd's extract_first_word().
const (
	// ExtractRelax accepts an unterminated quote and drops a trailing
	// backslash.
	ExtractRelax ExtractFlags = 1 << iota
	// ExtractCUnescape decodes C escapes: \a \b \f \n \r \t \v \\ \" \'
	// \s (space), \xHH, \ooo (octal), \uHHHH and \UHHHHHHHH. NUL is refused.
	ExtractCUnescape
	// ExtractUnescapeRelax keeps an unknown escape, and a trailing backslash
	// outside quotes, verbatim instead of failing.
	ExtractUnescapeRelax
	// ExtractUnescapeSeparators lets a backslash escape a separator or a
	// backslash.
	ExtractUnescapeSeparators
	// ExtractKeepQuote makes quotes group words but keeps them in the word.
	ExtractKeepQuote
	// ExtractUnquote makes single and double quotes group words and removes
	// them.
	ExtractUnquote
	// ExtractDontCoalesceSeparators makes each separator end a word, so
	// adjacent separators yield empty words.
	ExtractDontCoalesceSeparators
	// ExtractRetainEscape treats a backslash as an ordinary character.
	ExtractRetainEscape
	// ExtractRetainSeparators stops at a separator without consuming it.
	ExtractRetainSeparators
)

// ErrBadWord is wrapped by the errors of Words and SplitWords: an
// unterminated quote, a trailing backslash or an invalid escape.
var ErrBadWord = errors.New("invalid quoting or escaping")

// Words takes words one at a time from the front of a string, like calling
// systemd's extract_first_word() in a loop. Systemd's list settings use it
// with ExtractUnquote (and often ExtractCUnescape) and whitespace as the
// separators.
type Words struct {
	s          string
	pos        int // -1 once the input is used up (systemd's NULL pointer)
	separators string
	flags      ExtractFlags
}

// NewWords returns a Words over s. An empty separators means whitespace
// (" \t\n\r"), like a NULL separator set in systemd. As in C, s ends at its
// first NUL byte.
func NewWords(s, separators string, flags ExtractFlags) *Words {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if separators == "" {
		separators = whitespace
	}
	return &Words{s: s, separators: separators, flags: flags}
}

// Rest returns what is left of the input, and false once it is used up.
func (w *Words) Rest() (string, bool) {
	if w.pos < 0 {
		return "", false
	}
	return w.s[w.pos:], true
}

// Next returns the next word. ok is false when there are no more words. After
// an error, Rest starts at the offending character, as in systemd.
func (w *Words) Next() (word string, ok bool, err error) {
	if w.flags&ExtractKeepQuote != 0 && w.flags&ExtractUnquote != 0 {
		return "", false, fmt.Errorf("unitfile: ExtractKeepQuote and ExtractUnquote are exclusive")
	}
	if w.pos < 0 {
		return "", false, nil
	}
	word, ok, next, err := extractFirstWord(w.s, w.pos, w.separators, w.flags)
	w.pos = next
	if err != nil {
		return "", false, fmt.Errorf("unitfile: %q: %w", w.s, err)
	}
	return word, ok, nil
}

// SplitWords splits s into all its words (see Words).
func SplitWords(s, separators string, flags ExtractFlags) ([]string, error) {
	w := NewWords(s, separators, flags)
	var out []string
	for {
		word, ok, err := w.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, word)
	}
}

// extractFirstWord follows systemd's extract_first_word() state machine over
// s starting at i. It returns the word, whether there was one, where the next
// call starts (-1 when the input is used up) and an error.
func extractFirstWord(s string, i int, seps string, flags ExtractFlags) (string, bool, int, error) {
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	isSep := func(c byte) bool { return strings.IndexByte(seps, c) >= 0 }
	var word []byte
	started := flags&ExtractDontCoalesceSeparators != 0
	var quote byte
	backslash := false

	// Skip leading separators.
	for ; ; i++ {
		c := at(i)
		if c == 0 {
			return finishWord(word, started, -1)
		}
		if isSep(c) {
			if flags&ExtractDontCoalesceSeparators != 0 {
				if flags&ExtractRetainSeparators == 0 {
					i++
				}
				return string(word), true, i, nil
			}
			continue
		}
		started = true
		break
	}

	for ; ; i++ {
		c := at(i)
		switch {
		case backslash:
			if c == 0 {
				if flags&ExtractUnescapeRelax != 0 && (quote == 0 || flags&ExtractRelax != 0) {
					word = append(word, '\\')
					return finishWord(word, started, -1)
				}
				if flags&ExtractRelax != 0 {
					return finishWord(word, started, -1)
				}
				return "", false, i, fmt.Errorf("%w: trailing backslash", ErrBadWord)
			}
			if flags&(ExtractCUnescape|ExtractUnescapeSeparators) != 0 {
				if n, u, eightBit, ok := cunescapeOne(s[i:]); flags&ExtractCUnescape != 0 && ok {
					i += n - 1
					if eightBit {
						word = append(word, byte(u))
					} else {
						word = appendUnichar(word, u)
					}
				} else if flags&ExtractUnescapeSeparators != 0 && (isSep(c) || c == '\\') {
					word = append(word, c)
				} else if flags&ExtractUnescapeRelax != 0 {
					word = append(word, '\\', c)
				} else {
					return "", false, i, fmt.Errorf("%w: invalid escape \\%c", ErrBadWord, c)
				}
			} else {
				word = append(word, c)
			}
			backslash = false

		case quote != 0:
			for ; ; i++ {
				c = at(i)
				if c == 0 {
					if flags&ExtractRelax != 0 {
						return finishWord(word, started, -1)
					}
					return "", false, i, fmt.Errorf("%w: unterminated quote", ErrBadWord)
				} else if c == quote {
					quote = 0
					if flags&ExtractUnquote != 0 {
						break
					}
				} else if c == '\\' && flags&ExtractRetainEscape == 0 {
					backslash = true
					break
				}
				word = append(word, c)
				if quote == 0 {
					break
				}
			}

		default:
			for ; ; i++ {
				c = at(i)
				if c == 0 {
					return finishWord(word, started, -1)
				} else if (c == '\'' || c == '"') && flags&(ExtractKeepQuote|ExtractUnquote) != 0 {
					quote = c
					if flags&ExtractUnquote != 0 {
						break
					}
				} else if c == '\\' && flags&ExtractRetainEscape == 0 {
					backslash = true
					break
				} else if isSep(c) {
					if flags&ExtractDontCoalesceSeparators != 0 {
						if flags&ExtractRetainSeparators == 0 {
							i++
						}
						return string(word), true, i, nil
					}
					if flags&ExtractRetainSeparators == 0 {
						for ; ; i++ {
							c = at(i)
							if c == 0 {
								return finishWord(word, started, -1)
							}
							if !isSep(c) {
								break
							}
						}
					}
					return finishWord(word, started, i)
				}
				word = append(word, c)
				if quote != 0 {
					break
				}
			}
		}
	}
}

func finishWord(word []byte, started bool, next int) (string, bool, int, error) {
	if !started {
		return "", false, -1, nil
	}
	return string(word), true, next, nil
}

// cunescapeOne decodes the C escape whose text (after the backslash) starts
// s, like systemd's cunescape_one() refusing NUL. It returns the number of
// bytes used, the character, and whether it is a single raw byte rather than
// a code point to encode as UTF-8.
func cunescapeOne(s string) (n int, u uint32, eightBit bool, ok bool) {
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	c := at(0)
	switch c {
	case 'a':
		return 1, '\a', false, true
	case 'b':
		return 1, '\b', false, true
	case 'f':
		return 1, '\f', false, true
	case 'n':
		return 1, '\n', false, true
	case 'r':
		return 1, '\r', false, true
	case 't':
		return 1, '\t', false, true
	case 'v':
		return 1, '\v', false, true
	case '\\', '"', '\'':
		return 1, uint32(c), false, true
	case 's':
		return 1, ' ', false, true
	}
	switch {
	case c == 'x':
		a, b := unhex(at(1)), unhex(at(2))
		if a < 0 || b < 0 || (a == 0 && b == 0) {
			return 0, 0, false, false
		}
		return 3, uint32(a<<4 | b), true, true
	case c == 'u' || c == 'U':
		digits := 4
		if c == 'U' {
			digits = 8
		}
		var v uint32
		for k := 1; k <= digits; k++ {
			h := unhex(at(k))
			if h < 0 {
				return 0, 0, false, false
			}
			v = v<<4 | uint32(h)
		}
		if v == 0 || (c == 'U' && !unicharValid(v)) {
			return 0, 0, false, false
		}
		return digits + 1, v, false, true
	case c >= '0' && c <= '7':
		a, b, d := unoct(at(0)), unoct(at(1)), unoct(at(2))
		if a < 0 || b < 0 || d < 0 {
			return 0, 0, false, false
		}
		v := uint32(a<<6 | b<<3 | d)
		if v == 0 || v > 255 {
			return 0, 0, false, false
		}
		return 3, v, true, true
	}
	return 0, 0, false, false
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func unoct(c byte) int {
	if c >= '0' && c <= '7' {
		return int(c - '0')
	}
	return -1
}

// unicharValid is systemd's unichar_is_valid().
func unicharValid(c uint32) bool {
	return c < 0x110000 && c&0xFFFFF800 != 0xD800 && !(c >= 0xFDD0 && c <= 0xFDEF) && c&0xFFFE != 0xFFFE
}

// appendUnichar encodes c as systemd's utf8_encode_unichar() does, which
// (unlike utf8.AppendRune) encodes a surrogate from \uD800 as its three
// bytes instead of replacing it.
func appendUnichar(b []byte, c uint32) []byte {
	switch {
	case c < 1<<7:
		return append(b, byte(c))
	case c < 1<<11:
		return append(b, 0xc0|byte(c>>6&0x1f), 0x80|byte(c&0x3f))
	case c < 1<<16:
		return append(b, 0xe0|byte(c>>12&0x0f), 0x80|byte(c>>6&0x3f), 0x80|byte(c&0x3f))
	default:
		return append(b, 0xf0|byte(c>>18&0x07), 0x80|byte(c>>12&0x3f), 0x80|byte(c>>6&0x3f), 0x80|byte(c&0x3f))
	}
}
