package vercmp

import (
	"bufio"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// vectorsPath is the shared test vector file: one "a<TAB>b<TAB>sign" line per
// pair, taken from systemd's own tests and the UAPI.10 examples and checked
// against systemd-analyze 252.
const vectorsPath = "../../../shared/spec/vectors/strverscmp.tsv"

func TestVectors(t *testing.T) {
	f, err := os.Open(vectorsPath)
	if err != nil {
		msg := "strverscmp vectors: " + err.Error()
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for n := 1; sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			t.Fatalf("%s:%d: want 3 tab-separated fields, got %d", vectorsPath, n, len(fields))
		}
		want, err := strconv.Atoi(fields[2])
		if err != nil || want < -1 || want > 1 {
			t.Fatalf("%s:%d: bad sign %q", vectorsPath, n, fields[2])
		}
		a, b := fields[0], fields[1]
		if got := Compare(a, b); got != want {
			t.Errorf("%s:%d: Compare(%q, %q) = %d, want %d", vectorsPath, n, a, b, got, want)
		}
		if got := compare(a, b, true); got != want {
			t.Errorf("%s:%d: signed-char compare(%q, %q) = %d, want %d", vectorsPath, n, a, b, got, want)
		}
		lines++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines < 800 {
		t.Fatalf("%s: only %d lines, want the full set of 808", vectorsPath, lines)
	}
}

// uapiChain is the example order of the UAPI Version Format Specification and
// of systemd's source, oldest first; every step is strictly newer.
var uapiChain = []string{
	"122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1",
	"123^post1", "123.a-1", "123.1-1", "123a-1", "124-1",
}

func TestUAPIChain(t *testing.T) {
	for i := range uapiChain {
		for j := range uapiChain {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := Compare(uapiChain[i], uapiChain[j]); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", uapiChain[i], uapiChain[j], got, want)
			}
		}
	}
}

func TestSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		v := slices.Clone(uapiChain)
		r.Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
		Sort(v)
		if !slices.Equal(v, uapiChain) {
			t.Fatalf("Sort = %q, want %q", v, uapiChain)
		}
	}
	// Equivalent versions keep their order.
	v := []string{"2", "1_0", "01.0", "1.0", "0"}
	Sort(v)
	if want := []string{"0", "01.0", "1.0", "1_0", "2"}; !slices.Equal(v, want) {
		t.Fatalf("Sort = %q, want %q", v, want)
	}
}

