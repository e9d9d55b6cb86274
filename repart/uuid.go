package repart

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"github.com/imago-os/imago/format/dps"
)

// The identifiers systemd-repart derives from its seed are HMAC-SHA256
// values (FIPS 198) keyed by a 128-bit ID, of which the first 16 bytes are
// taken and marked as a version 4 UUID. Everything works on the UUID bytes
// in string order, never on GPT's mixed-endian form.

// MakeV4 sets the version (4) and variant (RFC 4122) bits of u, as
// systemd's id128_make_v4_uuid() does.
func MakeV4(u dps.UUID) dps.UUID {
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func hmacFirst16(key dps.UUID, msg []byte) dps.UUID {
	m := hmac.New(sha256.New, key[:])
	m.Write(msg)
	var u dps.UUID
	copy(u[:], m.Sum(nil))
	return MakeV4(u)
}

// DeriveUUID is systemd-repart's derive_uuid(): v4(first16(HMAC-SHA256(key
// = base, message = token))).
func DeriveUUID(base dps.UUID, token string) dps.UUID {
	return hmacFirst16(base, []byte(token))
}

// DiskUUID is the disk GUID of a new table: DeriveUUID(seed, "disk-uuid").
func DiskUUID(seed dps.UUID) dps.UUID { return DeriveUUID(seed, "disk-uuid") }

// PartitionUUID is the UUID of the partition that has index earlier
// partitions of the same type before it in repart's list:
// v4(first16(HMAC-SHA256(seed, type))) for the first, and the type followed
// by index as a little-endian 64-bit number for later ones.
func PartitionUUID(seed, typ dps.UUID, index uint64) dps.UUID {
	msg := typ[:]
	if index > 0 {
		msg = binary.LittleEndian.AppendUint64(append([]byte(nil), typ[:]...), index)
	}
	return hmacFirst16(seed, msg)
}

// FileSystemUUID is the UUID systemd-repart gives the file system it makes
// in a new partition: DeriveUUID(partition UUID, "file-system-uuid").
// systemd 252 uses the zero UUID as key for Verity=data partitions, whose
// UUID is not known before the verity hash is computed.
func FileSystemUUID(partition dps.UUID) dps.UUID {
	return DeriveUUID(partition, "file-system-uuid")
}

// LUKSUUID is the UUID of the LUKS2 header of an encrypted new partition:
// DeriveUUID(partition UUID, "luks-uuid").
func LUKSUUID(partition dps.UUID) dps.UUID { return DeriveUUID(partition, "luks-uuid") }

// VeritySalt is the verity salt systemd-repart 255 and later derive from
// the seed: the whole HMAC-SHA256(seed, "verity-salt"). systemd 252 uses a
// random salt; imago uses this one so that builds are reproducible.
func VeritySalt(seed dps.UUID) [32]byte {
	m := hmac.New(sha256.New, seed[:])
	m.Write([]byte("verity-salt"))
	var s [32]byte
	copy(s[:], m.Sum(nil))
	return s
}

// VerityUUID is the verity superblock UUID systemd-repart 255 and later
// derive: DeriveUUID(seed, "verity-uuid"). systemd 252 uses a random one.
func VerityUUID(seed dps.UUID) dps.UUID { return DeriveUUID(seed, "verity-uuid") }
