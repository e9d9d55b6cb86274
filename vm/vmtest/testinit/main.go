//go:build linux

// Command testinit is the /init of the minimal initrd that vm's tests boot.
// It mounts the kernel file systems, loads the modules packed beside it,
// reports what the guest sees (TPM, Secure Boot state, disk size, a boot
// counter kept on the disk) as "IMAGO-VM-TEST: key=value" lines on
// /dev/kmsg, which the kernel copies to the serial console, and then powers
// off, reboots or waits, as the kernel command line asks with
// imagotest.mode=poweroff|reboot|hang. While it waits, it reports each line
// typed on the console as "typed=LINE".
//
// The disk counter lives in the first sector of /dev/vda: the magic
// "IMAGOVM1" followed by a little-endian uint64. A disk without the magic
// counts as never booted. Each boot prints the count it found and writes
// count+1, so the host can tell whether writes reached the image.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// Marker starts every line this program prints.
const Marker = "IMAGO-VM-TEST: "

// CounterMagic marks a disk that holds a boot counter.
const CounterMagic = "IMAGOVM1"

// efiGlobal is the vendor GUID of the UEFI global variables.
const efiGlobal = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

var kmsg *os.File

func report(format string, args ...any) {
	line := Marker + fmt.Sprintf(format, args...)
	if kmsg != nil {
		// Level 2 (critical) reaches the console whatever loglevel= says.
		if _, err := kmsg.WriteString("<2>" + line + "\n"); err == nil {
			return
		}
	}
	fmt.Println(line)
}

func main() {
	mountKernelFS()
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		kmsg = f
	}
	report("start")
	mode := cmdlineValue("imagotest.mode")
	loadModules("/lib/modules")
	reportFirmware()
	reportTPM()
	reportDisk()
	report("ready mode=%s", mode)
	switch mode {
	case "hang":
		// Echo what is typed on the console, and wait for the host to
		// power the machine off, reset or kill it.
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			report("typed=%s", strings.TrimSpace(lines.Text()))
		}
		for {
			time.Sleep(time.Hour)
		}
	case "reboot":
		syscall.Sync()
		_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	default:
		syscall.Sync()
		_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	}
	// PID 1 must never exit: that would panic the kernel.
	for {
		time.Sleep(time.Hour)
	}
}

func mountKernelFS() {
	for _, m := range []struct{ dir, fstype string }{
		{"/proc", "proc"}, {"/sys", "sysfs"}, {"/dev", "devtmpfs"},
	} {
		_ = os.MkdirAll(m.dir, 0o755)
		if err := syscall.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			fmt.Printf("%smount %s: %v\n", Marker, m.dir, err)
		}
	}
}

func cmdlineValue(key string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// loadModules loads every .ko in dir, in the order dir/modules.order lists
// them (dependencies first), then any others. The initrd has no
// modules.dep, so modules whose dependencies are not loaded yet are
// retried on the next pass until a pass makes no progress.
func loadModules(dir string) {
	var pending []string
	seen := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.order")); err == nil {
		for _, name := range strings.Fields(string(b)) {
			p := filepath.Join(dir, filepath.Base(name))
			pending = append(pending, p)
			seen[p] = true
		}
	}
	all, _ := filepath.Glob(filepath.Join(dir, "*.ko"))
	for _, p := range all {
		if !seen[p] {
			pending = append(pending, p)
		}
	}
	for len(pending) > 0 {
		var failed []string
		var lastErr error
		for _, p := range pending {
			if err := loadModule(p); err != nil && !errors.Is(err, syscall.EEXIST) {
				failed = append(failed, p)
				lastErr = err
			}
		}
		if len(failed) == len(pending) {
			report("error: loading modules %v: %v", failed, lastErr)
			return
		}
		pending = failed
	}
}

