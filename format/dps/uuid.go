package dps

import (
	"fmt"

	"github.com/imago-os/imago/format/uuid"
)

// UUID is a 128-bit identifier in RFC 4122 string order: byte 0 is the first
// two hex digits of the canonical string. This is the order systemd uses for
// sd_id128_t, not the mixed-endian order of GPT entries on disk.
type UUID = uuid.UUID

// ParseUUID parses a UUID as systemd accepts it: the 36-character form with
// dashes, or 32 hex digits without them, in either case.
func ParseUUID(s string) (UUID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return UUID{}, fmt.Errorf("dps: %w", err)
	}
	return u, nil
}
