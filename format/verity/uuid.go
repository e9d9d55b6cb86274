package verity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
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
func uuidV4(u [16]byte) [16]byte {
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

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
func FormatUUID(u [16]byte) string {
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

// ParseUUID reads a UUID in 8-4-4-4-12 form, hex digits of either case,
// as libuuid's uuid_parse accepts it.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("verity: invalid UUID %q", s)
	}
	compact := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(compact)); err != nil {
		return u, fmt.Errorf("verity: invalid UUID %q", s)
	}
	return u, nil
}
