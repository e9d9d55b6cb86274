// Package toolexec runs the external programs imago's engines depend on
// (mkfs.*, mcopy, mksquashfs, ...). It finds a tool in $PATH and in the
// system directories that are often missing from $PATH, runs it under a
// context, and turns a failure into an *Error that names the tool, its
// arguments, its exit status and the last lines it printed, so that a failed
// build says which program failed and why. A missing tool is reported with
// the Debian package that provides it.
//
// Only engines and pipelines use this package; format packages never run
// programs.
package toolexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrNotFound is matched (with errors.Is) by the error Find and Run return
// when a tool is not installed.
var ErrNotFound = errors.New("tool not found")

// extraDirs are searched after $PATH: mkfs tools live in /usr/sbin, which a
// non-root $PATH often lacks, and some systemd helpers are not in any $PATH.
var extraDirs = []string{"/usr/sbin", "/sbin", "/usr/lib/systemd", "/lib/systemd"}

// debianPackages maps a tool to the Debian 12 package that ships it, for the
// "install ..." hint of a missing tool.
var debianPackages = map[string]string{
	"blkid":               "util-linux",
	"btrfs":               "btrfs-progs",
	"chroot":              "coreutils",
	"cpio":                "cpio",
	"cryptsetup":          "cryptsetup-bin",
	"debugfs":             "e2fsprogs",
	"dpkg-deb":            "dpkg",
	"dpkg-query":          "dpkg",
	"dump.erofs":          "erofs-utils",
	"dumpe2fs":            "e2fsprogs",
	"e2fsck":              "e2fsprogs",
	"fsck.erofs":          "erofs-utils",
	"fsck.ext4":           "e2fsprogs",
	"fsck.fat":            "dosfstools",
	"fsck.vfat":           "dosfstools",
	"gpg":                 "gpg",
	"gzip":                "gzip",
	"mcopy":               "mtools",
	"mdir":                "mtools",
	"mke2fs":              "e2fsprogs",
	"mkfs.btrfs":          "btrfs-progs",
	"mkfs.erofs":          "erofs-utils",
	"mkfs.ext2":           "e2fsprogs",
	"mkfs.ext3":           "e2fsprogs",
	"mkfs.ext4":           "e2fsprogs",
	"mkfs.fat":            "dosfstools",
	"mkfs.vfat":           "dosfstools",
	"mkfs.xfs":            "xfsprogs",
	"mksquashfs":          "squashfs-tools",
	"mkswap":              "util-linux",
	"mmd":                 "mtools",
	"mmdebstrap":          "mmdebstrap",
	"mount":               "mount",
	"objcopy":             "binutils",
	"openssl":             "openssl",
	"osslsigncode":        "osslsigncode",
	"qemu-img":            "qemu-utils",
	"qemu-system-aarch64": "qemu-system-arm",
	"qemu-system-x86_64":  "qemu-system-x86",
	"sbsign":              "sbsigntool",
	"sbverify":            "sbsigntool",
	"sfdisk":              "fdisk",
	"swaplabel":           "util-linux",
	"swtpm":               "swtpm",
	"swtpm_setup":         "swtpm-tools",
	"systemd-analyze":     "systemd",
	"systemd-creds":       "systemd",
	"systemd-measure":     "systemd",
	"systemd-nspawn":      "systemd-container",
	"systemd-repart":      "systemd",
	"tar":                 "tar",
	"tpm2_pcrread":        "tpm2-tools",
	"unshare":             "util-linux",
	"unsquashfs":          "squashfs-tools",
	"veritysetup":         "cryptsetup-bin",
	"xfs_db":              "xfsprogs",
	"xfs_repair":          "xfsprogs",
	"xorriso":             "xorriso",
	"zstd":                "zstd",
}

// Package returns the Debian package that provides tool, or "" when the
// table does not know it.
func Package(tool string) string { return debianPackages[filepath.Base(tool)] }

// NotFoundError says that a tool is not installed and which package would
// provide it.
type NotFoundError struct {
	Tool    string
	Package string // "" when unknown
}

