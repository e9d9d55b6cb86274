// Package efivar owns the byte formats of UEFI variables as Linux exposes
// them in efivarfs and as systemd, systemd-boot and systemd-stub use them:
// the efivarfs file encoding (a 4-byte little-endian attribute word followed
// by the payload), the `Name-GUID` file names, the vendor GUIDs, and the
// payload encodings of the loader and systemd variables (UTF-16LE
// NUL-terminated strings, lists of such strings, decimal numbers written as
// strings, little-endian u64 feature masks, and boolean strings).
//
// It implements the EFI-variable part of systemd's Boot Loader Interface
// and matches systemd v252 (src/basic/efivars.c, src/shared/efi-loader.c,
// src/basic/utf8.c, src/partition/repart.c, src/fundamental/efivars-fundamental.h)
// as shipped in Debian 12 (252.39), including its handling of malformed
// UTF-16. Variables that only later systemd versions define are named so
// that they can be recognised, and are marked as such.
//
// The package is pure: bytes in, bytes out, no I/O and no state. Reading
// and writing an efivarfs directory is the job of the efistore engine.
package efivar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Attributes is the UEFI attribute mask stored in the first four bytes of
// an efivarfs file.
type Attributes uint32

// The UEFI variable attribute bits (UEFI 2.10 §8.2).
const (
	NonVolatile                       Attributes = 0x01
	BootServiceAccess                 Attributes = 0x02
	RuntimeAccess                     Attributes = 0x04
	HardwareErrorRecord               Attributes = 0x08
	AuthenticatedWriteAccess          Attributes = 0x10 // deprecated by UEFI
	TimeBasedAuthenticatedWriteAccess Attributes = 0x20
	AppendWrite                       Attributes = 0x40
	EnhancedAuthenticatedAccess       Attributes = 0x80
)

// AttributesSystemd is what systemd's userspace tools (bootctl, logind,
// systemd-repart) always write: non-volatile, visible to boot services and
// at runtime.
const AttributesSystemd = NonVolatile | BootServiceAccess | RuntimeAccess

// AttributesLoaderVolatile is what systemd-boot and systemd-stub use for the
// informational variables they set on every boot (LoaderEntrySelected,
// LoaderFeatures, StubInfo, ...): gone at the next reset.
const AttributesLoaderVolatile = BootServiceAccess | RuntimeAccess

// String lists the set bits by their usual short names, e.g. "NV|BS|RT";
// bits UEFI does not define are printed in hex, and no bits as "0".
func (a Attributes) String() string {
	names := [...]struct {
		bit  Attributes
		name string
	}{
		{NonVolatile, "NV"},
		{BootServiceAccess, "BS"},
		{RuntimeAccess, "RT"},
		{HardwareErrorRecord, "HR"},
		{AuthenticatedWriteAccess, "AW"},
		{TimeBasedAuthenticatedWriteAccess, "AT"},
		{AppendWrite, "AP"},
		{EnhancedAuthenticatedAccess, "EA"},
	}
	var parts []string
	rest := a
	for _, n := range names {
		if a&n.bit != 0 {
			parts = append(parts, n.name)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

// HeaderSize is the size of the attribute word that precedes the payload in
// an efivarfs file.
const HeaderSize = 4

// MaxFileSize is the largest efivarfs file systemd agrees to read (4 MiB of
// payload plus the header); larger files are refused as corrupt.
const MaxFileSize = 4<<20 + HeaderSize

// ErrShort is returned for an efivarfs file too short to hold the attribute
// word.
var ErrShort = errors.New("shorter than the 4-byte attribute header")

// ErrTooLarge is returned for an efivarfs file larger than MaxFileSize.
var ErrTooLarge = errors.New("larger than 4 MiB")

// Variable is the content of one efivarfs file.
type Variable struct {
	Attributes Attributes
	Data       []byte
}

// Decode splits the content of an efivarfs file into attributes and
// payload. Data aliases file.
func Decode(file []byte) (Variable, error) {
	if len(file) < HeaderSize {
		return Variable{}, fmt.Errorf("efivar: %d bytes: %w", len(file), ErrShort)
	}
	if len(file) > MaxFileSize {
		return Variable{}, fmt.Errorf("efivar: %d bytes: %w", len(file), ErrTooLarge)
	}
	return Variable{
		Attributes: Attributes(binary.LittleEndian.Uint32(file)),
		Data:       file[HeaderSize:],
	}, nil
}

// Encode returns the efivarfs file content for v: the attribute word, then
// the payload. The kernel requires it to be written with a single write().
func (v Variable) Encode() []byte {
	out := make([]byte, HeaderSize+len(v.Data))
	binary.LittleEndian.PutUint32(out, uint32(v.Attributes))
	copy(out[HeaderSize:], v.Data)
	return out
}

// GUID is a vendor GUID in its canonical efivarfs spelling: 36 characters,
// lowercase hex in groups of 8-4-4-4-12.
type GUID string

// The vendor GUIDs systemd uses (src/basic/efivars.h).
const (
	// VendorLoader owns the Boot Loader Interface variables (Loader*,
	// Stub*) shared by systemd-boot, systemd-stub and the OS.
	VendorLoader GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
	// VendorSystemd owns variables only systemd's userspace reads:
	// FactoryReset, FactoryResetRequest, SystemdOptions.
	VendorSystemd GUID = "8cf2644b-4b0b-428f-9387-6d876050dc67"
	// VendorGlobal is EFI_GLOBAL_VARIABLE, the UEFI specification's own
	// variables (SecureBoot, SetupMode, BootOrder, ...).
	VendorGlobal GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
)

// ParseGUID accepts a GUID in the 8-4-4-4-12 hex form, in either case, and
// returns it lowercased, the way efivarfs names files.
func ParseGUID(s string) (GUID, error) {
	if len(s) != 36 {
		return "", fmt.Errorf("efivar: GUID %q: want 36 characters, got %d", s, len(s))
	}
	b := []byte(s)
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", fmt.Errorf("efivar: GUID %q: want '-' at offset %d", s, i)
			}
			continue
		}
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			b[i] = c + ('a' - 'A')
		default:
			return "", fmt.Errorf("efivar: GUID %q: %q at offset %d is not a hex digit", s, c, i)
		}
	}
	return GUID(b), nil
}

