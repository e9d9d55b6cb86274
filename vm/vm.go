// Package vm boots disk images in qemu, the way `imago vm` and imago's
// end-to-end tests need it: UEFI firmware (OVMF on x86-64, AAVMF on arm64)
// whose variable store is kept per image, optionally with Secure Boot and a
// store that starts empty (setup mode, so that systemd-boot can enroll the
// image's keys) or with test keys; a software TPM 2.0 (swtpm) whose state
// is kept per image, so that secrets sealed on one boot unseal on the
// next, and which starts with hardware-like dictionary-attack limits; KVM when it can run UEFI guests, otherwise software emulation
// (TCG); the image as a virtio disk, booted in place, as a snapshot, or as
// a grown working copy; the serial console captured to a log file that
// callers wait on line by line; and a QMP control socket for ACPI
// power-off, reset and quit. Killing qemu simulates a power cut.
//
// The package owns qemu's and swtpm's command lines and their lifetime:
// swtpm is stopped on every exit path. It matches qemu 7.2, swtpm 0.7 and
// the firmware builds of Debian 12 (ovmf and qemu-efi-aarch64 2022.11).
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imago-os/imago/internal/toolexec"
)

// Defaults for a Config's zero values.
const (
	// DefaultMemory leaves room for a UKI of tens of MiB (the kernel's EFI
	// stub needs it twice over, and 256 MiB is too little) and for
	// cryptsetup's memory-hard key derivation on first boot.
	DefaultMemory = 1 << 30
	DefaultCPUs   = 2
)

// StateSuffix is appended to the image's path to name its default state
// directory.
const StateSuffix = ".vm"

// Config describes one run of a virtual machine.
type Config struct {
	// Image is the raw disk image to boot. Unless Snapshot or DiskSize is
	// set, the guest writes to it: it is booted in place, as
	// systemd-nspawn --image and mkosi's qemu verb do, so that a first
	// boot's changes are there on the next boot and for `imago dissect`.
	Image string
	// StateDir keeps what belongs to this machine across boots: the
	// firmware variable stores, the TPM state, the console log and the
	// working copy. Default: the image's path followed by ".vm".
	StateDir string
	// Arch is the guest architecture, "x86-64" or "arm64". Default: the
	// host's.
	Arch string
	// Accel is "" (KVM when usable, else TCG), "kvm" or "tcg".
	Accel string
	// CPUs is the number of virtual CPUs (default 2).
	CPUs int
	// Memory is the guest's RAM in bytes (default 1 GiB), rounded up to
	// whole MiB.
	Memory int64
	// TPM gives the guest a TPM 2.0 backed by swtpm.
	TPM bool
	// SecureBoot selects the firmware build that implements Secure Boot.
	SecureBoot bool
	// SecureBootKeys is the key store a new variable store starts from:
	// "none" (the default: setup mode), "snakeoil" or "microsoft". It only
	// matters with SecureBoot; each choice keeps its own variable store.
	SecureBootKeys string
	// Snapshot discards everything the run writes: the guest's disk
	// writes go to a temporary overlay, and the firmware variables and TPM
	// state are used from temporary copies.
	Snapshot bool
	// DiskSize, when not zero, boots a working copy of the image grown to
	// this many bytes, kept in the state directory as disk.raw so that it
	// persists across boots; it is made anew when the image changes. The
	// image itself is left untouched.
	DiskSize int64
	// NoReboot makes qemu exit instead of rebooting when the guest
	// reboots.
	NoReboot bool
	// Network gives the guest a virtio network card on qemu's user-mode
	// network: the guest gets its address by DHCP and reaches the host's
	// loopback services at 10.0.2.2 (an update server, for example).
	Network bool
	// Kernel, Initrd and Append boot a kernel directly through the
	// firmware (qemu's -kernel, -initrd and -append) instead of the
	// disk's boot loader; for tests and debugging.
	Kernel, Initrd, Append string
	// Interactive connects the serial console and qemu's monitor to this
	// process's standard input and output, which should be a terminal:
	// Ctrl-A X quits, Ctrl-A C switches to the monitor. The console is
	// still captured to the log.
	Interactive bool
	// Console, when set, receives a live copy of the serial console
	// (ignored when Interactive).
	Console io.Writer
	// Stderr, when set, receives qemu's own messages as they come.
	Stderr io.Writer
	// ConsoleLog is the file the serial console is captured to. Default:
	// console.log in the state directory, emptied at each start.
	ConsoleLog string
	// ExtraArgs are appended to qemu's command line.
	ExtraArgs []string
	// Progress, when set, receives one-line messages about the steps.
	Progress func(msg string)
}

