package efisig

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func TestTimeOf(t *testing.T) {
	in := time.Date(2025, 1, 1, 1, 2, 3, 999, time.FixedZone("x", 3600))
	got := TimeOf(in)
	if got != (Time{Year: 2025, Month: 1, Day: 1, Hour: 0, Minute: 2, Second: 3}) {
		t.Fatalf("TimeOf = %+v", got)
	}
	if got.String() != "2025-01-01 00:02:03" {
		t.Fatalf("String = %q", got)
	}
	b := got.appendTo(nil)
	if want := []byte{0xe9, 0x07, 1, 1, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(b, want) {
		t.Fatalf("encoding %x, want %x", b, want)
	}
	odd := Time{Year: 1, Nanosecond: 0x01020304, TimeZone: -60, Daylight: 1, Pad1: 2, Pad2: 3}
	if readTime(odd.appendTo(nil)) != odd {
		t.Fatal("EFI_TIME round trip")
	}
}

func TestAuthHeaderLayout(t *testing.T) {
	av := &AuthenticatedVariable{Timestamp: vectorTime, Signature: []byte{0x30, 0}, Data: []byte("data")}
	b, err := av.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 40+2+4 || binary.LittleEndian.Uint32(b[16:]) != 26 || binary.LittleEndian.Uint16(b[20:]) != 0x0200 ||
		binary.LittleEndian.Uint16(b[22:]) != 0x0ef1 || readGUID(b[24:]) != CertTypePKCS7 || string(b[42:]) != "data" {
		t.Fatalf("layout %x", b)
	}
}

func TestParseAuthErrors(t *testing.T) {
	good := readTestdata(t, "db.auth")
	mod := func(off int, v ...byte) []byte {
		b := append([]byte(nil), good...)
		copy(b[off:], v)
		return b
	}
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"short":            {good[:39], "shorter than the 40-byte header"},
		"revision":         {mod(20, 0x00, 0x01), "revision 0x0100"},
		"type":             {mod(22, 0x02, 0x00), "type 0x0002"},
		"cert type":        {mod(24, 0), "CertType"},
		"dwLength small":   {mod(16, 23, 0, 0, 0), "smaller than the 24-byte"},
		"dwLength large":   {mod(16, 0xff, 0xff, 0xff, 0xff), "exceeds"},
		"dwLength too far": {good[:1000], "exceeds the 984 bytes"},
	} {
		_, err := ParseAuth(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	// A descriptor whose data is empty is a deletion.
	av, err := ParseAuth(good[:16+1253])
	if err != nil || len(av.Data) != 0 {
		t.Fatalf("deletion: %v", err)
	}
}

func TestSignRefusals(t *testing.T) {
	cert, key := vectorKey(t, "KEK")
	otherCert, _ := vectorKey(t, "PK")
	for name, tc := range map[string]struct {
		variable string
		ts       Time
		certKey  bool
		want     string
	}{
		"nanoseconds":   {"db", Time{Year: 2025, Nanosecond: 1}, true, "must be 0"},
		"time zone":     {"db", Time{Year: 2025, TimeZone: 60}, true, "must be 0"},
		"empty name":    {"", vectorTime, true, "empty variable name"},
		"NUL in name":   {"d\x00b", vectorTime, true, "NUL"},
		"invalid UTF-8": {"d\xffb", vectorTime, true, "not UTF-8"},
		"foreign key":   {"db", vectorTime, false, "pkcs7"},
	} {
		c := cert
		if !tc.certKey {
			c = otherCert
		}
		_, err := Sign(tc.variable, ImageSecurityDatabase, Attributes, tc.ts, nil, c, key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestVerifyChecks(t *testing.T) {
	cert, key := vectorKey(t, "KEK")
	av, err := Sign("db", ImageSecurityDatabase, Attributes, vectorTime, []byte("x"), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	trusted := []*x509.Certificate{cert}
	// Wrapped in a ContentInfo it still verifies, as in EDK2.
	wrapped := *av
	wrapped.Signature = wrapContentInfo(av.Signature)
	if _, err := wrapped.Verify("db", ImageSecurityDatabase, Attributes, trusted); err != nil {
		t.Fatalf("wrapped: %v", err)
	}
	bad := *av
	bad.Timestamp.Daylight = 1
	if _, err := bad.Verify("db", ImageSecurityDatabase, Attributes, trusted); err == nil || !strings.Contains(err.Error(), "must be 0") {
		t.Errorf("daylight: %v", err)
	}
	garbage := *av
	garbage.Signature = []byte{0x30, 0x03, 1, 2, 3}
	if _, err := garbage.Verify("db", ImageSecurityDatabase, Attributes, trusted); err == nil {
		t.Error("garbage signature verified")
	}
	if _, err := av.Verify("db", ImageSecurityDatabase, Attributes, nil); err == nil {
		t.Error("verified with no trusted certificate")
	}
}
