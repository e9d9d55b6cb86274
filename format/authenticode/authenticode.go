package authenticode

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/imago-os/imago/format/pe"
	"github.com/imago-os/imago/format/pkcs7"
)

// WIN_CERTIFICATE constants (PE/COFF specification, "The Attribute
// Certificate Table").
const (
	// RevisionV2 is WIN_CERT_REVISION_2_0, the revision sbsign writes.
	RevisionV2 = 0x0200
	// TypePKCSSignedData is WIN_CERT_TYPE_PKCS_SIGNED_DATA.
	TypePKCSSignedData = 0x0002

	winCertificateHeaderSize = 8
	tableAlignment           = 8
)

// Object identifiers of Authenticode and of the attributes sbsign signs.
var (
	oidSpcIndirectDataContent = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSigningTime            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidSMIMECapabilities      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
	oidSHA256                 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// smimeCapabilities is the SMIMECapabilities value OpenSSL 3.0's PKCS7_sign
// adds by default (AES-256/192/128-CBC, 3DES, RC2-128/64, DES, RC2-40) and
// which sbsign therefore signs.
var smimeCapabilities = []byte{
	0x30, 0x6a, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a, 0x30,
	0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16, 0x30, 0x0b, 0x06, 0x09,
	0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
	0x86, 0xf7, 0x0d, 0x03, 0x07, 0x30, 0x0e, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03,
	0x02, 0x02, 0x02, 0x00, 0x80, 0x30, 0x0d, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03,
	0x02, 0x02, 0x01, 0x40, 0x30, 0x07, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x07, 0x30, 0x0d, 0x06,
	0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x02, 0x02, 0x01, 0x28,
}

// obsoleteLink is the SpcLink every signer puts in SpcPEImageData: the
// BMPString "<<<Obsolete>>>" as SpcString [0] inside SpcLink file [2].
var obsoleteLink = func() []byte {
	var s []byte
	for _, r := range "<<<Obsolete>>>" {
		s = append(s, 0, byte(r))
	}
	return s
}()

// Options adjust Sign.
type Options struct {
	// Time is the signingTime attribute; zero means now. sbsign uses the
	// current time, so its output is reproducible only for the same second.
	Time time.Time
}

// Sign returns image with an Authenticode signature by cert (whose private
// key is key) appended, signed now. See SignWithOptions.
func Sign(image []byte, cert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	return SignWithOptions(image, cert, key, Options{})
}

// SignWithOptions returns image with an Authenticode signature by cert
// appended, as sbsign 0.9.4 writes it: the image is padded with zeros to a
// multiple of 8 bytes, the SHA-256 Authenticode digest is signed in an
// SpcIndirectDataContent, and the WIN_CERTIFICATE is added at the end of the
// certificate table (after any signatures the image already carries), padded
// to 8 bytes. The certificate table entry and CheckSum are updated.
func SignWithOptions(image []byte, cert *x509.Certificate, key crypto.Signer, opts Options) ([]byte, error) {
	base, existing, err := splitImage(image)
	if err != nil {
		return nil, err
	}
	digest, err := pe.AuthenticodeDigest(base, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	content, err := indirectDataContent(digest)
	if err != nil {
		return nil, err
	}
	when := opts.Time
	if when.IsZero() {
		when = time.Now()
	}
	signingTime, err := pkcs7.NewAttribute(oidSigningTime, when.UTC())
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	capabilities := pkcs7.Attribute{Type: oidSMIMECapabilities, Values: [][]byte{smimeCapabilities}}
	der, err := pkcs7.Sign(content, cert, key, pkcs7.SignOptions{
		ContentType:           oidSpcIndirectDataContent,
		Hash:                  crypto.SHA256,
		SignedAttributes:      true,
		ExtraSignedAttributes: []pkcs7.Attribute{signingTime, capabilities},
	})
	if err != nil {
		return nil, fmt.Errorf("authenticode: sign: %w", err)
	}
	return assemble(base, append(existing, winCertificate(der)...))
}

// splitImage returns the image without its certificate table (padded to 8
// bytes when it has none, with the directory entry cleared) and the table's
// bytes.
func splitImage(image []byte) (base, table []byte, err error) {
	f, err := pe.Parse(image)
	if err != nil {
		return nil, nil, fmt.Errorf("authenticode: %w", err)
	}
	if len(f.OptionalHeader.DataDirectories) <= pe.DirectoryCertificateTable {
		return nil, nil, fmt.Errorf("authenticode: the image has %d data directories, none for a certificate table", len(f.OptionalHeader.DataDirectories))
	}
	// Section data overlapping the headers would cover CheckSum and the
	// certificate table entry, which signing changes: such a signature
	// could never verify.
	for i := range f.Sections {
		sec := &f.Sections[i]
		if sec.SizeOfRawData != 0 && sec.PointerToRawData < f.OptionalHeader.SizeOfHeaders {
			return nil, nil, fmt.Errorf("authenticode: section %d (%q) raw data at 0x%x overlaps the headers (0x%x bytes)", i, sec.NameString(), sec.PointerToRawData, f.OptionalHeader.SizeOfHeaders)
		}
	}
	if off, size, ok := f.CertificateTable(); ok {
		if uint64(off)+uint64(size) != uint64(len(image)) {
			return nil, nil, fmt.Errorf("authenticode: certificate table 0x%x+0x%x is not at the end of the %d-byte image", off, size, len(image))
		}
		table = bytes.Clone(f.CertificateTableData())
		if _, err := parseTable(table); err != nil {
			return nil, nil, err
		}
		base = bytes.Clone(image[:off])
	} else {
		base = bytes.Clone(image)
	}
	if pad := len(base) % tableAlignment; pad != 0 {
		base = append(base, make([]byte, tableAlignment-pad)...)
	}
	clearTableEntry(f, base)
	return base, table, nil
}

// clearTableEntry zeroes the certificate table directory entry in base,
// whose headers are those of f.
func clearTableEntry(f *pe.File, base []byte) {
	off := tableEntryOffset(f)
	clear(base[off : off+8])
}

// tableEntryOffset returns the file offset of data directory entry 4.
func tableEntryOffset(f *pe.File) int {
	opt := int(f.PEOffset) + 4 + 20
	dirs := opt + 112 // PE32+
	if f.OptionalHeader.Magic == 0x10b {
		dirs = opt + 96
	}
	return dirs + pe.DirectoryCertificateTable*8
}

// assemble appends table to base, points the certificate table entry at it
// and recomputes CheckSum.
func assemble(base, table []byte) ([]byte, error) {
	out := append(bytes.Clone(base), table...)
	f, err := pe.Parse(out)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	f.OptionalHeader.DataDirectories[pe.DirectoryCertificateTable] = pe.DataDirectory{
		VirtualAddress: uint32(len(base)),
		Size:           uint32(len(table)),
	}
	f.UpdateChecksum()
	return f.Bytes(), nil
}

// indirectDataContent encodes SpcIndirectDataContent for a SHA-256 digest.
func indirectDataContent(digest []byte) ([]byte, error) {
	type algorithm struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}
	type digestInfo struct {
		Algorithm algorithm
		Digest    []byte
	}
	type peImageData struct {
		Flags asn1.BitString
		File  asn1.RawValue // [0] EXPLICIT SpcLink, encoded by hand
	}
	type attributeValue struct {
		Type  asn1.ObjectIdentifier
		Value peImageData
	}
	type spcIndirectDataContent struct {
		Data          attributeValue
		MessageDigest digestInfo
	}
	// SpcLink file [2] { SpcString unicode [0] IMPLICIT BMPString }.
	unicode, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: obsoleteLink})
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	link, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: unicode})
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	file := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: link}
	v := spcIndirectDataContent{
		Data: attributeValue{
			Type:  oidSpcPEImageData,
			Value: peImageData{Flags: asn1.BitString{Bytes: []byte{}, BitLength: 0}, File: file},
		},
		MessageDigest: digestInfo{
			Algorithm: algorithm{Algorithm: oidSHA256, Parameters: asn1.NullRawValue},
			Digest:    digest,
		},
	}
	der, err := asn1.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	return der, nil
}