// Machine is a running virtual machine.
type Machine struct {
	cfg        Config
	arch       *archInfo
	accel      string
	args       []string
	disk       string
	stateDir   string
	consoleLog string

	cmd     *exec.Cmd
	stderr  *lockedBuffer
	console *console
	tpm     *swtpm
	runDir  string

	qmpMu     sync.Mutex
	qmp       *qmpClient
	qmpClosed bool // qemu has exited; no client may be installed

	killed  bool
	killMu  sync.Mutex
	done    chan struct{}
	exitErr error
}

// ExitError is how qemu ended when it did not exit with status 0.
type ExitError struct {
	Code   int            // exit status; -1 when ended by a signal
	Signal syscall.Signal // the signal, when Code is -1
	Stderr []string       // the last lines qemu printed on standard error
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Code >= 0 {
		fmt.Fprintf(&b, "vm: qemu exited with status %d", e.Code)
	} else {
		fmt.Fprintf(&b, "vm: qemu was killed by signal %v", e.Signal)
	}
	if len(e.Stderr) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Stderr, "; "))
	}
	return b.String()
}

// plan is everything resolved for qemu's command line.
type plan struct {
	arch       *archInfo
	accel      string
	code       string
	vars       string
	secureBoot bool
	disk       string
	snapshot   bool
	tpmSocket  string // "" without TPM
	qmpSocket  string
	consoleLog string
	serialSock string // the socket imago listens on for the console (not interactive)
}

// qemuArgs returns qemu's arguments (without the program name).
func qemuArgs(c *Config, p *plan) []string {
	machine := p.arch.machine
	if machine == "virt" {
		machine += ",gic-version=max"
	}
	if p.secureBoot && p.arch.secureNeedsSMM {
		machine += ",smm=on"
	}
	args := []string{"-machine", machine}
	if p.secureBoot && p.arch.secureNeedsSMM {
		// Only code running in SMM may write the variable store, so
		// that the OS cannot bypass authenticated variables.
		args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	if p.accel == AccelKVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		// tb-size bounds the translation cache (qemu's default grows
		// its resident size by about half a GiB).
		args = append(args, "-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max")
	}
	cpus := c.CPUs
	if cpus <= 0 {
		cpus = DefaultCPUs
	}
	mem := c.Memory
	if mem <= 0 {
		mem = DefaultMemory
	}
	args = append(args,
		"-smp", strconv.Itoa(cpus),
		"-m", strconv.FormatInt((mem+(1<<20)-1)>>20, 10)+"M",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuEscape(p.code),
		"-drive", "if=pflash,format=raw,unit=1,file="+qemuEscape(p.vars),
	)
	drive := "if=none,id=disk0,format=raw,discard=unmap,file=" + qemuEscape(p.disk)
	if p.snapshot {
		drive += ",snapshot=on"
	}
	args = append(args,
		"-drive", drive,
		"-device", "virtio-blk-pci,drive=disk0,bootindex=1",
		// Entropy for the first boot, which makes keys.
		"-device", "virtio-rng-pci",
	)
	if p.tpmSocket != "" {
		args = append(args,
			"-chardev", "socket,id=chrtpm,path="+qemuEscape(p.tpmSocket),
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
			"-device", p.arch.tpmDevice+",tpmdev=tpm0",
		)
	}
	if c.Interactive {
		// signal=off: Ctrl-C goes to the guest, not to qemu.
		args = append(args,
			"-chardev", "stdio,id=ser0,mux=on,signal=off,logfile="+qemuEscape(p.consoleLog),
			"-serial", "chardev:ser0",
			"-mon", "chardev=ser0,mode=readline",
		)
	} else {
		// qemu connects to imago's socket at start-up, so no output is
		// lost and input can be sent.
		args = append(args,
			"-chardev", "socket,id=ser0,server=off,path="+qemuEscape(p.serialSock),
			"-serial", "chardev:ser0",
		)
	}
	args = append(args, "-qmp", "unix:"+qemuEscape(p.qmpSocket)+",server=on,wait=off")
	if c.NoReboot {
		args = append(args, "-no-reboot")
	}
	if c.Network {
		args = append(args, "-nic", "user,model=virtio-net-pci")
	}
	if c.Kernel != "" {
		args = append(args, "-kernel", c.Kernel)
		if c.Initrd != "" {
			args = append(args, "-initrd", c.Initrd)
		}
		if c.Append != "" {
			args = append(args, "-append", c.Append)
		}
	}
	return append(args, c.ExtraArgs...)
}

