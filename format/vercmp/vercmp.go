// Package vercmp orders version strings the way systemd does, and checks
// version strings the way systemd-sysupdate accepts them.
//
// Compare implements strverscmp_improved() from systemd's
// src/fundamental/string-util-fundamental.c, the ordering specified by the
// UAPI Version Format Specification (UAPI.10). systemd uses it to pick the
// newest of several GPT partitions by label, to sort boot loader entries and
// unified kernel images, and to find the newest sysupdate instance. The
// algorithm is unchanged from systemd v252 through current main, and Compare
// matches v252 on every input except one platform-dependent corner that
// Compare's documentation describes.
//
// The package is pure: no I/O and no state.
package vercmp

import (
	"slices"
	"strings"
)

// Compare orders two version strings and returns -1 if a is older than b, 0
// if they are equivalent, and 1 if a is newer.
//
// A version is read as a sequence of segments, each a run of ASCII digits or
// of ASCII letters, optionally preceded by one of the markers '~', '-', '^'
// and '.'. Every other byte (including '_', '+' and all non-ASCII bytes)
// only separates segments. In order of precedence, at each step:
//
//   - '~' marks a pre-release: the side that has it is older.
//   - A side that has run out is older; so "1" < "1.0" but "1~rc1" < "1".
//   - '-' then '^' then '.': the side that has the marker is older.
//   - A numeric segment is newer than an alphabetic or missing one; numbers
//     compare by value, without limit on their length (leading zeros are
//     ignored).
//   - Letters compare by ASCII byte value over their common length (so
//     "B" < "a"), then the longer run is newer.
//
// Like the C original, each string ends at its first NUL byte.
//
// One corner depends on how systemd was compiled: when both strings have a
// '~' at the same point and, right after it, one string ends while the other
// holds a byte of 0x80 or above, systemd compares those two bytes as C chars.
// Where char is unsigned (arm64, and systemd-boot's 16-bit chars) the longer
// string is newer; where it is signed (x86-64 userspace) it is older, which
// makes that ordering intransitive ("~\xe9" < "~" < "~_" but "~\xe9" ==
// "~_"). Compare follows the unsigned reading, so it is a total preorder on
// every input and agrees with the boot loader; it differs from x86-64
// userspace only in that corner, which sysupdate never meets because it
// refuses '~' in versions.
func Compare(a, b string) int { return compare(a, b, false) }

// compare is strverscmp_improved(); signedChar selects how the end-of-string
// test reads a high byte, as described at Compare.
func compare(a, b string, signedChar bool) int {
	a, b = cString(a), cString(b)
	i, j := 0, 0
	for {
		i = skipSeparators(a, i)
		j = skipSeparators(b, j)

		if at(a, i) == '~' || at(b, j) == '~' {
			if r := cmpBool(at(a, i) != '~', at(b, j) != '~'); r != 0 {
				return r
			}
			i, j = i+1, j+1
		}

		// systemd does not skip separators again after a '~', so the byte
		// facing the end of the other string may be a separator.
		if ca, cb := at(a, i), at(b, j); ca == 0 || cb == 0 {
			if signedChar {
				return cmpInt(int(int8(ca)), int(int8(cb)))
			}
			return cmpInt(int(ca), int(cb))
		}

		for _, marker := range []byte{'-', '^', '.'} {
			if at(a, i) == marker || at(b, j) == marker {
				if r := cmpBool(at(a, i) != marker, at(b, j) != marker); r != 0 {
					return r
				}
				i, j = i+1, j+1
			}
		}

		var ie, je int
		if isDigit(at(a, i)) || isDigit(at(b, j)) {
			ie, je = runEnd(a, i, isDigit), runEnd(b, j, isDigit)
			if r := cmpBool(ie > i, je > j); r != 0 {
				return r
			}
			for i < ie && a[i] == '0' {
				i++
			}
			for j < je && b[j] == '0' {
				j++
			}
			// Equal lengths without leading zeros compare by value as strings.
			if r := cmpInt(ie-i, je-j); r != 0 {
				return r
			}
			if r := strings.Compare(a[i:ie], b[j:je]); r != 0 {
				return r
			}
		} else {
			ie, je = runEnd(a, i, isAlpha), runEnd(b, j, isAlpha)
			n := min(ie-i, je-j)
			if r := strings.Compare(a[i:i+n], b[j:j+n]); r != 0 {
				return r
			}
			if r := cmpInt(ie-i, je-j); r != 0 {
				return r
			}
		}
		i, j = ie, je
	}
}

// Less reports whether version a is strictly older than version b.
func Less(a, b string) bool { return Compare(a, b) < 0 }

// Sort orders versions from oldest to newest. Equivalent versions keep their
// relative order, as systemd keeps the earlier of two equal partitions.
func Sort(versions []string) { slices.SortStableFunc(versions, Compare) }

// maxNameLen is the longest file name Linux allows (NAME_MAX), in bytes.
const maxNameLen = 255

// IsValid reports whether v is a version systemd-sysupdate v252 accepts
// (version_is_valid() in src/sysupdate/sysupdate-util.c): not empty, usable
// as a file name (not "." or "..", no '/', at most 255 bytes) and made only
// of ASCII letters, digits and ".,_+-". Note that '~' and '^', although they
// are meaningful to Compare, are not accepted; later systemd releases keep
// this character set.
func IsValid(v string) bool {
	if v == "" || v == "." || v == ".." || len(v) > maxNameLen {
		return false
	}
	for k := 0; k < len(v); k++ {
		c := v[k]
		if !isDigit(c) && !isAlpha(c) && !strings.ContainsRune(".,_+-", rune(c)) {
			return false
		}
	}
	return true
}

// cString cuts s at its first NUL, where a C string would end.
func cString(s string) string {
	if k := strings.IndexByte(s, 0); k >= 0 {
		return s[:k]
	}
	return s
}

// at returns the byte at index k, or 0 past the end, playing the part of
// C's terminating NUL.
func at(s string, k int) byte {
	if k < len(s) {
		return s[k]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// isVersionChar reports whether c takes part in the ordering; all other
// bytes only separate segments.
func isVersionChar(c byte) bool {
	return isDigit(c) || isAlpha(c) || c == '~' || c == '-' || c == '^' || c == '.'
}

func skipSeparators(s string, k int) int {
	for k < len(s) && !isVersionChar(s[k]) {
		k++
	}
	return k
}

func runEnd(s string, k int, in func(byte) bool) int {
	for k < len(s) && in(s[k]) {
		k++
	}
	return k
}

func cmpInt(x, y int) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// cmpBool orders false before true.
func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return 1
	}
	return -1
}