// winCertificate wraps a PKCS#7 message in a WIN_CERTIFICATE padded to 8
// bytes; dwLength counts the header and the message, not the padding.
func winCertificate(der []byte) []byte {
	n := winCertificateHeaderSize + len(der)
	out := make([]byte, alignUp(n))
	binary.LittleEndian.PutUint32(out[0:], uint32(n))
	binary.LittleEndian.PutUint16(out[4:], RevisionV2)
	binary.LittleEndian.PutUint16(out[6:], TypePKCSSignedData)
	copy(out[winCertificateHeaderSize:], der)
	return out
}

func alignUp(n int) int { return (n + tableAlignment - 1) &^ (tableAlignment - 1) }

// Certificate is one WIN_CERTIFICATE entry of a certificate table.
type Certificate struct {
	// Offset is the entry's offset within the certificate table.
	Offset   int
	Revision uint16
	Type     uint16
	// Data is the entry's payload (for TypePKCSSignedData, the PKCS#7
	// DER); it aliases the image.
	Data []byte
}

// parseTable splits a certificate table into its entries. Each entry starts
// on an 8-byte boundary; dwLength must cover at least the header and stay in
// the table.
func parseTable(table []byte) ([]Certificate, error) {
	var certs []Certificate
	for off := 0; off < len(table); {
		if len(table)-off < winCertificateHeaderSize {
			return nil, fmt.Errorf("authenticode: certificate table: %d stray bytes at offset %d", len(table)-off, off)
		}
		n := int(binary.LittleEndian.Uint32(table[off:]))
		if n < winCertificateHeaderSize || n > len(table)-off {
			return nil, fmt.Errorf("authenticode: certificate table: entry at offset %d has length %d, outside the %d-byte table", off, n, len(table))
		}
		certs = append(certs, Certificate{
			Offset:   off,
			Revision: binary.LittleEndian.Uint16(table[off+4:]),
			Type:     binary.LittleEndian.Uint16(table[off+6:]),
			Data:     table[off+winCertificateHeaderSize : off+n],
		})
		off += alignUp(n)
		if off > len(table) {
			// sbsign pads every entry; tolerate a final unpadded one.
			break
		}
	}
	return certs, nil
}

