package efisig

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/format/pkcs7"
	"github.com/imago-os/imago/format/uuid"
)

// Attributes are the attributes of the Secure Boot key database
// variables: non-volatile, boot service and runtime access, time-based
// authenticated write access (0x27). sign-efi-sig-list signs them and
// systemd-boot 252 passes them to SetVariable.
const Attributes = efivar.NonVolatile | efivar.BootServiceAccess | efivar.RuntimeAccess |
	efivar.TimeBasedAuthenticatedWriteAccess

// TimeSize is the size of EFI_TIME.
const TimeSize = 16

// AuthHeaderSize is the size of EFI_VARIABLE_AUTHENTICATION_2 before the
// PKCS#7 data: EFI_TIME, the WIN_CERTIFICATE header (dwLength, wRevision,
// wCertificateType) and CertType.
const AuthHeaderSize = TimeSize + 8 + guidSize

// The WIN_CERTIFICATE values of EFI_VARIABLE_AUTHENTICATION_2.
const (
	winCertRevision    = 0x0200
	winCertTypeEFIGUID = 0x0EF1
)

// Time is EFI_TIME (UEFI 2.10 §8.3). For authenticated variables the
// firmware requires Nanosecond, TimeZone, Daylight and both pads to be 0.
type Time struct {
	Year                                   uint16
	Month, Day, Hour, Minute, Second, Pad1 uint8
	Nanosecond                             uint32
	TimeZone                               int16
	Daylight, Pad2                         uint8
}

// TimeOf returns t in UTC to the second, the way sign-efi-sig-list fills
// the timestamp.
func TimeOf(t time.Time) Time {
	t = t.UTC()
	return Time{
		Year:   uint16(t.Year()),
		Month:  uint8(t.Month()),
		Day:    uint8(t.Day()),
		Hour:   uint8(t.Hour()),
		Minute: uint8(t.Minute()),
		Second: uint8(t.Second()),
	}
}

// String formats the date and time as "2006-01-02 15:04:05", the form
// sign-efi-sig-list -t takes; the other fields are not shown.
func (t Time) String() string {
	return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", t.Year, t.Month, t.Day, t.Hour, t.Minute, t.Second)
}

// checkAuthenticated refuses the fields firmware rejects in the timestamp
// of an authenticated variable.
func (t Time) checkAuthenticated() error {
	if t.Pad1 != 0 || t.Nanosecond != 0 || t.TimeZone != 0 || t.Daylight != 0 || t.Pad2 != 0 {
		return fmt.Errorf("timestamp %s: Nanosecond, TimeZone, Daylight and the pads must be 0 (got %d, %d, %d, %d, %d)",
			t, t.Nanosecond, t.TimeZone, t.Daylight, t.Pad1, t.Pad2)
	}
	return nil
}

func (t Time) appendTo(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, t.Year)
	dst = append(dst, t.Month, t.Day, t.Hour, t.Minute, t.Second, t.Pad1)
	dst = binary.LittleEndian.AppendUint32(dst, t.Nanosecond)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(t.TimeZone))
	return append(dst, t.Daylight, t.Pad2)
}

func readTime(b []byte) Time {
	return Time{
		Year:  binary.LittleEndian.Uint16(b),
		Month: b[2], Day: b[3], Hour: b[4], Minute: b[5], Second: b[6], Pad1: b[7],
		Nanosecond: binary.LittleEndian.Uint32(b[8:]),
		TimeZone:   int16(binary.LittleEndian.Uint16(b[12:])),
		Daylight:   b[14], Pad2: b[15],
	}
}

// AuthenticatedVariable is the content of an .auth file: an
// EFI_VARIABLE_AUTHENTICATION_2 descriptor followed by the new value of the
// variable, the whole of which is the Data given to SetVariable.
type AuthenticatedVariable struct {
	// Timestamp must be later than the variable's current one, except
	// in setup mode.
	Timestamp Time
	// Signature is the DER PKCS#7 SignedData, without the ContentInfo
	// wrapper, over SignedBundle's bytes.
	Signature []byte
	// Data is the new value, normally signature lists; empty deletes the
	// variable.
	Data []byte
}

