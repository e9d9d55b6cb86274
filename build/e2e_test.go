package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-os/imago/build/config"
	"github.com/imago-os/imago/build/reference"
	"github.com/imago-os/imago/dissect"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/vm"
	"github.com/imago-os/imago/vm/vmtest"
)

// The end-to-end tests build the reference image once per test binary and
// boot copies of it in qemu. Under software emulation a first boot (which
// formats the encrypted root with a memory-hard key derivation) takes
// minutes, so every wait below is generous but bounded, and a failure
// prints the end of the serial console and the path of its whole log.

// referencePassword is the root password of the reference image.
const referencePassword = "imago"

// testEpoch is the SOURCE_DATE_EPOCH of the test builds.
var testEpoch = time.Unix(1700000000, 0).UTC()

// shared is the reference image built for the whole test binary.
var shared struct {
	once sync.Once
	dir  string // removed by TestMain
	res  *Result
	keys string
	err  error
	log  strings.Builder
}

// imagoExe is the imago executable the reference image gets
// (InstallImago=yes), built once per test binary.
var imagoExe struct {
	once sync.Once
	dir  string // removed by TestMain
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{shared.dir, imagoExe.dir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// imagoBinary builds cmd/imago, statically, for the images the tests build.
func imagoBinary(t *testing.T) string {
	t.Helper()
	imagoExe.once.Do(func() {
		if imagoExe.dir, imagoExe.err = os.MkdirTemp("", "imago-exe-"); imagoExe.err != nil {
			return
		}
		imagoExe.path = filepath.Join(imagoExe.dir, "imago")
		cmd := exec.Command("go", "build", "-trimpath", "-o", imagoExe.path, "github.com/imago-os/imago/cmd/imago")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			imagoExe.err = fmt.Errorf("go build cmd/imago: %v\n%s", err, out)
		}
	})
	if imagoExe.err != nil {
		t.Fatal(imagoExe.err)
	}
	return imagoExe.path
}

// requireBuild skips (or, for a missing tool, fails under CI) when the
// reference image cannot be built here.
func requireBuild(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: builds the reference image")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	testutil.RequireTool(t, "mmdebstrap", "mmdebstrap")
	testutil.RequireTool(t, "mkfs.erofs", "erofs-utils")
	testutil.RequireTool(t, "mcopy", "mtools")
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
}

// sharedReference returns the reference image built with testEpoch and a
// key set of its own, building it on first use.
func sharedReference(t *testing.T) *Result {
	t.Helper()
	requireBuild(t)
	exe := imagoBinary(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "imago-e2e-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = dir
		shared.keys = filepath.Join(dir, "keys")
		def := filepath.Join(dir, "definition")
		if _, err := reference.WriteTo(def, false); err != nil {
			shared.err = err
			return
		}
		d, err := config.Load(def, config.Options{OutputDirectory: filepath.Join(dir, "out")})
		if err != nil {
			shared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
		defer cancel()
		epoch := testEpoch
		start := time.Now()
		shared.res, shared.err = Run(ctx, d, Options{SourceDateEpoch: &epoch, KeysDir: shared.keys, ImagoBinary: exe, Progress: func(m string) {
			if !strings.HasPrefix(m, "I: ") {
				fmt.Fprintln(&shared.log, m)
			}
		}})
		fmt.Fprintf(&shared.log, "built in %s\n", time.Since(start).Round(time.Millisecond))
	})
	if shared.err != nil {
		t.Fatalf("building the reference image: %v\n%s", shared.err, shared.log.String())
	}
	return shared.res
}

// Timeouts of the waits on a guest, for software emulation on a busy
// two-core host; KVM needs a small fraction of them.
const (
	firstBootTimeout = 25 * time.Minute
	bootTimeout      = 15 * time.Minute
	commandTimeout   = 5 * time.Minute
	powerOffTimeout  = 5 * time.Minute
)

// boot starts the reference image's machine described by cfg.
func boot(t *testing.T, cfg vm.Config) *vm.Machine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), firstBootTimeout+time.Hour)
	t.Cleanup(cancel)
	start := time.Now()
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill() })
	t.Logf("started %s (%s) in %s", m.Disk(), m.Accel(), time.Since(start).Round(time.Millisecond))
	return m
}

