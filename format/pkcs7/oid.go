package pkcs7

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"
)

// Object identifiers. They are unexported so that no caller can change them.
var (
	oidData                   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidAttributeContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttributeMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidSHA224WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// IsData reports whether oid is id-data (1.2.840.113549.1.7.1), the content
// type of plain octets.
func IsData(oid asn1.ObjectIdentifier) bool { return oid.Equal(oidData) }

// hashForDigestOID maps a digestAlgorithm to its hash. SHA-1 and SHA-224 are
// accepted for verification only, as OpenSSL accepts them.
func hashForDigestOID(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, nil
	case oid.Equal(oidSHA384):
		return crypto.SHA384, nil
	case oid.Equal(oidSHA512):
		return crypto.SHA512, nil
	case oid.Equal(oidSHA224):
		return crypto.SHA224, nil
	case oid.Equal(oidSHA1):
		return crypto.SHA1, nil
	}
	return 0, fmt.Errorf("unsupported digest algorithm %v", oid)
}

// digestOIDForHash is the inverse of hashForDigestOID for the hashes imago
// signs with.
func digestOIDForHash(h crypto.Hash) (asn1.ObjectIdentifier, error) {
	switch h {
	case crypto.SHA256:
		return oidSHA256, nil
	case crypto.SHA384:
		return oidSHA384, nil
	case crypto.SHA512:
		return oidSHA512, nil
	}
	return nil, fmt.Errorf("unsupported signing hash %v (want SHA-256, SHA-384 or SHA-512)", h)
}

// ecdsaOIDForHash returns ecdsa-with-SHAxxx, the signature algorithm OpenSSL
// writes for an EC key.
func ecdsaOIDForHash(h crypto.Hash) asn1.ObjectIdentifier {
	switch h {
	case crypto.SHA384:
		return oidECDSAWithSHA384
	case crypto.SHA512:
		return oidECDSAWithSHA512
	}
	return oidECDSAWithSHA256
}

// checkSignatureAlgorithm checks that a signerInfo's digestEncryptionAlgorithm
// fits the signer's key and digest. Both the bare key algorithm and the
// combined "hash with key" identifiers are accepted, as OpenSSL and the
// kernel accept them.
func checkSignatureAlgorithm(oid asn1.ObjectIdentifier, pub any, h crypto.Hash) error {
	type combined struct {
		oid  asn1.ObjectIdentifier
		hash crypto.Hash
	}
	var bare asn1.ObjectIdentifier
	var withHash []combined
	switch pub.(type) {
	case *rsa.PublicKey:
		bare = oidRSAEncryption
		withHash = []combined{{oidSHA1WithRSA, crypto.SHA1}, {oidSHA224WithRSA, crypto.SHA224},
			{oidSHA256WithRSA, crypto.SHA256}, {oidSHA384WithRSA, crypto.SHA384}, {oidSHA512WithRSA, crypto.SHA512}}
	case *ecdsa.PublicKey:
		bare = oidECPublicKey
		withHash = []combined{{oidECDSAWithSHA1, crypto.SHA1}, {oidECDSAWithSHA224, crypto.SHA224},
			{oidECDSAWithSHA256, crypto.SHA256}, {oidECDSAWithSHA384, crypto.SHA384}, {oidECDSAWithSHA512, crypto.SHA512}}
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	if oid.Equal(bare) {
		return nil
	}
	for _, c := range withHash {
		if oid.Equal(c.oid) {
			if c.hash != h {
				return fmt.Errorf("signature algorithm %v implies %v, but the digest algorithm is %v", oid, c.hash, h)
			}
			return nil
		}
	}
	return fmt.Errorf("signature algorithm %v does not fit a %T", oid, pub)
}
