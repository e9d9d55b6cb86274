package gpt

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// NameLength is how many UTF-16 code units a partition name holds. A
// character outside the Basic Multilingual Plane takes two.
const NameLength = 36

// CheckName reports whether s can be stored as a partition name: valid
// UTF-8, no NUL (which ends a name on disk), at most NameLength UTF-16 code
// units.
func CheckName(s string) error {
	_, err := encodeName(s)
	return err
}

func encodeName(s string) ([NameLength]uint16, error) {
	var out [NameLength]uint16
	if !utf8.ValidString(s) {
		return out, fmt.Errorf("partition name %q is not valid UTF-8", s)
	}
	if strings.ContainsRune(s, 0) {
		return out, fmt.Errorf("partition name %q contains a NUL character", s)
	}
	units := utf16.Encode([]rune(s))
	if len(units) > NameLength {
		return out, fmt.Errorf("partition name %q is %d UTF-16 code units long; at most %d fit", s, len(units), NameLength)
	}
	copy(out[:], units)
	return out, nil
}

func putName(b []byte, units [NameLength]uint16) {
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[2*i:], u)
	}
}

// decodeName reads a UTF-16LE name up to its first NUL. Unpaired surrogates
// become U+FFFD, so the result is always valid UTF-8 that encodes back into
// at most NameLength units.
func decodeName(b []byte) string {
	units := make([]uint16, 0, NameLength)
	for i := 0; i+1 < len(b) && len(units) < NameLength; i += 2 {
		u := binary.LittleEndian.Uint16(b[i:])
		if u == 0 {
			break
		}
		units = append(units, u)
	}
	return string(utf16.Decode(units))
}