// guest is a root shell on a booted machine's serial console.
type guest struct {
	t *testing.T
	m *vm.Machine
}

// A report line may follow a carriage return on the same console line:
// bash ends its bracketed-paste mode with "ESC[?2004l\r" before the first
// output of the command it executes.
var (
	loginPrompt    = regexp.MustCompile(`login: $`)
	passwordPrompt = regexp.MustCompile(`^Password: $`)
	shellPrompt    = regexp.MustCompile(`# $`)
	factLine       = regexp.MustCompile(`(?:^|\r)E2E(?:-(DONE)| ([a-z0-9_]+)=(.*))$`)
)

// fatal stops the test with the end of the console.
func (g *guest) fatal(format string, args ...any) {
	g.t.Helper()
	g.t.Fatalf("%s\nconsole (whole log: %s):\n%s", fmt.Sprintf(format, args...), g.m.ConsoleLog(), g.m.ConsoleTail(60))
}

// login waits for the login prompt, logs in as root and turns the session
// into a plain sh without prompt, echo or kernel messages, so that what
// the console shows next is only what commands print.
func login(t *testing.T, m *vm.Machine, timeout time.Duration) *guest {
	t.Helper()
	g := &guest{t: t, m: m}
	ctx := context.Background()
	start := time.Now()
	if _, err := m.WaitForPrompt(ctx, loginPrompt, timeout); err != nil {
		g.fatal("no login prompt: %v", err)
	}
	t.Logf("login prompt after %s", time.Since(start).Round(time.Second))
	g.typeLine("root")
	if _, err := m.WaitForPrompt(ctx, passwordPrompt, commandTimeout); err != nil {
		g.fatal("no password prompt: %v", err)
	}
	g.typeLine(referencePassword)
	if _, err := m.WaitForPrompt(ctx, shellPrompt, commandTimeout); err != nil {
		g.fatal("no shell after logging in as root: %v", err)
	}
	g.typeLine("exec env PS1= PS2= /bin/sh")
	g.facts("stty -echo; dmesg -n 1")
	return g
}

func (g *guest) typeLine(s string) {
	g.t.Helper()
	if err := g.m.Type(s + "\n"); err != nil {
		g.fatal("typing on the console: %v", err)
	}
}

// factFunction is typed first: "f NAME COMMAND" prints COMMAND's output
// (and errors) on one line as "E2E NAME=...".
const factFunction = `f() { printf 'E2E %s=%s\n' "$1" "$(eval "$2" 2>&1 | tr '\n' ' ' | sed 's/ *$//')"; }`

// facts runs the lines of script and collects the "E2E name=value" lines
// they print. The end marker is typed so that its echo, if any, does not
// match.
func (g *guest) facts(script string) map[string]string {
	g.t.Helper()
	return g.factsWithin(commandTimeout, script)
}

// factsWithin is facts with a longer wait for each report line.
func (g *guest) factsWithin(timeout time.Duration, script string) map[string]string {
	g.t.Helper()
	g.typeLine(factFunction)
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		g.typeLine(line)
	}
	g.typeLine(`echo E2E''-DONE`)
	f := map[string]string{}
	for {
		sub, err := g.m.WaitFor(context.Background(), factLine, timeout)
		if err != nil {
			g.fatal("waiting for the guest's report: %v", err)
		}
		if sub[1] == "DONE" {
			break
		}
		f[sub[2]] = sub[3]
	}
	// A report line that does not stand alone on the console (something
	// else printed on it first) would read as an empty fact.
	for _, name := range factNames.FindAllStringSubmatch(script, -1) {
		if _, ok := f[name[1]]; !ok {
			g.fatal("the guest's report has no line for %q", name[1])
		}
	}
	return f
}

// factNames finds the names of the "f NAME COMMAND" lines of a script.
var factNames = regexp.MustCompile(`(?m)^f ([a-z0-9_]+) `)

