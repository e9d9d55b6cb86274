package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
)

// Verify checks the signatures over the embedded content against trusted
// and returns the signer certificates, one per SignerInfo.
func (sd *SignedData) Verify(trusted []*x509.Certificate) ([]*x509.Certificate, error) {
	if sd.Content == nil {
		return nil, errors.New("pkcs7: verify: the signature is detached, but no content was given")
	}
	return sd.verify(sd.ContentBytes(), trusted)
}

// VerifyDetached checks the signatures over content, which the message must
// not carry itself (as PKCS7_verify refuses both), against trusted and
// returns the signer certificates, one per SignerInfo.
func (sd *SignedData) VerifyDetached(content []byte, trusted []*x509.Certificate) ([]*x509.Certificate, error) {
	if sd.Content != nil {
		return nil, errors.New("pkcs7: verify: the message carries its content, but detached content was given")
	}
	return sd.verify(content, trusted)
}

// verify implements PKCS7_verify with PKCS7_NOINTERN|PKCS7_NOVERIFY: each
// signer must be found among trusted (embedded certificates are ignored), no
// chain or validity period is checked, and every signature must be valid.
func (sd *SignedData) verify(content []byte, trusted []*x509.Certificate) ([]*x509.Certificate, error) {
	if len(trusted) == 0 {
		return nil, errors.New("pkcs7: verify: no trusted certificates given")
	}
	if len(sd.Signers) == 0 {
		return nil, errors.New("pkcs7: verify: the message has no signers")
	}
	var signers []*x509.Certificate
	for i := range sd.Signers {
		si := &sd.Signers[i]
		cert := si.findCertificate(trusted)
		if cert == nil {
			return nil, fmt.Errorf("pkcs7: verify: signer %d (%s) is not among the trusted certificates", i, si.describeSigner())
		}
		if err := sd.verifySigner(si, cert, content); err != nil {
			return nil, fmt.Errorf("pkcs7: verify: signer %d (%s): %w", i, si.describeSigner(), err)
		}
		signers = append(signers, cert)
	}
	return signers, nil
}

func (sd *SignedData) verifySigner(si *SignerInfo, cert *x509.Certificate, content []byte) error {
	hash, err := hashForDigestOID(si.DigestAlgorithm.Algorithm)
	if err != nil {
		return err
	}
	// OpenSSL computes the content digests named in digestAlgorithms and
	// fails when a signer's digest is not among them.
	listed := false
	for _, alg := range sd.DigestAlgorithms {
		if alg.Algorithm.Equal(si.DigestAlgorithm.Algorithm) {
			listed = true
		}
	}
	if !listed {
		return fmt.Errorf("digest algorithm %v is not listed in digestAlgorithms", si.DigestAlgorithm.Algorithm)
	}
	if err := checkSignatureAlgorithm(si.SignatureAlgorithm.Algorithm, cert.PublicKey, hash); err != nil {
		return err
	}
	h := hash.New()
	h.Write(content)
	digest := h.Sum(nil)

	if si.RawSignedAttributes != nil {
		if err := si.checkSignedAttributes(sd, digest); err != nil {
			return err
		}
		// The signature covers the attributes re-tagged as a universal SET.
		signed := bytes.Clone(si.RawSignedAttributes)
		signed[0] = tagSet
		h := hash.New()
		h.Write(signed)
		digest = h.Sum(nil)
	}
	return verifySignature(cert.PublicKey, hash, digest, si.Signature)
}

// checkSignedAttributes requires exactly one messageDigest equal to the
// content digest and exactly one contentType equal to the content's type.
func (si *SignerInfo) checkSignedAttributes(sd *SignedData, digest []byte) error {
	var messageDigest, contentType []byte
	for _, a := range si.SignedAttributes {
		var slot *[]byte
		switch {
		case a.Type.Equal(oidAttributeMessageDigest):
			slot = &messageDigest
		case a.Type.Equal(oidAttributeContentType):
			slot = &contentType
		default:
			continue
		}
		if *slot != nil || len(a.Values) != 1 {
			return fmt.Errorf("signed attribute %v must occur once with one value", a.Type)
		}
		*slot = a.Values[0]
	}
	if messageDigest == nil {
		return errors.New("signed attributes lack messageDigest")
	}
	if contentType == nil {
		return errors.New("signed attributes lack contentType")
	}
	md, err := readOne(messageDigest, tagOctetString)
	if err != nil {
		return fmt.Errorf("messageDigest attribute: %w", err)
	}
	if !bytes.Equal(md.content, digest) {
		return errors.New("messageDigest attribute does not match the content")
	}
	ctEl, err := readOne(contentType, tagOID)
	if err != nil {
		return fmt.Errorf("contentType attribute: %w", err)
	}
	ct, err := parseOID(ctEl)
	if err != nil {
		return fmt.Errorf("contentType attribute: %w", err)
	}
	if !ct.Equal(sd.ContentType) {
		return fmt.Errorf("contentType attribute %v differs from the content type %v", ct, sd.ContentType)
	}
	return nil
}

// findCertificate returns the trusted certificate the signer identifier
// names: by exact issuer DER and serial number, or by subject key identifier.
func (si *SignerInfo) findCertificate(trusted []*x509.Certificate) *x509.Certificate {
	for _, c := range trusted {
		if c == nil {
			continue
		}
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

func (si *SignerInfo) describeSigner() string {
	if si.SerialNumber != nil {
		return fmt.Sprintf("serial %x", si.SerialNumber)
	}
	return fmt.Sprintf("subject key id %x", si.SubjectKeyID)
}

func verifySignature(pub any, hash crypto.Hash, digest, signature []byte) error {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, hash, digest, signature); err != nil {
			return errors.New("RSA signature is invalid")
		}
		return nil
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, signature) {
			return errors.New("ECDSA signature is invalid")
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}
