package vercmp

import (
	"errors"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// versionTokens are the pieces random versions are built from: every
// character class the algorithm treats differently, leading zeros, and
// bytes that are not ASCII (valid UTF-8 and not).
var versionTokens = []string{
	"0", "1", "2", "9", "00", "007", "10", "123",
	"a", "b", "z", "A", "Z", "rc", "git", "pre", "post", "fc",
	".", ".", "-", "-", "~", "~", "^", "^", "_", "+", ",", " ",
	"é", "\xe9", "\xff", "α",
}

// randomVersion returns a version of up to 9 tokens; digit runs beyond 64
// bits are mixed in.
func randomVersion(r *rand.Rand) string {
	var sb strings.Builder
	for range r.IntN(10) {
		if r.IntN(12) == 0 {
			for range 15 + r.IntN(30) {
				sb.WriteByte(byte('0' + r.IntN(10)))
			}
			continue
		}
		sb.WriteString(versionTokens[r.IntN(len(versionTokens))])
	}
	return sb.String()
}

// relatedVersion changes one token of v, so that pairs often share a long
// prefix and reach the deeper rules.
func relatedVersion(r *rand.Rand, v string) string {
	k := 0
	if v != "" {
		k = r.IntN(len(v) + 1)
	}
	tok := versionTokens[r.IntN(len(versionTokens))]
	switch r.IntN(4) {
	case 0: // insert
		return v[:k] + tok + v[k:]
	case 1: // delete one byte
		if k < len(v) {
			return v[:k] + v[k+1:]
		}
		return v
	case 2: // replace the tail
		return v[:k] + tok
	}
	return strings.Repeat("0", r.IntN(3)) + v // leading zeros
}

// randomPairs returns n deterministic pairs plus fixed corner cases.
func randomPairs(n int) [][2]string {
	pairs := [][2]string{
		{"~\xe9", "~"}, {"1~\xc3\xa9", "1~"}, {"~\xff\xff", "~_"}, {"", ""}, {"", "~"},
	}
	r := rand.New(rand.NewPCG(252, 10))
	for len(pairs) < n {
		a := randomVersion(r)
		b := randomVersion(r)
		if r.IntN(3) > 0 {
			b = relatedVersion(r, a)
		}
		pairs = append(pairs, [2]string{a, b})
	}
	return pairs
}

// TestCompareMatchesSystemdAnalyze checks thousands of pairs against
// systemd-analyze compare-versions, whose exit status is 0, 11 or 12 for
// equal, newer or older. The tool is run from two goroutines since each
// run costs a process start.
func TestCompareMatchesSystemdAnalyze(t *testing.T) {
	tool := testutil.RequireTool(t, "systemd-analyze", "systemd")
	n := 3000
	if testing.Short() {
		n = 300
	}
	pairs := randomPairs(n)
	results := make([]int, len(pairs))
	errs := make([]error, len(pairs))
	const workers = 2
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(pairs); k += workers {
				results[k], errs[k] = systemdCompare(tool, pairs[k][0], pairs[k][1])
			}
		}()
	}
	wg.Wait()

	corner := 0
	var outcomes [3]int
	for k, p := range pairs {
		if errs[k] != nil {
			t.Fatalf("systemd-analyze compare-versions %q %q: %v", p[0], p[1], errs[k])
		}
		want := results[k]
		outcomes[want+1]++
		if got := compare(p[0], p[1], true); got != want {
			t.Errorf("signed-char compare(%q, %q) = %d, systemd-analyze says %d", p[0], p[1], got, want)
		}
		if got := Compare(p[0], p[1]); got != want {
			// Only the documented signed-char corner may differ.
			if got != -want || compare(p[0], p[1], true) != want {
				t.Errorf("Compare(%q, %q) = %d, systemd-analyze says %d", p[0], p[1], got, want)
			}
			corner++
		}
	}
	t.Logf("%d pairs (older/equal/newer: %v) agree with systemd-analyze; %d fall in the documented signed-char corner",
		len(pairs), outcomes, corner)
	// Each outcome must be well represented for the comparison to mean much.
	for _, c := range outcomes {
		if c < len(pairs)/20 {
			t.Errorf("outcomes older/equal/newer %v: too few of one kind", outcomes)
		}
	}
	if corner < 3 {
		t.Errorf("only %d pairs in the signed-char corner, want at least the 3 fixed ones", corner)
	}
}

// systemdCompare returns the sign systemd-analyze compare-versions reports
// for a and b.
func systemdCompare(tool, a, b string) (int, error) {
	out, err := testutil.RunErr(tool, "compare-versions", "--", a, b)
	code := 0
	if err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return 0, err
		}
		code = exitErr.ExitCode()
	}
	switch code {
	case 0:
		return 0, nil
	case 11:
		return 1, nil
	case 12:
		return -1, nil
	}
	return 0, errors.New("unexpected exit status " + strconv.Itoa(code) + ", output " + strconv.Quote(string(out)))
}
