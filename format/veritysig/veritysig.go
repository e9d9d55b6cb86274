// Package veritysig reads, writes, signs and verifies the payload of a
// Discoverable Partitions verity signature partition (root-verity-sig,
// usr-verity-sig): a JSON object carrying a dm-verity root hash and a PKCS#7
// signature of it, NUL-padded to the partition size.
//
// It implements the "Verity" section of the Discoverable Partitions
// Specification as systemd 252 writes it (systemd-repart Verity=signature)
// and reads it (image dissection: systemd-dissect, RootImage=, sysext):
//
//   - Marshal writes compact JSON with the keys rootHash,
//     certificateFingerprint, signature in that order, byte-identical to
//     systemd-repart 252 for the same RSA key, certificate and root hash.
//   - The signature is a detached PKCS#7 SignedData over the lowercase hex
//     root hash without newline, SHA-256, no signed attributes, the signer
//     certificate embedded: what the kernel's dm-verity signature check and
//     systemd's userspace fallback verify.
//   - MarshalPartition pads with NULs to the whole partition (16 KiB, as
//     systemd-repart writes from v254 on; 252 and 253 read up to the first
//     NUL, so the result is the same to them).
//   - Parse follows systemd's reader: at most 4 MiB, the text ends at the
//     first NUL and everything after it must be NUL.
package veritysig

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/imago-os/imago/format/pkcs7"
)

const (
	// PartitionSize is the size of the signature partition systemd-repart
	// creates (VERITY_SIG_SIZE, 4 × 4096 bytes).
	PartitionSize = 16384
	// MaxPartitionSize is the largest signature partition systemd reads.
	MaxPartitionSize = 4 << 20
)

// JSON keys, in the order systemd-repart writes them.
const (
	keyRootHash    = "rootHash"
	keyFingerprint = "certificateFingerprint"
	keySignature   = "signature"
)

// Signature is the content of a verity signature partition.
type Signature struct {
	// RootHash is the dm-verity root hash.
	RootHash []byte
	// CertificateFingerprint is the SHA-256 of the signer certificate's DER,
	// nil when the field is absent. systemd does not read it.
	CertificateFingerprint []byte
	// PKCS7 is the DER PKCS#7 signature of SignedContent(RootHash).
	PKCS7 []byte
}

// SignedContent returns the bytes a root hash signature covers: the root hash
// as lowercase hex, without newline.
func SignedContent(rootHash []byte) []byte {
	return []byte(hex.EncodeToString(rootHash))
}

// Fingerprint returns the SHA-256 of the certificate's DER encoding.
func Fingerprint(cert *x509.Certificate) []byte {
	sum := sha256.Sum256(cert.Raw)
	return sum[:]
}

// Sign signs rootHash with key, whose certificate is cert, as systemd-repart
// does.
func Sign(rootHash []byte, cert *x509.Certificate, key crypto.Signer) (*Signature, error) {
	if len(rootHash) == 0 {
		return nil, errors.New("veritysig: sign: empty root hash")
	}
	if cert == nil {
		return nil, errors.New("veritysig: sign: no certificate")
	}
	der, err := pkcs7.Sign(SignedContent(rootHash), cert, key, pkcs7.SignOptions{Detached: true})
	if err != nil {
		return nil, fmt.Errorf("veritysig: sign: %w", err)
	}
	return &Signature{
		RootHash:               bytes.Clone(rootHash),
		CertificateFingerprint: Fingerprint(cert),
		PKCS7:                  der,
	}, nil
}

// Marshal returns the JSON text without padding or trailing newline.
func (s *Signature) Marshal() ([]byte, error) {
	if len(s.RootHash) == 0 {
		return nil, errors.New("veritysig: marshal: empty root hash")
	}
	if len(s.PKCS7) == 0 {
		return nil, errors.New("veritysig: marshal: empty signature")
	}
	// Hex and base64 need no JSON escaping, so the text is built directly to
	// keep systemd-repart's key order and spacing.
	var b strings.Builder
	b.WriteString(`{"` + keyRootHash + `":"`)
	b.WriteString(hex.EncodeToString(s.RootHash))
	if s.CertificateFingerprint != nil {
		b.WriteString(`","` + keyFingerprint + `":"`)
		b.WriteString(hex.EncodeToString(s.CertificateFingerprint))
	}
	b.WriteString(`","` + keySignature + `":"`)
	b.WriteString(base64.StdEncoding.EncodeToString(s.PKCS7))
	b.WriteString(`"}`)
	return []byte(b.String()), nil
}

// MarshalPartition returns the partition content: the JSON text followed by
// NULs up to size bytes. At least one NUL must fit, as systemd-repart v255+
// requires, and size may not exceed MaxPartitionSize, which readers refuse.
func (s *Signature) MarshalPartition(size int) ([]byte, error) {
	text, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	if size > MaxPartitionSize {
		return nil, fmt.Errorf("veritysig: partition size %d exceeds the %d bytes systemd reads", size, MaxPartitionSize)
	}
	if len(text)+1 > size {
		return nil, fmt.Errorf("veritysig: %d bytes of JSON plus a NUL do not fit a %d-byte partition", len(text), size)
	}
	out := make([]byte, size)
	copy(out, text)
	return out, nil
}

