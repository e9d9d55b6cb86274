package keys

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

// Firmware and boot loader the OVMF test runs (Debian packages ovmf and
// systemd-boot-efi).
const (
	ovmfCode       = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfVars       = "/usr/share/OVMF/OVMF_VARS_4M.fd" // no keys: setup mode
	systemdBootEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

// requireFile returns path, or fails (under CI) or skips the test when it
// is missing.
func requireFile(t *testing.T, path, debianPackage string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		msg := path + " not found (install the Debian package " + debianPackage + ")"
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// lockedBuffer collects the serial console while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bootOVMF boots OVMF with Secure Boot support, the variable store vars
// and the directory esp as its only disk, and returns the serial console
// once it shows until, or once the machine resets when until is empty.
func bootOVMF(t *testing.T, qemu, vars, esp, until string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35,smm=on,accel=tcg", "-smp", "1", "-m", "256",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-drive", "if=virtio,format=raw,file=fat:rw:"+esp,
		"-nic", "none", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot")
	var console lockedBuffer
	cmd.Stdout, cmd.Stderr = &console, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if until != "" || ctx.Err() != nil {
				t.Fatalf("qemu ended (%v) before the console showed %q:\n%s", err, until, console.String())
			}
			return console.String()
		case <-tick.C:
			if until != "" && strings.Contains(console.String(), until) {
				_ = cmd.Process.Kill()
				<-done
				return console.String()
			}
		}
	}
}

// makeESP lays out an ESP directory with systemd-boot signed by key and
// cert and, when enroll is set, the set's .auth files in
// loader/keys/auto/ for "secure-boot-enroll force".
func makeESP(t *testing.T, sbsign string, s *Set, key, cert string, enroll bool) string {
	t.Helper()
	esp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(esp, "EFI", "BOOT"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, sbsign, "--key", s.Path(key), "--cert", s.Path(cert),
		"--output", filepath.Join(esp, "EFI", "BOOT", "BOOTX64.EFI"), systemdBootEFI)
	if err := os.MkdirAll(filepath.Join(esp, "loader"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "timeout 5\n"
	if enroll {
		auto := filepath.Join(esp, "loader", "keys", "auto")
		if err := os.MkdirAll(auto, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, k := range s.SecureBootKeys() {
			if err := os.WriteFile(filepath.Join(auto, k.AuthFile()), k.Auth, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		conf += "secure-boot-enroll force\n"
	}
	if err := os.WriteFile(filepath.Join(esp, "loader", "loader.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return esp
}

// TestInteropOVMFEnrollment: OVMF in setup mode takes the set's .auth
// files from systemd-boot 252's automatic enrollment; Secure Boot is then
// enforced: systemd-boot signed with the db key starts, and signed with
// another key it is refused.
func TestInteropOVMFEnrollment(t *testing.T) {
	qemu := testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	sbsign := testutil.RequireTool(t, "sbsign", "sbsigntool")
	requireFile(t, ovmfCode, "ovmf")
	requireFile(t, ovmfVars, "ovmf")
	requireFile(t, systemdBootEFI, "systemd-boot-efi")
	s := sharedSet(t)

	vars := filepath.Join(t.TempDir(), "vars.fd")
	empty, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, empty, 0o644); err != nil {
		t.Fatal(err)
	}

	// 1. Setup mode: systemd-boot enrolls db, KEK and PK and resets.
	console := bootOVMF(t, qemu, vars, makeESP(t, sbsign, s, "db.key", "db.crt", true), "")
	if !strings.Contains(console, `Enrolling secure boot keys from directory: \loader\keys\auto`) {
		t.Fatalf("systemd-boot did not enroll:\n%s", console)
	}
	store, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range s.SecureBootKeys() {
		if n := bytes.Count(store, k.SignatureList); n != 1 {
			t.Errorf("the variable store holds %s.esl %d times, want once", k.Name, n)
		}
	}

	// 2. Secure Boot enforced: the db-signed boot loader runs (shows its
	// menu) ...
	bootOVMF(t, qemu, vars, makeESP(t, sbsign, s, "db.key", "db.crt", false), "Reboot Into Firmware Interface")
	// 3. ... and one signed by a key outside db is refused.
	bootOVMF(t, qemu, vars, makeESP(t, sbsign, s, VerityKeyFile, VerityCertificateFile, false), "Access Denied")
}
