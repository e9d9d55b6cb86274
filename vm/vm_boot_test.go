package vm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/vm"
	"github.com/imago-os/imago/vm/vmtest"
)

// The boot tests boot Debian's kernel with the test init (vm/vmtest)
// through OVMF, with qemu's -kernel. Under KVM each boot takes seconds;
// under software emulation 15-40 s, more on a busy host.

// requireBoot skips (or fails under CI) when qemu, OVMF or swtpm is
// missing, and returns the kernel and initrd to boot.
func requireBoot(t *testing.T) (*vmtest.Kernel, string) {
	t.Helper()
	vmtest.RequireMachine(t)
	k := vmtest.RequireKernel(t)
	return k, vmtest.Initrd(t, k)
}

// bootTimeout bounds one boot of the test init.
func bootTimeout(m *vm.Machine) time.Duration {
	if m.Accel() == vm.AccelKVM {
		return time.Minute
	}
	return 4 * time.Minute
}

// config returns a configuration that boots the test init from disk in
// mode (poweroff, reboot or hang).
func config(t *testing.T, disk, mode string) vm.Config {
	k, initrd := requireBoot(t)
	return vm.Config{
		Image:  disk,
		Kernel: k.Vmlinuz, Initrd: initrd, Append: vmtest.Append(mode),
		NoReboot: mode != "reboot",
		Memory:   512 << 20,
		Console:  testLogWriter{t},
	}
}

// testLogWriter shows the console in -v output, which helps when a boot
// hangs.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

func start(t *testing.T, cfg vm.Config) *vm.Machine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill() })
	t.Logf("qemu %s (%s)", m.Args(), m.Accel())
	return m
}

var markerRE = regexp.MustCompile(regexp.QuoteMeta(vmtest.Marker) + `(.*)$`)

// facts waits for the test init's "ready" line and returns what it
// reported as key=value pairs.
func facts(t *testing.T, m *vm.Machine) map[string]string {
	t.Helper()
	f := map[string]string{}
	pair := regexp.MustCompile(`(\w+)=(\S+)`)
	for {
		sub, err := m.WaitFor(context.Background(), markerRE, bootTimeout(m))
		if err != nil {
			t.Fatalf("%v\n(console log: %s)", err, m.ConsoleLog())
		}
		for _, kv := range pair.FindAllStringSubmatch(sub[1], -1) {
			f[kv[1]] = kv[2]
		}
		if bytes.HasPrefix([]byte(sub[1]), []byte("error")) {
			t.Errorf("guest: %s", sub[1])
		}
		if bytes.HasPrefix([]byte(sub[1]), []byte("ready")) {
			return f
		}
	}
}

func waitExit(t *testing.T, m *vm.Machine) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(bootTimeout(m)):
		t.Fatalf("the guest did not power off; console:\n%s", m.ConsoleTail(30))
	}
	if err := m.Wait(); err != nil {
		t.Fatalf("qemu: %v; console:\n%s", err, m.ConsoleTail(30))
	}
}

