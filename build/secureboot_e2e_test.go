package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/pe"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/keys"
	"github.com/imago-os/imago/vm"
	"github.com/imago-os/imago/vm/vmtest"
)

// espFiles reads and writes files of the ESP inside a disk image, with
// mtools, as an update would replace a UKI.
type espFiles struct {
	t      *testing.T
	target string // "IMAGE@@OFFSET"
	work   string
}

func newESPFiles(t *testing.T, disk string) *espFiles {
	t.Helper()
	testutil.RequireTool(t, "mcopy", "mtools")
	for _, p := range openDisk(t, disk, false).Partitions {
		if p.TypeName == "esp" {
			return &espFiles{t: t, target: disk + "@@" + strconv.FormatInt(p.Offset, 10), work: t.TempDir()}
		}
	}
	t.Fatalf("%s has no ESP", disk)
	return nil
}

func (e *espFiles) mtools(tool string, args ...string) {
	e.t.Helper()
	cmd := append([]string{"MTOOLS_SKIP_CHECK=1", tool, "-i", e.target}, args...)
	testutil.Run(e.t, "env", cmd...)
}

func (e *espFiles) read(path string) []byte {
	e.t.Helper()
	dst := filepath.Join(e.work, "out")
	os.Remove(dst)
	e.mtools("mcopy", "-n", "::/"+path, dst)
	data, err := os.ReadFile(dst)
	if err != nil {
		e.t.Fatal(err)
	}
	return data
}

// replace removes the file old (if not "") and writes data as path.
func (e *espFiles) replace(old, path string, data []byte) {
	e.t.Helper()
	if old != "" {
		e.mtools("mdel", "::/"+old)
	}
	src := filepath.Join(e.work, "in")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.mtools("mcopy", "-o", src, "::/"+path)
}