// Certificates returns the entries of image's certificate table, none when
// the image is unsigned.
func Certificates(image []byte) ([]Certificate, error) {
	f, err := pe.Parse(image)
	if err != nil {
		return nil, fmt.Errorf("authenticode: %w", err)
	}
	off, size, ok := f.CertificateTable()
	if !ok {
		return nil, nil
	}
	return parseTable(image[off : uint64(off)+uint64(size)])
}

// Signature is one parsed Authenticode signature of an image.
type Signature struct {
	// Index is the signature's position in the certificate table.
	Index int
	// Message is the parsed PKCS#7 SignedData.
	Message *pkcs7.SignedData
	// Hash and Digest are the image digest algorithm and value it signs.
	Hash   crypto.Hash
	Digest []byte
	// Certificates are the certificates embedded in the message, signer
	// first as signers write them; informational only.
	Certificates []*x509.Certificate
}

// Signatures parses every PKCS_SIGNED_DATA entry of image's certificate
// table. Entries of other types are skipped; an entry that does not parse is
// an error.
func Signatures(image []byte) ([]Signature, error) {
	sigs, errs, err := signatures(image)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return sigs, nil
}

// signatures parses what it can: the signatures that parse, the errors of
// those that do not, and an error when the table itself is unreadable.
func signatures(image []byte) ([]Signature, []error, error) {
	entries, err := Certificates(image)
	if err != nil {
		return nil, nil, err
	}
	var sigs []Signature
	var errs []error
	for i, e := range entries {
		if e.Type != TypePKCSSignedData {
			continue
		}
		s, err := parseSignature(e.Data)
		if err != nil {
			errs = append(errs, fmt.Errorf("authenticode: signature %d: %w", i, err))
			continue
		}
		s.Index = i
		sigs = append(sigs, s)
	}
	return sigs, errs, nil
}

func parseSignature(der []byte) (Signature, error) {
	sd, err := pkcs7.Parse(der)
	if err != nil {
		return Signature{}, err
	}
	if !sd.ContentType.Equal(oidSpcIndirectDataContent) {
		return Signature{}, fmt.Errorf("content type %v is not SpcIndirectDataContent", sd.ContentType)
	}
	if sd.Content == nil {
		return Signature{}, errors.New("no SpcIndirectDataContent")
	}
	var content struct {
		Data          asn1.RawValue
		MessageDigest struct {
			Algorithm struct {
				Algorithm  asn1.ObjectIdentifier
				Parameters asn1.RawValue `asn1:"optional"`
			}
			Digest []byte
		}
	}
	if rest, err := asn1.Unmarshal(sd.Content, &content); err != nil || len(rest) != 0 {
		return Signature{}, fmt.Errorf("SpcIndirectDataContent: malformed (%v)", err)
	}
	hash, err := hashForOID(content.MessageDigest.Algorithm.Algorithm)
	if err != nil {
		return Signature{}, err
	}
	if len(content.MessageDigest.Digest) != hash.Size() {
		return Signature{}, fmt.Errorf("SpcIndirectDataContent: %d-byte digest for %v", len(content.MessageDigest.Digest), hash)
	}
	certs, err := sd.Certificates()
	if err != nil {
		return Signature{}, err
	}
	return Signature{Message: sd, Hash: hash, Digest: content.MessageDigest.Digest, Certificates: certs}, nil
}

