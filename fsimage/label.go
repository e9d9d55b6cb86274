package fsimage

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// labelMax is the longest label, in bytes, each file system takes, as
// systemd's mkfs helper cuts it: 16 for ext*, 12 for xfs, 15 for swap.
// erofs has a 16-byte volume name in its superblock.
var labelMax = map[string]int{
	"ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "swap": 15, "erofs": 16,
}

// fatLabelMax is the length of a classic FAT volume label.
const fatLabelMax = 11

// fatForbidden are the characters mkfs.vfat refuses in a label; systemd
// replaces them with '_'.
const fatForbidden = "*?.,;:/\\|+=<>[]\""

// MangleLabel returns the volume label a file system of type fsType gets
// for the (partition) label, transformed exactly as systemd v252's
// make_filesystem does before it calls mkfs:
//   - ext2/ext3/ext4, xfs, swap: cut to at most 16, 12 or 15 bytes at a
//     character boundary;
//   - vfat: every non-ASCII character becomes '_', then the string is cut to
//     11 bytes, upper-cased, and '*?.,;:/\|+=<>[]"' and control characters
//     become '_';
//   - btrfs: unchanged (mkfs.btrfs itself refuses labels over 255 bytes);
//   - erofs (which systemd does not label): cut to 16 bytes like ext4;
//   - squashfs: "" (the format has no label).
//
// The label is read up to its first NUL. Invalid UTF-8 (in systemd's
// stricter sense, which also rejects U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF)
// is an error for every type that mangles.
func MangleLabel(fsType, label string) (string, error) {
	if i := strings.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	switch fsType {
	case "squashfs":
		return "", nil
	case "btrfs":
		return label, nil
	case "vfat":
		return mangleFATLabel(label)
	}
	max, ok := labelMax[fsType]
	if !ok {
		return label, nil
	}
	end := 0
	for end < len(label) {
		n, err := validRuneLen(label[end:])
		if err != nil {
			return "", fmt.Errorf("fsimage: label %q: %w", label, err)
		}
		if end+n > max {
			break
		}
		end += n
	}
	return label[:end], nil
}

func mangleFATLabel(label string) (string, error) {
	var b []byte
	for i := 0; i < len(label); {
		n, err := validRuneLen(label[i:])
		if err != nil {
			return "", fmt.Errorf("fsimage: FAT label %q: %w", label, err)
		}
		if n == 1 {
			b = append(b, label[i])
		} else {
			b = append(b, '_')
		}
		i += n
	}
	if len(b) > fatLabelMax {
		b = b[:fatLabelMax]
	}
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c < ' ' || c == 127 || strings.IndexByte(fatForbidden, c) >= 0:
			b[i] = '_'
		}
	}
	return string(b), nil
}

// validRuneLen returns the byte length of the UTF-8 character s starts
// with, rejecting what systemd's utf8_encoded_valid_unichar rejects.
func validRuneLen(s string) (int, error) {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return 0, fmt.Errorf("invalid UTF-8 at byte %q", s[0])
	}
	if (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE {
		return 0, fmt.Errorf("invalid character U+%04X", r)
	}
	return n, nil
}

// fatVolumeID is the volume ID (serial number) systemd gives a FAT file
// system: the first four bytes of the file-system UUID, big-endian, as
// eight lowercase hex digits for mkfs.vfat -i.
func fatVolumeID(uuid [16]byte) string {
	return fmt.Sprintf("%02x%02x%02x%02x", uuid[0], uuid[1], uuid[2], uuid[3])
}

// uuidString formats a UUID as systemd does: lowercase, with dashes.
func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// parseUUID parses a UUID in the 8-4-4-4-12 hex form (either case) or as 32
// hex digits, as systemd's sd_id128_from_string accepts it.
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	hex := s
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return u, fmt.Errorf("fsimage: malformed UUID %q", s)
		}
		hex = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	}
	if len(hex) != 32 {
		return u, fmt.Errorf("fsimage: malformed UUID %q", s)
	}
	for i := 0; i < 16; i++ {
		hi, ok1 := unhex(hex[2*i])
		lo, ok2 := unhex(hex[2*i+1])
		if !ok1 || !ok2 {
			return u, fmt.Errorf("fsimage: malformed UUID %q", s)
		}
		u[i] = hi<<4 | lo
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
