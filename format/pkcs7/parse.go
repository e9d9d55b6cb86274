package pkcs7

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// SignedData is a parsed PKCS#7 ContentInfo of type signedData. Byte slices
// alias the input given to Parse.
type SignedData struct {
	// Raw is the whole ContentInfo.
	Raw []byte
	// Version is the SignedData version (1 for PKCS#7, 1 or 3 for CMS).
	Version int
	// DigestAlgorithms lists the digest algorithms the signers use.
	DigestAlgorithms []pkix.AlgorithmIdentifier
	// ContentType is the type of the signed content.
	ContentType asn1.ObjectIdentifier
	// Content is the DER value carried as content (an OCTET STRING for
	// id-data), nil when the signature is detached.
	Content []byte
	// RawCertificates are the embedded certificates, DER, in message order.
	RawCertificates [][]byte
	// Signers are the SignerInfos in message order.
	Signers []SignerInfo
}

// SignerInfo is one signer of a SignedData.
type SignerInfo struct {
	// Version is 1 for issuerAndSerialNumber, 3 for subjectKeyIdentifier.
	Version int
	// RawIssuer (the DER Name) and SerialNumber identify the signer's
	// certificate; both are nil when SubjectKeyID is used instead.
	RawIssuer    []byte
	SerialNumber *big.Int
	// SubjectKeyID identifies the signer's certificate in CMS messages.
	SubjectKeyID []byte
	// DigestAlgorithm is the hash over the content (and attributes).
	DigestAlgorithm pkix.AlgorithmIdentifier
	// SignedAttributes are the authenticated attributes, nil when absent.
	SignedAttributes []Attribute
	// RawSignedAttributes is the [0] IMPLICIT element as it appears in the
	// message, nil when absent.
	RawSignedAttributes []byte
	// SignatureAlgorithm is the digestEncryptionAlgorithm.
	SignatureAlgorithm pkix.AlgorithmIdentifier
	// Signature is the encryptedDigest.
	Signature []byte
	// UnsignedAttributes are the unauthenticated attributes, nil when absent.
	UnsignedAttributes []Attribute
}

// Parse parses a DER PKCS#7 ContentInfo holding a SignedData. It checks the
// structure only; Verify checks signatures.
func Parse(der []byte) (*SignedData, error) {
	sd, err := parseContentInfo(der)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: %w", err)
	}
	return sd, nil
}

func parseContentInfo(der []byte) (*SignedData, error) {
	outer, err := readOne(der, tagSequence)
	if err != nil {
		return nil, fmt.Errorf("ContentInfo: %w", err)
	}
	fields, err := readChildren(outer.content)
	if err != nil {
		return nil, fmt.Errorf("ContentInfo: %w", err)
	}
	if len(fields) != 2 {
		return nil, fmt.Errorf("ContentInfo: %d fields, want contentType and content", len(fields))
	}
	typ, err := parseOID(fields[0])
	if err != nil {
		return nil, fmt.Errorf("ContentInfo contentType: %w", err)
	}
	if !typ.Equal(oidSignedData) {
		return nil, fmt.Errorf("ContentInfo contentType is %v, not signedData", typ)
	}
	if fields[1].tag != tagContextCons0 {
		return nil, fmt.Errorf("ContentInfo content: identifier 0x%02x, want [0]", fields[1].tag)
	}
	inner, err := readOne(fields[1].content, tagSequence)
	if err != nil {
		return nil, fmt.Errorf("SignedData: %w", err)
	}
	sd, err := parseSignedData(inner.content)
	if err != nil {
		return nil, err
	}
	sd.Raw = outer.full
	return sd, nil
}

