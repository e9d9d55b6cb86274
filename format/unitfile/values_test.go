package unitfile

import (
	"errors"
	"math"
	"testing"
)

func TestParseBool(t *testing.T) {
	for _, s := range []string{"1", "yes", "y", "true", "t", "on", "YES", "Y", "True", "T", "ON", "oN", "yEs"} {
		if v, err := ParseBool(s); err != nil || !v {
			t.Errorf("ParseBool(%q) = %v, %v", s, v, err)
		}
	}
	for _, s := range []string{"0", "no", "n", "false", "f", "off", "NO", "N", "FALSE", "F", "OFF", "Off"} {
		if v, err := ParseBool(s); err != nil || v {
			t.Errorf("ParseBool(%q) = %v, %v", s, v, err)
		}
	}
	// Neither whitespace, other numbers, prefixes nor Unicode case folding
	// ("ye\u017f" folds to "yes" in Go's EqualFold) are accepted.
	for _, s := range []string{"", "garbage", "full", " yes", "yes ", "2", "-1", "01", "ye", "nope", "ye\u017f", "o\u212a", "\u212a"} {
		if _, err := ParseBool(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseBool(%q) accepted (%v)", s, err)
		}
	}
}

// The vectors for base 1024 are systemd v252's own parse_size() tests; the
// rest pin down its edge cases (strtoull's leading space and sign, the
// suffix order, the fraction arithmetic).
func TestParseSize(t *testing.T) {
	const K, M, G, T, P, E = 1 << 10, 1 << 20, 1 << 30, 1 << 40, 1 << 50, 1 << 60
	ok := []struct {
		in   string
		want uint64
	}{
		{"111", 111},
		{"111.4", 111},
		{" 112 B", 112},
		{" 112.6 B", 112},
		{"3.5 K", 3*K + 512},
		{"3. K", 3 * K},
		{"3.0 K", 3 * K},
		{" 4 M 11.5K", 4*M + 11*K + 512},
		{"3.5G3B", 3*G + 512*M + 3},
		{"3.5G 4B", 3*G + 512*M + 4},
		{"4T3G3B", 4*T + 3*G + 3},
		{" 4 T 3 G 3 B", 4*T + 3*G + 3},
		{"12P", 12 * P},
		{"3E 2P", 3*E + 2*P},
		{"0", 0},
		{"1K512B", K + 512},
		{"1G 512M", G + 512*M},
		{"1M 512K", M + 512*K},
		{"10.M", 10 * M},
		{"+5K", 5 * K},
		{"1.5", 1},
		{"0.1K", 102},
		{"0.9999999999B", 0},
		{"1.00000000000000000001K", K},
		{"15E", 15 * E},
		{"15E1023P1023T1023G1023M1023K1023B", math.MaxUint64},
		{"18446744073709551615", math.MaxUint64},
		{"\t1\n", 1},
		// strtoull also skips \v and \f, and takes a sign after them that
		// systemd's own '-' check does not see: "-1" wraps around.
		{"\v-1", math.MaxUint64},
	}
	for _, c := range ok {
		got, err := ParseSize(c.in, 1024)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []struct {
		in  string
		err error
	}{
		{"", ErrSyntax},
		{" ", ErrSyntax},
		{"3. 0 K", ErrSyntax},
		{"3B3.5G", ErrSyntax},
		{"3B3G4T", ErrSyntax},
		{"12P12P", ErrSyntax},
		{"12X", ErrSyntax},
		{"12.5X", ErrSyntax},
		{"12.5e3", ErrSyntax},
		{"1KB", ErrSyntax},
		{"1KiB", ErrSyntax},
		{"1k", ErrSyntax},
		{"K", ErrSyntax},
		{"1 2", ErrSyntax},
		{"0x10", ErrSyntax},
		{".5K", ErrSyntax},
		{"1024E", ErrRange},
		{"-1", ErrRange},
		{"-1024E", ErrRange},
		{"-1024P", ErrRange},
		{"-10B 20K", ErrRange},
		{" -1", ErrRange},
		{"16E", ErrRange},
		{"18446744073709551616", ErrRange},
		{"18446744073709551615B 1", ErrRange},
		{"18446744073709551615 1B", ErrSyntax},
		{"15E1023P1023T1023G1023M1023K1024B", ErrRange},
		{"1.99999999999999999999999K", ErrRange},
	}
	for _, c := range bad {
		if got, err := ParseSize(c.in, 1024); !errors.Is(err, c.err) {
			t.Errorf("ParseSize(%q) = %d, %v; want %v", c.in, got, err, c.err)
		}
	}
	// The same grammar with base 1000.
	for _, c := range []struct {
		in   string
		want uint64
	}{{"3.5 K", 3500}, {" 4 M 11.5K", 4011500}, {"4T3G3B", 4003000000003}, {"3E 2P", 3002000000000000000}} {
		if got, err := ParseSize(c.in, 1000); err != nil || got != c.want {
			t.Errorf("ParseSize(%q, 1000) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	if _, err := ParseSize("1", 512); err == nil {
		t.Error("base 512 accepted")
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1G 512M", "3.5K", "-1", "\v-1", "15E1023P", "1.00000000000000000001K", "12.5e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s, 1024)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
				t.Fatalf("ParseSize(%q): unexpected error %v", s, err)
			}
			return
		}
		// A plain decimal rendering of the result parses to itself.
		if w, err := ParseSize(uitoa(v), 1024); err != nil || w != v {
			t.Fatalf("ParseSize(%q) = %d, but the number itself gives %d, %v", s, v, w, err)
		}
	})
}

func uitoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}
