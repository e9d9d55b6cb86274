package content

import (
	"crypto/hmac"
	"crypto/sha256"

	"github.com/imago-os/imago/format/gpt"
)

// deriveUUID is systemd-repart's derive_uuid: the first 16 bytes of
// HMAC-SHA256 keyed with the partition UUID over a purpose string, made a
// version 4 UUID (disk-format spec §4.5).
func deriveUUID(key gpt.GUID, purpose string) gpt.GUID {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(purpose))
	var u gpt.GUID
	copy(u[:], m.Sum(nil))
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// FileSystemUUID returns the file-system UUID systemd-repart gives a new
// file system in the partition whose UUID is partUUID. systemd 252 formats a
// Verity=data partition before its UUID is known and keys this with 16 zero
// bytes; pass the zero GUID to get the same.
func FileSystemUUID(partUUID gpt.GUID) gpt.GUID { return deriveUUID(partUUID, "file-system-uuid") }

// LUKSUUID returns the LUKS2 header UUID systemd-repart gives an encrypted
// partition whose UUID is partUUID.
func LUKSUUID(partUUID gpt.GUID) gpt.GUID { return deriveUUID(partUUID, "luks-uuid") }