// Parse parses the content of a verity signature partition (or the bare
// JSON text). Unknown keys are ignored, as systemd ignores them; known keys
// may not repeat. Hex and base64 are decoded as systemd decodes them: either
// case of hex, whitespace ignored, base64 padding required.
func Parse(data []byte) (*Signature, error) {
	if len(data) > MaxPartitionSize {
		return nil, fmt.Errorf("veritysig: %d bytes exceed the %d bytes of a signature partition systemd reads", len(data), MaxPartitionSize)
	}
	text := data
	if nul := bytes.IndexByte(data, 0); nul >= 0 {
		for i := nul + 1; i < len(data); i++ {
			if data[i] != 0 {
				return nil, fmt.Errorf("veritysig: embedded NUL byte at offset %d followed by data at offset %d", nul, i)
			}
		}
		text = data[:nul]
	}
	fields, err := parseObject(text)
	if err != nil {
		return nil, fmt.Errorf("veritysig: JSON: %w", err)
	}
	sig := &Signature{}
	rootHash, ok := fields[keyRootHash]
	if !ok {
		return nil, fmt.Errorf("veritysig: field %q: missing", keyRootHash)
	}
	if sig.RootHash, err = decodeHex(rootHash); err != nil {
		return nil, fmt.Errorf("veritysig: field %q: %w", keyRootHash, err)
	}
	if len(sig.RootHash) == 0 {
		return nil, fmt.Errorf("veritysig: field %q: empty", keyRootHash)
	}
	if fp, ok := fields[keyFingerprint]; ok && fp != nil {
		if sig.CertificateFingerprint, err = decodeHex(fp); err != nil {
			return nil, fmt.Errorf("veritysig: field %q: %w", keyFingerprint, err)
		}
		if len(sig.CertificateFingerprint) != sha256.Size {
			return nil, fmt.Errorf("veritysig: field %q: %d bytes, want %d (SHA-256)", keyFingerprint, len(sig.CertificateFingerprint), sha256.Size)
		}
	}
	signature, ok := fields[keySignature]
	if !ok {
		return nil, fmt.Errorf("veritysig: field %q: missing", keySignature)
	}
	if sig.PKCS7, err = decodeBase64(signature); err != nil {
		return nil, fmt.Errorf("veritysig: field %q: %w", keySignature, err)
	}
	if len(sig.PKCS7) == 0 {
		return nil, fmt.Errorf("veritysig: field %q: empty", keySignature)
	}
	return sig, nil
}

// parseObject reads a single JSON object and returns its known string fields
// (null for the optional fingerprint is returned as a nil value). rootHash
// and signature must be strings.
func parseObject(text []byte) (map[string]*string, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("no JSON value")
		}
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("top-level value is %s, not an object", describeToken(tok))
	}
	fields := map[string]*string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		switch key {
		case keyRootHash, keyFingerprint, keySignature:
		default:
			continue
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("field %q occurs twice", key)
		}
		var value *string
		if err := json.Unmarshal(raw, &value); err != nil || (value == nil && key != keyFingerprint) {
			return nil, fmt.Errorf("field %q: %s is not a string", key, describeRaw(raw))
		}
		fields[key] = value
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return fields, nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func describeRaw(raw json.RawMessage) string {
	switch {
	case len(raw) == 0:
		return "empty"
	case raw[0] == '{':
		return "an object"
	case raw[0] == '[':
		return "an array"
	case raw[0] == 't' || raw[0] == 'f':
		return "a boolean"
	case raw[0] == 'n':
		return "null"
	}
	return "a number"
}

// stripWhitespace drops the characters systemd's hex and base64 decoders
// skip (space, tab, newline, carriage return).
func stripWhitespace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

func decodeHex(s *string) ([]byte, error) {
	v := stripWhitespace(*s)
	out, err := hex.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("invalid hex: %w", err)
	}
	return out, nil
}

func decodeBase64(s *string) ([]byte, error) {
	out, err := base64.StdEncoding.Strict().DecodeString(stripWhitespace(*s))
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return out, nil
}

// CheckRootHash reports an error unless the signature is for rootHash, as
// systemd requires when a root hash is also supplied from elsewhere (kernel
// command line, sidecar file).
func (s *Signature) CheckRootHash(rootHash []byte) error {
	if !bytes.Equal(s.RootHash, rootHash) {
		return fmt.Errorf("veritysig: root hash in signature (%x) differs from the expected root hash (%x)", s.RootHash, rootHash)
	}
	return nil
}

// Verify checks the PKCS#7 signature over SignedContent(RootHash) the way
// systemd's userspace check does (PKCS7_verify with NOINTERN|NOVERIFY): each
// signer must be one of trusted, matched by issuer and serial number (or by
// subject key identifier); certificates embedded in the signature are not
// trusted; no chain is built and no validity period is checked. It returns
// the trusted certificates that signed. The certificateFingerprint field
// plays no part, as in systemd.
func (s *Signature) Verify(trusted []*x509.Certificate) ([]*x509.Certificate, error) {
	if len(s.RootHash) == 0 {
		return nil, errors.New("veritysig: verify: empty root hash")
	}
	sd, err := pkcs7.Parse(s.PKCS7)
	if err != nil {
		return nil, fmt.Errorf("veritysig: verify: signature: %w", err)
	}
	signers, err := sd.VerifyDetached(SignedContent(s.RootHash), trusted)
	if err != nil {
		return nil, fmt.Errorf("veritysig: verify: %w", err)
	}
	return signers, nil
}
