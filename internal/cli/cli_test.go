package cli

import (
	"bytes"
	"strings"
	"testing"
)

// run executes imago in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestEveryVerbHasHelp(t *testing.T) {
	root := NewRootCommand(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	for _, c := range root.Commands() {
		code, out, errOut := run(t, c.Name(), "--help")
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("imago %s --help: exit %d, stdout %q, stderr %q", c.Name(), code, out, errOut)
		}
	}
}

func TestUnknownVerbIsOneLineError(t *testing.T) {
	code, _, errOut := run(t, "no-such-verb")
	if code == 0 {
		t.Fatal("unknown verb exited 0")
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 || !strings.HasPrefix(errOut, "imago: ") {
		t.Errorf("want one error line, got %q", errOut)
	}
}
