package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/bootentry"
	"github.com/imago-os/imago/publish"
	"github.com/imago-os/imago/vm"
	"github.com/imago-os/imago/vm/vmtest"
)

// updateServerAddr is where the reference image's sysupdate.d transfers
// look for updates (http://10.0.2.2:8070/ in a qemu guest with user-mode
// networking is the host's loopback port 8070).
const updateServerAddr = "127.0.0.1:8070"

// updateTimeout bounds one `imago update update` in the guest: it
// downloads, decompresses and writes a 1 GiB /usr under emulation.
const updateTimeout = 20 * time.Minute

// brokenCmdline makes a UKI that panics before userspace: the kernel finds
// no init in the initrd and no root device, and reboots after 5 s.
const brokenCmdline = "rdinit=/imago-no-such-init panic=5"

// buildVersion builds the reference definition as version, with the
// shared build's keys (so that the TPM policy and the update signature
// match), and extra kernel command line words if cmdline is not empty.
func buildVersion(t *testing.T, version, cmdline string) *Result {
	t.Helper()
	sharedReference(t)
	start := time.Now()
	res := buildReference(t, filepath.Join(t.TempDir(), "out"), shared.keys, testEpoch, version, cmdline)
	t.Logf("built version %s in %s", version, time.Since(start).Round(time.Second))
	return res
}

