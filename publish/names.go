package publish

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Compression is how a payload is stored in the publication directory.
// systemd-sysupdate recognises the compression by the file name's suffix
// and decompresses while it downloads.
type Compression string

// The supported compressions; the string is the file name suffix without
// its dot (and "none").
const (
	None Compression = "none"
	Gzip Compression = "gz"
	XZ   Compression = "xz"
	Zstd Compression = "zst"
)

// DefaultCompression is zstd: the usr image is zero-padded to its slot
// size and shrinks to a fraction of it, and zstd decompresses fastest.
const DefaultCompression = Zstd

// compressions lists every compression with a suffix, for name parsing.
var compressions = []Compression{Gzip, XZ, Zstd}

// ParseCompression parses "none", "gz", "xz" or "zst".
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case None, Gzip, XZ, Zstd:
		return c, nil
	}
	return "", fmt.Errorf("publish: compression %q: want none, gz, xz or zst", s)
}

// Suffix returns the file name suffix of c: "" for None, else ".gz", ".xz"
// or ".zst".
func (c Compression) Suffix() string {
	if c == None || c == "" {
		return ""
	}
	return "." + string(c)
}

// Kind is the kind of an update payload, one per sysupdate.d transfer.
type Kind int

// The payload kinds, in the order the transfers install them.
const (
	Usr Kind = iota + 1
	UsrVerity
	UsrVeritySig
	UKI
)

// kinds lists every kind, for name parsing.
var kinds = []Kind{Usr, UsrVerity, UsrVeritySig, UKI}

// Suffix returns the name suffix of an uncompressed payload of kind k.
func (k Kind) Suffix() string {
	switch k {
	case Usr:
		return ".usr.raw"
	case UsrVerity:
		return ".usr-verity.raw"
	case UsrVeritySig:
		return ".usr-verity-sig.raw"
	case UKI:
		return ".efi"
	}
	return ""
}

// String names the kind as the partition type or "uki".
func (k Kind) String() string {
	switch k {
	case Usr:
		return "usr"
	case UsrVerity:
		return "usr-verity"
	case UsrVeritySig:
		return "usr-verity-sig"
	case UKI:
		return "uki"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Payload is an update payload's file name taken apart.
type Payload struct {
	ImageID string
	Version string
	// UUID is the partition UUID as 32 hex digits, for the partition
	// kinds; empty for UKI.
	UUID        string
	Kind        Kind
	Compression Compression
}

// Name returns the file name of p.
func (p Payload) Name() string {
	label := p.ImageID + "_" + p.Version
	if p.Kind != UKI {
		label += "_" + p.UUID
	}
	return label + p.Kind.Suffix() + p.Compression.Suffix()
}

// Uncompressed returns p without compression: the name the build gave it.
func (p Payload) Uncompressed() Payload {
	p.Compression = None
	return p
}

// ParseName recognises the file name of an update payload, as `imago build`
// writes it and the reference transfers match it, optionally compressed.
// The image ID may contain '_'; the version may not (imago refuses such
// versions), so the version is what follows the last '_' of the label.
func ParseName(name string) (Payload, bool) {
	var p Payload
	if strings.HasPrefix(name, ".") || strings.ContainsRune(name, '/') {
		return p, false
	}
	p.Compression = None
	rest := name
	for _, c := range compressions {
		if r, ok := strings.CutSuffix(rest, c.Suffix()); ok {
			rest, p.Compression = r, c
			break
		}
	}
	for _, k := range kinds {
		if r, ok := strings.CutSuffix(rest, k.Suffix()); ok {
			rest, p.Kind = r, k
			break
		}
	}
	if p.Kind == 0 {
		return Payload{}, false
	}
	if p.Kind != UKI {
		i := len(rest) - 33
		if i < 0 || rest[i] != '_' || !isHex(rest[i+1:]) {
			return Payload{}, false
		}
		rest, p.UUID = rest[:i], rest[i+1:]
	}
	i := strings.LastIndexByte(rest, '_')
	if i < 0 {
		return Payload{}, false
	}
	p.ImageID, p.Version = rest[:i], rest[i+1:]
	if !validImageID(p.ImageID) || !validVersion(p.Version) {
		return Payload{}, false
	}
	return p, true
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// validImageID accepts what imago accepts as ImageId= (os-release's
// IMAGE_ID= characters).
func validImageID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validVersion accepts what imago accepts as ImageVersion=: the characters
// systemd-sysupdate allows in a version except '_' and '+', which separate
// the version from what follows it in names.
func validVersion(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == ',' || c == '-') {
			return false
		}
	}
	return true
}
