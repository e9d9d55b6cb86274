package repart

import (
	"errors"
	"math"
	"strings"
)

// The integer settings of repart.d (Priority=, Weight=, PaddingWeight=,
// Flags=) go through systemd's safe_ato*() helpers, which accept more than
// decimal: "0x" hexadecimal, "0o" and a C-style leading zero octal, "0b"
// binary, a sign, and leading whitespace. These functions accept exactly
// what those helpers accept on a 64-bit system.

var (
	errNumberSyntax = errors.New("not a number")
	errNumberRange  = errors.New("number out of range")
)

// cWhitespace is what strtoul() and systemd's WHITESPACE skip.
const cWhitespace = " \t\n\v\f\r"

// mangleBase strips the "0b"/"0o" prefixes systemd recognises itself and
// returns the base for strtoul (0 means strtoul decides).
func mangleBase(s string) (string, int) {
	switch {
	case strings.HasPrefix(s, "0b"), strings.HasPrefix(s, "0B"):
		return s[2:], 2
	case strings.HasPrefix(s, "0o"), strings.HasPrefix(s, "0O"):
		return s[2:], 8
	}
	return s, 0
}

// strtoul mimics glibc's strtoull(): it returns the magnitude, whether a
// minus sign was read, whether the value overflowed, and how many bytes
// were consumed (0 when no digits were found).
func strtoul(s string, base int) (mag uint64, neg, overflow bool, n int) {
	i := 0
	for i < len(s) && strings.IndexByte(cWhitespace, s[i]) >= 0 {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if (base == 0 || base == 16) && i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') {
		if i+2 < len(s) && digitValue(s[i+2]) < 16 {
			i += 2
			base = 16
		} else {
			// "0x" without hex digits: glibc parses the "0" and stops
			// at the "x".
			return 0, neg, false, i + 1
		}
	} else if base == 0 {
		if i < len(s) && s[i] == '0' {
			base = 8
		} else {
			base = 10
		}
	}
	start := i
	for i < len(s) {
		d := digitValue(s[i])
		if d >= base {
			break
		}
		if mag > (math.MaxUint64-uint64(d))/uint64(base) {
			overflow = true
		}
		mag = mag*uint64(base) + uint64(d)
		i++
	}
	if i == start {
		return 0, false, false, 0
	}
	return mag, neg, overflow, i
}

func digitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// parseUnsigned is safe_atou32() (bits 32) or safe_atou64() (bits 64).
func parseUnsigned(s string, bits int) (uint64, error) {
	s = strings.TrimLeft(s, cWhitespace)
	s, base := mangleBase(s)
	mag, neg, overflow, n := strtoul(s, base)
	if n == 0 || n != len(s) {
		return 0, errNumberSyntax
	}
	if overflow {
		return 0, errNumberRange
	}
	v := mag
	if neg {
		v = -mag
	}
	if v != 0 && s[0] == '-' {
		return 0, errNumberRange
	}
	if bits == 32 && v > math.MaxUint32 {
		return 0, errNumberRange
	}
	return v, nil
}

// parseInt32 is safe_atoi32().
func parseInt32(s string) (int32, error) {
	s = strings.TrimLeft(s, cWhitespace)
	s, base := mangleBase(s)
	mag, neg, overflow, n := strtoul(s, base)
	if n == 0 || n != len(s) {
		return 0, errNumberSyntax
	}
	// strtol() saturates; any magnitude beyond int32 is out of range here.
	if overflow || (!neg && mag > math.MaxInt32) || (neg && mag > -math.MinInt32) {
		return 0, errNumberRange
	}
	if neg {
		return int32(-int64(mag)), nil
	}
	return int32(mag), nil
}
