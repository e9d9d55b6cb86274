package efisig

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/imago-os/imago/format/uuid"
)

// ListHeaderSize is the size of the fixed EFI_SIGNATURE_LIST header:
// SignatureType (16), SignatureListSize, SignatureHeaderSize and
// SignatureSize (4 each).
const ListHeaderSize = 28

// OwnerSize is the size of SignatureOwner, the GUID that starts every
// EFI_SIGNATURE_DATA.
const OwnerSize = guidSize

// Signature is one EFI_SIGNATURE_DATA: the GUID of the agent that added it
// and the signature data proper (a DER certificate, a digest, ...).
type Signature struct {
	Owner uuid.UUID
	Data  []byte
}

// List is one EFI_SIGNATURE_LIST: signatures of one type and one size.
type List struct {
	// Type is the SignatureType, e.g. CertX509 or CertSHA256.
	Type uuid.UUID
	// Header is the type-specific SignatureHeader; every type UEFI
	// defines has none.
	Header []byte
	// SignatureSize is the size of each EFI_SIGNATURE_DATA including its
	// owner GUID. Zero means OwnerSize plus the length of the signatures'
	// data (OwnerSize for a list without signatures). ParseLists always
	// sets it, so a parsed list encodes back to the same bytes.
	SignatureSize uint32
	// Signatures are the entries, all SignatureSize-OwnerSize bytes long.
	Signatures []Signature
}

// NewX509List returns the list cert-to-efi-sig-list writes for one DER
// certificate: type CertX509, no header, one signature owned by owner.
func NewX509List(certDER []byte, owner uuid.UUID) List {
	return List{Type: CertX509, Signatures: []Signature{{Owner: owner, Data: certDER}}}
}

// signatureSize returns the SignatureSize l encodes with, checking that
// every signature has the same length.
func (l List) signatureSize() (uint32, error) {
	size := uint64(l.SignatureSize)
	if size == 0 {
		size = OwnerSize
		if len(l.Signatures) > 0 {
			size += uint64(len(l.Signatures[0].Data))
		}
	}
	if size < OwnerSize || size > math.MaxUint32 {
		return 0, fmt.Errorf("SignatureSize %d: want %d to %d", size, OwnerSize, uint32(math.MaxUint32))
	}
	for i, s := range l.Signatures {
		if uint64(len(s.Data))+OwnerSize != size {
			return 0, fmt.Errorf("signature %d: %d data bytes, want %d (all signatures of a list have one size)",
				i, len(s.Data), size-OwnerSize)
		}
	}
	return uint32(size), nil
}

// AppendList appends the encoding of l to dst.
func AppendList(dst []byte, l List) ([]byte, error) {
	sigSize, err := l.signatureSize()
	if err != nil {
		return nil, fmt.Errorf("efisig: signature list %s: %w", l.Type, err)
	}
	total := uint64(ListHeaderSize) + uint64(len(l.Header)) + uint64(sigSize)*uint64(len(l.Signatures))
	if total > math.MaxUint32 {
		return nil, fmt.Errorf("efisig: signature list %s: %d bytes do not fit SignatureListSize", l.Type, total)
	}
	dst = appendGUID(dst, l.Type)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(total))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(l.Header)))
	dst = binary.LittleEndian.AppendUint32(dst, sigSize)
	dst = append(dst, l.Header...)
	for _, s := range l.Signatures {
		dst = appendGUID(dst, s.Owner)
		dst = append(dst, s.Data...)
	}
	return dst, nil
}

