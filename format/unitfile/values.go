package unitfile

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Errors of the value parsers, for errors.Is.
var (
	// ErrSyntax: the text is not a value of the requested kind.
	ErrSyntax = errors.New("invalid syntax")
	// ErrRange: the value does not fit (or is negative, for a size).
	ErrRange = errors.New("value out of range")
)

// ParseBool parses a boolean the way systemd's parse_boolean() does: "1",
// "yes", "y", "true", "t" and "on" are true; "0", "no", "n", "false", "f" and
// "off" are false; ASCII case is ignored. Nothing else is accepted, not even
// surrounding whitespace.
func ParseBool(s string) (bool, error) {
	for _, t := range []string{"1", "yes", "y", "true", "t", "on"} {
		if equalFoldASCII(s, t) {
			return true, nil
		}
	}
	for _, f := range []string{"0", "no", "n", "false", "f", "off"} {
		if equalFoldASCII(s, f) {
			return false, nil
		}
	}
	return false, fmt.Errorf("unitfile: boolean %q: %w", s, ErrSyntax)
}

// equalFoldASCII compares like strcasecmp() in the C locale; strings.EqualFold
// would also match non-ASCII case variants such as U+017F for "s".
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

type sizeSuffix struct {
	suffix string
	factor uint64
}

func sizeTable(base uint64) []sizeSuffix {
	b := base
	return []sizeSuffix{
		{"E", b * b * b * b * b * b},
		{"P", b * b * b * b * b},
		{"T", b * b * b * b},
		{"G", b * b * b},
		{"M", b * b},
		{"K", b},
		{"B", 1},
		{"", 1},
	}
}

// ParseSize parses a byte size the way systemd's parse_size() does, with
// base 1024 (what unit files and repart.d use for *Bytes= settings) or 1000.
//
// The text is one or more terms, each a decimal number with an optional
// fraction and an optional suffix E, P, T, G, M, K (powers of base) or B (1),
// whitespace allowed around each part. The terms are added up, and each
// term's suffix must be smaller than the previous one's: "1G 512M" and
// "4T3G3B" are valid, "1KB" and "3B3G" are not (after K only a new term may
// follow, and "B" alone is no number). Fractions are truncated to whole
// bytes: "3.5K" is 3584. Negative numbers and sums past 2^64-1 are ErrRange.
func ParseSize(s string, base uint64) (uint64, error) {
	if base != 1000 && base != 1024 {
		return 0, fmt.Errorf("unitfile: size base %d: must be 1000 or 1024", base)
	}
	// systemd works on a C string, which ends at the first NUL.
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	fail := func(err error) (uint64, error) {
		return 0, fmt.Errorf("unitfile: size %q: %w", s, err)
	}
	table := sizeTable(base)
	var total uint64
	p, start := 0, 0
	for {
		p += spanWhitespace(s[p:])
		l, n, overflow := strtoull(s[p:])
		if overflow {
			return fail(ErrRange)
		}
		if n == 0 {
			return fail(ErrSyntax)
		}
		if s[p] == '-' {
			return fail(ErrRange)
		}
		e := p + n
		frac := 0.0
		if e < len(s) && s[e] == '.' {
			e++
			if e < len(s) && isDigit(s[e]) {
				l2, n2, overflow := strtoull(s[e:])
				if overflow {
					return fail(ErrRange)
				}
				// Same double arithmetic as systemd, so the truncated
				// result matches to the byte.
				frac = float64(l2)
				for k := 0; k < n2; k++ {
					frac /= 10
				}
				e += n2
			}
		}
		e += spanWhitespace(s[e:])
		i := start
		for ; i < len(table); i++ {
			if strings.HasPrefix(s[e:], table[i].suffix) {
				break
			}
		}
		if i >= len(table) {
			return fail(ErrSyntax)
		}
		factor := table[i].factor
		var hasFrac uint64
		if frac > 0 {
			hasFrac = 1
		}
		if l+hasFrac > math.MaxUint64/factor {
			return fail(ErrRange)
		}
		term := l*factor + uint64(frac*float64(factor))
		if term > math.MaxUint64-total {
			return fail(ErrRange)
		}
		total += term
		p = e + len(table[i].suffix)
		start = i + 1
		if p >= len(s) {
			return total, nil
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func spanWhitespace(s string) int {
	return len(s) - len(strings.TrimLeft(s, whitespace))
}

// strtoull behaves like C's strtoull(s, &end, 10) in the C locale: it skips
// isspace() characters and one sign, then reads decimal digits. n is the
// number of bytes used (0 when there are no digits); a "-" negates modulo
// 2^64; overflow reports a value past 2^64-1.
func strtoull(s string) (v uint64, n int, overflow bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	negative := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		negative = s[i] == '-'
		i++
	}
	digits := i
	for i < len(s) && isDigit(s[i]) {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			overflow = true
		}
		v = v*10 + d
		i++
	}
	if i == digits {
		return 0, 0, false
	}
	if overflow {
		return math.MaxUint64, i, true
	}
	if negative {
		v = -v
	}
	return v, i, false
}
