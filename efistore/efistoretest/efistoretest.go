// Package efistoretest runs real systemd tools against a directory of
// efivarfs files, for interop tests. systemd reads variables only from
// /sys/firmware/efi/efivars, so the tool runs in a private mount namespace
// where a tmpfs covers /sys/firmware and the directory is bind-mounted at
// /sys/firmware/efi/efivars. The firmware's real variables are never
// visible to the tool, let alone written.
package efistoretest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

// mountScript sets up the namespace, then runs the command: $1 is the
// directory, the rest is the command line.
const mountScript = `set -e
mount -t tmpfs -o mode=0755 efistoretest /sys/firmware
mkdir -p /sys/firmware/efi/efivars
mount --bind "$1" /sys/firmware/efi/efivars
shift
exec "$@"`

// Result is what a tool run produced.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Run runs name with args and the extra environment variables env
// ("KEY=value") with efivarsDir seen as /sys/firmware/efi/efivars. It needs
// root and unshare (util-linux): without them the test is skipped, or fails
// under CI when running as root.
func Run(t testing.TB, efivarsDir string, env []string, name string, args ...string) Result {
	t.Helper()
	unshare := testutil.RequireTool(t, "unshare", "util-linux")
	if os.Geteuid() != 0 {
		t.Skip("running a tool against a fake efivarfs needs root (mount namespace)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"-m", "--propagation", "private", "sh", "-c", mountScript, "sh", efivarsDir, "env"}, env...)
	argv = append(argv, name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, unshare, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		exit, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("unshare %s: %v", name, err)
		}
		res.ExitCode = exit.ExitCode()
	}
	return res
}

// CheckNamespace skips (or, as root under CI, fails) the test when mount
// namespaces cannot be used here, e.g. in an unprivileged container.
func CheckNamespace(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/probe", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := Run(t, dir, nil, "test", "-e", "/sys/firmware/efi/efivars/probe")
	if res.ExitCode != 0 {
		msg := "cannot bind a directory over /sys/firmware/efi/efivars in a mount namespace: " + res.Stderr
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}
