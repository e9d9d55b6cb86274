package cli

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

func TestCompareVersionsTwoArgs(t *testing.T) {
	for _, c := range []struct {
		v1, v2, out string
		code        int
	}{
		{"1", "2", "1 < 2\n", 12},
		{"2", "1", "2 > 1\n", 11},
		{"1.0", "1.00", "1.0 == 1.00\n", 0},
		{"", "", "'' == ''\n", 0},
		{"", "a", "'' < a\n", 12},
		{"123~rc1", "", "123~rc1 > ''\n", 11},
		{"a b", "a  c", "a b < a  c\n", 12},
		{"-1", "1", "-1 < 1\n", 12},
	} {
		code, out, errOut := run(t, "compare-versions", "--", c.v1, c.v2)
		if code != c.code || out != c.out || errOut != "" {
			t.Errorf("compare-versions %q %q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q",
				c.v1, c.v2, code, out, errOut, c.code, c.out)
		}
	}
}

func TestCompareVersionsOperator(t *testing.T) {
	// Truth of each operator for 1 vs 2, 02 vs 2 and 3 vs 2.
	truth := map[string][3]bool{
		"lt": {true, false, false}, "<": {true, false, false},
		"le": {true, true, false}, "<=": {true, true, false},
		"eq": {false, true, false}, "==": {false, true, false}, "=": {false, true, false},
		"ne": {true, false, true}, "!=": {true, false, true}, "<>": {true, false, true},
		"ge": {false, true, true}, ">=": {false, true, true},
		"gt": {false, false, true}, ">": {false, false, true},
	}
	for op, want := range truth {
		for k, v1 := range []string{"1", "02", "3"} {
			code, out, errOut := run(t, "compare-versions", v1, op, "2")
			wantCode := 1
			if want[k] {
				wantCode = 0
			}
			if code != wantCode || out != "" || errOut != "" {
				t.Errorf("compare-versions %s %s 2: exit %d, stdout %q, stderr %q; want exit %d and no output",
					v1, op, code, out, errOut, wantCode)
			}
		}
	}
}

func TestCompareVersionsErrors(t *testing.T) {
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{}, "imago: Too few arguments.\n"},
		{[]string{"1"}, "imago: Too few arguments.\n"},
		{[]string{"1", "2", "3", "4"}, "imago: Too many arguments.\n"},
		{[]string{"1", "foo", "2"}, "imago: Unknown operator \"foo\".\n"},
		{[]string{"1", "", "2"}, "imago: Unknown operator \"\".\n"},
		{[]string{"1", "<x", "2"}, "imago: Unknown operator \"x\".\n"},
		{[]string{"1", "<=>", "2"}, "imago: Unknown operator \">\".\n"},
		{[]string{"1", "$=", "2"}, "imago: Unknown operator \"$=\".\n"},
		{[]string{"1", "LT", "2"}, "imago: Unknown operator \"LT\".\n"},
		{[]string{"--json", "1", "lt", "2"}, "imago: --json needs the two-argument form\n"},
	} {
		code, out, errOut := run(t, append([]string{"compare-versions"}, c.args...)...)
		if code != 1 || out != "" || errOut != c.stderr {
			t.Errorf("compare-versions %q: exit %d, stdout %q, stderr %q; want exit 1, stderr %q",
				c.args, code, out, errOut, c.stderr)
		}
	}
}

func TestCompareVersionsJSON(t *testing.T) {
	for _, c := range []struct {
		v1, v2 string
		result int
		op     string
		code   int
	}{
		{"1", "2", -1, "<", 12},
		{"", "", 0, "==", 0},
		{"2^post1", "2-1", 1, ">", 11},
	} {
		code, out, errOut := run(t, "compare-versions", "--json", c.v1, c.v2)
		if code != c.code || errOut != "" {
			t.Errorf("compare-versions --json %q %q: exit %d, stderr %q; want exit %d", c.v1, c.v2, code, errOut, c.code)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("compare-versions --json %q %q: %v in %q", c.v1, c.v2, err, out)
		}
		want := map[string]any{"v1": c.v1, "v2": c.v2, "result": float64(c.result), "op": c.op}
		if len(got) != len(want) {
			t.Errorf("compare-versions --json %q %q = %v, want %v", c.v1, c.v2, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("compare-versions --json %q %q: %s = %v, want %v", c.v1, c.v2, k, got[k], v)
			}
		}
		if strings.Contains(out, `\u003`) {
			t.Errorf("compare-versions --json escapes the operator: %q", out)
		}
	}
}

// TestCompareVersionsMatchesSystemdAnalyze runs both tools on the same
// arguments and compares stdout, stderr (after imago's "imago: " prefix) and
// the exit status.
func TestCompareVersionsMatchesSystemdAnalyze(t *testing.T) {
	tool := testutil.RequireTool(t, "systemd-analyze", "systemd")
	pairs := [][2]string{
		{"1", "2"}, {"2", "1"}, {"1", "1"}, {"", ""}, {"", "~"}, {"0001", "1"},
		{"123~rc1", "123"}, {"123^post1", "123-1.1"}, {"1.0", "1_0"}, {"B", "a"},
		{"18446744073709551616", "18446744073709551615"}, {"-1", "1.0-2"}, {"1.1.α", "1.1.β"},
	}
	operators := []string{
		"lt", "le", "eq", "ne", "ge", "gt", "<", "<=", "==", "!=", ">=", ">", "=", "<>",
		"", "foo", "LT", "<x", "ltx", "<=>", "$=", "!$=", " <", "=~",
	}
	var cases [][]string
	for _, p := range pairs {
		cases = append(cases, []string{p[0], p[1]})
		for _, op := range operators {
			cases = append(cases, []string{p[0], op, p[1]})
		}
	}
	cases = append(cases, []string{}, []string{"1"}, []string{"1", "2", "3", "4"})

	for _, args := range cases {
		sdArgs := append([]string{"compare-versions", "--"}, args...)
		wantOut, err := testutil.RunErr(tool, sdArgs...)
		wantCode, wantErr := 0, ""
		if err != nil {
			var toolErr *testutil.ToolError
			var exitErr *exec.ExitError
			if !errors.As(err, &toolErr) || !errors.As(err, &exitErr) {
				t.Fatalf("systemd-analyze %q: %v", sdArgs, err)
			}
			wantCode, wantErr = exitErr.ExitCode(), toolErr.Stderr
		}
		code, out, errOut := run(t, append([]string{"compare-versions", "--"}, args...)...)
		if wantErr != "" {
			wantErr = "imago: " + wantErr
		}
		if code != wantCode || out != string(wantOut) || errOut != wantErr {
			t.Errorf("compare-versions %q: imago exit %d, stdout %q, stderr %q; systemd-analyze exit %d, stdout %q, stderr %q",
				args, code, out, errOut, wantCode, wantOut, wantErr)
		}
	}
	t.Logf("%d argument lists agree with systemd-analyze", len(cases))
}