// rebuildUKI builds a UKI from the sections of image with its os-release
// version changed to version, its PCR 11 predictions signed with pcrKey
// and the image signed with the key set's db key, as an update made with
// the same (or, with another pcrKey, a foreign) PCR key would be.
func rebuildUKI(t *testing.T, image []byte, version string, set *keys.Set, pcrKey *rsa.PrivateKey) ([]byte, *uki.Info) {
	t.Helper()
	stub, err := os.ReadFile("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
	if err != nil {
		t.Skipf("systemd-stub: %v (install the Debian package systemd-boot-efi)", err)
	}
	f, err := pe.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	section := func(name string) []byte {
		i := f.Section(name)
		if i < 0 {
			t.Fatalf("the UKI has no %s section", name)
		}
		return bytes.TrimRight(f.Contents(i), "\x00")
	}
	osrel := section(".osrel")
	changed := regexp.MustCompile(`(?m)^IMAGE_VERSION=.*$`).ReplaceAll(osrel, []byte("IMAGE_VERSION="+version))
	if bytes.Equal(changed, osrel) {
		t.Fatalf("no IMAGE_VERSION= in .osrel:\n%s", osrel)
	}
	pub, err := uki.PublicKeyPEM(&pcrKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	in := &uki.Input{
		Linux:     f.Contents(f.Section(".linux")),
		Initrds:   [][]byte{f.Contents(f.Section(".initrd"))},
		Cmdline:   section(".cmdline"),
		OSRelease: changed,
		Uname:     section(".uname"),
	}
	out, err := uki.BuildSigned(stub, in, uki.BuildOptions{
		PCR:                   &uki.PCRSigning{Key: pcrKey, PublicKeyPEM: pub},
		SecureBootCertificate: set.DB.Certificate,
		SecureBootKey:         set.DB.PrivateKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := uki.Inspect(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, info
}

// predictedPCR11 returns the SHA-256 PCR 11 value a UKI predicts once the
// system is up (phase ready).
func predictedPCR11(t *testing.T, info *uki.Info) string {
	t.Helper()
	for _, v := range info.PCR11 {
		if v.Bank == "sha256" && v.Phase == "enter-initrd:leave-initrd:sysinit:ready" {
			return v.Value
		}
	}
	t.Fatalf("no sha256 prediction for the ready phase: %+v", info.PCR11)
	return ""
}

const secureBootScript = `
f secureboot 'od -An -tu1 -j4 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c | tr -d " "'
f entry 'cat /sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f | tail -c +5 | tr -d "\000"'
f pcr11 'cat /sys/class/tpm/tpm0/pcr-sha256/11 | tr A-F a-f'
f root_type 'cryptsetup status root | sed -n "s/^ *type: *//p"'
f state 'timeout 300 systemctl is-system-running --wait'
f failed 'systemctl --failed --plain --no-legend | cut -d" " -f1'
`

// TestReferenceImageSecureBoot runs the trust chain under OVMF's Secure
// Boot firmware, whose variable store starts empty (setup mode):
//
//  1. the first start enrolls the image's keys (systemd-boot's
//     secure-boot-enroll force), resets, and boots with Secure Boot
//     enforced; PCR 11 equals the UKI's prediction;
//  2. a UKI with one byte changed is refused by the firmware;
//  3. a new UKI version signed with the same keys unlocks the root
//     through the TPM without a prompt (the policy is bound to the PCR
//     key, not to PCR 11's value), and PCR 11 equals its prediction;
//  4. a UKI whose .pcrsig was made with another PCR key boots (Secure
//     Boot accepts it) but does not unlock the root.
func TestReferenceImageSecureBoot(t *testing.T) {
	res := sharedReference(t)
	vmtest.RequireMachine(t)
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"); err != nil {
		t.Fatalf("OVMF's Secure Boot firmware: %v", err)
	}
	set, err := keys.Load(shared.keys)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vm.Config{Image: res.Image, StateDir: filepath.Join(t.TempDir(), "machine"), TPM: true, SecureBoot: true, DiskSize: 4 << 30}
	original, err := os.ReadFile(filepath.Join(res.OutputDir, res.Label+".efi"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := uki.Inspect(original)
	if err != nil {
		t.Fatal(err)
	}

	// 1. Enrollment and the first boot.
	m := boot(t, cfg)
	g := &guest{t: t, m: m}
	if _, err := m.WaitFor(context.Background(), regexp.MustCompile(`Enrolling secure boot keys from directory`), bootTimeout); err != nil {
		g.fatal("systemd-boot did not enroll the keys: %v", err)
	}
	g = login(t, m, firstBootTimeout)
	f := g.facts(secureBootScript)
	t.Logf("first boot: %v", f)
	expect(t, f, "secureboot", "1")
	expect(t, f, "entry", res.Label+".efi")
	expect(t, f, "pcr11", predictedPCR11(t, info))
	expect(t, f, "root_type", "LUKS2")
	expect(t, f, "state", "running")
	expect(t, f, "failed", "")
	g.powerOff()
	if t.Failed() {
		t.FailNow()
	}
	esp := newESPFiles(t, m.Disk())
	name := "EFI/Linux/" + res.Label + ".efi"
	if !bytes.Equal(esp.read(name), original) {
		t.Fatal("the ESP's UKI differs from the build's")
	}

	// 2. One changed byte in .osrel: the firmware refuses the UKI.
	tampered := append([]byte(nil), original...)
	f0, err := pe.Parse(tampered)
	if err != nil {
		t.Fatal(err)
	}
	i := f0.Section(".osrel")
	raw := f0.RawData(i)
	off := bytes.Index(tampered, raw)
	if off < 0 {
		t.Fatal("cannot find .osrel in the image")
	}
	tampered[off+1] ^= 0x01
	esp.replace("", name, tampered)
	m = boot(t, cfg)
	g = &guest{t: t, m: m}
	if _, err := m.WaitFor(context.Background(), regexp.MustCompile(`Error loading .*(Security Violation|Access Denied)`), bootTimeout); err != nil {
		g.fatal("the tampered UKI was not refused: %v", err)
	}
	t.Log("tampered UKI refused by the firmware")
	m.Kill()
	m.Wait()

	// 3. Version 2, same keys: unlocks through the signed policy.
	v2, info2 := rebuildUKI(t, original, "2", set, set.PCRKey)
	name2 := "EFI/Linux/" + strings.Replace(res.Label, "_1", "_2", 1) + ".efi"
	esp.replace(name, name2, v2)
	m = boot(t, cfg)
	start := time.Now()
	g = login(t, m, bootTimeout)
	t.Logf("version 2: logged in after %s", time.Since(start).Round(time.Second))
	f = g.facts(secureBootScript)
	t.Logf("version 2: %v", f)
	expect(t, f, "secureboot", "1")
	expect(t, f, "entry", filepath.Base(name2))
	expect(t, f, "pcr11", predictedPCR11(t, info2))
	expect(t, f, "root_type", "LUKS2")
	expect(t, f, "failed", "")
	if predictedPCR11(t, info2) == predictedPCR11(t, info) {
		t.Error("version 2 predicts the same PCR 11 as version 1")
	}
	if strings.Contains(m.Console(), "Please enter passphrase") {
		t.Error("version 2 asked for a passphrase")
	}
	g.powerOff()
	if t.Failed() {
		t.FailNow()
	}

	// 4. Version 3 with another PCR key: boots, but the root stays locked.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	v3, _ := rebuildUKI(t, original, "3", set, other)
	name3 := strings.Replace(name2, "_2.efi", "_3.efi", 1)
	esp.replace(name2, name3, v3)
	m = boot(t, cfg)
	g = &guest{t: t, m: m}
	if _, err := m.WaitFor(context.Background(), regexp.MustCompile(`Failed to start .*Cryptography Setup for root|Please enter passphrase`), bootTimeout); err != nil {
		g.fatal("a UKI signed with another PCR key did not fail to unlock the root: %v", err)
	}
	if strings.Contains(m.Console(), "login: ") {
		t.Error("the machine reached a login prompt with a foreign PCR key")
	}
	t.Log("foreign PCR key: the root stays locked")
}
