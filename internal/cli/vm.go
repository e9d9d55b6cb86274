package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/format/unitfile"
	"github.com/imago-os/imago/vm"
)

func init() { register(newVMCmd) }

// yesNo is a boolean flag spelled yes/no (also true/false, on/off, 1/0),
// as systemd and mkosi spell them; given alone it means yes.
type yesNo bool

func (b *yesNo) String() string {
	if *b {
		return "yes"
	}
	return "no"
}

func (b *yesNo) Set(s string) error {
	switch strings.ToLower(s) {
	case "yes", "y", "true", "t", "on", "1":
		*b = true
	case "no", "n", "false", "f", "off", "0":
		*b = false
	default:
		return fmt.Errorf("%q is not yes or no", s)
	}
	return nil
}

func (b *yesNo) Type() string { return "yes|no" }

type vmFlags struct {
	tpm, secureBoot    yesNo
	network            yesNo
	keys               string
	memory, diskSize   string
	cpus               int
	snapshot, noReboot bool
	timeout            time.Duration
	accel, stateDir    string
	kernel, initrd     string
	appendArgs         string
	qemuArgs           []string
}

func newVMCmd(e *env) *cobra.Command {
	f := &vmFlags{tpm: true, network: true}
	cmd := &cobra.Command{
		Use:   "vm [flags] IMAGE",
		Short: "Boot a disk image in a virtual machine (qemu, UEFI, TPM 2.0)",
		Long: `Boots a raw disk image in qemu with UEFI firmware (OVMF), a software TPM 2.0 (swtpm)
and the image as a virtio disk, using KVM when it can run UEFI guests and software
emulation otherwise. On a terminal the serial console is the terminal: Ctrl-A X quits,
Ctrl-A C switches to qemu's monitor. Otherwise the console is copied to standard output.

The image is booted in place: what the guest writes stays in it. --snapshot discards
all writes; --disk-size boots a copy grown to that size, kept beside the image and
reused on later boots (made anew when the image changes).

What belongs to the machine is kept in IMAGE.vm/ (or --state-dir): the firmware's
variable store (one per firmware flavour), the TPM state, the console log of the last
run (console.log) and the grown copy. Delete it to start from a new machine.

--secure-boot=yes starts the Secure Boot firmware. Its variable store starts empty, in
setup mode, so that systemd-boot can enroll the image's keys on the first boot; with
--secure-boot-keys=snakeoil or microsoft it starts with Debian's test key or
Microsoft's keys enrolled instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.runVM(cmd.Context(), f, args[0])
		},
	}
	fl := cmd.Flags()
	tpm := fl.VarPF(&f.tpm, "tpm", "", "give the machine a TPM 2.0 (swtpm)")
	tpm.NoOptDefVal = "yes"
	sb := fl.VarPF(&f.secureBoot, "secure-boot", "", "use the Secure Boot firmware")
	sb.NoOptDefVal = "yes"
	fl.StringVar(&f.keys, "secure-boot-keys", vm.KeysNone, "keys a new Secure Boot variable store starts with: none (setup mode), snakeoil or microsoft")
	fl.StringVar(&f.memory, "memory", "1G", "guest memory `size` (K, M, G suffixes, base 1024)")
	fl.IntVar(&f.cpus, "cpus", vm.DefaultCPUs, "number of virtual CPUs")
	fl.StringVar(&f.diskSize, "disk-size", "", "boot a copy of the image grown to `size`")
	fl.BoolVar(&f.snapshot, "snapshot", false, "discard everything the machine writes (disk, firmware variables, TPM)")
	fl.DurationVar(&f.timeout, "timeout", 0, "stop the machine after this `duration` (0: never)")
	fl.StringVar(&f.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	fl.StringVar(&f.stateDir, "state-dir", "", "keep the machine's state in `dir` (default IMAGE.vm)")
	fl.BoolVar(&f.noReboot, "no-reboot", false, "exit when the guest reboots")
	network := fl.VarPF(&f.network, "network", "", "give the machine a network card on qemu's user-mode network (the host is 10.0.2.2)")
	network.NoOptDefVal = "yes"
	fl.StringVar(&f.kernel, "kernel", "", "boot this kernel `file` directly instead of the disk's boot loader")
	fl.StringVar(&f.initrd, "initrd", "", "initrd `file` for --kernel")
	fl.StringVar(&f.appendArgs, "append", "", "kernel command line for --kernel")
	fl.StringArrayVar(&f.qemuArgs, "qemu-arg", nil, "extra qemu `argument` (repeatable)")
	return cmd
}

// parseSizeFlag parses a byte size such as 512M or 8G (base 1024).
func parseSizeFlag(name, s string) (int64, error) {
	n, err := unitfile.ParseSize(s, 1024)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("--%s=%s: not a size (use e.g. 512M or 8G)", name, s)
	}
	return int64(n), nil
}

func (f *vmFlags) config(image string) (vm.Config, error) {
	cfg := vm.Config{
		Image: image, StateDir: f.stateDir,
		TPM: bool(f.tpm), SecureBoot: bool(f.secureBoot), SecureBootKeys: f.keys,
		CPUs: f.cpus, Snapshot: f.snapshot, NoReboot: f.noReboot, Network: bool(f.network),
		Kernel: f.kernel, Initrd: f.initrd, Append: f.appendArgs,
		ExtraArgs: f.qemuArgs,
	}
	switch f.keys {
	case vm.KeysNone, vm.KeysSnakeoil, vm.KeysMicrosoft:
	default:
		return cfg, fmt.Errorf("--secure-boot-keys=%s: want none, snakeoil or microsoft", f.keys)
	}
	switch f.accel {
	case "auto":
		cfg.Accel = vm.AccelAuto
	case vm.AccelKVM, vm.AccelTCG:
		cfg.Accel = f.accel
	default:
		return cfg, fmt.Errorf("--accel=%s: want auto, kvm or tcg", f.accel)
	}
	if f.cpus < 1 {
		return cfg, fmt.Errorf("--cpus=%d: want at least 1", f.cpus)
	}
	var err error
	if cfg.Memory, err = parseSizeFlag("memory", f.memory); err != nil {
		return cfg, err
	}
	if cfg.Memory < 64<<20 {
		return cfg, fmt.Errorf("--memory=%s: less than 64M (the unit is bytes unless a suffix says otherwise)", f.memory)
	}
	if f.diskSize != "" {
		if cfg.DiskSize, err = parseSizeFlag("disk-size", f.diskSize); err != nil {
			return cfg, err
		}
		if cfg.DiskSize == 0 {
			return cfg, errors.New("--disk-size=0: want a size")
		}
	}
	if (f.initrd != "" || f.appendArgs != "") && f.kernel == "" {
		return cfg, errors.New("--initrd and --append need --kernel")
	}
	if f.timeout < 0 {
		return cfg, fmt.Errorf("--timeout=%s: negative", f.timeout)
	}
	return cfg, nil
}

func (e *env) runVM(parent context.Context, f *vmFlags, image string) error {
	cfg, err := f.config(image)
	if err != nil {
		return err
	}
	if parent == nil {
		parent = context.Background()
	}
	ctx, stopSignals := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stopSignals()
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}

	term := e.terminal()
	if term != nil {
		cfg.Interactive = true
		// qemu sets the terminal to raw mode and restores it when it
		// exits normally; restoring here covers the other ways out.
		if saved, err := getTermios(term); err == nil {
			defer setTermios(term, saved)
		}
	} else {
		cfg.Console = e.stdout
	}
	cfg.Stderr = e.stderr
	cfg.Progress = func(msg string) { fmt.Fprintf(e.stderr, "imago vm: %s\n", msg) }

	m, err := vm.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Interactive {
		fmt.Fprintf(e.stderr, "imago vm: %s; Ctrl-A X quits\r\n", describeVM(m, &cfg))
	} else {
		fmt.Fprintf(e.stderr, "imago vm: %s\n", describeVM(m, &cfg))
	}
	waitErr := m.Wait()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && f.timeout > 0:
		return fmt.Errorf("vm: stopped after --timeout=%s; console log: %s", f.timeout, m.ConsoleLog())
	case ctx.Err() != nil && (parent.Err() == nil):
		return &ExitError{Code: 130, Message: "vm: stopped by a signal"}
	case waitErr != nil:
		return fmt.Errorf("%w; console log: %s", waitErr, m.ConsoleLog())
	}
	return nil
}

// describeVM says in one line what runs.
func describeVM(m *vm.Machine, cfg *vm.Config) string {
	parts := []string{m.Accel(), fmt.Sprintf("%d MiB", cfg.Memory>>20)}
	if cfg.TPM {
		parts = append(parts, "TPM")
	}
	if cfg.SecureBoot {
		keys := cfg.SecureBootKeys
		if keys == vm.KeysNone {
			keys = "setup mode"
		}
		parts = append(parts, "Secure Boot ("+keys+")")
	}
	if cfg.Snapshot {
		parts = append(parts, "snapshot")
	}
	return fmt.Sprintf("booting %s (%s), console log %s", m.Disk(), strings.Join(parts, ", "), m.ConsoleLog())
}

// terminal returns standard input when both it and standard output are
// terminals (the interactive case), else nil.
func (e *env) terminal() *os.File {
	in, ok1 := e.stdin.(*os.File)
	out, ok2 := e.stdout.(*os.File)
	if !ok1 || !ok2 {
		return nil
	}
	if _, err := getTermios(in); err != nil {
		return nil
	}
	if _, err := getTermios(out); err != nil {
		return nil
	}
	return in
}

func getTermios(f *os.File) (*syscall.Termios, error) {
	var t syscall.Termios
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t))); errno != 0 {
		return nil, errno
	}
	return &t, nil
}

func setTermios(f *os.File, t *syscall.Termios) {
	_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCSETS, uintptr(unsafe.Pointer(t)))
}
