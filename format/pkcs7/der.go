package pkcs7

import (
	"errors"
	"fmt"
)

// DER identifier octets used by PKCS#7 SignedData (low-tag-number form only).
const (
	tagInteger          = 0x02
	tagOctetString      = 0x04
	tagNull             = 0x05
	tagOID              = 0x06
	tagSequence         = 0x30
	tagSet              = 0x31
	tagContextPrim0     = 0x80 // [0] IMPLICIT primitive (subjectKeyIdentifier)
	tagContextCons0     = 0xa0 // [0] constructed (explicit content, certificates, signed attributes)
	tagContextCons1     = 0xa1 // [1] constructed (crls, unsigned attributes)
	tagHighNumberMarker = 0x1f
	maxLengthOctets     = 4 // lengths above 4 GiB cannot occur in a signature
)

// appendLength appends a DER definite-length encoding of n.
func appendLength(dst []byte, n int) []byte {
	if n < 0x80 {
		return append(dst, byte(n))
	}
	var buf [8]byte
	i := len(buf)
	for v := n; v > 0; v >>= 8 {
		i--
		buf[i] = byte(v)
	}
	dst = append(dst, 0x80|byte(len(buf)-i))
	return append(dst, buf[i:]...)
}

// tlv returns the DER element with the given identifier octet whose contents
// are the concatenation of parts.
func tlv(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n+6)
	out = append(out, tag)
	out = appendLength(out, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// element is one parsed DER element.
type element struct {
	tag     byte   // identifier octet
	full    []byte // identifier, length and contents
	content []byte // contents octets
}

var errIndefiniteLength = errors.New("indefinite length (BER) is not DER")

// readElement parses the DER element at the start of b and returns it with the
// bytes that follow it. Only definite, minimally encoded lengths are accepted.
func readElement(b []byte) (element, []byte, error) {
	if len(b) < 2 {
		return element{}, nil, errors.New("truncated element")
	}
	tag := b[0]
	if tag&tagHighNumberMarker == tagHighNumberMarker {
		return element{}, nil, fmt.Errorf("high tag number form (identifier 0x%02x) is not used by PKCS#7", tag)
	}
	first := b[1]
	header := 2
	var length uint64
	switch {
	case first < 0x80:
		length = uint64(first)
	case first == 0x80:
		return element{}, nil, errIndefiniteLength
	default:
		octets := int(first & 0x7f)
		if octets > maxLengthOctets {
			return element{}, nil, fmt.Errorf("length of %d octets is too long", octets)
		}
		if len(b) < 2+octets {
			return element{}, nil, errors.New("truncated length")
		}
		if b[2] == 0 {
			return element{}, nil, errors.New("length has leading zero octet (not DER)")
		}
		for _, c := range b[2 : 2+octets] {
			length = length<<8 | uint64(c)
		}
		if length < 0x80 {
			return element{}, nil, errors.New("long form used for a short length (not DER)")
		}
		header += octets
	}
	if length > uint64(len(b)-header) {
		return element{}, nil, fmt.Errorf("element length %d exceeds the %d bytes available", length, len(b)-header)
	}
	end := header + int(length)
	return element{tag: tag, full: b[:end:end], content: b[header:end:end]}, b[end:], nil
}

// readOne parses b as exactly one DER element with the wanted identifier.
func readOne(b []byte, wantTag byte) (element, error) {
	el, rest, err := readElement(b)
	if err != nil {
		return element{}, err
	}
	if el.tag != wantTag {
		return element{}, fmt.Errorf("identifier 0x%02x, want 0x%02x", el.tag, wantTag)
	}
	if len(rest) != 0 {
		return element{}, fmt.Errorf("%d trailing bytes", len(rest))
	}
	return el, nil
}

// readChildren splits the contents of a constructed element into elements.
func readChildren(content []byte) ([]element, error) {
	var out []element
	for len(content) > 0 {
		el, rest, err := readElement(content)
		if err != nil {
			return nil, err
		}
		out = append(out, el)
		content = rest
	}
	return out, nil
}
