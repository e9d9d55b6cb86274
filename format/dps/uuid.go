package dps

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// UUID is a 128-bit identifier in RFC 4122 string order: byte 0 is the first
// two hex digits of the canonical string. This is the order systemd uses for
// sd_id128_t, not the mixed-endian order of GPT entries on disk.
type UUID [16]byte

// String returns the canonical lower-case form, e.g.
// "4f68bce3-e8cd-4db1-96e7-fbcaf984b709".
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

// IsZero reports whether u is the all-zero UUID, which GPT uses for an
// unused entry.
func (u UUID) IsZero() bool { return u == UUID{} }

// errUUIDSyntax is wrapped by ParseUUID's errors.
var errUUIDSyntax = errors.New("not a UUID")

// ParseUUID parses a UUID as systemd accepts it: the 36-character form with
// dashes, or 32 hex digits without them, in either case.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	var digits string
	switch len(s) {
	case 32:
		digits = s
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return u, fmt.Errorf("dps: %q: %w (dashes misplaced)", s, errUUIDSyntax)
		}
		digits = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	default:
		return u, fmt.Errorf("dps: %q: %w (want 32 hex digits or the 36-character form)", s, errUUIDSyntax)
	}
	if _, err := hex.Decode(u[:], []byte(digits)); err != nil {
		return UUID{}, fmt.Errorf("dps: %q: %w (%v)", s, errUUIDSyntax, err)
	}
	return u, nil
}
