// Package testutil holds the small helpers imago's tests share: finding the
// real tools that interop tests compare against, and making scratch files.
package testutil

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// tool is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// toolDirs are searched after $PATH: several systemd tools live outside it.
var toolDirs = []string{"/usr/sbin", "/sbin", "/usr/lib/systemd", "/lib/systemd"}

// RequireTool returns the path of an external program an interop test needs.
// When the program is missing the test fails under CI and is skipped
// otherwise, naming the Debian package that provides it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range toolDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := name + " not found (install the Debian package " + debianPackage + ")"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Run runs a program with a timeout and returns its stdout. A non-zero exit
// fails the test with the program's stderr.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

// RunErr runs a program with a two-minute timeout and returns its stdout, or
// an error that carries its stderr.
func RunErr(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &ToolError{Err: err, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// ToolError is a failed run of an external program.
type ToolError struct {
	Err    error
	Stderr string
}

func (e *ToolError) Error() string { return e.Err.Error() + ": " + e.Stderr }

// Unwrap returns the underlying exec error.
func (e *ToolError) Unwrap() error { return e.Err }

// WriteFile writes data to a new file in the test's temporary directory and
// returns its path.
func WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
