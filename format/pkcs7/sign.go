package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Attribute is a PKCS#9 attribute: a type and its values, each value one
// DER-encoded element.
type Attribute struct {
	Type   asn1.ObjectIdentifier
	Values [][]byte
}

// NewAttribute returns an attribute with a single value, DER-encoded with
// encoding/asn1.
func NewAttribute(typ asn1.ObjectIdentifier, value any) (Attribute, error) {
	der, err := asn1.Marshal(value)
	if err != nil {
		return Attribute{}, fmt.Errorf("pkcs7: attribute %v: %w", typ, err)
	}
	return Attribute{Type: typ, Values: [][]byte{der}}, nil
}

// SignOptions select what Sign writes. The zero value writes what
// `openssl smime -sign -binary -noattr -nodetach` writes: id-data content
// embedded, SHA-256, no signed attributes, the signer certificate embedded.
type SignOptions struct {
	// ContentType of the signed content; nil means id-data.
	ContentType asn1.ObjectIdentifier
	// Detached leaves the content out of the message.
	Detached bool
	// Hash is the digest algorithm; zero means SHA-256, OpenSSL's default
	// for RSA and EC keys.
	Hash crypto.Hash
	// SignedAttributes adds the contentType and messageDigest attributes and
	// signs them instead of the content (OpenSSL's default without -noattr).
	SignedAttributes bool
	// ExtraSignedAttributes are signed along with contentType and
	// messageDigest; they require SignedAttributes.
	ExtraSignedAttributes []Attribute
	// UnsignedAttributes are added to the SignerInfo unsigned.
	UnsignedAttributes []Attribute
	// ExtraCertificates are embedded after the signer certificate.
	ExtraCertificates []*x509.Certificate
	// NoCertificates embeds no certificate at all (PKCS7_NOCERTS).
	NoCertificates bool
	// Rand is the randomness for ECDSA; nil means crypto/rand.
	Rand io.Reader
}

// Sign returns the DER encoding of a ContentInfo holding a SignedData with one
// signer, cert, whose private key is key. For id-data, content is the raw
// octets; for any other ContentType, content must be one DER element.
func Sign(content []byte, cert *x509.Certificate, key crypto.Signer, opts SignOptions) ([]byte, error) {
	if cert == nil || key == nil {
		return nil, errors.New("pkcs7: sign: certificate and key are required")
	}
	if err := checkKeyMatchesCertificate(cert, key); err != nil {
		return nil, err
	}
	contentType := opts.ContentType
	if contentType == nil {
		contentType = oidData
	}
	hash := opts.Hash
	if hash == 0 {
		hash = crypto.SHA256
	}
	digestOID, err := digestOIDForHash(hash)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: sign: %w", err)
	}
	if len(opts.ExtraSignedAttributes) > 0 && !opts.SignedAttributes {
		return nil, errors.New("pkcs7: sign: extra signed attributes need SignedAttributes")
	}
	contentOID, err := asn1.Marshal(contentType)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: sign: content type: %w", err)
	}

	// The embedded value and the octets the digest covers.
	var contentValue, digested []byte
	if contentType.Equal(oidData) {
		contentValue = tlv(tagOctetString, content)
		digested = content
	} else {
		el, rest, err := readElement(content)
		if err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("pkcs7: sign: content of type %v must be exactly one DER element", contentType)
		}
		contentValue = el.full
		digested = el.content
	}

	h := hash.New()
	h.Write(digested)
	contentDigest := h.Sum(nil)

	var signedAttrs []byte // the [0] IMPLICIT element, nil without attributes
	toSign := contentDigest
	if opts.SignedAttributes {
		attrs := []Attribute{
			{Type: oidAttributeContentType, Values: [][]byte{contentOID}},
			{Type: oidAttributeMessageDigest, Values: [][]byte{tlv(tagOctetString, contentDigest)}},
		}
		for _, a := range opts.ExtraSignedAttributes {
			if a.Type.Equal(oidAttributeContentType) || a.Type.Equal(oidAttributeMessageDigest) {
				return nil, fmt.Errorf("pkcs7: sign: attribute %v is computed, not given", a.Type)
			}
			attrs = append(attrs, a)
		}
		encoded, err := encodeAttributes(attrs)
		if err != nil {
			return nil, fmt.Errorf("pkcs7: sign: signed attributes: %w", err)
		}
		// The signature covers the attributes with the universal SET tag
		// (RFC 2315 9.3), the message stores them under [0].
		h := hash.New()
		h.Write(tlv(tagSet, encoded))
		toSign = h.Sum(nil)
		signedAttrs = tlv(tagContextCons0, encoded)
	}

	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	signature, err := key.Sign(rnd, toSign, hash)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: sign: %w", err)
	}

	var sigAlg []byte
	switch key.Public().(type) {
	case *rsa.PublicKey:
		sigAlg = algorithmIdentifier(oidRSAEncryption, true)
	case *ecdsa.PublicKey:
		sigAlg = algorithmIdentifier(ecdsaOIDForHash(hash), false)
	}
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: sign: serial number: %w", err)
	}
	digestAlg := algorithmIdentifier(digestOID, true)
	signerParts := [][]byte{
		tlv(tagInteger, []byte{1}),
		tlv(tagSequence, cert.RawIssuer, serial),
		digestAlg,
		signedAttrs,
		sigAlg,
		tlv(tagOctetString, signature),
	}
	if len(opts.UnsignedAttributes) > 0 {
		encoded, err := encodeAttributes(opts.UnsignedAttributes)
		if err != nil {
			return nil, fmt.Errorf("pkcs7: sign: unsigned attributes: %w", err)
		}
		signerParts = append(signerParts, tlv(tagContextCons1, encoded))
	}
	signerInfo := tlv(tagSequence, signerParts...)

	encapsulated := tlv(tagSequence, contentOID)
	if !opts.Detached {
		encapsulated = tlv(tagSequence, contentOID, tlv(tagContextCons0, contentValue))
	}
	var certs []byte
	if !opts.NoCertificates {
		// OpenSSL keeps certificates in insertion order: signer first.
		raw := [][]byte{cert.Raw}
		for _, c := range opts.ExtraCertificates {
			raw = append(raw, c.Raw)
		}
		certs = tlv(tagContextCons0, raw...)
	}
	signedData := tlv(tagSequence,
		tlv(tagInteger, []byte{1}),
		tlv(tagSet, digestAlg),
		encapsulated,
		certs,
		tlv(tagSet, signerInfo),
	)
	signedDataOID, _ := asn1.Marshal(oidSignedData)
	return tlv(tagSequence, signedDataOID, tlv(tagContextCons0, signedData)), nil
}

