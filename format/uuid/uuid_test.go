package uuid

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	const s = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	u, err := Parse(s)
	if err != nil || u.String() != s || u[0] != 0x4f || u[15] != 0x09 {
		t.Fatalf("Parse(%q) = %v, %v", s, u, err)
	}
	for _, in := range []string{"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "4f68bce3e8cd4db196e7fbcaf984b709"} {
		if got, err := Parse(in); err != nil || got != u {
			t.Errorf("Parse(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseCanonical("4f68bce3e8cd4db196e7fbcaf984b709"); !errors.Is(err, ErrSyntax) {
		t.Errorf("ParseCanonical accepted the compact form: %v", err)
	}
	for _, bad := range []string{"", "4f68bce3-e8cd-4db1-96e7-fbcaf984b70", "4f68bce3-e8cd-4db1-96e7_fbcaf984b709", "zf68bce3-e8cd-4db1-96e7-fbcaf984b709"} {
		if _, err := Parse(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
}

func TestV4(t *testing.T) {
	u, err := NewRandom(bytes.NewReader(bytes.Repeat([]byte{0xff}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.String(); got != "ffffffff-ffff-4fff-bfff-ffffffffffff" {
		t.Errorf("got %s", got)
	}
	if _, err := NewRandom(bytes.NewReader(nil)); err == nil {
		t.Error("NewRandom from an empty reader succeeded")
	}
	if !(UUID{}).IsZero() || u.IsZero() {
		t.Error("IsZero")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
	f.Add("4f68bce3e8cd4db196e7fbcaf984b709")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		again, err := ParseCanonical(u.String())
		if err != nil || again != u {
			t.Fatalf("%q: %v does not round-trip: %v", s, u, err)
		}
	})
}
