package measure

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/imago-os/imago/format/tpm2policy"
)

// PCRSig is the document of a UKI's .pcrsig section (and of
// /run/systemd/tpm2-pcr-signature.json): signed PCR policies, grouped by
// bank, in the order systemd-measure wrote them.
type PCRSig struct {
	Banks []PCRSigBank
}

// PCRSigBank holds the signed policies of one bank.
type PCRSigBank struct {
	// Bank is the bank's name, the JSON key ("sha256").
	Bank string
	// Entries are the signed policies, one per phase for systemd-measure.
	Entries []PCRSigEntry
}

// PCRSigEntry is one signed policy.
type PCRSigEntry struct {
	// PCRs are the PCRs the policy covers ("pcrs"); systemd-measure always
	// writes [11].
	PCRs []int
	// KeyFingerprint is the SHA-256 fingerprint of the signing public key
	// ("pkfp", see KeyFingerprint).
	KeyFingerprint []byte
	// Policy is the TPM2 PolicyPCR digest that was signed ("pol").
	Policy []byte
	// Signature is the signature of Policy ("sig", base64 in JSON).
	Signature []byte
}

// PolicyPCRDigest returns the TPM2 policy digest of a SHA-256 policy session
// after one TPM2_PolicyPCR that requires PCR pcrIndex of the bank hashed
// with bank to hold value. This is the "pol" systemd-measure 252 has a TPM
// compute in a trial session.
func PolicyPCRDigest(bank crypto.Hash, pcrIndex int, value []byte) ([]byte, error) {
	alg, err := tpm2policy.HashAlg(bank)
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	if len(value) != bank.Size() {
		return nil, fmt.Errorf("measure: PCR value of %d bytes for the %d-byte %v bank", len(value), bank.Size(), bank)
	}
	d, err := tpm2policy.PolicyPCR(tpm2policy.Digest{}, alg, []int{pcrIndex}, [][]byte{value})
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	return d[:], nil
}

// KeyFingerprint returns the "pkfp" of a public key: SHA-256 over OpenSSL's
// i2d_PublicKey encoding, which for RSA is the PKCS#1 RSAPublicKey DER (not
// the SubjectPublicKeyInfo) and for an EC key the uncompressed point.
func KeyFingerprint(pub crypto.PublicKey) ([]byte, error) {
	var der []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der = x509.MarshalPKCS1PublicKey(k)
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			return nil, fmt.Errorf("measure: EC public key: %w", err)
		}
		der = e.Bytes()
	default:
		return nil, fmt.Errorf("measure: unsupported public key type %T (want RSA or ECDSA)", pub)
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

// SignPolicy signs a policy digest the way systemd-measure does: the digest
// is hashed with the bank's own hash and signed with key (RSA PKCS#1 v1.5,
// which is deterministic, or ECDSA with an ASN.1 signature).
//
// Note that systemd-cryptsetup checks a signature through the TPM as
// RSASSA-SHA256, so only the entries of the sha256 bank can unlock anything.
func SignPolicy(key crypto.Signer, bank crypto.Hash, policy []byte) ([]byte, error) {
	if err := checkSigningKey(key.Public()); err != nil {
		return nil, err
	}
	sig, err := key.Sign(rand.Reader, digest(bank, policy), bank)
	if err != nil {
		return nil, fmt.Errorf("measure: signing policy: %w", err)
	}
	return sig, nil
}

func checkSigningKey(pub crypto.PublicKey) error {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return nil
	}
	return fmt.Errorf("measure: unsupported signing key type %T (want RSA or ECDSA)", pub)
}

// signableBank reports whether systemd-measure 252 can sign for a bank: the
// four banks it knows a TPM algorithm for.
func signableBank(b Bank) bool {
	switch b.Hash {
	case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		return true
	}
	return false
}

