package efivar

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// EncodeString returns s as systemd writes string variables
// (efi_set_variable_string): UTF-16LE followed by a 16-bit NUL. Characters
// outside the Basic Multilingual Plane become surrogate pairs.
//
// s must be valid UTF-8 without NUL. systemd would silently cut a string at
// its first NUL and copy invalid bytes through unchanged; imago refuses to
// write such values instead of writing something else than it was asked to.
func EncodeString(s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("efivar: string %q is not valid UTF-8", s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("efivar: string %q contains NUL", s)
	}
	return appendUTF16(make([]byte, 0, 2*len(s)+2), s), nil
}

// appendUTF16 appends s (valid UTF-8, no NUL) as UTF-16LE plus terminator.
func appendUTF16(out []byte, s string) []byte {
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			out = binary.LittleEndian.AppendUint16(out, uint16(hi))
			out = binary.LittleEndian.AppendUint16(out, uint16(lo))
			continue
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(r))
	}
	return append(out, 0, 0)
}

// DecodeString reads a string variable exactly as systemd does
// (efi_get_variable_string, i.e. utf16_to_utf8 read as a C string): the
// payload is UTF-16LE, the string ends at the first NUL character or at the
// end of the data (the terminator is optional), an odd trailing byte is
// ignored, and unpaired surrogates are dropped. The result is always valid
// UTF-8 without NUL.
func DecodeString(data []byte) string {
	out, _ := decodeUTF16(data)
	return out
}

// decodeUTF16 converts UTF-16LE up to the first NUL unit, returning the
// string and the number of bytes consumed including the NUL, if any.
func decodeUTF16(data []byte) (string, int) {
	var out []byte
	i := 0
	for i+1 < len(data) {
		w1 := rune(binary.LittleEndian.Uint16(data[i:]))
		i += 2
		switch {
		case w1 == 0:
			return string(out), i
		case !utf16.IsSurrogate(w1):
			out = utf8.AppendRune(out, w1)
			continue
		case w1 >= 0xdc00:
			continue // a trailing surrogate without its leading one
		case i+1 >= len(data):
			return string(out), len(data) // a leading surrogate cut off
		}
		w2 := rune(binary.LittleEndian.Uint16(data[i:]))
		if w2 < 0xdc00 || w2 > 0xdfff {
			continue // a leading surrogate without its trailing one; w2 is read again
		}
		i += 2
		out = utf8.AppendRune(out, utf16.DecodeRune(w1, w2))
	}
	return string(out), len(data)
}

// EncodeStringList returns strings the way systemd-boot writes
// LoaderEntries: each one UTF-16LE and NUL-terminated, concatenated. Every
// string must be non-empty, valid UTF-8 and free of NUL, since an empty one
// would be indistinguishable from the list's end.
func EncodeStringList(list []string) ([]byte, error) {
	var out []byte
	for i, s := range list {
		if s == "" {
			return nil, fmt.Errorf("efivar: string list: item %d is empty", i)
		}
		b, err := EncodeString(s)
		if err != nil {
			return nil, fmt.Errorf("efivar: string list: item %d: %w", i, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// DecodeStringList reads a list of NUL-separated UTF-16LE strings the way
// systemd reads LoaderEntries (efi_loader_get_entries): the last string's
// terminator is optional, an odd trailing byte counts as a character whose
// high byte is zero, and empty strings are skipped. Each string is decoded
// as DecodeString does.
func DecodeStringList(data []byte) []string {
	if len(data)%2 != 0 {
		// systemd reads the odd byte together with the NUL padding it
		// always puts behind a variable's value.
		data = append(data[:len(data):len(data)], 0)
	}
	var list []string
	start := 0
	for i := 0; i <= len(data); i += 2 {
		if i < len(data) && (data[i] != 0 || data[i+1] != 0) {
			continue
		}
		if i > start {
			if s := DecodeString(data[start:i]); s != "" {
				list = append(list, s)
			}
		}
		start = i + 2
	}
	return list
}

// EntryIDValid reports whether s is acceptable as a boot loader entry ID
// for systemd (efi_loader_entry_name_valid): a valid file name of at most
// 255 bytes, not "." or "..", made only of ASCII letters, digits and
// "+-_.". bootctl and logind refuse other names, and systemd drops them when
// reading LoaderEntries.
func EntryIDValid(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '+', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// DecodeEntries reads LoaderEntries as systemd does: DecodeStringList, then
// only the strings EntryIDValid accepts, in order.
func DecodeEntries(data []byte) []string {
	var ids []string
	for _, s := range DecodeStringList(data) {
		if EntryIDValid(s) {
			ids = append(ids, s)
		}
	}
	return ids
}

// EncodeDecimal returns n as the UTF-16 decimal string systemd and
// systemd-boot use for numeric variables (LoaderConfigTimeout,
// LoaderTimeInitUSec, StubPcrKernelImage, ...).
func EncodeDecimal(n uint64) []byte {
	return appendUTF16(nil, strconv.FormatUint(n, 10))
}

// DecodeDecimal reads a numeric string variable. It accepts only the
// canonical form that systemd and systemd-boot write: "0", or digits
// without a leading zero, up to 2^64-1. (systemd's own parser would also
// take leading blanks, a sign, or a 0x/0o/0b or C-octal prefix; imago
// refuses those rather than risk reading them differently.)
func DecodeDecimal(data []byte) (uint64, error) {
	s := DecodeString(data)
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("efivar: %q is not a canonical decimal number", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("efivar: %q is not a canonical decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("efivar: %q is out of range for 64 bits", s)
	}
	return n, nil
}

// EncodeUint64 returns n as the 8 little-endian bytes of LoaderFeatures and
// StubFeatures.
func EncodeUint64(n uint64) []byte {
	return binary.LittleEndian.AppendUint64(nil, n)
}

// DecodeUint64 reads a little-endian u64 variable. Like systemd it insists
// on exactly 8 bytes.
func DecodeUint64(data []byte) (uint64, error) {
	if len(data) != 8 {
		return 0, fmt.Errorf("efivar: u64 value: want 8 bytes, got %d", len(data))
	}
	return binary.LittleEndian.Uint64(data), nil
}

// ParseBoolean interprets s as systemd's parse_boolean does: "1", "yes",
// "y", "true", "t" and "on" are true; "0", "no", "n", "false", "f" and
// "off" are false; case is ignored (ASCII only); anything else, including
// the empty string and surrounding blanks, is an error.
func ParseBoolean(s string) (bool, error) {
	for _, t := range [...]string{"1", "yes", "y", "true", "t", "on"} {
		if asciiEqualFold(s, t) {
			return true, nil
		}
	}
	for _, f := range [...]string{"0", "no", "n", "false", "f", "off"} {
		if asciiEqualFold(s, f) {
			return false, nil
		}
	}
	return false, fmt.Errorf("efivar: %q is not a boolean", s)
}

// asciiEqualFold compares like C's strcasecmp in the C locale: only ASCII
// letters fold, so that e.g. "yeſ" is not "yes" (strings.EqualFold would
// say it is).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
