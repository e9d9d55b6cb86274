package cli

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/internal/testutil"
)

// requireStub returns the path of Debian's systemd-stub; it fails the test
// under CI and skips it otherwise when systemd-boot-efi is not installed.
func requireStub(t *testing.T) string {
	t.Helper()
	p := ukiDefaultStub()
	if _, err := os.Stat(p); err != nil {
		if testutil.InCI() {
			t.Fatalf("%v (install the Debian package systemd-boot-efi)", err)
		}
		t.Skipf("%v (install the Debian package systemd-boot-efi)", err)
	}
	return p
}

// fakeKernel returns a file that looks like an x86 bzImage to the release
// detection: a setup header pointing at a version string.
func fakeKernel(version string) []byte {
	b := make([]byte, 0x1000)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x20e:], 0x200)
	copy(b[0x400:], version+"\x00")
	return b
}

func TestUKIBuildAndInspect(t *testing.T) {
	stub := requireStub(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kernel := write("vmlinuz", fakeKernel("6.1.0-99-test (builder@example.org) #1 SMP"))
	initrd1 := write("initrd1", []byte("first"))
	initrd2 := write("initrd2", []byte("second initrd"))
	osrel := write("os-release", []byte("ID=test\nIMAGE_ID=test\nIMAGE_VERSION=1.2\n"))
	out := filepath.Join(dir, "test.efi")

	code, stdout, stderr := run(t, "uki", "build", "--stub="+stub, "--linux="+kernel, "--initrd="+initrd1, "--initrd", initrd2,
		"--cmdline=  console=ttyS0   quiet ", "--os-release=@"+osrel, "--output="+out)
	if code != 0 || stdout != "Wrote unsigned "+out+"\n" || stderr != "" {
		t.Fatalf("uki build: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	code, stdout, stderr = run(t, "uki", "inspect", "--json", out)
	if code != 0 {
		t.Fatalf("uki inspect --json: exit %d, %s", code, stderr)
	}
	var info uki.Info
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Cmdline != "console=ttyS0 quiet" || info.Uname != "6.1.0-99-test" || info.OSRelease != "ID=test\nIMAGE_ID=test\nIMAGE_VERSION=1.2\n" ||
		info.Signed || !info.HasLinux {
		t.Errorf("inspect: %+v", info)
	}
	var names []string
	digests := map[string]string{}
	for _, s := range info.Sections {
		names = append(names, s.Name)
		digests[s.Name] = s.SHA256
	}
	if got := strings.Join(names, " "); got != ".text .reloc .data .dynamic .rela .dynsym .sbat .sdmagic .osrel .cmdline .uname .initrd .linux" {
		t.Errorf("sections %s", got)
	}
	joined := sha256.Sum256([]byte("first\x00\x00\x00second initrd\x00\x00\x00"))
	if digests[".initrd"] != hex.EncodeToString(joined[:]) {
		t.Errorf(".initrd sha256 %s, want the padded concatenation's", digests[".initrd"])
	}
	for _, key := range []string{`"virtualAddress"`, `"fileOffset"`, `"sha256"`, `"osRelease"`, `"signed": false`} {
		if !strings.Contains(stdout, key) {
			t.Errorf("JSON lacks %s", key)
		}
	}

	code, stdout, _ = run(t, "uki", "inspect", out)
	for _, want := range []string{"SECTION", ".osrel", "0x19200", "  IMAGE_VERSION=1.2\n", "cmdline: console=ttyS0 quiet\n", "uname: 6.1.0-99-test\n", "signed: no\n"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("uki inspect lacks %q:\n%s", want, stdout)
		}
	}

	// @PATH command lines are used as they are; an explicit --uname wins.
	cmdline := write("cmdline", []byte("a  b\n"))
	code, _, stderr = run(t, "uki", "build", "--stub="+stub, "--linux="+kernel, "--cmdline=@"+cmdline, "--uname=custom",
		"--os-release=ID=x", "--output="+out)
	if code != 0 {
		t.Fatalf("second build: %s", stderr)
	}
	b, _ := os.ReadFile(out)
	info2, err := uki.Inspect(b)
	if err != nil {
		t.Fatal(err)
	}
	if info2.Cmdline != "a  b\n" || info2.Uname != "custom" || info2.OSRelease != "ID=x" {
		t.Errorf("second build: %+v", info2)
	}
}

func TestUKIBuildErrors(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	notPE := filepath.Join(dir, "stub")
	if err := os.WriteFile(notPE, []byte("not a PE"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.efi")
	for name, args := range map[string][]string{
		"no linux":    {"uki", "build", "--output=" + out},
		"no output":   {"uki", "build", "--linux=" + kernel},
		"no stub":     {"uki", "build", "--stub=" + filepath.Join(dir, "missing"), "--linux=" + kernel, "--output=" + out},
		"bad stub":    {"uki", "build", "--stub=" + notPE, "--linux=" + kernel, "--output=" + out},
		"bad initrd":  {"uki", "build", "--stub=" + notPE, "--linux=" + kernel, "--initrd=" + filepath.Join(dir, "missing"), "--output=" + out},
		"inspect bad": {"uki", "inspect", notPE},
		"inspect arg": {"uki", "inspect"},
	} {
		code, stdout, stderr := run(t, args...)
		if code == 0 || stdout != "" || !strings.HasPrefix(stderr, "imago: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed build left an output file")
	}
}