// powerOff shuts the guest down from its shell and waits for qemu to exit.
func (g *guest) powerOff() {
	g.t.Helper()
	g.typeLine("systemctl poweroff")
	select {
	case <-g.m.Done():
	case <-time.After(powerOffTimeout):
		g.fatal("the guest did not power off within %s", powerOffTimeout)
	}
	if err := g.m.Wait(); err != nil {
		g.fatal("qemu: %v", err)
	}
}

func expect(t *testing.T, f map[string]string, key, want string) {
	t.Helper()
	if f[key] != want {
		t.Errorf("guest: %s=%q, want %q", key, f[key], want)
	}
}

// openDisk dissects a disk image, checking the verity groups' hash trees
// when verify is set.
func openDisk(t *testing.T, path string, verify bool) *dissect.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	img, err := dissect.Open(f, fi.Size(), dissect.Options{VerifyHashTree: verify})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// partitionsByRole names the partitions of a dissected image: "esp",
// "root", "swap", "home", "usr-a", "usr-a-verity", "usr-a-verity-sig" and
// "usr-b…" for the free slot.
func partitionsByRole(t *testing.T, img *dissect.Image, label string) map[string]dissect.Partition {
	t.Helper()
	roles := map[string]dissect.Partition{}
	for _, p := range img.Partitions {
		role := strings.TrimSuffix(p.TypeName, "-x86-64")
		if strings.HasPrefix(p.TypeName, "usr-") {
			role = "usr" + strings.TrimPrefix(p.TypeName, "usr-x86-64")
			switch {
			case p.Empty:
				role = strings.Replace(role, "usr", "usr-b", 1)
			case strings.HasPrefix(p.Label, label):
				role = strings.Replace(role, "usr", "usr-a", 1)
			}
		}
		if _, dup := roles[role]; dup {
			t.Errorf("two %s partitions: %+v", role, img.Partitions)
		}
		roles[role] = p
		t.Logf("partition %d: %-22s %-28s %6d MiB  %v", p.Number, p.TypeName, p.Label, p.Size>>20, p.Flags)
	}
	return roles
}

// The guest's reports. Each line is typed on the console: keep them short.
const (
	firstBootScript = `
f usr_source 'findmnt -no SOURCE /usr'
f usr_fstype 'findmnt -no FSTYPE /usr'
f usr_verity 'veritysetup status usr | sed -n "s/^ *status: *//p"'
f root_dm 'lsblk -dno NAME,TYPE $(findmnt -no SOURCE /) | tr -s " "'
f root_fstype 'findmnt -no FSTYPE /'
f root_type 'cryptsetup status root | sed -n "s/^ *type: *//p"'
D=$(cryptsetup status root | sed -n "s/^ *device: *//p")
f root_policy 'cryptsetup token export --token-id 0 $D | grep -o "tpm2[-_]p[a-z_]*crs\":\[[0-9,]*\]"'
f home_dm 'lsblk -dno NAME,TYPE $(findmnt -no SOURCE /home) | tr -s " "'
f home_fstype 'findmnt -no FSTYPE /home'
f swap_dm 'lsblk -dno NAME,TYPE $(swapon --show=NAME --noheadings) | tr -s " "'
f tpm 'test -c /dev/tpmrm0 && echo present'
f machine_id 'cat /etc/machine-id'
f keyring 'test -s /usr/lib/systemd/import-pubring.gpg && echo present'
f state 'timeout 300 systemctl is-system-running --wait'
f failed 'systemctl --failed --plain --no-legend | cut -d" " -f1'
`
	secondBootScript = `
f root_type 'cryptsetup status root | sed -n "s/^ *type: *//p"'
f machine_id 'cat /etc/machine-id'
f token 'cat /root/e2e-token'
f usr_verity 'veritysetup status usr | sed -n "s/^ *status: *//p"'
f good_block 'dd if=/dev/mapper/usr of=/dev/null bs=4096 count=1 >/dev/null 2>&1 && echo read'
f bad_block 'dd if=/dev/mapper/usr of=/dev/null bs=4096 skip=%d count=1 iflag=direct 2>&1 | grep -o "Input/output error" | head -n1'
f usr_verity_after 'veritysetup status usr | sed -n "s/^ *status: *//p"'
f state 'timeout 300 systemctl is-system-running --wait'
f failed 'systemctl --failed --plain --no-legend | cut -d" " -f1'
`
)