// qemuEscape doubles commas, which separate options in qemu's key=value
// lists.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Start boots a machine. It returns once qemu runs and answers on its
// control socket; the machine runs until the guest powers off, Kill,
// Quit or a QMP command ends it, or ctx is done (then qemu gets SIGTERM,
// and SIGKILL five seconds later). Call Wait or Kill to release it.
func Start(ctx context.Context, cfg Config) (m *Machine, err error) {
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if cfg.Image == "" {
		return nil, errors.New("vm: no image given")
	}
	fi, err := os.Stat(cfg.Image)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("vm: %s is a directory, not a disk image", cfg.Image)
	}
	archName := cfg.Arch
	if archName == "" {
		archName = HostArch()
	}
	arch, ok := arches[archName]
	if !ok {
		return nil, fmt.Errorf("vm: unknown architecture %q (want %s or %s)", archName, ArchX86_64, ArchARM64)
	}
	keys := cfg.SecureBootKeys
	if keys == "" {
		keys = KeysNone
	}
	qemu, err := toolexec.Find(arch.qemu)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	if cfg.TPM {
		if _, err := toolexec.Find("swtpm"); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
	}
	code, varsTemplate, err := firmwareFiles(arch, cfg.SecureBoot, keys)
	if err != nil {
		return nil, err
	}
	accel, err := chooseAccel(cfg.Accel, archName)
	if err != nil {
		return nil, err
	}

	stateDir := cfg.StateDir
	if stateDir == "" {
		stateDir = cfg.Image + StateSuffix
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("vm: state directory: %w", err)
	}
	// Unix socket paths are limited to 107 bytes, so the sockets live in
	// a short temporary directory rather than beside the image.
	runDir, err := os.MkdirTemp("", "imago-vm-")
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	m = &Machine{
		cfg: cfg, arch: arch, accel: accel, stateDir: stateDir, runDir: runDir,
		stderr: &lockedBuffer{}, done: make(chan struct{}),
	}
	// Until qemu runs, every failure undoes what was set up.
	defer func() {
		if err != nil {
			if m.cmd != nil && m.cmd.Process != nil {
				_ = m.cmd.Process.Kill()
				<-m.done
				return
			}
			m.cleanup()
		}
	}()

	vars := filepath.Join(stateDir, varsStateName(cfg.SecureBoot, keys))
	_, statErr := os.Stat(vars)
	switch {
	case cfg.Snapshot:
		// A temporary copy of the store, or of the template when there
		// is none yet.
		src := vars
		if errors.Is(statErr, os.ErrNotExist) {
			src = varsTemplate
		}
		vars = filepath.Join(runDir, filepath.Base(vars))
		if err := copyFile(vars, src, 0o600); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
	case errors.Is(statErr, os.ErrNotExist):
		progress(fmt.Sprintf("new UEFI variable store %s from %s", vars, varsTemplate))
		if err := copyFile(vars, varsTemplate, 0o600); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
	}
	tpmState := filepath.Join(stateDir, "tpm")
	if cfg.Snapshot && cfg.TPM {
		tmpTPM := filepath.Join(runDir, "tpm")
		if err := copyDir(tmpTPM, tpmState); err != nil {
			return nil, fmt.Errorf("vm: TPM state: %w", err)
		}
		tpmState = tmpTPM
	}
	m.disk = cfg.Image
	if cfg.DiskSize > 0 {
		if m.disk, err = workingCopy(cfg.Image, stateDir, cfg.DiskSize, progress); err != nil {
			return nil, err
		}
	}
	m.consoleLog = cfg.ConsoleLog
	if m.consoleLog == "" {
		m.consoleLog = filepath.Join(stateDir, "console.log")
	}
	live := cfg.Console
	if cfg.Interactive {
		live = nil
	}
	if m.console, err = newConsole(m.consoleLog, live); err != nil {
		return nil, err
	}

	p := &plan{
		arch: arch, accel: accel, code: code, vars: vars, secureBoot: cfg.SecureBoot,
		disk: m.disk, snapshot: cfg.Snapshot,
		qmpSocket: filepath.Join(runDir, "qmp.sock"), consoleLog: m.consoleLog,
	}
	var serialListener *net.UnixListener
	if !cfg.Interactive {
		p.serialSock = filepath.Join(runDir, "serial.sock")
		if serialListener, err = net.ListenUnix("unix", &net.UnixAddr{Name: p.serialSock, Net: "unix"}); err != nil {
			return nil, fmt.Errorf("vm: console socket: %w", err)
		}
		defer serialListener.Close()
	}
	if cfg.TPM {
		p.tpmSocket = filepath.Join(runDir, "swtpm.sock")
		if !tpmStateExists(tpmState) {
			progress("new TPM in " + tpmState + fmt.Sprintf(": %d tries before a dictionary-attack lockout, one forgiven every %d s", tpmMaxAuthFail, tpmRecoveryTime))
			if err := provisionTPM(ctx, tpmState, runDir); err != nil {
				return nil, err
			}
		}
		progress("starting swtpm, state in " + tpmState)
		if m.tpm, err = startSwtpm(ctx, tpmState, p.tpmSocket); err != nil {
			return nil, err
		}
	}
	m.args = qemuArgs(&cfg, p)
	progress(fmt.Sprintf("starting %s (%s) with %s", arch.qemu, accel, m.disk))

	m.cmd = exec.CommandContext(ctx, qemu, m.args...)
	m.cmd.Cancel = func() error { return m.cmd.Process.Signal(syscall.SIGTERM) }
	m.cmd.WaitDelay = 5 * time.Second
	var stderr io.Writer = m.stderr
	if cfg.Stderr != nil {
		stderr = io.MultiWriter(m.stderr, cfg.Stderr)
	}
	m.cmd.Stderr = stderr
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cfg.Interactive {
		// qemu stays in the terminal's foreground process group, where
		// it may read the terminal and set it to raw mode.
		m.cmd.Stdin, m.cmd.Stdout = os.Stdin, os.Stdout
	} else {
		m.cmd.Stdout = stderr
		attr.Setpgid = true
	}
	m.cmd.SysProcAttr = attr
	if err := m.cmd.Start(); err != nil {
		m.cmd = nil
		return nil, fmt.Errorf("vm: starting %s: %w", arch.qemu, err)
	}
	go m.reap()

	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if cfg.Interactive {
		err = m.console.followFile()
	} else {
		err = acceptConsole(dialCtx, serialListener, m.console, m.done)
	}
	if err != nil {
		if m.Exited() && m.exitErr != nil {
			return nil, fmt.Errorf("vm: qemu failed to start: %w", m.exitErr)
		}
		return nil, err
	}
	qmp, err := dialQMP(dialCtx, p.qmpSocket, m.done)
	if err == nil {
		err = m.setQMP(qmp)
	}
	if err != nil {
		if m.Exited() && m.exitErr != nil {
			return nil, fmt.Errorf("vm: qemu failed to start: %w", m.exitErr)
		}
		return nil, fmt.Errorf("vm: %w", err)
	}
	return m, nil
}

