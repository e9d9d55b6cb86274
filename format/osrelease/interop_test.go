package osrelease

import (
	"bytes"
	"math/rand"
	"regexp"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// The interop peers:
//
//   - a POSIX shell (dash as /bin/sh, and bash) sources files we write, which
//     is how scripts consume os-release;
//   - systemd 252 itself reads files through ConditionOSRelease= evaluated by
//     `systemd-analyze condition`, with $SYSTEMD_OS_RELEASE pointing its
//     os-release lookup at our file. No systemd 252 tool prints the fields of
//     an arbitrary os-release file (systemd-dissect is not in the base
//     package, hostnamectl asks the running hostnamed, and --root= does not
//     apply to ConditionOSRelease=), so each value is checked by an exact
//     match: the glob with every character escaped matches only that string.

// shellRead sources path in shell and returns the values of keys.
func shellRead(t *testing.T, shell, path string, keys []string) []string {
	t.Helper()
	var script strings.Builder
	script.WriteString(`. "$1" || exit 9; printf '%s\0'`)
	for _, k := range keys {
		script.WriteString(` "$` + k + `"`)
	}
	out, err := testutil.RunErr(shell, "-c", script.String(), shell, path)
	if err != nil {
		t.Fatalf("%s: %v", shell, err)
	}
	vals := strings.Split(string(out), "\x00")
	if len(vals) != len(keys)+1 || vals[len(keys)] != "" {
		t.Fatalf("%s printed %d values for %d keys: %q", shell, len(vals)-1, len(keys), out)
	}
	return vals[:len(keys)]
}

func writtenRelease(t *testing.T) *Release {
	t.Helper()
	var rel Release
	for i, v := range edgeValues {
		if err := rel.Set(keyFor(i), v); err != nil {
			t.Fatal(err)
		}
	}
	rnd := rand.New(rand.NewSource(7))
	for i := 0; i < 200; i++ {
		if err := rel.Set(keyFor(len(edgeValues)+i), randomValue(rnd)); err != nil {
			t.Fatal(err)
		}
	}
	return &rel
}

func TestInteropShellReadsWhatWeWrite(t *testing.T) {
	rel := writtenRelease(t)
	path := testutil.WriteFile(t, "os-release", rel.Format())
	var keys []string
	for _, f := range rel.Fields() {
		keys = append(keys, f.Key)
	}
	shells := []struct{ name, pkg string }{{"sh", "dash"}, {"dash", "dash"}, {"bash", "bash"}}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			testutil.RequireTool(t, sh.name, sh.pkg)
			got := shellRead(t, sh.name, path, keys)
			for i, f := range rel.Fields() {
				if got[i] != f.Value {
					t.Errorf("%s: wrote %q as %s, shell read %q", f.Key, f.Value, FormatValue(f.Value), got[i])
				}
			}
		})
	}
}

// osReleaseCondition returns a ConditionOSRelease= line true exactly when
// systemd reads value for key ("" meaning unset or empty).
func osReleaseCondition(key, value string) string {
	var expr string
	if value == "" {
		expr = key + "!$=?*" // no match for "one or more characters"
	} else {
		var glob strings.Builder
		for _, r := range value {
			glob.WriteByte('\\')
			glob.WriteRune(r)
		}
		expr = key + "$=" + glob.String()
	}
	// The parameter is unquoted once (double quotes, backslash escapes) and
	// undergoes specifier expansion before the glob sees it.
	quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(expr) + `"`
	return "ConditionOSRelease=" + strings.ReplaceAll(quoted, "%", "%%")
}

// systemdCheck reports whether systemd, reading path as os-release, sees
// every field as given.
func systemdCheck(t *testing.T, analyze, path string, fields []Field) error {
	t.Helper()
	args := []string{"SYSTEMD_OS_RELEASE=" + path, analyze, "condition"}
	for _, f := range fields {
		args = append(args, osReleaseCondition(f.Key, f.Value))
	}
	_, err := testutil.RunErr("env", args...)
	return err
}

// requireSystemdMatches fails naming each field systemd reads differently.
func requireSystemdMatches(t *testing.T, analyze, path string, fields []Field) {
	t.Helper()
	if len(fields) == 0 {
		return
	}
	if systemdCheck(t, analyze, path, fields) == nil {
		return
	}
	for _, f := range fields {
		if err := systemdCheck(t, analyze, path, []Field{f}); err != nil {
			t.Errorf("systemd does not read %s as %q: %v", f.Key, f.Value, err)
		}
	}
}

func TestInteropSystemdReadsWhatWeWrite(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	rel := writtenRelease(t)
	path := testutil.WriteFile(t, "os-release", rel.Format())
	requireSystemdMatches(t, analyze, path, rel.Fields())

	// The check must be able to fail: a value one character longer or
	// shorter than the file's is noticed (a sample, to keep this quick).
	for i, f := range rel.Fields()[:len(edgeValues)] {
		if i%3 != 0 {
			continue
		}
		wrong := Field{f.Key, f.Value + "x"}
		if r := []rune(f.Value); len(r) > 0 && i%2 == 1 {
			wrong.Value = string(r[:len(r)-1])
		}
		if err := systemdCheck(t, analyze, path, []Field{wrong}); err == nil {
			t.Errorf("condition for %s=%q passed although the file says %q", wrong.Key, wrong.Value, f.Value)
		}
	}
}

var identifier = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

func TestInteropWeReadWhatSystemdReads(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			path := testutil.WriteFile(t, "os-release", []byte(tc.in))
			rel, err := ParseBytes([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			fields := rel.Fields()
			// Every other name in the file must be unset for systemd too:
			// this catches lines we skip but systemd would use.
			seen := map[string]bool{}
			for _, f := range fields {
				seen[f.Key] = true
			}
			for _, w := range identifier.FindAllString(tc.in, -1) {
				if !seen[w] {
					seen[w] = true
					fields = append(fields, Field{Key: w})
				}
			}
			requireSystemdMatches(t, analyze, path, fields)
		})
	}
}

func TestInteropSystemdRejectsWhatWeReject(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	probe := []Field{{Key: "NO_SUCH_KEY"}} // true for any file systemd can read
	good := testutil.WriteFile(t, "good", []byte("ID=x\n"))
	if err := systemdCheck(t, analyze, good, probe); err != nil {
		t.Fatalf("probe fails on a valid file: %v", err)
	}
	for name, in := range map[string]string{
		"NUL":             "ID=x\x00\n",
		"NUL at end":      "ID=x\n\x00",
		"bad UTF-8 value": "ID=x\nA=\xff\n",
		"bad UTF-8 key":   "\xff=1\n",
	} {
		if _, err := ParseBytes([]byte(in)); err == nil {
			t.Errorf("%s: we accept it", name)
		}
		path := testutil.WriteFile(t, "bad", []byte(in))
		err := systemdCheck(t, analyze, path, probe)
		if err == nil {
			t.Errorf("%s: systemd accepts it", name)
		} else if te, ok := err.(*testutil.ToolError); !ok || !bytes.Contains([]byte(te.Stderr), []byte("Couldn't determine result")) {
			t.Errorf("%s: systemd failed differently: %v", name, err)
		}
	}
}