// EncodeLists returns the concatenated encodings of lists: the content of
// an .esl file or of a key database variable.
func EncodeLists(lists []List) ([]byte, error) {
	var out []byte
	for _, l := range lists {
		var err error
		if out, err = AppendList(out, l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseLists reads concatenated signature lists, as a key database
// variable or an .esl file holds them. Empty input is no lists. Each list
// must fit the input, its header must fit the list, SignatureSize must
// hold at least the owner GUID, and the signatures must fill the rest of
// the list exactly. Header and signature data alias b.
func ParseLists(b []byte) ([]List, error) {
	var lists []List
	for off := 0; off < len(b); {
		l, size, err := parseList(b[off:])
		if err != nil {
			return nil, fmt.Errorf("efisig: signature list %d at offset %d: %w", len(lists), off, err)
		}
		lists = append(lists, l)
		off += size
	}
	return lists, nil
}

// parseList parses the list at the start of b and returns it with its size.
func parseList(b []byte) (List, int, error) {
	if len(b) < ListHeaderSize {
		return List{}, 0, fmt.Errorf("%d bytes left, shorter than the %d-byte header", len(b), ListHeaderSize)
	}
	l := List{Type: readGUID(b)}
	listSize := uint64(binary.LittleEndian.Uint32(b[16:]))
	headerSize := uint64(binary.LittleEndian.Uint32(b[20:]))
	l.SignatureSize = binary.LittleEndian.Uint32(b[24:])
	sigSize := uint64(l.SignatureSize)
	switch {
	case listSize < ListHeaderSize:
		return List{}, 0, fmt.Errorf("SignatureListSize %d is smaller than the %d-byte header", listSize, ListHeaderSize)
	case listSize > uint64(len(b)):
		return List{}, 0, fmt.Errorf("SignatureListSize %d exceeds the %d bytes left", listSize, len(b))
	case headerSize > listSize-ListHeaderSize:
		return List{}, 0, fmt.Errorf("SignatureHeaderSize %d does not fit SignatureListSize %d", headerSize, listSize)
	case sigSize < OwnerSize:
		return List{}, 0, fmt.Errorf("SignatureSize %d is smaller than the %d-byte owner GUID", sigSize, OwnerSize)
	}
	body := listSize - ListHeaderSize - headerSize
	if body%sigSize != 0 {
		return List{}, 0, fmt.Errorf("%d signature bytes are not a multiple of SignatureSize %d", body, sigSize)
	}
	p := uint64(ListHeaderSize)
	if headerSize > 0 {
		l.Header = b[p : p+headerSize]
	}
	p += headerSize
	for ; p < listSize; p += sigSize {
		l.Signatures = append(l.Signatures, Signature{Owner: readGUID(b[p:]), Data: b[p+OwnerSize : p+sigSize]})
	}
	return l, int(listSize), nil
}

// Certificates parses the X.509 certificates of a CertX509 list.
func (l List) Certificates() ([]*x509.Certificate, error) {
	if l.Type != CertX509 {
		return nil, fmt.Errorf("efisig: signature list of type %s holds no X.509 certificates", l.Type)
	}
	certs, err := l.certificates()
	if err != nil {
		return nil, fmt.Errorf("efisig: %w", err)
	}
	return certs, nil
}

func (l List) certificates() ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for i, s := range l.Signatures {
		c, err := x509.ParseCertificate(s.Data)
		if err != nil {
			return nil, fmt.Errorf("X.509 signature %d: %w", i, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// fixedDataSize gives the signature data size of each type UEFI defines,
// -1 for X.509 certificates, whose size varies (EDK2's mSupportSigItem).
func fixedDataSize(t uuid.UUID) (int, bool) {
	switch t {
	case CertSHA1:
		return 20, true
	case CertSHA224:
		return 28, true
	case CertSHA256:
		return 32, true
	case CertSHA384, CertX509SHA256:
		return 48, true
	case CertSHA512, CertX509SHA384:
		return 64, true
	case CertX509SHA512:
		return 80, true
	case CertRSA2048, CertRSA2048SHA256, CertRSA2048SHA1:
		return 256, true
	case CertX509:
		return -1, true
	}
	return 0, false
}

// CheckVariable applies the rules firmware (EDK2's
// CheckSignatureListFormat) enforces on a new value of the key database
// variable name: every list has a signature type UEFI defines, no
// signature header, and the data size of its type; X.509 certificates
// parse and carry RSA public keys; PK holds at most one signature. Names
// other than PK, KEK, db, dbx and dbt are not checked.
func CheckVariable(name string, lists []List) error {
	switch name {
	case "PK", "KEK", "db", "dbx", "dbt":
	default:
		return nil
	}
	count := 0
	for i, l := range lists {
		want, known := fixedDataSize(l.Type)
		sigSize, err := l.signatureSize()
		switch {
		case !known:
			return fmt.Errorf("efisig: %s: signature list %d: unknown signature type %s", name, i, l.Type)
		case len(l.Header) != 0:
			return fmt.Errorf("efisig: %s: signature list %d: a %d-byte signature header, want none", name, i, len(l.Header))
		case err != nil:
			return fmt.Errorf("efisig: %s: signature list %d: %w", name, i, err)
		case want >= 0 && sigSize != uint32(want)+OwnerSize:
			return fmt.Errorf("efisig: %s: signature list %d: SignatureSize %d, want %d for type %s",
				name, i, sigSize, want+OwnerSize, l.Type)
		}
		if l.Type == CertX509 {
			certs, err := l.certificates()
			if err != nil {
				return fmt.Errorf("efisig: %s: signature list %d: %w", name, i, err)
			}
			for j, c := range certs {
				if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
					return fmt.Errorf("efisig: %s: signature list %d: certificate %d %q has a %s key; firmware takes RSA only",
						name, i, j, c.Subject, c.PublicKeyAlgorithm)
				}
			}
		}
		count += len(l.Signatures)
	}
	if name == "PK" && count > 1 {
		return fmt.Errorf("efisig: PK: %d signatures, firmware takes at most one", count)
	}
	return nil
}