// acceptConsole waits for qemu to connect to the console socket and hands
// the connection to the console.
func acceptConsole(ctx context.Context, ln *net.UnixListener, c *console, exited <-chan struct{}) error {
	type result struct {
		conn net.Conn
		err  error
	}
	accepted := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		accepted <- result{conn, err}
	}()
	select {
	case r := <-accepted:
		if r.err != nil {
			return fmt.Errorf("vm: console socket: %w", r.err)
		}
		if err := c.serve(r.conn); err != nil {
			r.conn.Close()
			return err
		}
		return nil
	case <-exited:
		ln.Close()
		return errors.New("vm: qemu exited during start-up")
	case <-ctx.Done():
		ln.Close()
		return fmt.Errorf("vm: waiting for qemu to connect its console: %w", ctx.Err())
	}
}

// setQMP installs the QMP client, unless qemu has exited meanwhile.
func (m *Machine) setQMP(c *qmpClient) error {
	m.qmpMu.Lock()
	defer m.qmpMu.Unlock()
	if m.qmpClosed {
		c.close()
		return errors.New("qemu exited during start-up")
	}
	m.qmp = c
	return nil
}

// chooseAccel resolves Config.Accel.
func chooseAccel(want, arch string) (string, error) {
	switch want {
	case AccelAuto:
		if KVMUsable(arch) == nil {
			return AccelKVM, nil
		}
		return AccelTCG, nil
	case AccelKVM:
		if err := KVMUsable(arch); err != nil {
			return "", fmt.Errorf("vm: %w", err)
		}
		return AccelKVM, nil
	case AccelTCG:
		return AccelTCG, nil
	}
	return "", fmt.Errorf("vm: unknown accelerator %q (want kvm or tcg)", want)
}