// Sign predicts PCR 11 for each bank and phase and signs the policy that
// requires each value, as `systemd-measure sign` does: for every phase in
// order, for every bank, one entry {pcrs [11], pkfp, pol, sig}. pub is the
// public key whose fingerprint goes into the entries; nil means key's own.
// systemd-measure takes pub from --public-key= without checking that it
// matches key, and so does Sign.
func Sign(s Sections, banks []Bank, phases []Phase, key crypto.Signer, pub crypto.PublicKey) (*PCRSig, error) {
	if key == nil {
		return nil, errors.New("measure: no signing key")
	}
	if pub == nil {
		pub = key.Public()
	}
	fingerprint, err := KeyFingerprint(pub)
	if err != nil {
		return nil, err
	}
	if err := checkSigningKey(key.Public()); err != nil {
		return nil, err
	}
	if len(banks) == 0 || len(phases) == 0 {
		return nil, errors.New("measure: no banks or no phases")
	}
	for _, b := range banks {
		if !signableBank(b) {
			return nil, fmt.Errorf("measure: cannot sign for bank %s: systemd 252 signs only sha1, sha256, sha384 and sha512", b.Name)
		}
	}
	calc, err := Calculate(s, banks, phases)
	if err != nil {
		return nil, err
	}
	sig := &PCRSig{}
	for _, bv := range calc.Banks {
		bank := PCRSigBank{Bank: bv.Bank.Name}
		for _, v := range bv.Values {
			pol, err := PolicyPCRDigest(bv.Bank.Hash, PCR, v.Value)
			if err != nil {
				return nil, err
			}
			signature, err := SignPolicy(key, bv.Bank.Hash, pol)
			if err != nil {
				return nil, err
			}
			bank.Entries = append(bank.Entries, PCRSigEntry{
				PCRs:           []int{PCR},
				KeyFingerprint: fingerprint,
				Policy:         pol,
				Signature:      signature,
			})
		}
		sig.Banks = append(sig.Banks, bank)
	}
	return sig, nil
}

// Encode returns the document as systemd writes it: an object with one
// member per bank, each an array of objects with "pcrs", "pkfp" (hex),
// "pol" (hex) and "sig" (base64), in that order.
func (p *PCRSig) Encode(f JSONFormat) []byte {
	var root jsonObject
	for _, b := range p.Banks {
		entries := jsonArray{}
		for _, e := range b.Entries {
			pcrs := jsonArray{}
			for _, pcr := range e.PCRs {
				pcrs = append(pcrs, pcr)
			}
			entries = append(entries, jsonObject{
				{"pcrs", pcrs},
				{"pkfp", hex.EncodeToString(e.KeyFingerprint)},
				{"pol", hex.EncodeToString(e.Policy)},
				{"sig", base64.StdEncoding.EncodeToString(e.Signature)},
			})
		}
		root = append(root, jsonMember{b.Bank, entries})
	}
	return encodeJSON(root, f)
}

// Bank returns the entries of the bank called name, or nil.
func (p *PCRSig) Bank(name string) []PCRSigEntry {
	for _, b := range p.Banks {
		if b.Bank == name {
			return b.Entries
		}
	}
	return nil
}

// Find returns the first entry of the bank called bank that covers exactly
// the PCRs in pcrs (in any order), was made with the key whose fingerprint
// is fingerprint and signs policy — the entry systemd-cryptsetup looks for
// when it unlocks — or nil.
func (p *PCRSig) Find(bank string, pcrs []int, fingerprint, policy []byte) *PCRSigEntry {
	want := pcrMask(pcrs)
	entries := p.Bank(bank)
	for i := range entries {
		e := &entries[i]
		if pcrMask(e.PCRs) == want && bytes.Equal(e.KeyFingerprint, fingerprint) && bytes.Equal(e.Policy, policy) {
			return e
		}
	}
	return nil
}

func pcrMask(pcrs []int) uint32 {
	var m uint32
	for _, p := range pcrs {
		if p >= 0 && p <= tpm2policy.MaxPCR {
			m |= 1 << p
		}
	}
	return m
}

