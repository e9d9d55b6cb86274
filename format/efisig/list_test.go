package efisig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"math/big"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/uuid"
)

// rawList builds a signature list header by hand, with any sizes.
func rawList(typ uuid.UUID, listSize, headerSize, sigSize uint32, rest ...byte) []byte {
	b := appendGUID(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, listSize)
	b = binary.LittleEndian.AppendUint32(b, headerSize)
	b = binary.LittleEndian.AppendUint32(b, sigSize)
	return append(b, rest...)
}

func TestGUIDByteOrder(t *testing.T) {
	// EFI_CERT_X509_GUID as it appears in every .esl file.
	want := []byte{0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}
	if got := appendGUID(nil, CertX509); !bytes.Equal(got, want) {
		t.Fatalf("appendGUID = %x, want %x", got, want)
	}
	if got := readGUID(want); got != CertX509 {
		t.Fatalf("readGUID = %s", got)
	}
	if v, ok := VendorOf("dbx"); !ok || v != ImageSecurityDatabase {
		t.Error("dbx vendor")
	}
	if v, ok := VendorOf("KEK"); !ok || v != GlobalVariable {
		t.Error("KEK vendor")
	}
	if _, ok := VendorOf("MokList"); ok {
		t.Error("MokList has no fixed vendor here")
	}
}

func TestEncodeSHA256List(t *testing.T) {
	owner := mustGUID("00112233-4455-6677-8899-aabbccddeeff")
	d1, d2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	got, err := AppendList(nil, List{Type: CertSHA256, Signatures: []Signature{{owner, d1}, {owner, d2}}})
	if err != nil {
		t.Fatal(err)
	}
	ownerBytes := []byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	want := rawList(CertSHA256, 28+2*48, 0, 48)
	want = append(append(append(want, ownerBytes...), d1...), append(ownerBytes, d2...)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	lists, err := ParseLists(got)
	if err != nil || len(lists) != 1 || len(lists[0].Signatures) != 2 || lists[0].Signatures[1].Owner != owner ||
		!bytes.Equal(lists[0].Signatures[1].Data, d2) {
		t.Fatalf("parse: %+v, %v", lists, err)
	}
	if err := CheckVariable("dbx", lists); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeEmptyAndHeaderLists(t *testing.T) {
	// A list without signatures keeps its SignatureSize; one with a
	// header keeps the header.
	in := append(rawList(CertSHA256, 28, 0, 48), rawList(CertX509, 28+3+20, 3, 20, append([]byte{7, 8, 9}, make([]byte, 20)...)...)...)
	lists, err := ParseLists(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 2 || len(lists[0].Signatures) != 0 || lists[0].SignatureSize != 48 ||
		!bytes.Equal(lists[1].Header, []byte{7, 8, 9}) || len(lists[1].Signatures) != 1 || len(lists[1].Signatures[0].Data) != 4 {
		t.Fatalf("parsed %+v", lists)
	}
	out, err := EncodeLists(lists)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("re-encoded %x, %v", out, err)
	}
	// Without SignatureSize an empty list says 16, the bare owner size.
	out, err = AppendList(nil, List{Type: CertSHA256})
	if err != nil || !bytes.Equal(out, rawList(CertSHA256, 28, 0, 16)) {
		t.Fatalf("empty list %x, %v", out, err)
	}
	if lists, err := ParseLists(nil); err != nil || lists != nil {
		t.Fatalf("empty input: %v, %v", lists, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	for name, l := range map[string]List{
		"sizes differ":     {Type: CertSHA256, Signatures: []Signature{{Data: make([]byte, 32)}, {Data: make([]byte, 31)}}},
		"size mismatch":    {Type: CertSHA256, SignatureSize: 40, Signatures: []Signature{{Data: make([]byte, 32)}}},
		"size below owner": {Type: CertSHA256, SignatureSize: 8},
	} {
		if _, err := AppendList(nil, l); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func TestParseListsErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"short header":         {make([]byte, 27), "shorter than the 28-byte header"},
		"list size too small":  {rawList(CertX509, 27, 0, 16), "smaller than the 28-byte header"},
		"list size too large":  {rawList(CertX509, 29, 0, 16), "exceeds the 28 bytes left"},
		"header does not fit":  {rawList(CertX509, 28, 1, 16), "SignatureHeaderSize 1 does not fit"},
		"signature size zero":  {rawList(CertX509, 28, 0, 0), "smaller than the 16-byte owner"},
		"partial signature":    {rawList(CertX509, 28+17, 0, 18, make([]byte, 17)...), "not a multiple of SignatureSize 18"},
		"second list is short": {append(rawList(CertX509, 28, 0, 16), 1, 2, 3), "signature list 1 at offset 28"},
		"huge sizes":           {rawList(CertX509, 0xffffffff, 0xffffffff, 0xffffffff), "exceeds"},
		"huge header":          {rawList(CertX509, 28, 0xffffffff, 16), "does not fit"},
	} {
		_, err := ParseLists(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "efisig: ") {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func selfSigned(t *testing.T, key any, pub any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCheckVariable(t *testing.T) {
	pk, _ := vectorKey(t, "PK")
	kek, _ := vectorKey(t, "KEK")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecCert := selfSigned(t, ec, ec.Public())
	owner := vectorOwner
	sha := func(n int) List {
		return List{Type: CertSHA256, Signatures: []Signature{{owner, make([]byte, n)}}}
	}
	for name, tc := range map[string]struct {
		variable string
		lists    []List
		want     string // "" = accepted
	}{
		"PK one cert":         {"PK", []List{NewX509List(pk.Raw, owner)}, ""},
		"PK two certs":        {"PK", []List{NewX509List(pk.Raw, owner), NewX509List(kek.Raw, owner)}, "2 signatures"},
		"KEK two certs":       {"KEK", []List{NewX509List(pk.Raw, owner), NewX509List(kek.Raw, owner)}, ""},
		"delete":              {"db", nil, ""},
		"EC certificate":      {"db", []List{NewX509List(ecCert, owner)}, "RSA only"},
		"garbage certificate": {"db", []List{NewX509List([]byte{0x30, 0}, owner)}, "X.509 signature 0"},
		"sha256 ok":           {"dbx", []List{sha(32)}, ""},
		"sha256 wrong size":   {"dbx", []List{sha(20)}, "SignatureSize 36, want 48"},
		"unknown type":        {"db", []List{{Type: owner, Signatures: []Signature{{owner, []byte{1}}}}}, "unknown signature type"},
		"header":              {"KEK", []List{{Type: CertSHA256, Header: []byte{1}, Signatures: []Signature{{owner, make([]byte, 32)}}}}, "signature header"},
		"other variable":      {"MokList", []List{{Type: owner}}, ""},
	} {
		err := CheckVariable(tc.variable, tc.lists)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	if _, err := sha(32).Certificates(); err == nil {
		t.Error("Certificates of a SHA-256 list")
	}
}