// reap waits for qemu, then stops swtpm, drains the console log and
// removes the temporary files.
func (m *Machine) reap() {
	werr := m.cmd.Wait()
	if werr != nil {
		e := &ExitError{Code: -1, Stderr: m.stderr.lines(10)}
		var exitErr *exec.ExitError
		if errors.As(werr, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				e.Signal = ws.Signal()
			} else {
				e.Code = exitErr.ExitCode()
			}
		}
		m.exitErr = e
	}
	m.cleanup()
}

func (m *Machine) cleanup() {
	m.qmpMu.Lock()
	m.qmpClosed = true
	if m.qmp != nil {
		_ = m.qmp.close()
	}
	m.qmpMu.Unlock()
	if m.tpm != nil {
		m.tpm.stop()
	}
	if m.console != nil {
		m.console.stop()
	}
	_ = os.RemoveAll(m.runDir)
	close(m.done)
}

// Wait waits until qemu has exited and everything it used is released. It
// returns nil when qemu exited with status 0 (the guest powered off, or
// Quit), else an *ExitError.
func (m *Machine) Wait() error {
	<-m.done
	return m.exitErr
}

// Done is closed when qemu has exited and everything it used is released.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Exited reports whether qemu has exited.
func (m *Machine) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Kill cuts the power: qemu gets SIGKILL, so that nothing the guest did
// not already hand to the virtual disk reaches it. (Writes qemu already
// made stay in the host's page cache, so this is a power cut of a disk
// without a volatile write cache.) It waits until everything is released
// and returns nil when the machine is gone.
func (m *Machine) Kill() error {
	m.killMu.Lock()
	if !m.Exited() {
		m.killed = true
		_ = m.cmd.Process.Kill()
	}
	m.killMu.Unlock()
	<-m.done
	if m.killed {
		return nil
	}
	return m.exitErr
}

