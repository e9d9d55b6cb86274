// Package tpm2policy computes TPM 2.0 policy digests in software, the way a
// TPM's trial policy session would: the PolicyPCR, PolicyAuthorize and
// PolicyAuthValue steps systemd 252 chains when it seals a LUKS2 key to PCR
// values or to a signed PCR policy, and the TPM name of an RSA public key
// loaded the way systemd loads the PCR signing key.
//
// It implements the marshalling of the TPM 2.0 Library specification
// (Part 2, Structures) for TPML_PCR_SELECTION and TPMT_PUBLIC, and the policy
// update rules of Part 3 (Commands), as systemd 252's tpm2-util.c and
// systemd-measure drive them; docs/formats/measure.md describes it. Every
// policy session systemd uses hashes with SHA-256, so digests here are
// SHA-256 digests.
//
// The package is pure: no TPM is needed and nothing is read or written.
package tpm2policy

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// Alg is a TPM_ALG_ID.
type Alg uint16

// TPM_ALG_ID values for the hash algorithms a PCR bank can use, and the other
// algorithm identifiers a TPMT_PUBLIC for an RSA key carries.
const (
	AlgRSA     Alg = 0x0001
	AlgSHA1    Alg = 0x0004
	AlgSHA256  Alg = 0x000B
	AlgSHA384  Alg = 0x000C
	AlgSHA512  Alg = 0x000D
	AlgNull    Alg = 0x0010
	AlgSHA3256 Alg = 0x0027
	AlgSHA3384 Alg = 0x0028
	AlgSHA3512 Alg = 0x0029
)

// TPM_CC values of the policy commands whose effect on a policy digest is
// computed here.
const (
	ccPolicyAuthorize uint32 = 0x0000016A
	ccPolicyAuthValue uint32 = 0x0000016B
	ccPolicyPCR       uint32 = 0x0000017F
)

// TPMA_OBJECT bits systemd sets on the public key it loads with
// TPM2_LoadExternal to check PCR signatures: userWithAuth, decrypt and sign.
const (
	attrUserWithAuth uint32 = 0x00000040
	attrDecrypt      uint32 = 0x00020000
	attrSign         uint32 = 0x00040000

	// RSAKeyAttributes is the objectAttributes field systemd 252 gives the
	// PCR signing key's TPMT_PUBLIC.
	RSAKeyAttributes = attrDecrypt | attrSign | attrUserWithAuth
)

// MaxPCR is the highest PCR index a selection may name: PC-client TPMs have
// 24 PCRs, and systemd always marshals a 3-byte pcrSelect.
const MaxPCR = 23

// maxRSAModulusBytes is the size of TPM2B_PUBLIC_KEY_RSA's buffer in the
// TPM software stack systemd builds against (TPM2_MAX_RSA_KEY_BYTES).
const maxRSAModulusBytes = 512

// pcrSelectSize is the sizeofSelect systemd writes: 24 PCRs / 8 bits.
const pcrSelectSize = 3

// Digest is a SHA-256 policy digest. The zero value is the digest every
// policy session starts from.
type Digest [sha256.Size]byte

// HashAlg returns the TPM_ALG_ID of a PCR bank's hash.
func HashAlg(h crypto.Hash) (Alg, error) {
	switch h {
	case crypto.SHA1:
		return AlgSHA1, nil
	case crypto.SHA256:
		return AlgSHA256, nil
	case crypto.SHA384:
		return AlgSHA384, nil
	case crypto.SHA512:
		return AlgSHA512, nil
	case crypto.SHA3_256:
		return AlgSHA3256, nil
	case crypto.SHA3_384:
		return AlgSHA3384, nil
	case crypto.SHA3_512:
		return AlgSHA3512, nil
	}
	return 0, fmt.Errorf("tpm2policy: hash %v is not a TPM PCR bank algorithm", h)
}

// MarshalPCRSelection returns the TPML_PCR_SELECTION that selects pcrs in the
// bank hashed with alg: a count of 1, then one TPMS_PCR_SELECTION with the
// algorithm, sizeofSelect 3 and the PCR bitmap (PCR n is bit n%8 of byte
// n/8), all big-endian.
func MarshalPCRSelection(alg Alg, pcrs []int) ([]byte, error) {
	var bitmap [pcrSelectSize]byte
	for _, pcr := range pcrs {
		if pcr < 0 || pcr > MaxPCR {
			return nil, fmt.Errorf("tpm2policy: PCR %d out of range 0…%d", pcr, MaxPCR)
		}
		bitmap[pcr/8] |= 1 << (pcr % 8)
	}
	b := binary.BigEndian.AppendUint32(nil, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(alg))
	b = append(b, pcrSelectSize)
	return append(b, bitmap[:]...), nil
}

// PCRDigest is the pcrDigest argument of TPM2_PolicyPCR: the session hash
// (SHA-256) over the selected PCRs' values concatenated in ascending PCR
// order.
func PCRDigest(values ...[]byte) []byte {
	h := sha256.New()
	for _, v := range values {
		h.Write(v)
	}
	return h.Sum(nil)
}

