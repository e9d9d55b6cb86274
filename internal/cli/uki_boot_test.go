package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/vm/vmtest"
)

// The boot test's firmware, marker and time limit; its kernel is Debian
// 12's current one (vmtest.RequireKernel).
const (
	ovmfFirmware = "/usr/share/ovmf/OVMF.fd"
	bootMarker   = "IMAGO-UKI-BOOT-OK"
	bootTimeout  = 4 * time.Minute
)

// skipOrFail skips the test, or fails it under CI.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if testutil.InCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// initProgram is the initrd's /init: it mounts /proc, writes the marker and
// the kernel command line to the serial port and the console, and powers
// the machine off.
const initProgram = `package main

import (
	"os"
	"strings"
	"syscall"
)

func main() {
	_ = syscall.Mount("proc", "/proc", "proc", 0, "")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	msg := "\n` + bootMarker + ` cmdline=" + strings.TrimSpace(string(cmdline)) + "\n"
	for _, dev := range []string{"/dev/ttyS0", "/dev/console"} {
		if f, err := os.OpenFile(dev, os.O_WRONLY, 0); err == nil {
			f.WriteString(msg)
			f.Close()
		}
	}
	syscall.Sync()
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
`

// buildInit compiles initProgram as a static x86-64 Linux executable.
func buildInit(t *testing.T) []byte {
	t.Helper()
	goTool := testutil.RequireTool(t, "go", "golang-go")
	dir := t.TempDir()
	src := filepath.Join(dir, "init.go")
	if err := os.WriteFile(src, []byte(initProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "init")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GO111MODULE=off", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build init: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cpioEntry is one member of a newc cpio archive.
type cpioEntry struct {
	name      string
	mode      uint32 // type and permission bits, as in stat(2)
	rdevMajor uint32
	rdevMinor uint32
	data      []byte
}

// newcCPIO writes entries as a "newc" (070701) cpio archive, the format the
// kernel unpacks an initramfs from.
func newcCPIO(entries []cpioEntry) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	write := func(ino int, e cpioEntry) {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.rdevMajor, e.rdevMinor, len(e.name)+1, 0)
		b.WriteString(e.name)
		b.WriteByte(0)
		pad()
		b.Write(e.data)
		pad()
	}
	for i, e := range entries {
		write(i+1, e)
	}
	write(0, cpioEntry{name: "TRAILER!!!"})
	return b.Bytes()
}

// Mode bits for the cpio entries.
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChar = 0o020000
)