// publishBuild adds a build to the update directory, signed with the
// shared key set.
func publishBuild(t *testing.T, dir string, res *Result) {
	t.Helper()
	signer, err := publish.LoadSigner(shared.keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Run(context.Background(), []string{res.OutputDir}, publish.Options{Dir: dir, Signer: signer}); err != nil {
		t.Fatalf("publishing %s: %v", res.Label, err)
	}
}

// updateMachine is the machine the update tests boot: image's build on a
// 5 GiB disk, with a TPM and a network card to reach the update server.
func updateMachine(t *testing.T, image *Result) vm.Config {
	return vm.Config{Image: image.Image, StateDir: filepath.Join(t.TempDir(), "machine"), TPM: true, Network: true, DiskSize: 5 << 30}
}

// serveUpdates publishes first into a new update directory and serves it
// on the update server's address until the test ends; it returns the
// directory, for more versions.
func serveUpdates(t *testing.T, first *Result) string {
	t.Helper()
	dir := t.TempDir()
	publishBuild(t, dir, first)
	ln, err := net.Listen("tcp", updateServerAddr)
	if err != nil {
		t.Fatalf("update server: %v", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("update server: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return dir
}

// powerCuts is how many times the update test cuts the power during an
// update: IMAGO_E2E_POWER_CUTS, 2 by default (TestReferenceImagePowerCutSoak
// makes more).
func powerCuts(t *testing.T) int {
	s := os.Getenv("IMAGO_E2E_POWER_CUTS")
	if s == "" {
		return 2
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("IMAGO_E2E_POWER_CUTS=%q is not a count", s)
	}
	return n
}

// updateScript runs one update in the guest and reports its exit status,
// the end of its output and the UKIs on the ESP.
const updateScript = `
f update 'imago update update >/run/imago-update.log 2>&1; echo $?'
f log 'tail -n 4 /run/imago-update.log'
f ukis 'ls /boot/EFI/Linux'
`

// bootedScript reports what the guest booted. It stops the update timer
// first, so that only the test starts updates.
const bootedScript = `
f timer 'systemctl stop imago-update.timer'
f version '. /usr/lib/os-release; echo $IMAGE_VERSION'
f state 'systemctl is-system-running --wait'
f failed 'systemctl --failed --no-legend --plain | cut -d" " -f1'
f usr_slot 'ls /sys/block/$(basename $(readlink -f /dev/mapper/usr))/slaves'
f clock 'date +%s'
`

func TestReferenceImageUpdate(t *testing.T) {
	v1 := sharedReference(t)
	vmtest.RequireMachine(t)
	v2 := buildVersion(t, "2", "")
	v3 := buildVersion(t, "3", brokenCmdline)
	v4 := buildVersion(t, "4", "")
	pub := serveUpdates(t, v2)
	cfg := updateMachine(t, v1)

	// Version 1 finds version 2 and installs it into the empty B slot.
	m := boot(t, cfg)
	g := login(t, m, firstBootTimeout)
	f := g.facts(bootedScript + `
f check 'imago update check-new'
f plan 'imago update update --plan --json | grep -c "\"signatureChecked\": true"'
f disk_speed 'dd if=/dev/zero of=/var/tmp/speed bs=1M count=256 conv=fsync 2>&1 | tail -n 1; rm -f /var/tmp/speed'
`)
	expect(t, f, "version", "1")
	expect(t, f, "state", "running")
	expect(t, f, "check", "2")
	expect(t, f, "plan", "4")
	slotA := f["usr_slot"]
	t.Logf("v1: /usr on %s; guest disk write speed: %s", slotA, f["disk_speed"])
	start := time.Now()
	f = g.factsWithin(updateTimeout, updateScript)
	updateTime := time.Since(start)
	t.Logf("update to v2 took %s: %s", updateTime.Round(time.Second), f["log"])
	expect(t, f, "update", "0")
	expect(t, f, "ukis", "imago-ref_1.efi imago-ref_2+3-0.efi")
	f = g.facts(`
f pending 'imago update pending >/dev/null; echo $?'
f check 'imago update check-new; echo $?'
`)
	expect(t, f, "pending", "0")
	expect(t, f, "check", "1")

	// Version 2 boots with its three tries, from the other slot, and is
	// marked good once boot-complete.target is reached.
	g.typeLine("systemctl reboot")
	g = login(t, m, firstBootTimeout)
	f = g.facts(bootedScript + `
f selected 'imago boot status --json | grep -o "\"loaderEntrySelected\": \"[^\"]*\""'
f blessed 'systemctl is-active systemd-bless-boot.service'
f ukis 'ls /boot/EFI/Linux'
f booted 'imago boot list --json | grep -c "\"selected\": true"'
`)
	expect(t, f, "version", "2")
	expect(t, f, "state", "running")
	expect(t, f, "failed", "")
	expect(t, f, "blessed", "active")
	expect(t, f, "ukis", "imago-ref_1.efi imago-ref_2.efi")
	expect(t, f, "booted", "1")
	if !strings.Contains(f["selected"], "imago-ref_2+3-0.efi") {
		t.Errorf("systemd-boot selected %q, want the counted entry imago-ref_2+3-0.efi", f["selected"])
	}
	if f["usr_slot"] == slotA || f["usr_slot"] == "" {
		t.Errorf("v2's /usr is on %q, v1's was on %q: want the other slot", f["usr_slot"], slotA)
	}
	slotB := f["usr_slot"]

	// A broken version 3 (it panics before userspace) is tried three
	// times; then systemd-boot falls back to version 2 on its own.
	publishBuild(t, pub, v3)
	f = g.factsWithin(updateTimeout, updateScript)
	expect(t, f, "update", "0")
	expect(t, f, "ukis", "imago-ref_2.efi imago-ref_3+3-0.efi")
	mark := len(m.Console())
	g.typeLine("systemctl reboot")
	g = login(t, m, firstBootTimeout)
	panics := len(regexp.MustCompile(`Kernel panic`).FindAllString(m.Console()[mark:], -1))
	f = g.facts(bootedScript + `
f ukis 'ls /boot/EFI/Linux'
f status 'imago boot status --json | tr -d "\n"'
`)
	var status bootentry.StatusReport
	if err := json.Unmarshal([]byte(f["status"]), &status); err != nil {
		t.Errorf("imago boot status --json: %v: %q", err, f["status"])
	}
	t.Logf("fallback after %d kernel panics: %+v", panics, status.Fallback)
	expect(t, f, "version", "2")
	expect(t, f, "usr_slot", slotB)
	expect(t, f, "ukis", "imago-ref_2.efi imago-ref_3+0-3.efi")
	if panics != 3 {
		t.Errorf("version 3 panicked %d times, want 3 tries", panics)
	}
	if fb := status.Fallback; fb == nil || fb.FailedVersion != "3" || fb.Tries != 3 || fb.BootedVersion != "2" || !fb.Booted {
		t.Errorf("boot status reports fallback %+v, want version 3 failed after 3 tries and version 2 booted; the whole report: %s", fb, f["status"])
	}

	// Power cuts at random moments of the update to version 4: every boot
	// comes up in version 2 or 4, and the next update completes.
	publishBuild(t, pub, v4)
	_, g = cutPowerDuringUpdates(t, m, g, cfg, powerCuts(t), updateTime, "2", "4", nil)
	g.powerOff()
}

// cutPowerDuringUpdates starts an update in the guest and kills qemu at a
// random moment within updateTime, cuts times, each time booting again and
// checking that the guest comes up in version old or new. When an update
// completed before its cut and new booted, advance (if not nil) publishes
// the following version and returns it, and the cuts go on against the
// update to that one; without advance, the cuts end there. Then it lets an
// update run to its end, checks that version new is installed, cuts the
// power once more and checks that version new boots. It returns the
// running machine and its shell.
func cutPowerDuringUpdates(t *testing.T, m *vm.Machine, g *guest, cfg vm.Config, cuts int, updateTime time.Duration, old, new string, advance func(string) string) (*vm.Machine, *guest) {
	t.Helper()
	booted := old
	for i := 0; i < cuts; i++ {
		if booted == new {
			old, new = new, advance(new)
			t.Logf("version %s runs; the next cuts strike the update to version %s", old, new)
		}
		// The cut lands in the download, the vacuum, the writes or the
		// install step. The update's progress goes to a persistent log,
		// whose last line after the reboot tells where it was cut.
		delay := 3*time.Second + time.Duration(rand.Int64N(int64(updateTime)))
		g.typeLine("imago update update >/var/tmp/imago-update.log 2>&1")
		time.Sleep(delay)
		m.Kill()
		m.Wait()
		m = boot(t, cfg)
		g = login(t, m, firstBootTimeout)
		f := g.facts(bootedScript + `
f cut_at 'tail -n 1 /var/tmp/imago-update.log'
`)
		t.Logf("power cut %d after %s (last logged: %q): booted version %s, state %s, clock %s", i+1, delay.Round(time.Second), f["cut_at"], f["version"], f["state"], clockSkew(f))
		if f["version"] != old && f["version"] != new {
			t.Fatalf("after power cut %d the guest booted version %q", i+1, f["version"])
		}
		if f["state"] != "running" {
			t.Errorf("after power cut %d the guest is %q", i+1, f["state"])
		}
		if f["cut_at"] == "Version "+new+" installed." && f["version"] != new {
			// The line reached the disk after the update's last sync.
			t.Errorf("power cut %d lost a completed update: version %s booted", i+1, f["version"])
		}
		if strings.HasPrefix(f["cut_at"], "imago: ") {
			t.Errorf("the update failed before power cut %d could strike it: %s", i+1, f["cut_at"])
		}
		booted = f["version"]
		if booted == new && advance == nil {
			t.Logf("the update had completed before power cut %d; nothing left to cut", i+1)
			break
		}
	}
	f := g.factsWithin(updateTimeout, updateScript+`
f check 'imago update check-new; echo $?'
f list 'imago update list --offline | tr -s " " | tr "\n" ";"'
`)
	t.Logf("update to v%s after the power cuts: %s; %s", new, f["log"], f["list"])
	expect(t, f, "update", "0")
	expect(t, f, "check", "1")
	if !strings.Contains(f["list"], new+" yes") {
		t.Errorf("version %s is not installed: %s", new, f["list"])
	}
	// A completed update survives a power cut right after it: the next
	// boot starts the new version (its UKI on the FAT ESP is whole).
	m.Kill()
	m.Wait()
	m = boot(t, cfg)
	g = login(t, m, firstBootTimeout)
	f = g.facts(bootedScript)
	t.Logf("power cut right after the update to v%s: booted version %s, state %s", new, f["version"], f["state"])
	expect(t, f, "version", new)
	expect(t, f, "state", "running")
	return m, g
}

// TestReferenceImagePowerCutSoak cuts the power IMAGO_E2E_SOAK_CUTS times
// during the update from version 1 to 2 (scripts/soak-power-cuts); the
// test suite leaves it out, as TestReferenceImageUpdate makes two cuts.
func TestReferenceImagePowerCutSoak(t *testing.T) {
	s := os.Getenv("IMAGO_E2E_SOAK_CUTS")
	if s == "" {
		t.Skip("set IMAGO_E2E_SOAK_CUTS (scripts/soak-power-cuts)")
	}
	cuts, err := strconv.Atoi(s)
	if err != nil || cuts < 1 {
		t.Fatalf("IMAGO_E2E_SOAK_CUTS=%q is not a count", s)
	}
	v1 := sharedReference(t)
	vmtest.RequireMachine(t)
	v2 := buildVersion(t, "2", "")
	pub := serveUpdates(t, v2)
	cfg := updateMachine(t, v1)
	m := boot(t, cfg)
	g := login(t, m, firstBootTimeout)
	f := g.facts(bootedScript)
	expect(t, f, "version", "1")
	// An update that completes before its cut is followed by the next
	// version, built and published then, so that every cut strikes an
	// update.
	advance := func(installed string) string {
		n, err := strconv.Atoi(installed)
		if err != nil {
			t.Fatalf("version %q is not a number", installed)
		}
		next := strconv.Itoa(n + 1)
		publishBuild(t, pub, buildVersion(t, next, ""))
		return next
	}
	// Under emulation an update of the reference image takes about two
	// minutes; the cuts fall within that.
	_, g = cutPowerDuringUpdates(t, m, g, cfg, cuts, 2*time.Minute, "1", "2", advance)
	g.powerOff()
}

// clockSkew says how far the guest's clock (the "clock" fact, in Unix
// seconds) is from the host's.
func clockSkew(f map[string]string) string {
	guest, err := strconv.ParseInt(f["clock"], 10, 64)
	if err != nil {
		return fmt.Sprintf("unknown (%q)", f["clock"])
	}
	d := time.Unix(guest, 0).Sub(time.Now().Truncate(time.Second))
	switch {
	case d < 0:
		return fmt.Sprintf("%s behind the host's", -d)
	case d > 0:
		return fmt.Sprintf("%s ahead of the host's", d)
	}
	return "in step with the host's"
}