func (e *NotFoundError) Error() string {
	if e.Package == "" {
		return e.Tool + " not found"
	}
	return e.Tool + " not found: install the Debian package " + e.Package
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Find returns the path of the executable name: name itself when it
// contains a slash, otherwise the first match in $PATH, then /usr/sbin,
// /sbin, /usr/lib/systemd and /lib/systemd.
func Find(name string) (string, error) {
	if name == "" {
		return "", &NotFoundError{Tool: `""`}
	}
	if strings.ContainsRune(name, '/') {
		if isExecutable(name) {
			return name, nil
		}
		return "", &NotFoundError{Tool: name, Package: Package(name)}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range extraDirs {
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", &NotFoundError{Tool: name, Package: Package(name)}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Option adjusts how Run starts a program.
type Option func(*config)

type config struct {
	env      []string
	unset    []string
	cleanEnv bool
	stdin    io.Reader
	dir      string
	stderr   io.Writer
}

// Env adds KEY=VALUE entries to the program's environment; they override
// inherited variables of the same name.
func Env(kv ...string) Option {
	return func(c *config) { c.env = append(c.env, kv...) }
}

// UnsetEnv removes variables from the inherited environment, so that, for
// example, a SOURCE_DATE_EPOCH of the caller's shell does not leak into a
// build that did not ask for it.
func UnsetEnv(keys ...string) Option {
	return func(c *config) { c.unset = append(c.unset, keys...) }
}

// CleanEnv starts the program with no inherited environment: only the
// entries given with Env.
func CleanEnv() Option { return func(c *config) { c.cleanEnv = true } }

// Stdin feeds r to the program's standard input (default: empty).
func Stdin(r io.Reader) Option { return func(c *config) { c.stdin = r } }

// Dir runs the program in dir.
func Dir(dir string) Option { return func(c *config) { c.dir = dir } }

// Stderr copies the program's standard error to w as it runs, in addition
// to keeping its tail for the error.
func Stderr(w io.Writer) Option { return func(c *config) { c.stderr = w } }

// tailLines is how many lines of output an Error keeps.
const tailLines = 20

// Error is a program that could not be started, was stopped, or exited
// with a non-zero status.
type Error struct {
	Tool     string   // the name Run was given
	Path     string   // the executable that ran
	Args     []string // the arguments, without the program name
	ExitCode int      // the exit status; -1 when the program did not exit normally
	Output   []string // the last lines of standard error, or of standard output when standard error was empty
	Err      error    // the underlying cause (*exec.ExitError, a context error, ...)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Tool)
	if len(e.Args) > 0 {
		b.WriteString(" ")
		b.WriteString(shortArgs(e.Args))
	}
	b.WriteString(": ")
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	} else {
		b.WriteString(e.Err.Error())
	}
	if len(e.Output) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Output, "\n\t"))
	}
	return b.String()
}

// Unwrap returns the cause, so that errors.Is(err, context.Canceled) works.
func (e *Error) Unwrap() error { return e.Err }

// shortArgs renders the arguments for a message, cut short when long
// (mcopy, for one, gets every top-level entry of a tree).
func shortArgs(args []string) string {
	const max = 300
	s := strings.Join(args, " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// Run runs the tool name with args and returns its standard output. The
// program is killed when ctx is done. A non-zero exit, a failure to start
// or a cancellation is returned as *Error; a missing tool as
// *NotFoundError.
func Run(ctx context.Context, name string, args []string, opts ...Option) ([]byte, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	path, err := Find(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = c.dir
	cmd.Env = buildEnv(c)
	if c.stdin != nil {
		cmd.Stdin = c.stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if c.stderr != nil {
		cmd.Stderr = io.MultiWriter(&stderr, c.stderr)
	}
	// The program gets its own process group so that cancelling kills the
	// helpers it started too (a shell script's children would otherwise keep
	// the output pipes open). Callers cancel ctx on SIGINT/SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if runErr == nil {
		return stdout.Bytes(), nil
	}
	e := &Error{Tool: name, Path: path, Args: args, ExitCode: -1, Err: runErr}
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) && exitErr.Exited() {
		e.ExitCode = exitErr.ExitCode()
	}
	if ctx.Err() != nil {
		// Report the cancellation rather than "signal: killed".
		e.ExitCode = -1
		e.Err = fmt.Errorf("%w (%v)", ctx.Err(), runErr)
	}
	e.Output = lastLines(stderr.Bytes(), tailLines)
	if len(e.Output) == 0 {
		e.Output = lastLines(stdout.Bytes(), tailLines)
	}
	return stdout.Bytes(), e
}

// buildEnv assembles the environment: inherited (unless cleanEnv) minus
// unset and overridden names, plus the added entries.
func buildEnv(c config) []string {
	drop := map[string]bool{}
	for _, k := range c.unset {
		drop[k] = true
	}
	for _, kv := range c.env {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	var env []string
	if !c.cleanEnv {
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if !drop[k] {
				env = append(env, kv)
			}
		}
	}
	env = append(env, c.env...)
	if env == nil {
		// A nil Env would mean "inherit" to os/exec.
		env = []string{}
	}
	return env
}

// lastLines returns at most n last non-empty lines of out, with trailing
// whitespace removed.
func lastLines(out []byte, n int) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