// qemuAccel returns "kvm" when /dev/kvm can be opened and the CPU shows
// hardware virtualisation, else "tcg": a /dev/kvm without VMX or SVM (as
// some nested set-ups offer) fails on the first firmware instructions.
func qemuAccel() string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || !regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`).Match(cpuinfo) {
		return "tcg"
	}
	return "kvm"
}

// TestUKIBootsInQEMU builds a UKI with `imago uki build` from Debian's
// systemd-stub, Debian's kernel and an initrd whose /init prints a marker,
// puts it on a FAT ESP as EFI/BOOT/BOOTX64.EFI and boots it under OVMF. The
// marker must appear on the serial console with the command line from
// .cmdline, proving that the stub found .linux, .initrd and .cmdline.
func TestUKIBootsInQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	stub := requireStub(t)
	qemu := testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := os.Stat(ovmfFirmware); err != nil {
		skipOrFail(t, "%v (install the Debian package ovmf)", err)
	}
	for _, tool := range []string{"mkfs.vfat", "mcopy"} {
		testutil.RequireTool(t, tool, map[string]string{"mkfs.vfat": "dosfstools", "mcopy": "mtools"}[tool])
	}
	kernel := vmtest.RequireKernel(t).Vmlinuz
	dir := t.TempDir()

	initrd := newcCPIO([]cpioEntry{
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeChar | 0o600, rdevMajor: 5, rdevMinor: 1},
		{name: "dev/ttyS0", mode: modeChar | 0o600, rdevMajor: 4, rdevMinor: 64},
		{name: "proc", mode: modeDir | 0o755},
		{name: "init", mode: modeReg | 0o755, data: buildInit(t)},
	})
	initrdPath := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(initrdPath, initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	token := make([]byte, 6)
	if _, err := rand.Read(token); err != nil {
		t.Fatal(err)
	}
	cmdline := "console=ttyS0 panic=-1 imago.test=" + hex.EncodeToString(token)

	esp := filepath.Join(dir, "esp")
	boot := filepath.Join(esp, "EFI", "BOOT")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "uki", "build", "--stub="+stub, "--linux="+kernel, "--initrd="+initrdPath,
		"--cmdline="+cmdline, "--os-release=ID=imago-test\nPRETTY_NAME=imago UKI boot test\n", "--output="+filepath.Join(boot, "BOOTX64.EFI"))
	if code != 0 {
		t.Fatalf("uki build: %s", stderr)
	}
	espImage := filepath.Join(dir, "esp.img")
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if _, err := fsimage.MakeFile(ctx, espImage, 64<<20, fsimage.Options{Type: "vfat", Label: "ESP", SourceDir: esp, TempDir: dir}); err != nil {
		t.Fatal(err)
	}

	accel := qemuAccel()
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	args := []string{
		"-machine", "q35", "-accel", accel, "-cpu", cpu, "-m", "512", "-smp", "1",
		"-bios", ovmfFirmware, "-display", "none", "-nodefaults", "-no-reboot",
		"-serial", "stdio", "-monitor", "none",
		"-drive", "if=none,id=esp,format=raw,snapshot=on,file=" + espImage, "-device", "virtio-blk-pci,drive=esp",
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, qemu, args...)
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	err := cmd.Run()
	log := console.String()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("no poweroff within %v; console:\n%s", bootTimeout, tail(log, 4000))
	}
	want := bootMarker + " cmdline=" + cmdline
	if !strings.Contains(log, want) {
		t.Fatalf("console lacks %q (qemu: %v); console:\n%s", want, err, tail(log, 4000))
	}
	if strings.Contains(log, "Overlapping PE sections") {
		t.Errorf("systemd-stub found overlapping sections; console:\n%s", tail(log, 4000))
	}
	t.Logf("booted with %s in %v; console:\n%s", accel, time.Since(start).Round(time.Second), tail(log, 1500))
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// TestUKIRealKernelInterop builds a UKI from Debian's stub and kernel with
// `imago uki build` and checks it with the real tools: objdump -h lists the
// sections where ukify's rules put them (from the end of the stub's last
// section, each at the next 512-byte boundary, .linux last) with no overlap;
// sbsign signs it without warnings; sbverify and osslsigncode accept the
// signature; and `imago uki inspect` reports the kernel's SHA-256.
func TestUKIRealKernelInterop(t *testing.T) {
	stub := requireStub(t)
	objdump := testutil.RequireTool(t, "objdump", "binutils")
	sbsign := testutil.RequireTool(t, "sbsign", "sbsigntool")
	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	osslsigncode := testutil.RequireTool(t, "osslsigncode", "osslsigncode")
	debianKernel := vmtest.RequireKernel(t)
	kernelPath := debianKernel.Vmlinuz
	kernel, err := os.ReadFile(kernelPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	initrd := newcCPIO([]cpioEntry{{name: "init", mode: modeReg | 0o755, data: []byte("#!/bin/sh\n")}})
	initrdPath := filepath.Join(dir, "initrd")
	if err := os.WriteFile(initrdPath, initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	osrel := "ID=debian\nIMAGE_ID=imago-test\nIMAGE_VERSION=1\n"
	cmdline := "console=ttyS0 usrhash=0123456789abcdef"
	out := filepath.Join(dir, "uki.efi")
	if code, _, stderr := run(t, "uki", "build", "--stub="+stub, "--linux="+kernelPath, "--initrd="+initrdPath,
		"--cmdline="+cmdline, "--os-release="+osrel, "--output="+out); code != 0 {
		t.Fatalf("uki build: %s", stderr)
	}

	dump := testutil.Run(t, objdump, "-h", out)
	type section struct {
		name          string
		size, vma, at uint64
	}
	var got []section
	line := regexp.MustCompile(`(?m)^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s`)
	for _, m := range line.FindAllStringSubmatch(string(dump), -1) {
		var s section
		s.name = m[1]
		fmt.Sscanf(m[2], "%x", &s.size)
		fmt.Sscanf(m[3], "%x", &s.vma)
		fmt.Sscanf(m[4], "%x", &s.at)
		got = append(got, s)
	}
	if len(got) != 13 || got[7].name != ".sdmagic" {
		t.Fatalf("objdump -h:\n%s", dump)
	}
	// ukify's rule, restated: next section at the end of the previous one
	// rounded up to 0x200, in memory and in the file; the file data starts
	// where the stub's symbol table began.
	up := func(x uint64) uint64 { return (x + 0x1ff) &^ 0x1ff }
	release := strings.TrimPrefix(debianKernel.Package, "linux-image-")
	want := got[:8:8]
	vma, at := up(got[7].vma+got[7].size), uint64(0x11400)
	for _, s := range []struct {
		name string
		size int
	}{{".osrel", len(osrel)}, {".cmdline", len(cmdline)}, {".uname", len(release)}, {".initrd", len(initrd)}, {".linux", len(kernel)}} {
		want = append(want, section{s.name, uint64(s.size), vma, at})
		vma, at = up(vma+uint64(s.size)), up(at+uint64(s.size))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("objdump -h\n got %x\nwant %x", got, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].vma < got[i-1].vma+got[i-1].size {
			t.Errorf("%s overlaps %s", got[i].name, got[i-1].name)
		}
	}

	code, stdout, _ := run(t, "uki", "inspect", "--json", out)
	sum := sha256.Sum256(kernel)
	if code != 0 || !strings.Contains(stdout, `"sha256": "`+hex.EncodeToString(sum[:])+`"`) ||
		!strings.Contains(stdout, `"uname": "`+release+`"`) {
		t.Errorf("inspect does not show the kernel's sha256 or release %s:\n%s", release, stdout)
	}

	key, cert := throwawaySigner(t, dir)
	signed := out + ".signed"
	msg, err := exec.Command(sbsign, "--key", key, "--cert", cert, "--output", signed, out).CombinedOutput()
	if err != nil || strings.Contains(string(msg), "warning") {
		t.Errorf("sbsign: %v\n%s", err, msg)
	}
	if msg, err := exec.Command(sbverify, "--cert", cert, signed).CombinedOutput(); err != nil {
		t.Errorf("sbverify: %v\n%s", err, msg)
	}
	if msg, err := exec.Command(osslsigncode, "verify", "-CAfile", cert, signed).CombinedOutput(); err != nil ||
		!strings.Contains(string(msg), "Signature verification: ok") {
		t.Errorf("osslsigncode verify: %v\n%s", err, msg)
	}
	code, stdout, _ = run(t, "uki", "inspect", signed)
	if code != 0 || !strings.Contains(stdout, "signed: yes") {
		t.Errorf("inspect of the signed UKI:\n%s", stdout)
	}
}

// throwawaySigner makes a self-signed RSA certificate and key with openssl.
func throwawaySigner(t *testing.T, dir string) (key, cert string) {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	key, cert = filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")
	testutil.Run(t, openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=imago test signer, do not trust", "-keyout", key, "-out", cert)
	return key, cert
}
