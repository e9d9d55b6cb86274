package gpt

import (
	"encoding/hex"
	"fmt"
	"io"
)

// GUID is a 128-bit identifier in RFC 4122 string order: byte 0 holds the
// first two hex digits of the canonical string. GPT stores the first three
// fields little-endian; see [GUIDFromDisk] and [GUID.DiskBytes].
type GUID [16]byte

// String returns the canonical lower-case form.
func (g GUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], g[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], g[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], g[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], g[10:16])
	return string(b[:])
}

// IsZero reports whether g is all zeros, the type GUID of an unused entry.
func (g GUID) IsZero() bool { return g == GUID{} }

// ParseGUID parses the 36-character canonical form, in either case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("gpt: %q is not a GUID (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s)
	}
	digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(g[:], []byte(digits)); err != nil {
		return GUID{}, fmt.Errorf("gpt: %q is not a GUID: %v", s, err)
	}
	return g, nil
}

// GUIDFromDisk converts the 16 bytes of a GUID as GPT stores them.
func GUIDFromDisk(b [16]byte) GUID {
	return GUID{
		b[3], b[2], b[1], b[0],
		b[5], b[4],
		b[7], b[6],
		b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15],
	}
}

// DiskBytes returns g in GPT's on-disk byte order. The conversion is its own
// inverse.
func (g GUID) DiskBytes() [16]byte { return [16]byte(GUIDFromDisk(g)) }

func getGUID(b []byte) GUID { return GUIDFromDisk([16]byte(b[:16])) }

func putGUID(b []byte, g GUID) {
	d := g.DiskBytes()
	copy(b, d[:])
}

// NewRandomGUID returns a random (version 4) GUID read from rand, normally
// crypto/rand.Reader.
func NewRandomGUID(rand io.Reader) (GUID, error) {
	var g GUID
	if _, err := io.ReadFull(rand, g[:]); err != nil {
		return GUID{}, fmt.Errorf("gpt: random GUID: %w", err)
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}