func hashForOID(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, nil
	case oid.Equal(asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}):
		return crypto.SHA1, nil
	case oid.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}):
		return crypto.SHA384, nil
	case oid.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}):
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("SpcIndirectDataContent: unsupported digest algorithm %v", oid)
}

// Signer returns the embedded certificate that signed s (matched by issuer
// and serial number or subject key identifier), or nil.
func (s *Signature) Signer() *x509.Certificate {
	if len(s.Message.Signers) == 0 {
		return nil
	}
	si := &s.Message.Signers[0]
	for _, c := range s.Certificates {
		if si.SerialNumber != nil {
			if c.SerialNumber != nil && c.SerialNumber.Cmp(si.SerialNumber) == 0 && bytes.Equal(c.RawIssuer, si.RawIssuer) {
				return c
			}
		} else if len(si.SubjectKeyID) > 0 && bytes.Equal(c.SubjectKeyId, si.SubjectKeyID) {
			return c
		}
	}
	return nil
}

// ErrNotSigned is returned (wrapped) by Verify for an image without
// Authenticode signatures.
var ErrNotSigned = errors.New("image is not signed")

// Verify checks image's Authenticode signatures against trusted, as
// sbverify does, and returns the signer certificate of the first signature
// that verifies. A signature verifies when the digest it signs equals the
// image's recomputed Authenticode digest, its PKCS#7 signature is valid, and
// its signer is one of trusted or an embedded certificate that chains to one
// of them (validity periods and key usages are not checked: firmware does
// not check them either).
func Verify(image []byte, trusted []*x509.Certificate) (*x509.Certificate, error) {
	if len(trusted) == 0 {
		return nil, errors.New("authenticode: verify: no trusted certificates given")
	}
	sigs, errs, err := signatures(image)
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("authenticode: verify: %w", ErrNotSigned)
	}
	for i := range sigs {
		signer, err := sigs[i].verify(image, trusted)
		if err == nil {
			return signer, nil
		}
		errs = append(errs, fmt.Errorf("authenticode: verify: signature %d: %w", sigs[i].Index, err))
	}
	return nil, errors.Join(errs...)
}

func (s *Signature) verify(image []byte, trusted []*x509.Certificate) (*x509.Certificate, error) {
	digest, err := pe.AuthenticodeDigest(image, s.Hash)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(digest, s.Digest) {
		return nil, fmt.Errorf("image digest %x does not match the signed digest %x", digest, s.Digest)
	}
	signers, err := s.Message.Verify(trusted)
	if err == nil {
		return signers[0], nil
	}
	// The signer is not trusted directly: accept an embedded signer
	// certificate that chains to a trusted one.
	signer := s.Signer()
	if signer == nil {
		return nil, err
	}
	if !chainsTo(signer, s.Certificates, trusted) {
		return nil, fmt.Errorf("signer %q does not chain to a trusted certificate", signer.Subject)
	}
	if _, err := s.Message.Verify([]*x509.Certificate{signer}); err != nil {
		return nil, err
	}
	return signer, nil
}

// chainsTo reports whether cert is issued, directly or through the
// intermediates, by one of roots. Signatures are checked; validity periods,
// key usages and constraints are not.
func chainsTo(cert *x509.Certificate, intermediates, roots []*x509.Certificate) bool {
	current := cert
	for depth := 0; depth <= len(intermediates)+1; depth++ {
		for _, r := range roots {
			if bytes.Equal(current.RawIssuer, r.RawSubject) && current.CheckSignatureFrom(r) == nil {
				return true
			}
		}
		var next *x509.Certificate
		for _, c := range intermediates {
			if c != current && bytes.Equal(current.RawIssuer, c.RawSubject) && current.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			return false
		}
		current = next
	}
	return false
}