// QMP runs a QMP command and returns its reply.
func (m *Machine) QMP(ctx context.Context, command string, args any) (json.RawMessage, error) {
	if m.Exited() {
		return nil, errors.New("vm: the machine has stopped")
	}
	return m.qmp.execute(ctx, command, args)
}

// PowerOff presses the ACPI power button; the guest decides what to do
// (systemd powers off). Use Wait to wait for the machine to stop.
func (m *Machine) PowerOff(ctx context.Context) error {
	_, err := m.QMP(ctx, "system_powerdown", nil)
	return err
}

// Reset presses the reset button: the machine restarts at once, without
// the guest shutting down, while the TPM and disk stay attached. With
// NoReboot, qemu exits instead.
func (m *Machine) Reset(ctx context.Context) error {
	_, err := m.QMP(ctx, "system_reset", nil)
	return err
}

// Quit stops qemu at once, like pulling the plug, but lets qemu write out
// what it has buffered. It waits until everything is released.
func (m *Machine) Quit(ctx context.Context) error {
	if _, err := m.QMP(ctx, "quit", nil); err != nil {
		// qemu may close the socket before it answers.
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			return err
		}
	}
	return m.Wait()
}

// WaitFor waits until a line of the serial console matches re, and
// returns the line's submatches (FindStringSubmatch). Each call looks only
// at output after the line the previous successful call matched, so
// successive calls follow the boot in order. It fails with a *WaitError
// carrying the last console lines when timeout (0: none) passes, ctx is
// done or the machine stops first.
func (m *Machine) WaitFor(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	return m.console.waitFor(ctx, re, timeout, false)
}

// WaitForPrompt is WaitFor for a prompt: it also matches the last line
// while it is still unterminated, as a login or shell prompt stays until
// something is typed.
func (m *Machine) WaitForPrompt(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	return m.console.waitFor(ctx, re, timeout, true)
}

// Type sends s to the guest's serial port, as if typed on its console
// (for example a user name and "\n" at a login prompt). Not available
// when the console is on the terminal (Interactive).
func (m *Machine) Type(s string) error { return m.console.write([]byte(s)) }

// Console returns the whole console log of this run so far.
func (m *Machine) Console() string {
	b, err := os.ReadFile(m.consoleLog)
	if err != nil {
		return m.console.tail(1 << 30)
	}
	return string(b)
}

// ConsoleTail returns the last n lines of the console.
func (m *Machine) ConsoleTail(n int) string { return m.console.tail(n) }

// ConsoleLog returns the path of the console log file.
func (m *Machine) ConsoleLog() string { return m.consoleLog }

// Disk returns the path of the disk image qemu uses: the image itself, or
// the working copy when DiskSize was set.
func (m *Machine) Disk() string { return m.disk }

// StateDir returns the machine's state directory.
func (m *Machine) StateDir() string { return m.stateDir }

// Accel returns the accelerator in use: "kvm" or "tcg".
func (m *Machine) Accel() string { return m.accel }

// Args returns qemu's command line, without the program name.
func (m *Machine) Args() []string { return append([]string(nil), m.args...) }

// PID returns qemu's process ID.
func (m *Machine) PID() int { return m.cmd.Process.Pid }

// SwtpmPID returns swtpm's process ID, or 0 without a TPM.
func (m *Machine) SwtpmPID() int {
	if m.tpm == nil {
		return 0
	}
	return m.tpm.pid()
}
