package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/vm/vmtest"
)

func TestVMFlagErrors(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img.raw")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory=lots"}, "--memory=lots: not a size"},
		{[]string{"--memory=1024"}, "less than 64M"},
		{[]string{"--disk-size=-1G"}, "--disk-size=-1G: not a size"},
		{[]string{"--tpm=maybe"}, `"maybe" is not yes or no`},
		{[]string{"--secure-boot-keys=mine"}, "want none, snakeoil or microsoft"},
		{[]string{"--accel=hvf"}, "want auto, kvm or tcg"},
		{[]string{"--cpus=0"}, "want at least 1"},
		{[]string{"--initrd=/x"}, "need --kernel"},
		{[]string{"--arch-does-not-exist"}, "unknown flag"},
	} {
		code, _, errOut := run(t, append(append([]string{"vm"}, c.args...), img)...)
		if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("imago vm %v: exit %d, stderr %q; want one line with %q", c.args, code, errOut, c.want)
		}
	}
	code, _, errOut := run(t, "vm", filepath.Join(t.TempDir(), "missing.raw"))
	if code != 1 || !strings.Contains(errOut, "missing.raw") {
		t.Errorf("missing image: exit %d, %q", code, errOut)
	}
}

func TestYesNo(t *testing.T) {
	var b yesNo
	for in, want := range map[string]bool{"yes": true, "NO": false, "1": true, "off": false, "true": true} {
		if err := b.Set(in); err != nil || bool(b) != want {
			t.Errorf("Set(%q) = %v, %v", in, b, err)
		}
	}
	if b.Set("") == nil {
		t.Error("empty accepted")
	}
}

// requireVM returns the test kernel and initrd, or skips (fails under CI)
// when qemu, OVMF or swtpm is missing.
func requireVM(t *testing.T) (*vmtest.Kernel, string) {
	t.Helper()
	vmtest.RequireMachine(t)
	k := vmtest.RequireKernel(t)
	return k, vmtest.Initrd(t, k)
}

// TestVMBootsAndPowersOff runs imago vm on a kernel that powers off: the
// console is copied to standard output and the exit status is 0.
func TestVMBootsAndPowersOff(t *testing.T) {
	k, initrd := requireVM(t)
	img := vmtest.NewDisk(t, 32<<20)
	code, out, errOut := run(t, "vm", "--snapshot", "--memory=512M", "--no-reboot", "--timeout=8m",
		"--kernel="+k.Vmlinuz, "--initrd="+initrd, "--append="+vmtest.Append("poweroff"), img)
	if code != 0 {
		t.Fatalf("exit %d: %s\nconsole:\n%s", code, errOut, out)
	}
	for _, want := range []string{vmtest.Marker + "tpm=present", vmtest.Marker + "boots=0", vmtest.Marker + "ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "TPM") || !strings.Contains(errOut, "snapshot") {
		t.Errorf("stderr does not say what runs: %q", errOut)
	}
	if n, err := vmtest.ReadCounter(img); err != nil || n != 0 {
		t.Errorf("--snapshot: image counter %d, %v", n, err)
	}
}

// TestVMTimeout: --timeout stops the machine and says so.
func TestVMTimeout(t *testing.T) {
	k, initrd := requireVM(t)
	img := vmtest.NewDisk(t, 32<<20)
	start := time.Now()
	code, _, errOut := run(t, "vm", "--timeout=3s", "--memory=512M",
		"--kernel="+k.Vmlinuz, "--initrd="+initrd, "--append="+vmtest.Append("hang"), img)
	if code != 1 || !strings.Contains(errOut, "stopped after --timeout=3s") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("took %s", d)
	}
}
