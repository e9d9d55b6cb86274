package initrd

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/build/debian"
	"github.com/imago-os/imago/build/debian/debiantest"
	"github.com/imago-os/imago/internal/testutil"
)

// bootTimeout bounds the smoke boot; under software emulation the initrd
// reaches its default target in 20 to 50 seconds.
const bootTimeout = 5 * time.Minute

// TestInteropBootInitrd boots the tree's kernel with the default initrd
// under qemu, without a disk: systemd must start in the initrd, run its
// generators and systemd-repart, and reach initrd.target. (Switching root
// then fails, as there is no /usr; rd.emergency=poweroff ends the VM.)
func TestInteropBootInitrd(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the smoke boot uses qemu-system-x86_64")
	}
	debiantest.Require(t)
	qemu := testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	testutil.RequireTool(t, "unshare", "util-linux")
	testutil.RequireTool(t, "zstd", "zstd")
	tree := debiantest.Tree(t).Tree
	k, err := debian.FindKernel(tree)
	if err != nil {
		t.Fatal(err)
	}
	epoch := debiantest.Epoch
	img := filepath.Join(t.TempDir(), "initrd.img")
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+10*time.Minute)
	defer cancel()
	res, err := Build(ctx, Spec{Tree: tree, RepartDir: "testdata/repart.d", SourceDateEpoch: &epoch}, img,
		Options{CacheDir: debiantest.CacheDir(), Progress: func(m string) { t.Log(m) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("initrd %d bytes (cache hit %v)", res.Size, res.CacheHit)

	bootCtx, bootCancel := context.WithTimeout(ctx, bootTimeout)
	defer bootCancel()
	cmd := exec.CommandContext(bootCtx, qemu, "-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max", "-smp", "2", "-m", "512",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", k.Image, "-initrd", img,
		"-append", "console=ttyS0 panic=-1 root=tmpfs rd.emergency=poweroff systemd.show_status=1 systemd.log_color=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	// The milestones, in the order they come.
	milestones := []*regexp.Regexp{
		regexp.MustCompile(`systemd 252\.[0-9.~a-z+-]* running in system mode`),
		regexp.MustCompile(`Running in initrd`),
		regexp.MustCompile(`Finished systemd-repart\.service`),
		regexp.MustCompile(`Reached target initrd\.target`),
	}
	failed := regexp.MustCompile(`Failed to start (\S+)`)
	var console []string
	next := 0
	scanner := bufio.NewScanner(stdout)
	for scanner.Scan() && next < len(milestones) {
		line := scanner.Text()
		console = append(console, line)
		if m := failed.FindStringSubmatch(line); m != nil {
			t.Errorf("unit failed in the initrd: %s", line)
		}
		if milestones[next].MatchString(line) {
			t.Logf("%5.1fs %s", time.Since(start).Seconds(), strings.TrimSpace(line))
			next++
		}
	}
	if next < len(milestones) {
		t.Fatalf("no %q on the console within %s; console:\n%s", milestones[next], bootTimeout, strings.Join(console, "\n"))
	}
	if t.Failed() {
		t.Logf("console:\n%s", strings.Join(console, "\n"))
	}
}