func parseSignedData(content []byte) (*SignedData, error) {
	fields, err := readChildren(content)
	if err != nil {
		return nil, fmt.Errorf("SignedData: %w", err)
	}
	if len(fields) < 4 {
		return nil, fmt.Errorf("SignedData: %d fields, want at least 4", len(fields))
	}
	sd := &SignedData{}
	if sd.Version, err = parseSmallInt(fields[0]); err != nil {
		return nil, fmt.Errorf("SignedData version: %w", err)
	}
	if fields[1].tag != tagSet {
		return nil, fmt.Errorf("SignedData digestAlgorithms: identifier 0x%02x, want SET", fields[1].tag)
	}
	algs, err := readChildren(fields[1].content)
	if err != nil {
		return nil, fmt.Errorf("SignedData digestAlgorithms: %w", err)
	}
	for i, a := range algs {
		alg, err := parseAlgorithmIdentifier(a)
		if err != nil {
			return nil, fmt.Errorf("SignedData digestAlgorithms[%d]: %w", i, err)
		}
		sd.DigestAlgorithms = append(sd.DigestAlgorithms, alg)
	}
	if err := sd.parseEncapsulatedContent(fields[2]); err != nil {
		return nil, err
	}

	rest := fields[3:]
	if len(rest) > 0 && rest[0].tag == tagContextCons0 {
		certs, err := readChildren(rest[0].content)
		if err != nil {
			return nil, fmt.Errorf("SignedData certificates: %w", err)
		}
		for _, c := range certs {
			sd.RawCertificates = append(sd.RawCertificates, c.full)
		}
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0].tag == tagContextCons1 {
		rest = rest[1:] // CRLs play no part in verification without chains
	}
	if len(rest) != 1 {
		return nil, fmt.Errorf("SignedData: %d fields after the content, want [certificates], [crls] and signerInfos", len(fields)-3)
	}
	if rest[0].tag != tagSet {
		return nil, fmt.Errorf("SignedData signerInfos: identifier 0x%02x, want SET", rest[0].tag)
	}
	signers, err := readChildren(rest[0].content)
	if err != nil {
		return nil, fmt.Errorf("SignedData signerInfos: %w", err)
	}
	for i, s := range signers {
		si, err := parseSignerInfo(s)
		if err != nil {
			return nil, fmt.Errorf("SignedData signerInfos[%d]: %w", i, err)
		}
		sd.Signers = append(sd.Signers, si)
	}
	return sd, nil
}

func (sd *SignedData) parseEncapsulatedContent(el element) error {
	if el.tag != tagSequence {
		return fmt.Errorf("SignedData contentInfo: identifier 0x%02x, want SEQUENCE", el.tag)
	}
	fields, err := readChildren(el.content)
	if err != nil {
		return fmt.Errorf("SignedData contentInfo: %w", err)
	}
	if len(fields) < 1 || len(fields) > 2 {
		return fmt.Errorf("SignedData contentInfo: %d fields, want contentType and optional content", len(fields))
	}
	if sd.ContentType, err = parseOID(fields[0]); err != nil {
		return fmt.Errorf("SignedData contentInfo contentType: %w", err)
	}
	if len(fields) == 1 {
		return nil
	}
	if fields[1].tag != tagContextCons0 {
		return fmt.Errorf("SignedData contentInfo content: identifier 0x%02x, want [0]", fields[1].tag)
	}
	value, _, err := readElement(fields[1].content)
	if err == nil && len(value.full) != len(fields[1].content) {
		err = errors.New("trailing bytes")
	}
	if err != nil {
		return fmt.Errorf("SignedData contentInfo content: %w", err)
	}
	if sd.ContentType.Equal(oidData) && value.tag != tagOctetString {
		return fmt.Errorf("SignedData contentInfo content: id-data carried in identifier 0x%02x, want OCTET STRING", value.tag)
	}
	sd.Content = value.full
	return nil
}

// ContentBytes returns the octets the signers' digest covers when the
// content is embedded: the contents octets of Content. It returns nil for a
// detached signature.
func (sd *SignedData) ContentBytes() []byte {
	if sd.Content == nil {
		return nil
	}
	el, _, err := readElement(sd.Content)
	if err != nil { // cannot happen for a parsed message
		return nil
	}
	return el.content
}