func TestCompareCases(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "~", 1},
		{"~", "~~", -1},
		{"000123", "123", 0},
		{"1.0010", "1.10", 0},
		// Numbers are not limited to 64 bits.
		{"18446744073709551616", "18446744073709551615", 1},
		{"1.99999999999999999999999999999999", "1.100000000000000000000000000000000", -1},
		{"2.0", "2_0", -1},
		{"1_2", "12", -1},
		{"1.0", "1.00", 0},
		{"1.1.α", "1.1.β", 0},
		{"B", "a", -1},
		{"abc", "abcd", -1},
		{"1.a", "1.0", -1},
		{"1a", "1.0", 1},
		{"1-", "1-", 0},
		{"1-", "1-~", 1},
		{"1._a", "1.a", -1},
		{"~_1", "~1", -1},
		{"~_", "~", 1},
		// A C string ends at its first NUL.
		{"1\x002", "1", 0},
		{"1\x00", "1\x001", 0},
	} {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Compare(c.b, c.a); got != -c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
		if got := Less(c.a, c.b); got != (c.want < 0) {
			t.Errorf("Less(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// TestSignedCharCorner pins the one place where Compare departs from
// systemd-analyze on x86-64, as documented at Compare.
func TestSignedCharCorner(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"~\xe9", "~"},
		{"1~\xc3\xa9", "1~"},
	} {
		if got := Compare(c.a, c.b); got != 1 {
			t.Errorf("Compare(%q, %q) = %d, want 1", c.a, c.b, got)
		}
		if got := compare(c.a, c.b, true); got != -1 {
			t.Errorf("signed-char compare(%q, %q) = %d, want -1", c.a, c.b, got)
		}
	}
}

func TestIsValid(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"", false},
		{".", false},
		{"..", false},
		{"...", true},
		{"1", true},
		{"1.2.3", true},
		{"1,2_3+4-5", true},
		{"fooOS_2021.4", true},
		{"v1.0-rc1", true},
		{"1~rc1", false},
		{"1^post1", false},
		{"1 2", false},
		{"1/2", false},
		{"1:2", false},
		{"é", false},
		{"1\x00", false},
		{strings.Repeat("1", 255), true},
		{strings.Repeat("1", 256), false},
	} {
		if got := IsValid(c.v); got != c.want {
			t.Errorf("IsValid(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestParseOperator(t *testing.T) {
	for s, want := range map[string]Operator{
		"lt": OpLess, "<": OpLess,
		"le": OpLessOrEqual, "<=": OpLessOrEqual,
		"eq": OpEqual, "==": OpEqual, "=": OpEqual,
		"ne": OpNotEqual, "!=": OpNotEqual, "<>": OpNotEqual,
		"ge": OpGreaterOrEqual, ">=": OpGreaterOrEqual,
		"gt": OpGreater, ">": OpGreater,
	} {
		got, err := ParseOperator(s)
		if err != nil || got != want {
			t.Errorf("ParseOperator(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	// Rest is what systemd-analyze names in its message (checked by run).
	for s, rest := range map[string]string{
		"": "", "x": "x", "LT": "LT", "<x": "x", "ltx": "x", "<=>": ">",
		" <": " <", "=~": "~", "$=": "$=", "!$=": "!$=", "$=x": "$=x", "!": "!",
	} {
		op, err := ParseOperator(s)
		var uerr *UnknownOperatorError
		if !errors.As(err, &uerr) || op != 0 {
			t.Errorf("ParseOperator(%q) = %v, %v; want an UnknownOperatorError", s, op, err)
			continue
		}
		if uerr.Rest != rest || uerr.Operator != s {
			t.Errorf("ParseOperator(%q): error %+v, want Rest %q", s, uerr, rest)
		}
	}
}

func TestHolds(t *testing.T) {
	pairs := [][2]string{{"1", "2"}, {"1.0", "01.00"}, {"2", "1"}}
	want := map[Operator][3]bool{
		OpLess:           {true, false, false},
		OpLessOrEqual:    {true, true, false},
		OpEqual:          {false, true, false},
		OpNotEqual:       {true, false, true},
		OpGreaterOrEqual: {false, true, true},
		OpGreater:        {false, false, true},
		0:                {false, false, false},
	}
	for op, w := range want {
		for k, p := range pairs {
			if got := op.Holds(p[0], p[1]); got != w[k] {
				t.Errorf("%q %v %q = %v, want %v", p[0], op, p[1], got, w[k])
			}
		}
	}
}

func TestSymbols(t *testing.T) {
	for op, want := range map[Operator]string{
		OpLess: "<", OpLessOrEqual: "<=", OpEqual: "==", OpNotEqual: "!=",
		OpGreaterOrEqual: ">=", OpGreater: ">", 0: "invalid",
	} {
		if got := op.String(); got != want {
			t.Errorf("Operator(%d).String() = %q, want %q", op, got, want)
		}
	}
	for r, want := range map[int]string{-5: "<", -1: "<", 0: "==", 1: ">", 7: ">"} {
		if got := ResultSymbol(r); got != want {
			t.Errorf("ResultSymbol(%d) = %q, want %q", r, got, want)
		}
	}
}

func FuzzCompare(f *testing.F) {
	seeds := append(slices.Clone(uapiChain),
		"", "~", "~~", "~\xe9", "~_", "1-", "1-~", "1._a", "000", "0001",
		"18446744073709551616", "1.1.α", "1\x002", "fooOS_2021.4", "1.0^git1~pre",
		"5.11.0-0.rc5.20210128git76c057c84d28.137.fc34", "<=", "ltx", "$=")
	for k, s := range seeds {
		f.Add(s, seeds[(k+1)%len(seeds)], seeds[(k+5)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		vs := [3]string{a, b, c}
		for _, x := range vs {
			if r := Compare(x, x); r != 0 {
				t.Fatalf("Compare(%q, %q) = %d, want 0", x, x, r)
			}
			for _, y := range vs {
				r := Compare(x, y)
				if r < -1 || r > 1 {
					t.Fatalf("Compare(%q, %q) = %d, not -1/0/1", x, y, r)
				}
				if s := Compare(y, x); s != -r {
					t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", x, y, r, y, x, s)
				}
				for _, z := range vs {
					xy, yz, xz := r, Compare(y, z), Compare(x, z)
					if xy <= 0 && yz <= 0 && xz != min(xy, yz) {
						t.Fatalf("not transitive: %q vs %q = %d, %q vs %q = %d, %q vs %q = %d",
							x, y, xy, y, z, yz, x, z, xz)
					}
				}
			}
		}
		// A C string ends at its first NUL, and leading separators are skipped.
		if r, s := Compare(a+"\x00"+c, b), Compare(a, b); r != s {
			t.Fatalf("Compare(%q, %q) = %d, but %d with a NUL and %q appended", a, b, s, r, c)
		}
		if r, s := Compare("_+"+a, b), Compare(a, b); r != s {
			t.Fatalf("Compare(%q, %q) = %d, but %d with leading separators", a, b, s, r)
		}
		// Less and Sort agree with Compare.
		if Less(a, b) != (Compare(a, b) < 0) {
			t.Fatalf("Less(%q, %q) disagrees with Compare", a, b)
		}
		sorted := vs[:]
		Sort(sorted)
		if Compare(sorted[0], sorted[1]) > 0 || Compare(sorted[1], sorted[2]) > 0 {
			t.Fatalf("Sort gave %q", sorted)
		}
		// A valid sysupdate version is a plain file name.
		if IsValid(a) && (strings.ContainsAny(a, "/\x00~^") || len(a) > 255 || a == "." || a == "..") {
			t.Fatalf("IsValid(%q) = true", a)
		}
		// An operator that parses is one systemd knows, and its symbol parses back to it.
		if op, err := ParseOperator(a); err == nil {
			if back, err := ParseOperator(op.String()); err != nil || back != op {
				t.Fatalf("ParseOperator(%q) = %v, but its symbol parses to %v, %v", a, op, back, err)
			}
		} else if uerr, ok := err.(*UnknownOperatorError); !ok || !strings.HasSuffix(a, uerr.Rest) {
			t.Fatalf("ParseOperator(%q): error %v", a, err)
		}
	})
}

func BenchmarkCompare(b *testing.B) {
	x, y := "5.11.0-0.rc5.20210128git76c057c84d28.137.fc34", "5.11.0-0.rc5.20210128git76c057c84d28.137.fc35"
	for b.Loop() {
		Compare(x, y)
	}
}