// PolicyPCR extends prev the way TPM2_PolicyPCR does when the PCRs in pcrs
// of the bank hashed with alg hold values (one per PCR, in ascending PCR
// order):
//
//	H(prev || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(values...))
func PolicyPCR(prev Digest, alg Alg, pcrs []int, values [][]byte) (Digest, error) {
	sorted := slices.Clone(pcrs)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if len(sorted) != len(values) {
		return Digest{}, fmt.Errorf("tpm2policy: %d PCRs selected but %d values given", len(sorted), len(values))
	}
	return PolicyPCRWithDigest(prev, alg, sorted, PCRDigest(values...))
}

// PolicyPCRWithDigest is PolicyPCR with the pcrDigest already computed, as
// systemd-measure passes it to the TPM.
func PolicyPCRWithDigest(prev Digest, alg Alg, pcrs []int, pcrDigest []byte) (Digest, error) {
	sel, err := MarshalPCRSelection(alg, pcrs)
	if err != nil {
		return Digest{}, err
	}
	h := sha256.New()
	h.Write(prev[:])
	h.Write(binary.BigEndian.AppendUint32(nil, ccPolicyPCR))
	h.Write(sel)
	h.Write(pcrDigest)
	return Digest(h.Sum(nil)), nil
}

// PolicyAuthorize returns the digest TPM2_PolicyAuthorize leaves: it replaces
// whatever came before with
//
//	H(H(0…0 || TPM_CC_PolicyAuthorize || keyName) || policyRef)
//
// so that any policy signed by the key named keyName can stand in for it.
func PolicyAuthorize(keyName, policyRef []byte) Digest {
	var zero Digest
	inner := sha256.New()
	inner.Write(zero[:])
	inner.Write(binary.BigEndian.AppendUint32(nil, ccPolicyAuthorize))
	inner.Write(keyName)
	outer := sha256.New()
	outer.Write(inner.Sum(nil))
	outer.Write(policyRef)
	return Digest(outer.Sum(nil))
}

// PolicyAuthValue extends prev the way TPM2_PolicyAuthValue does (a PIN):
// H(prev || TPM_CC_PolicyAuthValue).
func PolicyAuthValue(prev Digest) Digest {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(binary.BigEndian.AppendUint32(nil, ccPolicyAuthValue))
	return Digest(h.Sum(nil))
}

// MarshalRSAPublic returns the TPMT_PUBLIC systemd 252 loads for an RSA PCR
// signing key: type RSA, nameAlg SHA-256, RSAKeyAttributes, an empty
// authPolicy, no symmetric algorithm, no scheme, keyBits (the modulus length
// in whole bytes times 8), the public exponent and the modulus without
// leading zeros.
//
// systemd 252 copies the exponent's big-endian bytes into the start of the
// 32-bit field on a little-endian machine, which reads back as the same
// number only for exponents such as 3 and 65537; this writes what it
// writes on x86-64 and arm64. With zeroExponent the TPM's shorthand for
// 65537, 0, is written instead; later systemd versions also try that,
// because the two give different names.
func MarshalRSAPublic(pub *rsa.PublicKey, zeroExponent bool) ([]byte, error) {
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 {
		return nil, errors.New("tpm2policy: no RSA public key")
	}
	modulus := pub.N.Bytes()
	if len(modulus) > maxRSAModulusBytes || pub.E <= 0 || uint64(pub.E) > 0xffffffff {
		return nil, fmt.Errorf("tpm2policy: RSA key (%d-byte modulus, exponent %d) does not fit a TPMT_PUBLIC", len(modulus), pub.E)
	}
	var exponent uint32
	if zeroExponent {
		if pub.E != 65537 {
			return nil, fmt.Errorf("tpm2policy: exponent %d cannot be written as 0 (only 65537 can)", pub.E)
		}
	} else {
		var field [4]byte
		copy(field[:], big.NewInt(int64(pub.E)).Bytes())
		exponent = binary.LittleEndian.Uint32(field[:])
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(AlgRSA))
	b = binary.BigEndian.AppendUint16(b, uint16(AlgSHA256))
	b = binary.BigEndian.AppendUint32(b, RSAKeyAttributes)
	b = binary.BigEndian.AppendUint16(b, 0) // authPolicy: empty TPM2B_DIGEST
	b = binary.BigEndian.AppendUint16(b, uint16(AlgNull))
	b = binary.BigEndian.AppendUint16(b, uint16(AlgNull))
	b = binary.BigEndian.AppendUint16(b, uint16(len(modulus)*8))
	b = binary.BigEndian.AppendUint32(b, exponent)
	b = binary.BigEndian.AppendUint16(b, uint16(len(modulus)))
	return append(b, modulus...), nil
}

// Name returns the TPM name of an object whose nameAlg is SHA-256 and whose
// TPMT_PUBLIC is publicArea: the algorithm ID followed by the digest.
func Name(publicArea []byte) []byte {
	sum := sha256.Sum256(publicArea)
	return append(binary.BigEndian.AppendUint16(nil, uint16(AlgSHA256)), sum[:]...)
}

// RSAKeyName returns the name systemd 252 gets back when it loads pub for
// checking PCR signatures (see MarshalRSAPublic).
func RSAKeyName(pub *rsa.PublicKey, zeroExponent bool) ([]byte, error) {
	area, err := MarshalRSAPublic(pub, zeroExponent)
	if err != nil {
		return nil, err
	}
	return Name(area), nil
}