// TestReferenceImageFirstAndSecondBoot boots a copy of the reference
// image twice with a TPM. The first boot instantiates the disk (root,
// home and swap encrypted and bound to the TPM, the empty B slot) and
// reaches a login prompt with no failed units; between the boots one byte
// of the /usr partition is flipped, which `dissect` finds offline; the
// second boot unlocks the root through the TPM without a prompt, keeps the
// first boot's data and machine ID, and dm-verity refuses the flipped
// block while the rest of /usr reads.
func TestReferenceImageFirstAndSecondBoot(t *testing.T) {
	res := sharedReference(t)
	vmtest.RequireMachine(t)
	// 4 GiB leave room for /home besides root and swap.
	cfg := vm.Config{Image: res.Image, StateDir: filepath.Join(t.TempDir(), "machine"), TPM: true, DiskSize: 4 << 30}

	// First boot.
	m := boot(t, cfg)
	start := time.Now()
	g := login(t, m, firstBootTimeout)
	t.Logf("first boot: logged in after %s", time.Since(start).Round(time.Second))
	f := g.facts(firstBootScript)
	t.Logf("first boot: %v", f)
	expect(t, f, "usr_source", "/dev/mapper/usr")
	expect(t, f, "usr_fstype", "erofs")
	expect(t, f, "usr_verity", "verified")
	expect(t, f, "root_dm", "root crypt")
	expect(t, f, "root_fstype", "btrfs")
	expect(t, f, "root_type", "LUKS2")
	// Bound to the UKI's PCR public key for PCR 11 and to PCR 7.
	expect(t, f, "root_policy", `tpm2-pcrs":[7] tpm2_pubkey_pcrs":[11]`)
	expect(t, f, "home_dm", "home crypt")
	expect(t, f, "home_fstype", "btrfs")
	expect(t, f, "swap_dm", "swap crypt")
	expect(t, f, "tpm", "present")
	expect(t, f, "keyring", "present")
	expect(t, f, "state", "running")
	expect(t, f, "failed", "")
	machineID := f["machine_id"]
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(machineID) {
		t.Errorf("machine ID %q", machineID)
	}
	var tok [8]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	if w := g.facts(fmt.Sprintf("f wrote 'echo %s >/root/e2e-token && sync && echo yes'", token)); w["wrote"] != "yes" {
		t.Errorf("writing /root/e2e-token: %q", w["wrote"])
	}
	g.powerOff()
	if t.Failed() {
		t.Fatalf("first boot failed; console log: %s", m.ConsoleLog())
	}
	disk := m.Disk()

	// The disk as the first boot left it.
	img := openDisk(t, disk, false)
	parts := partitionsByRole(t, img, res.Label)
	for _, role := range []string{"esp", "usr-a", "usr-a-verity", "usr-a-verity-sig", "usr-b", "usr-b-verity", "usr-b-verity-sig", "root", "home", "swap"} {
		if _, ok := parts[role]; !ok {
			t.Errorf("no %s partition after the first boot", role)
		}
	}
	if p := parts["usr-b"]; p.Size != parts["usr-a"].Size {
		t.Errorf("slot B is %d bytes, slot A %d", p.Size, parts["usr-a"].Size)
	}
	for _, role := range []string{"usr-a", "usr-b", "usr-a-verity", "usr-b-verity"} {
		if p := parts[role]; !contains(p.Flags, "read-only") {
			t.Errorf("%s partition flags %v, want read-only", role, p.Flags)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// One flipped byte in a block of /usr that booting does not read: in
	// the zero padding after the file system, away from its end, where
	// blkid looks for signatures.
	usr := parts["usr-a"]
	block := usr.Size / 4096 * 3 / 4
	requireZeroBlock(t, disk, usr.Offset+block*4096)
	flipByte(t, disk, usr.Offset+block*4096+123)
	img = openDisk(t, disk, true)
	for _, vg := range img.VerityGroups {
		if vg.Empty {
			continue
		}
		if vg.HashTree.Status != dissect.StatusFailed || !strings.Contains(vg.HashTree.Detail, "data block "+strconv.FormatInt(block, 10)) {
			t.Errorf("dissect --verify after the flip: %+v, want a failure naming data block %d", vg.HashTree, block)
		}
	}

	// Second boot.
	m = boot(t, cfg)
	start = time.Now()
	g = login(t, m, bootTimeout)
	t.Logf("second boot: logged in after %s", time.Since(start).Round(time.Second))
	f = g.facts(fmt.Sprintf(secondBootScript, block))
	t.Logf("second boot: %v", f)
	expect(t, f, "root_type", "LUKS2")
	expect(t, f, "machine_id", machineID)
	expect(t, f, "token", token)
	expect(t, f, "usr_verity", "verified")
	expect(t, f, "good_block", "read")
	expect(t, f, "bad_block", "Input/output error")
	expect(t, f, "usr_verity_after", "corrupted")
	expect(t, f, "state", "running")
	expect(t, f, "failed", "")
	if strings.Contains(m.Console(), "Please enter passphrase") {
		t.Error("the second boot asked for a passphrase")
	}
	g.powerOff()
	if t.Failed() {
		t.Logf("console log: %s", m.ConsoleLog())
	}
}

// TestReferenceImageGrowsWithTheDisk: the first boot on a bigger disk
// makes a bigger root file system. It stops the machine once the initrd
// has switched to the new root, which is after systemd-repart wrote the
// table.
func TestReferenceImageGrowsWithTheDisk(t *testing.T) {
	res := sharedReference(t)
	vmtest.RequireMachine(t)
	sizes := map[int64]int64{}
	homes := map[int64]bool{}
	for _, diskSize := range []int64{3 << 30, 6 << 30} {
		cfg := vm.Config{Image: res.Image, StateDir: filepath.Join(t.TempDir(), "machine"), TPM: true, DiskSize: diskSize}
		m := boot(t, cfg)
		g := &guest{t: t, m: m}
		start := time.Now()
		if _, err := m.WaitFor(context.Background(), regexp.MustCompile(`Reached target .*Switch Root`), firstBootTimeout); err != nil {
			g.fatal("disk of %d GiB: the initrd did not reach initrd-switch-root.target: %v", diskSize>>30, err)
		}
		t.Logf("disk of %d GiB: switching root after %s", diskSize>>30, time.Since(start).Round(time.Second))
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
		m.Wait()
		parts := partitionsByRole(t, openDisk(t, m.Disk(), false), res.Label)
		root, ok := parts["root"]
		if !ok {
			t.Fatalf("disk of %d GiB: no root partition", diskSize>>30)
		}
		sizes[diskSize] = root.Size
		_, homes[diskSize] = parts["home"]
	}
	small, big := sizes[3<<30], sizes[6<<30]
	if homes[3<<30] || !homes[6<<30] {
		t.Errorf("home partition on 3 GiB: %v, on 6 GiB: %v; want it left out (Priority=1) where root, swap and home do not fit", homes[3<<30], homes[6<<30])
	}
	// The root takes the weight-1000 share of the space the fixed-size
	// partitions leave: two thirds of the extra 3 GiB, home getting the rest.
	if big-small < 3<<29 {
		t.Errorf("root is %d MiB on a 3 GiB disk and %d MiB on a 6 GiB disk: it did not grow with the disk", small>>20, big>>20)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// requireZeroBlock stops the test unless the 4096 bytes at off of the file
// at path are zeros: padding no file lives in.
func requireZeroBlock(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for _, c := range b {
		if c != 0 {
			t.Fatalf("%s: the block at %d is not zero padding", path, off)
		}
	}
}

// flipByte inverts the byte at off of the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