// ParseAuth reads an .auth file: EFI_TIME, a WIN_CERTIFICATE_UEFI_GUID of
// revision 0x0200, type WIN_CERT_TYPE_EFI_GUID and CertType CertTypePKCS7
// whose dwLength covers its header and the PKCS#7 data, then the data. The
// PKCS#7 is not parsed here; Verify does. Signature and Data alias b.
func ParseAuth(b []byte) (*AuthenticatedVariable, error) {
	if len(b) < AuthHeaderSize {
		return nil, fmt.Errorf("efisig: authenticated variable: %d bytes, shorter than the %d-byte header", len(b), AuthHeaderSize)
	}
	certLen := uint64(binary.LittleEndian.Uint32(b[16:]))
	revision := binary.LittleEndian.Uint16(b[20:])
	certType := binary.LittleEndian.Uint16(b[22:])
	switch {
	case revision != winCertRevision:
		return nil, fmt.Errorf("efisig: authenticated variable: WIN_CERTIFICATE revision %#04x, want %#04x", revision, winCertRevision)
	case certType != winCertTypeEFIGUID:
		return nil, fmt.Errorf("efisig: authenticated variable: WIN_CERTIFICATE type %#04x, want %#04x (WIN_CERT_TYPE_EFI_GUID)", certType, winCertTypeEFIGUID)
	case readGUID(b[24:]) != CertTypePKCS7:
		return nil, fmt.Errorf("efisig: authenticated variable: CertType %s, want %s (EFI_CERT_TYPE_PKCS7_GUID)", readGUID(b[24:]), CertTypePKCS7)
	case certLen < AuthHeaderSize-TimeSize:
		return nil, fmt.Errorf("efisig: authenticated variable: dwLength %d is smaller than the %d-byte certificate header", certLen, AuthHeaderSize-TimeSize)
	case certLen > uint64(len(b)-TimeSize):
		return nil, fmt.Errorf("efisig: authenticated variable: dwLength %d exceeds the %d bytes after the timestamp", certLen, len(b)-TimeSize)
	}
	end := TimeSize + int(certLen)
	return &AuthenticatedVariable{Timestamp: readTime(b), Signature: b[AuthHeaderSize:end], Data: b[end:]}, nil
}

// Encode returns the .auth file content of a.
func (a *AuthenticatedVariable) Encode() ([]byte, error) {
	certLen := uint64(AuthHeaderSize-TimeSize) + uint64(len(a.Signature))
	if certLen > math.MaxUint32 {
		return nil, fmt.Errorf("efisig: authenticated variable: a %d-byte signature does not fit dwLength", len(a.Signature))
	}
	out := make([]byte, 0, AuthHeaderSize+len(a.Signature)+len(a.Data))
	out = a.Timestamp.appendTo(out)
	out = binary.LittleEndian.AppendUint32(out, uint32(certLen))
	out = binary.LittleEndian.AppendUint16(out, winCertRevision)
	out = binary.LittleEndian.AppendUint16(out, winCertTypeEFIGUID)
	out = appendGUID(out, CertTypePKCS7)
	out = append(out, a.Signature...)
	return append(out, a.Data...), nil
}

