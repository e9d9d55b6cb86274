// Package vmtest gives tests something to boot without an image build: the
// distribution's kernel, downloaded once and cached, and a minimal initrd
// whose /init (the testinit command) reports what the guest sees on the
// serial console as "IMAGO-VM-TEST: key=value" lines, keeps a boot counter
// in the first sector of the disk and then powers off, reboots or waits
// (echoing lines typed on the console as "typed=LINE").
//
// The kernel is Debian's (the package linux-image-amd64 depends on, as
// apt-cache resolves it), fetched with apt-get download and cached under
// <cache>/test-kernel/<package>/: vmlinuz and the few modules the init
// needs (virtio disk, efivarfs). <cache> is $IMAGO_CACHE_DIR, else
// /var/cache/imago for root, else $XDG_CACHE_HOME/imago.
package vmtest

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// Marker starts every line the test init prints.
const Marker = "IMAGO-VM-TEST: "

// CounterMagic marks a disk that holds the test init's boot counter.
const CounterMagic = "IMAGOVM1"

// Modules are the kernel modules the test init loads, by file name, in
// dependency order: Debian builds the virtio disk driver and efivarfs as
// modules.
var Modules = []string{
	"virtio_ring.ko", "virtio.ko", "virtio_pci_legacy_dev.ko", "virtio_pci_modern_dev.ko",
	"virtio_pci.ko", "virtio_blk.ko", "efivarfs.ko",
}

// Kernel is a distribution kernel unpacked for tests.
type Kernel struct {
	Package string   // the Debian package, e.g. linux-image-6.1.0-56-amd64
	Vmlinuz string   // path of the kernel image
	Modules []string // paths of the modules named in Modules
}

// CacheDir returns imago's cache directory: $IMAGO_CACHE_DIR, else
// /var/cache/imago for root, else $XDG_CACHE_HOME/imago (~/.cache/imago).
func CacheDir() (string, error) {
	if d := os.Getenv("IMAGO_CACHE_DIR"); d != "" {
		return d, nil
	}
	if os.Geteuid() == 0 {
		return "/var/cache/imago", nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "imago"), nil
}

var kernelMu sync.Mutex

// RequireKernel returns the cached test kernel, downloading it first when
// needed. Without apt or network access the test is skipped, or fails
// under CI.
func RequireKernel(t testing.TB) *Kernel {
	t.Helper()
	kernelMu.Lock()
	defer kernelMu.Unlock()
	k, err := kernel()
	if err != nil {
		msg := "test kernel: " + err.Error()
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return k
}

func debianArch() (string, error) {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return runtime.GOARCH, nil
	}
	return "", fmt.Errorf("no Debian kernel flavour known for %s", runtime.GOARCH)
}

func kernel() (*Kernel, error) {
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	arch, err := debianArch()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(cache, "test-kernel")
	pkg, resolveErr := candidatePackage("linux-image-" + arch)
	if resolveErr != nil {
		// Offline: use whatever was cached last.
		if dirs, _ := filepath.Glob(filepath.Join(base, "linux-image-*")); len(dirs) > 0 {
			pkg = filepath.Base(dirs[len(dirs)-1])
		} else {
			return nil, resolveErr
		}
	}
	dir := filepath.Join(base, pkg)
	if k, err := loadKernel(pkg, dir); err == nil {
		return k, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(base, ".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := downloadKernel(pkg, tmp); err != nil {
		return nil, err
	}
	// A rename makes the entry appear whole or not at all.
	_ = os.RemoveAll(dir)
	if err := os.Rename(filepath.Join(tmp, "out"), dir); err != nil {
		return nil, err
	}
	return loadKernel(pkg, dir)
}

func loadKernel(pkg, dir string) (*Kernel, error) {
	k := &Kernel{Package: pkg, Vmlinuz: filepath.Join(dir, "vmlinuz")}
	if _, err := os.Stat(k.Vmlinuz); err != nil {
		return nil, err
	}
	for _, m := range Modules {
		p := filepath.Join(dir, "modules", m)
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		k.Modules = append(k.Modules, p)
	}
	return k, nil
}

// candidatePackage returns the versioned kernel package a metapackage
// depends on, as apt resolves it now.
func candidatePackage(meta string) (string, error) {
	out, err := exec.Command("apt-cache", "depends", meta).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w", meta, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(dep, "linux-image-") {
			return dep, nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s: no linux-image dependency (run apt-get update)", meta)
}

// downloadKernel fetches pkg into dir and unpacks vmlinuz and the modules
// into dir/out, reading only those entries from the package's file tree.
func downloadKernel(pkg, dir string) error {
	dl := exec.Command("apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", pkg)
	dl.Dir = dir
	if out, err := dl.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: expected one .deb, found %d", pkg, len(debs))
	}
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(filepath.Join(out, "modules"), 0o755); err != nil {
		return err
	}
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", debs[0])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, m := range Modules {
		want[m] = true
	}
	found := map[string]bool{}
	tr := tar.NewReader(pipe)
	var extractErr error
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			extractErr = err
			break
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := filepath.Base(h.Name)
		var dst string
		switch {
		case strings.HasPrefix(h.Name, "./boot/vmlinuz-"):
			dst = filepath.Join(out, "vmlinuz")
		case strings.Contains(h.Name, "/lib/modules/") && want[name]:
			dst = filepath.Join(out, "modules", name)
		default:
			continue
		}
		if err := writeFrom(dst, tr); err != nil {
			extractErr = err
			break
		}
		found[filepath.Base(dst)] = true
	}
	// Drain so dpkg-deb does not die of a closed pipe.
	_, _ = io.Copy(io.Discard, pipe)
	if err := cmd.Wait(); err != nil && extractErr == nil {
		extractErr = fmt.Errorf("dpkg-deb --fsys-tarfile: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if extractErr != nil {
		return extractErr
	}
	if !found["vmlinuz"] {
		return fmt.Errorf("%s: no /boot/vmlinuz-*", filepath.Base(debs[0]))
	}
	for _, m := range Modules {
		if !found[m] {
			return fmt.Errorf("%s: module %s not found", filepath.Base(debs[0]), m)
		}
	}
	return nil
}