// Verify checks that e was signed by pub for the bank hashed with bank: the
// fingerprint matches and the signature over Policy is valid.
func (e *PCRSigEntry) Verify(pub crypto.PublicKey, bank crypto.Hash) error {
	fp, err := KeyFingerprint(pub)
	if err != nil {
		return err
	}
	if !bytes.Equal(fp, e.KeyFingerprint) {
		return fmt.Errorf("measure: entry made with key %x, not %x", e.KeyFingerprint, fp)
	}
	if err := checkHash(bank); err != nil {
		return err
	}
	d := digest(bank, e.Policy)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		err = rsa.VerifyPKCS1v15(k, bank, d, e.Signature)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, d, e.Signature) {
			err = errors.New("ECDSA verification failed")
		}
	}
	if err != nil {
		return fmt.Errorf("measure: signature of policy %x: %w", e.Policy, err)
	}
	return nil
}

// MaxPCRSigSize bounds the documents ParsePCRSig reads.
const MaxPCRSigSize = 16 << 20

// ParsePCRSig reads a .pcrsig document. Trailing NUL bytes (section padding)
// are ignored. Banks and entries keep their order; members other than
// "pcrs", "pkfp", "pol" and "sig" are skipped; a missing or empty member
// reads as nil. Values must have the right types: PCRs are integers 0…23,
// "pkfp" and "pol" hex, "sig" base64. Duplicate keys are refused.
func ParsePCRSig(data []byte) (*PCRSig, error) {
	if len(data) > MaxPCRSigSize {
		return nil, fmt.Errorf("pcrsig: %d bytes, more than %d", len(data), MaxPCRSigSize)
	}
	data = bytes.TrimRight(data, "\x00")
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := &PCRSig{}
	seen := map[string]bool{}
	err := readObject(dec, func(bank string) error {
		if seen[bank] {
			return fmt.Errorf("bank %q appears twice", bank)
		}
		seen[bank] = true
		b := PCRSigBank{Bank: bank}
		err := readArray(dec, func(i int) error {
			e, err := readEntry(dec)
			if err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			b.Entries = append(b.Entries, e)
			return nil
		})
		if err != nil {
			return fmt.Errorf("bank %q: %w", bank, err)
		}
		p.Banks = append(p.Banks, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pcrsig: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("pcrsig: data after the JSON object")
	}
	return p, nil
}

func readEntry(dec *json.Decoder) (PCRSigEntry, error) {
	var e PCRSigEntry
	seen := map[string]bool{}
	err := readObject(dec, func(key string) error {
		if seen[key] {
			return fmt.Errorf("%q appears twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "pcrs":
			err = readArray(dec, func(int) error {
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				n, ok := tok.(json.Number)
				if !ok {
					return fmt.Errorf("PCR %v is not a number", tok)
				}
				pcr, err := strconv.ParseUint(n.String(), 10, 8)
				if err != nil || pcr > tpm2policy.MaxPCR {
					return fmt.Errorf("PCR %s is not an integer 0…%d", n, tpm2policy.MaxPCR)
				}
				e.PCRs = append(e.PCRs, int(pcr))
				return nil
			})
		case "pkfp":
			e.KeyFingerprint, err = readString(dec, hex.DecodeString)
		case "pol":
			e.Policy, err = readString(dec, hex.DecodeString)
		case "sig":
			e.Signature, err = readString(dec, base64.StdEncoding.DecodeString)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", key, err)
		}
		return nil
	})
	return e, err
}

// readObject reads a JSON object, calling member for each key with the
// decoder positioned at the key's value, which member must consume.
func readObject(dec *json.Decoder, member func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("want a JSON object, got %v", tok)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key %v is not a string", tok)
		}
		if err := member(key); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing brace
	return err
}

// readArray reads a JSON array, calling element with the decoder positioned
// at each element, which element must consume.
func readArray(dec *json.Decoder, element func(i int) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("want a JSON array, got %v", tok)
	}
	for i := 0; dec.More(); i++ {
		if err := element(i); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing bracket
	return err
}

// readString reads a JSON string and decodes it; an empty string is nil.
func readString(dec *json.Decoder, decode func(string) ([]byte, error)) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	s, ok := tok.(string)
	if !ok {
		return nil, fmt.Errorf("want a string, got %v", tok)
	}
	if s == "" {
		return nil, nil
	}
	return decode(s)
}