// ID names one variable: its name and its vendor GUID.
type ID struct {
	Name   string
	Vendor GUID
}

// LoaderVar names a variable of the Boot Loader Interface vendor.
func LoaderVar(name string) ID { return ID{Name: name, Vendor: VendorLoader} }

// SystemdVar names a variable of systemd's own vendor.
func SystemdVar(name string) ID { return ID{Name: name, Vendor: VendorSystemd} }

// GlobalVar names a variable of the UEFI global vendor.
func GlobalVar(name string) ID { return ID{Name: name, Vendor: VendorGlobal} }

// String returns the efivarfs file name, as FileName does.
func (id ID) String() string { return id.Name + "-" + string(id.Vendor) }

// Validate checks that id can name an efivarfs file: a non-empty name
// without '/' or NUL, valid UTF-8 with no character outside UCS-2 (UEFI
// stores names as UCS-2), and a canonical vendor GUID.
func (id ID) Validate() error {
	if id.Name == "" {
		return fmt.Errorf("efivar: empty variable name")
	}
	if !utf8.ValidString(id.Name) || strings.ContainsAny(id.Name, "/\x00") {
		return fmt.Errorf("efivar: variable name %q: contains '/', NUL or invalid UTF-8", id.Name)
	}
	for _, r := range id.Name {
		if r > 0xffff {
			return fmt.Errorf("efivar: variable name %q: character %U is outside UCS-2", id.Name, r)
		}
	}
	g, err := ParseGUID(string(id.Vendor))
	if err != nil {
		return fmt.Errorf("efivar: variable %q: %w", id.Name, err)
	}
	if g != id.Vendor {
		return fmt.Errorf("efivar: variable %q: vendor GUID %q is not lowercase", id.Name, id.Vendor)
	}
	return nil
}

// FileName returns the efivarfs file name `Name-guid`, after checking that
// id is valid.
func (id ID) FileName() (string, error) {
	if err := id.Validate(); err != nil {
		return "", err
	}
	return id.String(), nil
}

// ParseFileName splits an efivarfs file name `Name-GUID` into name and
// vendor. The GUID is the last 36 characters and may be of either case.
func ParseFileName(fileName string) (ID, error) {
	const suffix = 1 + 36
	if len(fileName) <= suffix || fileName[len(fileName)-suffix] != '-' {
		return ID{}, fmt.Errorf("efivar: file name %q: want Name-GUID", fileName)
	}
	g, err := ParseGUID(fileName[len(fileName)-36:])
	if err != nil {
		return ID{}, fmt.Errorf("efivar: file name %q: %w", fileName, err)
	}
	id := ID{Name: fileName[:len(fileName)-suffix], Vendor: g}
	if err := id.Validate(); err != nil {
		return ID{}, fmt.Errorf("efivar: file name %q: %w", fileName, err)
	}
	return id, nil
}