func counter(t *testing.T, path string) uint64 {
	t.Helper()
	n, err := vmtest.ReadCounter(path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func want(t *testing.T, f map[string]string, key, value string) {
	t.Helper()
	if f[key] != value {
		t.Errorf("guest reported %s=%q, want %q (all: %v)", key, f[key], value, f)
	}
}

// TestBootInPlaceKeepsDiskAndTPM boots twice, with the Secure Boot
// firmware in setup mode: the guest's disk write, the TPM's state (its
// reset counter, kept in swtpm's state beside the image) and the variable
// store carry over to the second boot.
func TestBootInPlaceKeepsDiskAndTPM(t *testing.T) {
	disk := vmtest.NewDisk(t, 64<<20)
	cfg := config(t, disk, "poweroff")
	cfg.TPM = true
	cfg.SecureBoot = true

	m := start(t, cfg)
	f := facts(t, m)
	want(t, f, "efi", "yes")
	want(t, f, "secureboot", "0")
	want(t, f, "setupmode", "1")
	want(t, f, "tpm", "present")
	want(t, f, "sectors", "131072")
	want(t, f, "boots", "0")
	waitExit(t, m)
	if n := counter(t, disk); n != 1 {
		t.Fatalf("after boot 1 the image holds counter %d, want 1", n)
	}
	resets1, err := strconv.Atoi(f["tpmresets"])
	if err != nil {
		t.Fatalf("tpmresets=%q", f["tpmresets"])
	}
	entries, _ := os.ReadDir(filepath.Join(disk+vm.StateSuffix, "tpm"))
	if len(entries) == 0 {
		t.Fatal("the TPM state directory is empty after boot 1")
	}
	if m.SwtpmPID() == 0 || alive(m.SwtpmPID()) {
		t.Errorf("swtpm (pid %d) still runs after qemu exited", m.SwtpmPID())
	}
	vars := filepath.Join(m.StateDir(), "efivars-secureboot.fd")
	varsAfter1 := fileHash(t, vars)
	template := fileHash(t, "/usr/share/OVMF/OVMF_VARS_4M.fd")
	if varsAfter1 == template {
		t.Error("the firmware did not write its variable store (boot entries)")
	}

	m = start(t, cfg)
	f = facts(t, m)
	want(t, f, "boots", "1")
	want(t, f, "tpmresets", strconv.Itoa(resets1+1))
	waitExit(t, m)
	if n := counter(t, disk); n != 2 {
		t.Fatalf("after boot 2 the image holds counter %d, want 2", n)
	}
}

// TestBootSnapshotNoTPM: without --tpm the guest has no TPM; with
// --snapshot the image stays byte for byte as it was.
func TestBootSnapshotNoTPM(t *testing.T) {
	disk := vmtest.NewDisk(t, 64<<20)
	before := fileHash(t, disk)
	cfg := config(t, disk, "poweroff")
	cfg.Snapshot = true
	m := start(t, cfg)
	f := facts(t, m)
	want(t, f, "tpm", "absent")
	want(t, f, "wrote", "1")
	waitExit(t, m)
	if fileHash(t, disk) != before {
		t.Error("--snapshot changed the image")
	}
}

// TestBootDiskSize: a bigger disk is a grown working copy; the image is
// untouched; qemu's Quit ends the run.
func TestBootDiskSize(t *testing.T) {
	disk := vmtest.NewDisk(t, 64<<20)
	before := fileHash(t, disk)
	cfg := config(t, disk, "hang")
	cfg.DiskSize = 96 << 20
	m := start(t, cfg)
	f := facts(t, m)
	want(t, f, "sectors", strconv.Itoa(96<<20/512))
	want(t, f, "boots", "0")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Quit(ctx); err != nil {
		t.Fatalf("quit: %v", err)
	}
	if fileHash(t, disk) != before {
		t.Error("--disk-size changed the image")
	}
	if m.Disk() == disk {
		t.Fatal("--disk-size booted the image itself")
	}
	if n := counter(t, m.Disk()); n != 1 {
		t.Errorf("the working copy holds counter %d, want 1", n)
	}
}

// TestBootResetKillAndTimeout: input typed on the console reaches the
// guest; a reset restarts the guest with the TPM still there; a marker that never comes times out with the console's
// tail; Kill (a power cut) leaves no qemu, swtpm or socket behind.
func TestBootResetKillAndTimeout(t *testing.T) {
	disk := vmtest.NewDisk(t, 64<<20)
	cfg := config(t, disk, "hang")
	cfg.TPM = true
	cfg.NoReboot = false // with -no-reboot, a reset ends qemu
	m := start(t, cfg)
	f := facts(t, m)
	want(t, f, "boots", "0")
	resets, _ := strconv.Atoi(f["tpmresets"])

	if err := m.Type("hello console\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(context.Background(), regexp.MustCompile(regexp.QuoteMeta(vmtest.Marker+"typed=hello console")), bootTimeout(m)); err != nil {
		t.Fatal(err)
	}

	_, err := m.WaitFor(context.Background(), regexp.MustCompile(`NEVER-PRINTED`), 2*time.Second)
	var we *vm.WaitError
	if !errors.As(err, &we) || we.Exited || !bytes.Contains([]byte(we.Tail), []byte(vmtest.Marker+"typed=hello")) {
		t.Fatalf("waiting for a missing marker: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	f = facts(t, m)
	want(t, f, "boots", "1")
	want(t, f, "tpm", "present")
	want(t, f, "tpmresets", strconv.Itoa(resets+1))

	qemuPID, swtpmPID := m.PID(), m.SwtpmPID()
	if !alive(swtpmPID) {
		t.Fatal("swtpm is not running")
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(qemuPID) || alive(swtpmPID) {
		t.Errorf("after Kill: qemu alive %v, swtpm alive %v", alive(qemuPID), alive(swtpmPID))
	}
	var exitErr *vm.ExitError
	if err := m.Wait(); !errors.As(err, &exitErr) || exitErr.Signal != syscall.SIGKILL {
		t.Errorf("Wait after Kill = %v", err)
	}
	if _, err := m.WaitFor(context.Background(), markerRE, time.Second); !errors.As(err, &we) || !we.Exited {
		t.Errorf("WaitFor after Kill = %v", err)
	}
	if n := counter(t, disk); n != 2 {
		t.Errorf("counter %d after two boots, want 2", n)
	}
}

// TestBootSecureBootSnakeoil: with the snakeoil store, Secure Boot is
// enforced from the first boot (the Debian kernel is not signed with that
// key, but OVMF's -kernel path falls back to its own loader, and the
// kernel sees Secure Boot enabled). The setup-mode store is checked by
// TestBootInPlaceKeepsDiskAndTPM.
func TestBootSecureBootSnakeoil(t *testing.T) {
	disk := vmtest.NewDisk(t, 64<<20)
	cfg := config(t, disk, "poweroff")
	cfg.SecureBoot = true
	cfg.SecureBootKeys = vm.KeysSnakeoil
	m := start(t, cfg)
	f := facts(t, m)
	want(t, f, "secureboot", "1")
	want(t, f, "setupmode", "0")
	waitExit(t, m)
	if !bytes.Contains([]byte(m.Console()), []byte("Secure boot enabled")) {
		t.Error("the kernel did not say Secure boot enabled")
	}
	if _, err := os.Stat(filepath.Join(m.StateDir(), "efivars-snakeoil.fd")); err != nil {
		t.Errorf("variable store: %v", err)
	}
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// TestBootFromDiskWithSystemdBoot boots the way images boot, without
// -kernel: the firmware finds systemd-boot at EFI/BOOT/BOOTX64.EFI on the
// disk's ESP, and systemd-boot starts the kernel and test init from a
// Type #1 entry.
func TestBootFromDiskWithSystemdBoot(t *testing.T) {
	k, initrd := requireBoot(t)
	sdboot := "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	if _, err := os.Stat(sdboot); err != nil {
		if testutil.InCI() {
			t.Fatal("systemd-boot not found (install the Debian package systemd-boot-efi)")
		}
		t.Skip("systemd-boot not found (install the Debian package systemd-boot-efi)")
	}
	mkfs := testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	mmd := testutil.RequireTool(t, "mmd", "mtools")
	mcopy := testutil.RequireTool(t, "mcopy", "mtools")
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")

	dir := t.TempDir()
	esp := filepath.Join(dir, "esp.img")
	const espSize = 48 << 20
	testutil.Run(t, mkfs, "-F", "32", "-n", "ESP", "-C", esp, strconv.Itoa(espSize>>10))
	testutil.Run(t, mmd, "-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries")
	files := map[string]string{
		"loader.conf":     "timeout 0\ndefault imago-test.conf\n",
		"imago-test.conf": "title imago test\nlinux /vmlinuz\ninitrd /initrd.cpio\noptions " + vmtest.Append("poweroff") + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for src, dst := range map[string]string{
		sdboot:                                "::/EFI/BOOT/BOOTX64.EFI",
		k.Vmlinuz:                             "::/vmlinuz",
		initrd:                                "::/initrd.cpio",
		filepath.Join(dir, "loader.conf"):     "::/loader/loader.conf",
		filepath.Join(dir, "imago-test.conf"): "::/loader/entries/imago-test.conf",
	} {
		testutil.Run(t, mcopy, "-i", esp, src, dst)
	}

	disk := filepath.Join(dir, "disk.raw")
	const espStart = 1 << 20
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(espStart + espSize + 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	table := "label: gpt\nstart=2048, size=" + strconv.Itoa(espSize/512) + ", type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n"
	if err := os.WriteFile(filepath.Join(dir, "table"), []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runWithStdin(sfdisk, filepath.Join(dir, "table"), "-q", disk); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	b, err := os.ReadFile(esp)
	if err != nil {
		t.Fatal(err)
	}
	f, err = os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, espStart); err != nil {
		t.Fatal(err)
	}
	f.Close()

	m := start(t, vm.Config{Image: disk, NoReboot: true, Memory: 512 << 20, TPM: true, Console: testLogWriter{t}})
	fs := facts(t, m)
	want(t, fs, "efi", "yes")
	want(t, fs, "tpm", "present")
	want(t, fs, "boots", "0")
	want(t, fs, "sectors", strconv.Itoa((espStart+espSize+1<<20)/512))
	waitExit(t, m)
	if n := counter(t, disk); n != 1 {
		t.Errorf("counter %d after one boot, want 1", n)
	}
}

// runWithStdin runs a program with a file as its standard input.
func runWithStdin(name, stdin string, args ...string) ([]byte, error) {
	in, err := os.Open(stdin)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdin = in
	return cmd.CombinedOutput()
}