func loadModule(path string) error {
	image, err := os.ReadFile(path)
	if err != nil || len(image) == 0 {
		return fmt.Errorf("%s: %v", path, err)
	}
	params := []byte{0}
	_, _, errno := syscall.Syscall(syscall.SYS_INIT_MODULE, uintptr(unsafe.Pointer(&image[0])), uintptr(len(image)), uintptr(unsafe.Pointer(&params[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

func reportFirmware() {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		report("efi=no")
		return
	}
	vars := "/sys/firmware/efi/efivars"
	if err := syscall.Mount("efivarfs", vars, "efivarfs", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
		report("error: mount efivarfs: %v", err)
	}
	report("efi=yes secureboot=%s setupmode=%s", efiByte(vars, "SecureBoot"), efiByte(vars, "SetupMode"))
}

// efiByte returns the one-byte value of a global UEFI variable, after the
// four attribute bytes efivarfs puts first, or "absent".
func efiByte(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name+"-"+efiGlobal))
	if errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	if err != nil {
		return "error(" + err.Error() + ")"
	}
	if len(b) < 5 {
		return fmt.Sprintf("error(%d bytes)", len(b))
	}
	return strconv.Itoa(int(b[4]))
}

// reportTPM says whether the TPM is there and its reset count, which the
// TPM keeps in its non-volatile state and increments on every power-on:
// it grows from boot to boot only when the TPM state persists.
func reportTPM() {
	// Raw blocking system calls: os.OpenFile would make the descriptor
	// non-blocking, and then the kernel runs the command asynchronously
	// and a read that comes too early returns nothing.
	fd, err := syscall.Open("/dev/tpm0", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		report("tpm=absent")
		return
	}
	defer syscall.Close(fd)
	// TPM2_ReadClock: tag TPM_ST_NO_SESSIONS, size 10, TPM_CC_ReadClock.
	cmd := []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x81}
	if _, err := syscall.Write(fd, cmd); err != nil {
		report("tpm=present error: ReadClock: %v", err)
		return
	}
	resp := make([]byte, 4096)
	n, err := syscall.Read(fd, resp)
	if err != nil || n < 10+8+8+4+4+1 {
		report("tpm=present error: ReadClock response %d bytes: %v", n, err)
		return
	}
	if rc := binary.BigEndian.Uint32(resp[6:10]); rc != 0 {
		report("tpm=present error: ReadClock rc=%#x", rc)
		return
	}
	resets := binary.BigEndian.Uint32(resp[26:30])
	restarts := binary.BigEndian.Uint32(resp[30:34])
	report("tpm=present tpmresets=%d tpmrestarts=%d", resets, restarts)
}

func reportDisk() {
	var size []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile("/sys/block/vda/size"); err == nil {
			size = b
			break
		}
	}
	if size == nil {
		report("disk=absent")
		return
	}
	report("disk=vda sectors=%s", strings.TrimSpace(string(size)))
	f, err := os.OpenFile("/dev/vda", os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		report("error: open /dev/vda: %v", err)
		return
	}
	defer f.Close()
	// O_DIRECT wants an aligned buffer; a 4096-byte window of a larger
	// slice gives one.
	raw := make([]byte, 8192)
	off := 4096 - int(uintptr(unsafe.Pointer(&raw[0]))%4096)
	buf := raw[off : off+4096]
	if _, err := f.ReadAt(buf, 0); err != nil {
		report("error: read /dev/vda: %v", err)
		return
	}
	var boots uint64
	if bytes.Equal(buf[:8], []byte(CounterMagic)) {
		boots = binary.LittleEndian.Uint64(buf[8:16])
	}
	report("boots=%d", boots)
	copy(buf, CounterMagic)
	binary.LittleEndian.PutUint64(buf[8:16], boots+1)
	if _, err := f.WriteAt(buf, 0); err != nil {
		report("error: write /dev/vda: %v", err)
		return
	}
	if err := f.Sync(); err != nil {
		report("error: sync /dev/vda: %v", err)
		return
	}
	report("wrote=%d", boots+1)
}
