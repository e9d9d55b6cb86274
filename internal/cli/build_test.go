package cli

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/build"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/internal/testutil"
)

func TestBuildRejectsBadSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	code, _, errOut := run(t, "build", "--output-dir", t.TempDir())
	if code != 1 || !strings.Contains(errOut, `SOURCE_DATE_EPOCH="yesterday"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestBuildRefusesExistingOutput(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the build checks for it first")
	}
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "imago-ref_1.raw"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "build", "--output-dir", out)
	if code != 1 || !strings.Contains(errOut, "imago-ref_1.raw") || !strings.Contains(errOut, "--force") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestBuildImageVersionFlag(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the build checks for it first")
	}
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "imago-ref_7.efi"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The refusal names the version the flag gave.
	code, _, errOut := run(t, "build", "--output-dir", out, "--image-version", "7")
	if code != 1 || !strings.Contains(errOut, "imago-ref_7.efi") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// TestBuildReference builds the reference image with the CLI and checks it
// with imago dissect, sfdisk, the UKI's sections, mtools and sha256sum.
// Slow: a cold cache bootstraps the Debian tree first.
func TestBuildReference(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds the reference image")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	testutil.RequireTool(t, "mmdebstrap", "mmdebstrap")
	testutil.RequireTool(t, "mkfs.erofs", "erofs-utils")
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	mdir := testutil.RequireTool(t, "mdir", "mtools")
	sha256sum := testutil.RequireTool(t, "sha256sum", "coreutils")

	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	out := t.TempDir()
	start := time.Now()
	code, stdout, errOut := run(t, "build", "--output-dir", out, "--json")
	t.Logf("build: %s", time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("imago build: exit %d\n%s", code, lastLines(errOut, 40))
	}
	var res build.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout)
	}
	for _, a := range res.Artifacts {
		t.Logf("%12d %s", a.Size, a.Name)
	}
	for _, s := range res.Steps {
		t.Logf("step %-10s %s", s.Name, s.Duration.Round(time.Millisecond))
	}
	const label = "imago-ref_1"
	image := filepath.Join(out, label+".raw")
	if res.Image != image {
		t.Fatalf("image %s, want %s", res.Image, image)
	}
	if _, err := os.Stat(filepath.Join(out, ".work")); !os.IsNotExist(err) {
		t.Errorf("work directory left behind: %v", err)
	}

	// imago dissect --verify with the verity certificate.
	code, dout, derr := run(t, "dissect", "--verify", "--certificate", filepath.Join(out, label+".verity.crt"), image)
	if code != 0 {
		t.Fatalf("imago dissect --verify: exit %d\n%s\n%s", code, dout, derr)
	}

	// The partition table: ESP, usr, usr-verity, usr-verity-sig, nothing else.
	var table struct {
		PartitionTable struct {
			Partitions []struct {
				Start, Size int64
				Type, UUID  string
				Name        string
			}
		}
	}
	if err := json.Unmarshal([]byte(testutil.Run(t, sfdisk, "--json", image)), &table); err != nil {
		t.Fatal(err)
	}
	want := []struct{ typ, name string }{
		{"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "ESP"},
		{"8484680C-9521-48C6-9C11-B0720656F69E", label}, // usr-x86-64
		{"77FF5F63-E7B6-4633-ACF4-1565B864C0E6", label}, // usr-x86-64-verity
		{"E7BB33FB-06CF-4E81-8273-E543B413E2E2", label}, // usr-x86-64-verity-sig
	}
	parts := table.PartitionTable.Partitions
	if len(parts) != len(want) {
		t.Fatalf("%d partitions, want %d: %+v", len(parts), len(want), parts)
	}
	for i, w := range want {
		if parts[i].Type != w.typ || parts[i].Name != w.name {
			t.Errorf("partition %d: type %s label %q, want %s %q", i+1, parts[i].Type, parts[i].Name, w.typ, w.name)
		}
	}
	// Slot A is exactly the size the reference's repart.d gives slot B.
	if parts[1].Size*512 != 1<<30 || parts[2].Size*512 != 16<<20 || parts[3].Size*512 != 16<<10 {
		t.Errorf("usr slot sizes %d, %d, %d sectors", parts[1].Size, parts[2].Size, parts[3].Size)
	}
	rootHash, err := hex.DecodeString(res.RootHash)
	if err != nil || len(rootHash) != 32 {
		t.Fatalf("root hash %q", res.RootHash)
	}
	if got, want := strings.ToLower(strings.ReplaceAll(parts[1].UUID, "-", "")), res.RootHash[:32]; got != want {
		t.Errorf("usr partition UUID %s, want %s", got, want)
	}

	// The UKI: usrhash= of the root hash, the kernel release, os-release
	// with the image's identity.
	ukiData, err := os.ReadFile(filepath.Join(out, label+".efi"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := uki.Inspect(ukiData)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.Cmdline, "usrhash="+res.RootHash+" root=gpt-auto rw ") || !strings.Contains(info.Cmdline, "console=ttyS0") {
		t.Errorf("cmdline %q", info.Cmdline)
	}
	if !info.HasLinux || info.Uname != res.KernelVersion {
		t.Errorf("linux %v, uname %q, want %q", info.HasLinux, info.Uname, res.KernelVersion)
	}
	if !strings.Contains(info.OSRelease, "IMAGE_ID=imago-ref") || !strings.Contains(info.OSRelease, "IMAGE_VERSION=1") {
		t.Errorf("os-release %q", info.OSRelease)
	}

	// The ESP: systemd-boot and the UKI, identical to the artifact.
	esp := image + "@@" + strconv.FormatInt(parts[0].Start*512, 10)
	listing := string(testutil.Run(t, mdir, "-/", "-b", "-i", esp, "::"))
	for _, p := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/EFI/systemd/systemd-bootx64.efi", "::/EFI/Linux/" + label + ".efi", "::/loader/loader.conf"} {
		if !strings.Contains(strings.ToLower(listing), strings.ToLower(p)) {
			t.Errorf("ESP lacks %s:\n%s", p, listing)
		}
	}
	copied := filepath.Join(t.TempDir(), "uki.efi")
	testutil.Run(t, testutil.RequireTool(t, "mcopy", "mtools"), "-i", esp, "::/EFI/Linux/"+label+".efi", copied)
	if data, err := os.ReadFile(copied); err != nil || string(data) != string(ukiData) {
		t.Errorf("UKI in the ESP differs from %s.efi (%v)", label, err)
	}

	// SHA256SUMS lists the artifacts and verifies with sha256sum.
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{label + ".raw", label + ".efi", label + ".manifest"} {
		if !strings.Contains(string(sums), " "+name+"\n") && !strings.Contains(string(sums), "*"+name+"\n") {
			t.Errorf("SHA256SUMS does not list %s:\n%s", name, sums)
		}
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(out); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	testutil.Run(t, sha256sum, "--check", "--strict", "SHA256SUMS")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
