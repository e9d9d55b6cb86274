package verity

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/imago-os/imago/format/uuid"
)

// PartitionUUIDs returns the partition UUIDs systemd gives the data and
// the hash partition of a verity pair (systemd-repart when UUID= is unset,
// and the veritysetup generator and image dissection when they look for
// them): the first and the last 16 bytes of the root hash, verbatim, with
// no version or variant bits set.
func PartitionUUIDs(root []byte) (data, hash [16]byte, err error) {
	if len(root) < 16 {
		return data, hash, fmt.Errorf("verity: root hash of %d bytes is shorter than a UUID", len(root))
	}
	copy(data[:], root[:16])
	copy(hash[:], root[len(root)-16:])
	return data, hash, nil
}

// SaltFromSeed returns the salt systemd-repart 255 and later gives every
// verity hash partition: HMAC-SHA256 keyed with the 16-byte seed over
// "verity-salt", all 32 bytes.
func SaltFromSeed(seed [16]byte) []byte {
	m := hmac.New(sha256.New, seed[:])
	m.Write([]byte("verity-salt"))
	return m.Sum(nil)
}

// UUIDFromSeed returns the superblock UUID systemd-repart 255 and later
// writes: the first 16 bytes of HMAC-SHA256(seed, "verity-uuid") made a
// version 4 UUID.
func UUIDFromSeed(seed [16]byte) [16]byte {
	m := hmac.New(sha256.New, seed[:])
	m.Write([]byte("verity-uuid"))
	var u [16]byte
	copy(u[:], m.Sum(nil))
	return uuidV4(u)
}

// uuidV4 sets the version 4 and RFC 4122 variant bits.
func uuidV4(u [16]byte) [16]byte { return uuid.UUID(u).V4() }

// RandomSalt reads a salt of n bytes from rand.
func RandomSalt(rand io.Reader, n int) ([]byte, error) {
	if n < 0 || n > MaxSaltSize {
		return nil, fmt.Errorf("verity: salt size %d out of range 0..%d", n, MaxSaltSize)
	}
	salt := make([]byte, n)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("verity: reading random salt: %w", err)
	}
	return salt, nil
}

// RandomUUID reads a random version 4 UUID from rand, as libuuid's
// uuid_generate makes for veritysetup.
func RandomUUID(rand io.Reader) ([16]byte, error) {
	var u [16]byte
	if _, err := io.ReadFull(rand, u[:]); err != nil {
		return u, fmt.Errorf("verity: reading random UUID: %w", err)
	}
	return uuidV4(u), nil
}

// FormatUUID writes a UUID in the usual lowercase 8-4-4-4-12 form, the
// bytes in order (as the superblock stores them).
func FormatUUID(u [16]byte) string { return uuid.UUID(u).String() }

// ParseUUID reads a UUID in 8-4-4-4-12 form, hex digits of either case,
// as libuuid's uuid_parse accepts it.
func ParseUUID(s string) ([16]byte, error) {
	u, err := uuid.ParseCanonical(s)
	if err != nil {
		return u, fmt.Errorf("verity: invalid UUID: %w", err)
	}
	return u, nil
}
