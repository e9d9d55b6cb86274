// Package uuid holds the 128-bit identifiers that systemd calls sd_id128_t and
// that GPT, dm-verity superblocks, file systems and LUKS headers carry: their
// canonical text form and the version 4 marking. Bytes are in RFC 4122 string
// order (byte 0 is the first two hex digits of the text); formats that store
// another order, such as GPT's mixed-endian entries, convert at their edge.
package uuid

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// UUID is a 128-bit identifier in RFC 4122 string order.
type UUID [16]byte

// ErrSyntax is wrapped by the errors of Parse and ParseCanonical.
var ErrSyntax = errors.New("not a UUID")

// String returns the canonical lowercase 8-4-4-4-12 form.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// IsZero reports whether u is all zeros.
func (u UUID) IsZero() bool { return u == UUID{} }

// V4 returns u with the version 4 and RFC 4122 variant bits set, as
// systemd's id128_make_v4_uuid() and libuuid's uuid_generate() do.
func (u UUID) V4() UUID {
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// NewRandom reads a random version 4 UUID from rand.
func NewRandom(rand io.Reader) (UUID, error) {
	var u UUID
	if _, err := io.ReadFull(rand, u[:]); err != nil {
		return u, fmt.Errorf("uuid: reading random bytes: %w", err)
	}
	return u.V4(), nil
}

// Parse reads a UUID as systemd's sd_id128_from_string() accepts it: the
// 36-character form with dashes or 32 hex digits without, in either case.
func Parse(s string) (UUID, error) {
	if len(s) == 32 {
		return decode(s, s)
	}
	return ParseCanonical(s)
}

// ParseCanonical reads only the 36-character 8-4-4-4-12 form, in either
// case, as libuuid's uuid_parse() does.
func ParseCanonical(s string) (UUID, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return UUID{}, fmt.Errorf("%q: %w (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s, ErrSyntax)
	}
	return decode(s, s[0:8]+s[9:13]+s[14:18]+s[19:23]+s[24:36])
}

func decode(s, digits string) (UUID, error) {
	var u UUID
	if _, err := hex.Decode(u[:], []byte(digits)); err != nil {
		return UUID{}, fmt.Errorf("%q: %w (%v)", s, ErrSyntax, err)
	}
	return u, nil
}