func writeFrom(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BuildInit compiles the testinit command as a static binary and returns
// its path in a temporary directory of t.
func BuildInit(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building the test init: the go command is not in $PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/imago-os/imago/vm/vmtest/testinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build testinit: %v\n%s", err, b)
	}
	return out
}

// Initrd writes an initrd (an uncompressed newc cpio archive) holding the
// test init as /init and k's modules under /lib/modules, and returns its
// path in a temporary directory of t.
func Initrd(t testing.TB, k *Kernel) string {
	t.Helper()
	initBin := BuildInit(t)
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	w.dir("dev")
	w.node("dev/console", 0o020600, 5, 1)
	for _, d := range []string{"proc", "sys", "lib", "lib/modules"} {
		w.dir(d)
	}
	w.fileFrom(t, "init", 0o100755, initBin)
	var order strings.Builder
	for _, m := range k.Modules {
		w.fileFrom(t, "lib/modules/"+filepath.Base(m), 0o100644, m)
		order.WriteString(filepath.Base(m) + "\n")
	}
	w.data("lib/modules/modules.order", 0o100644, []byte(order.String()))
	w.trailer()
	path := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Append returns a kernel command line for the test init: serial console,
// unthrottled /dev/kmsg, reboot at once on panic, and the init's mode
// (poweroff, reboot or hang).
func Append(mode string) string {
	console := "ttyS0"
	if runtime.GOARCH == "arm64" {
		console = "ttyAMA0"
	}
	return "console=" + console + " printk.devkmsg=on panic=-1 imagotest.mode=" + mode
}

// NewDisk creates a sparse, zero-filled disk image of size bytes in a
// temporary directory of t.
func NewDisk(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// ReadCounter returns the boot counter the test init keeps in the first
// sector of the disk image at path: 0 when the disk was never booted.
func ReadCounter(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, 16)
	if _, err := io.ReadFull(f, b); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if string(b[:8]) != CounterMagic {
		return 0, nil
	}
	return binary.LittleEndian.Uint64(b[8:]), nil
}

// cpioWriter writes the "newc" cpio format the kernel unpacks as an
// initramfs: a 110-byte ASCII header, the NUL-terminated name and the data,
// each padded to four bytes.
type cpioWriter struct {
	w   *bytes.Buffer
	ino uint32
}

func (c *cpioWriter) header(name string, mode uint32, size int, rdevMajor, rdevMinor uint32, nlink uint32) {
	c.ino++
	fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.w.WriteString(name)
	c.w.WriteByte(0)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
}

func (c *cpioWriter) dir(name string) { c.header(name, 0o040755, 0, 0, 0, 2) }

func (c *cpioWriter) node(name string, mode, major, minor uint32) {
	c.header(name, mode, 0, major, minor, 1)
}

func (c *cpioWriter) fileFrom(t testing.TB, name string, mode uint32, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c.data(name, mode, data)
}

func (c *cpioWriter) data(name string, mode uint32, data []byte) {
	c.header(name, mode, len(data), 0, 0, 1)
	c.w.Write(data)
	c.pad()
}

func (c *cpioWriter) trailer() { c.header("TRAILER!!!", 0, 0, 0, 0, 1) }

// RequireMachine skips the test, or fails it under CI, unless this host
// can boot the x86-64 guests of the tests: qemu-system-x86_64, swtpm and
// OVMF. Short tests skip it.
func RequireMachine(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the boot tests run on x86-64")
	}
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	testutil.RequireTool(t, "swtpm", "swtpm")
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE_4M.fd"); err != nil {
		if testutil.InCI() {
			t.Fatal("OVMF not found (install the Debian package ovmf)")
		}
		t.Skip("OVMF not found (install the Debian package ovmf)")
	}
}