// SignedBundle returns the bytes an authenticated write signs (UEFI 2.10
// §8.2.2): the variable name in UTF-16LE without terminator, the vendor
// GUID, the attributes (u32 little-endian), the timestamp and the data.
// It is what sign-efi-sig-list -o writes.
func SignedBundle(name string, vendor uuid.UUID, attrs efivar.Attributes, timestamp Time, data []byte) ([]byte, error) {
	if name == "" {
		return nil, errors.New("efisig: empty variable name")
	}
	if !utf8.ValidString(name) {
		return nil, fmt.Errorf("efisig: variable name %q is not UTF-8", name)
	}
	out := make([]byte, 0, 2*len(name)+guidSize+4+TimeSize+len(data))
	for _, u := range utf16.Encode([]rune(name)) {
		if u == 0 {
			return nil, fmt.Errorf("efisig: variable name %q contains NUL", name)
		}
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	out = appendGUID(out, vendor)
	out = binary.LittleEndian.AppendUint32(out, uint32(attrs))
	out = timestamp.appendTo(out)
	return append(out, data...), nil
}

// Sign returns the authenticated write of data to the variable name of
// vendor with attributes attrs (normally Attributes, plus
// efivar.AppendWrite to append), signed by cert and its private key key:
// what `sign-efi-sig-list -t TIMESTAMP -c CERT -k KEY NAME IN OUT`
// writes. The PKCS#7 is OpenSSL's PKCS7_sign with PKCS7_DETACHED |
// PKCS7_BINARY | PKCS7_NOATTR and SHA-256, stored without its ContentInfo.
func Sign(name string, vendor uuid.UUID, attrs efivar.Attributes, timestamp Time, data []byte,
	cert *x509.Certificate, key crypto.Signer) (*AuthenticatedVariable, error) {
	if err := timestamp.checkAuthenticated(); err != nil {
		return nil, fmt.Errorf("efisig: sign %s: %w", name, err)
	}
	bundle, err := SignedBundle(name, vendor, attrs, timestamp, data)
	if err != nil {
		return nil, err
	}
	contentInfo, err := pkcs7.Sign(bundle, cert, key, pkcs7.SignOptions{Detached: true})
	if err != nil {
		return nil, fmt.Errorf("efisig: sign %s: %w", name, err)
	}
	signedData, err := unwrapContentInfo(contentInfo)
	if err != nil {
		return nil, fmt.Errorf("efisig: sign %s: %w", name, err)
	}
	return &AuthenticatedVariable{Timestamp: timestamp, Signature: signedData, Data: data}, nil
}

// Verify checks a as firmware checks a time-based authenticated write to
// the variable name of vendor with attributes attrs: the timestamp's
// extra fields are 0, the signature is a PKCS#7 SignedData (bare, as
// efitools writes it, or in a ContentInfo) with SHA-256 digests, and every
// signer is one of trusted and signed SignedBundle's bytes. It returns the
// signers' certificates. No chain is built: a signer must be a trusted
// certificate itself, as it is when PK signs KEK and KEK signs db.
func (a *AuthenticatedVariable) Verify(name string, vendor uuid.UUID, attrs efivar.Attributes, trusted []*x509.Certificate) ([]*x509.Certificate, error) {
	if err := a.Timestamp.checkAuthenticated(); err != nil {
		return nil, fmt.Errorf("efisig: verify %s: %w", name, err)
	}
	bundle, err := SignedBundle(name, vendor, attrs, a.Timestamp, a.Data)
	if err != nil {
		return nil, err
	}
	sd, err := a.parseSignature()
	if err != nil {
		return nil, fmt.Errorf("efisig: verify %s: %w", name, err)
	}
	for _, si := range sd.Signers {
		if !si.DigestAlgorithm.Algorithm.Equal(oidSHA256) {
			return nil, fmt.Errorf("efisig: verify %s: digest algorithm %v, firmware takes SHA-256 only", name, si.DigestAlgorithm.Algorithm)
		}
	}
	signers, err := sd.VerifyDetached(bundle, trusted)
	if err != nil {
		return nil, fmt.Errorf("efisig: verify %s: %w", name, err)
	}
	return signers, nil
}

// parseSignature parses the PKCS#7, bare or in a ContentInfo.
func (a *AuthenticatedVariable) parseSignature() (*pkcs7.SignedData, error) {
	if sd, err := pkcs7.Parse(a.Signature); err == nil {
		return sd, nil
	}
	sd, err := pkcs7.Parse(wrapContentInfo(a.Signature))
	if err != nil {
		return nil, err
	}
	return sd, nil
}

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA256     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// unwrapContentInfo returns the SignedData element of a DER ContentInfo
// of type signedData.
func unwrapContentInfo(der []byte) ([]byte, error) {
	var outer asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &outer); err != nil || len(rest) != 0 || outer.Tag != asn1.TagSequence {
		return nil, errors.New("PKCS#7: not one ContentInfo SEQUENCE")
	}
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(outer.Bytes, &oid)
	if err != nil || !oid.Equal(oidSignedData) {
		return nil, errors.New("PKCS#7: ContentInfo is not signedData")
	}
	var content asn1.RawValue
	if rest, err := asn1.Unmarshal(rest, &content); err != nil || len(rest) != 0 ||
		content.Class != asn1.ClassContextSpecific || content.Tag != 0 || !content.IsCompound {
		return nil, errors.New("PKCS#7: ContentInfo content is not [0] EXPLICIT")
	}
	return content.Bytes, nil
}

// wrapContentInfo puts a SignedData into a ContentInfo, as EDK2's
// WrapPkcs7Data does before verifying.
func wrapContentInfo(signedData []byte) []byte {
	oid, _ := asn1.Marshal(oidSignedData) // a constant, valid by construction
	explicit := appendTLV(nil, 0xa0, signedData)
	return appendTLV(nil, 0x30, append(oid, explicit...))
}

// appendTLV appends a DER element with a definite length.
func appendTLV(dst []byte, tag byte, content []byte) []byte {
	dst = append(dst, tag)
	n := len(content)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	default:
		var lenBytes []byte
		for v := n; v > 0; v >>= 8 {
			lenBytes = append([]byte{byte(v)}, lenBytes...)
		}
		dst = append(dst, 0x80|byte(len(lenBytes)))
		dst = append(dst, lenBytes...)
	}
	return append(dst, content...)
}