// algorithmIdentifier encodes an AlgorithmIdentifier, with NULL parameters
// where OpenSSL writes them.
func algorithmIdentifier(oid asn1.ObjectIdentifier, nullParams bool) []byte {
	der, _ := asn1.Marshal(oid) // the OIDs are constants, valid by construction
	if nullParams {
		return tlv(tagSequence, der, []byte{tagNull, 0})
	}
	return tlv(tagSequence, der)
}

// encodeAttributes returns the contents of a DER SET OF Attribute: each
// attribute's values sorted, then the attributes sorted by their encodings.
func encodeAttributes(attrs []Attribute) ([]byte, error) {
	encoded := make([][]byte, 0, len(attrs))
	for _, a := range attrs {
		oid, err := asn1.Marshal(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute type: %w", err)
		}
		if len(a.Values) == 0 {
			return nil, fmt.Errorf("attribute %v has no value", a.Type)
		}
		values := slices.Clone(a.Values)
		for _, v := range values {
			if _, rest, err := readElement(v); err != nil || len(rest) != 0 {
				return nil, fmt.Errorf("attribute %v: value is not one DER element", a.Type)
			}
		}
		slices.SortFunc(values, bytes.Compare)
		encoded = append(encoded, tlv(tagSequence, oid, tlv(tagSet, values...)))
	}
	slices.SortFunc(encoded, bytes.Compare)
	return bytes.Join(encoded, nil), nil
}

// checkKeyMatchesCertificate refuses a key that is not the certificate's, as
// PKCS7_sign does, so that no unverifiable signature is ever written.
func checkKeyMatchesCertificate(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return fmt.Errorf("pkcs7: sign: unsupported key type %T", key.Public())
	}
	switch key.Public().(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return fmt.Errorf("pkcs7: sign: unsupported key type %T (want RSA or ECDSA)", key.Public())
	}
	if !pub.Equal(cert.PublicKey) {
		return errors.New("pkcs7: sign: private key does not match the certificate")
	}
	return nil
}
