package gpt

import (
	"fmt"
	"io"

	"github.com/imago-os/imago/format/uuid"
)

// GUID is a 128-bit identifier in RFC 4122 string order: byte 0 holds the
// first two hex digits of the canonical string. GPT stores the first three
// fields little-endian; see [GUIDFromDisk] and [GUID.DiskBytes].
type GUID uuid.UUID

// String returns the canonical lower-case form.
func (g GUID) String() string { return uuid.UUID(g).String() }

// IsZero reports whether g is all zeros, the type GUID of an unused entry.
func (g GUID) IsZero() bool { return g == GUID{} }

// ParseGUID parses the 36-character canonical form, in either case.
func ParseGUID(s string) (GUID, error) {
	u, err := uuid.ParseCanonical(s)
	if err != nil {
		return GUID{}, fmt.Errorf("gpt: %w", err)
	}
	return GUID(u), nil
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
	u, err := uuid.NewRandom(rand)
	if err != nil {
		return GUID{}, fmt.Errorf("gpt: random GUID: %w", err)
	}
	return GUID(u), nil
}