// Certificates parses the embedded certificates. They are informational
// only: Verify never trusts them.
func (sd *SignedData) Certificates() ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i, raw := range sd.RawCertificates {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("pkcs7: certificates[%d]: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseSignerInfo(el element) (SignerInfo, error) {
	var si SignerInfo
	if el.tag != tagSequence {
		return si, fmt.Errorf("identifier 0x%02x, want SEQUENCE", el.tag)
	}
	fields, err := readChildren(el.content)
	if err != nil {
		return si, err
	}
	if len(fields) < 5 {
		return si, fmt.Errorf("%d fields, want at least 5", len(fields))
	}
	if si.Version, err = parseSmallInt(fields[0]); err != nil {
		return si, fmt.Errorf("version: %w", err)
	}
	switch sid := fields[1]; sid.tag {
	case tagSequence:
		parts, err := readChildren(sid.content)
		if err != nil {
			return si, fmt.Errorf("issuerAndSerialNumber: %w", err)
		}
		if len(parts) != 2 || parts[0].tag != tagSequence || parts[1].tag != tagInteger {
			return si, errors.New("issuerAndSerialNumber: want SEQUENCE { Name, INTEGER }")
		}
		si.RawIssuer = parts[0].full
		si.SerialNumber = new(big.Int)
		if rest, err := asn1.Unmarshal(parts[1].full, &si.SerialNumber); err != nil || len(rest) != 0 {
			return si, fmt.Errorf("issuerAndSerialNumber serialNumber: invalid INTEGER")
		}
	case tagContextPrim0:
		si.SubjectKeyID = sid.content
	default:
		return si, fmt.Errorf("signer identifier: identifier 0x%02x, want issuerAndSerialNumber or [0] subjectKeyIdentifier", sid.tag)
	}
	if si.DigestAlgorithm, err = parseAlgorithmIdentifier(fields[2]); err != nil {
		return si, fmt.Errorf("digestAlgorithm: %w", err)
	}
	rest := fields[3:]
	if rest[0].tag == tagContextCons0 {
		si.RawSignedAttributes = rest[0].full
		if si.SignedAttributes, err = parseAttributes(rest[0].content); err != nil {
			return si, fmt.Errorf("signed attributes: %w", err)
		}
		rest = rest[1:]
	}
	if len(rest) < 2 {
		return si, errors.New("missing digestEncryptionAlgorithm or encryptedDigest")
	}
	if si.SignatureAlgorithm, err = parseAlgorithmIdentifier(rest[0]); err != nil {
		return si, fmt.Errorf("digestEncryptionAlgorithm: %w", err)
	}
	if rest[1].tag != tagOctetString {
		return si, fmt.Errorf("encryptedDigest: identifier 0x%02x, want OCTET STRING", rest[1].tag)
	}
	si.Signature = rest[1].content
	rest = rest[2:]
	if len(rest) > 0 && rest[0].tag == tagContextCons1 {
		if si.UnsignedAttributes, err = parseAttributes(rest[0].content); err != nil {
			return si, fmt.Errorf("unsigned attributes: %w", err)
		}
		rest = rest[1:]
	}
	if len(rest) != 0 {
		return si, fmt.Errorf("%d unexpected trailing fields", len(rest))
	}
	return si, nil
}

func parseAttributes(content []byte) ([]Attribute, error) {
	elements, err := readChildren(content)
	if err != nil {
		return nil, err
	}
	out := []Attribute{}
	for i, el := range elements {
		if el.tag != tagSequence {
			return nil, fmt.Errorf("attribute %d: identifier 0x%02x, want SEQUENCE", i, el.tag)
		}
		parts, err := readChildren(el.content)
		if err != nil {
			return nil, fmt.Errorf("attribute %d: %w", i, err)
		}
		if len(parts) != 2 || parts[1].tag != tagSet {
			return nil, fmt.Errorf("attribute %d: want SEQUENCE { OID, SET }", i)
		}
		typ, err := parseOID(parts[0])
		if err != nil {
			return nil, fmt.Errorf("attribute %d type: %w", i, err)
		}
		values, err := readChildren(parts[1].content)
		if err != nil {
			return nil, fmt.Errorf("attribute %d (%v) values: %w", i, typ, err)
		}
		a := Attribute{Type: typ}
		for _, v := range values {
			a.Values = append(a.Values, v.full)
		}
		out = append(out, a)
	}
	return out, nil
}

func parseOID(el element) (asn1.ObjectIdentifier, error) {
	if el.tag != tagOID {
		return nil, fmt.Errorf("identifier 0x%02x, want OBJECT IDENTIFIER", el.tag)
	}
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(el.full, &oid); err != nil || len(rest) != 0 {
		return nil, errors.New("invalid OBJECT IDENTIFIER")
	}
	return oid, nil
}

func parseSmallInt(el element) (int, error) {
	if el.tag != tagInteger {
		return 0, fmt.Errorf("identifier 0x%02x, want INTEGER", el.tag)
	}
	var v int
	if rest, err := asn1.Unmarshal(el.full, &v); err != nil || len(rest) != 0 {
		return 0, errors.New("invalid INTEGER")
	}
	return v, nil
}

func parseAlgorithmIdentifier(el element) (pkix.AlgorithmIdentifier, error) {
	var alg pkix.AlgorithmIdentifier
	if el.tag != tagSequence {
		return alg, fmt.Errorf("identifier 0x%02x, want SEQUENCE", el.tag)
	}
	parts, err := readChildren(el.content)
	if err != nil {
		return alg, err
	}
	if len(parts) < 1 || len(parts) > 2 {
		return alg, fmt.Errorf("%d fields, want algorithm and optional parameters", len(parts))
	}
	if alg.Algorithm, err = parseOID(parts[0]); err != nil {
		return alg, err
	}
	if len(parts) == 2 {
		alg.Parameters = asn1.RawValue{
			Class:      int(parts[1].tag >> 6),
			Tag:        int(parts[1].tag & 0x1f),
			IsCompound: parts[1].tag&0x20 != 0,
			Bytes:      parts[1].content,
			FullBytes:  parts[1].full,
		}
	}
	return alg, nil
}
