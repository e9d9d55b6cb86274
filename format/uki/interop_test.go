package uki

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/pe"
	"github.com/imago-os/imago/internal/testutil"
)

// debianStub is systemd-stub 252 as Debian 12's systemd-boot-efi ships it.
const debianStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// requireFile returns the contents of a file an interop test needs; it
// fails under CI and skips otherwise when the file is missing.
func requireFile(t *testing.T, path, debianPackage string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		return b
	}
	msg := fmt.Sprintf("%s: %v (install the Debian package %s)", path, err, debianPackage)
	if testutil.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// runTool runs a program with a timeout and returns its combined output.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// throwawayKey writes a fresh RSA key and self-signed certificate as PEM.
func throwawayKey(t *testing.T) (keyPath, certPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imago test signer, do not trust"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath, certPath = filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}

// objdumpSection is one line of `objdump -h`.
type objdumpSection struct {
	name          string
	size, vma, at uint64
}

var objdumpLine = regexp.MustCompile(`^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s`)

func objdumpSections(t *testing.T, objdump, path string) []objdumpSection {
	t.Helper()
	out, err := runTool(t, objdump, "-h", path)
	if err != nil {
		t.Fatalf("objdump -h: %v\n%s", err, out)
	}
	var secs []objdumpSection
	for _, line := range strings.Split(out, "\n") {
		m := objdumpLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		size, _ := strconv.ParseUint(m[2], 16, 64)
		vma, _ := strconv.ParseUint(m[3], 16, 64)
		at, _ := strconv.ParseUint(m[4], 16, 64)
		secs = append(secs, objdumpSection{m[1], size, vma, at})
	}
	return secs
}

// debianStubInput has sizes chosen so that every placement rule shows.
func debianStubInput() *Input {
	return &Input{
		Linux:     bytes.Repeat([]byte("vmlinuz!"), 12500), // 100000 bytes
		Initrds:   [][]byte{bytes.Repeat([]byte{0x07}, 5000)},
		Cmdline:   []byte(strings.Repeat("x", 599) + "\n"),
		OSRelease: []byte("ID=test\nIMAGE_ID=test\nIMAGE_VERSION=1.0\n"),
		Uname:     []byte("6.1.0-56-amd64"),
		PCRPKey:   bytes.Repeat([]byte("k"), 451),
	}
}

// TestInteropDebianStubLayout builds a UKI on Debian 12's systemd-stub and
// checks the layout with binutils' objdump: the stub's sections stay where
// they were, the new ones follow at 512-byte steps (the stub's
// SectionAlignment and FileAlignment) from RVA 0x19200 and file offset
// 0x11400 (where the stub's symbol table was), nothing overlaps, and sbsign
// signs it without complaint.
func TestInteropDebianStubLayout(t *testing.T) {
	stub := requireFile(t, debianStub, "systemd-boot-efi")
	objdump := testutil.RequireTool(t, "objdump", "binutils")
	in := debianStubInput()
	out, err := Build(stub, in)
	if err != nil {
		t.Fatal(err)
	}
	path := testutil.WriteFile(t, "uki.efi", out)
	got := objdumpSections(t, objdump, path)

	stubPE, err := pe.Parse(stub)
	if err != nil {
		t.Fatal(err)
	}
	var want []objdumpSection
	for _, s := range stubPE.Sections {
		want = append(want, objdumpSection{s.NameString(), uint64(s.VirtualSize), uint64(s.VirtualAddress), uint64(s.PointerToRawData)})
	}
	if len(want) != 8 || want[7].name != ".sdmagic" || want[7].vma != 0x19100 {
		t.Fatalf("unexpected stub layout %x", want)
	}
	want = append(want,
		objdumpSection{".osrel", 40, 0x19200, 0x11400},
		objdumpSection{".cmdline", 600, 0x19400, 0x11600},
		objdumpSection{".uname", 14, 0x19800, 0x11a00},
		objdumpSection{".pcrpkey", 451, 0x19a00, 0x11c00},
		objdumpSection{".initrd", 5000, 0x19c00, 0x11e00},
		objdumpSection{".linux", 100000, 0x1b000, 0x13200},
	)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("objdump -h\n got %x\nwant %x", got, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].vma < got[i-1].vma+got[i-1].size {
			t.Errorf("%s at 0x%x overlaps %s ending at 0x%x", got[i].name, got[i].vma, got[i-1].name, got[i-1].vma+got[i-1].size)
		}
	}
	headers, err := runTool(t, objdump, "-p", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`SizeOfImage\s+00033800`, `SizeOfHeaders\s+00000400`, `CheckSum\s+00000000`} {
		if !regexp.MustCompile(field).MatchString(headers) {
			t.Errorf("objdump -p lacks %s", field)
		}
	}
	if len(out) != 0x2ba00 {
		t.Errorf("UKI is %d bytes, want %d", len(out), 0x2ba00)
	}
	// The merged SBAT does not fit before .sdmagic: the stub's stays.
	f, _ := pe.Parse(out)
	if !bytes.Equal(f.Contents(f.Section(".sbat")), stubPE.Contents(stubPE.Section(".sbat"))) {
		t.Error(".sbat changed")
	}

	sbsign := testutil.RequireTool(t, "sbsign", "sbsigntool")
	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	keyPath, certPath := throwawayKey(t)
	msg, err := runTool(t, sbsign, "--key", keyPath, "--cert", certPath, "--output", path+".signed", path)
	if err != nil || strings.Contains(msg, "warning") {
		t.Errorf("sbsign: %v\n%s", err, msg)
	}
	if msg, err := runTool(t, sbverify, "--cert", certPath, path+".signed"); err != nil || !strings.Contains(msg, "Signature verification OK") {
		t.Errorf("sbverify: %v\n%s", err, msg)
	}
}

// TestInteropObjcopyContents builds the same UKI with binutils' objcopy and
// fixed section addresses (the recipe in systemd 252's documentation) as a
// sanity check: every UKI section holds the same bytes in both.
func TestInteropObjcopyContents(t *testing.T) {
	stub := requireFile(t, debianStub, "systemd-boot-efi")
	objcopy := testutil.RequireTool(t, "objcopy", "binutils")
	in := debianStubInput()
	ours, err := Build(stub, in)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{}
	vma := 0x20000
	for _, s := range []struct {
		name string
		data []byte
	}{{".osrel", in.OSRelease}, {".cmdline", in.Cmdline}, {".uname", in.Uname}, {".pcrpkey", in.PCRPKey}, {".initrd", in.Initrds[0]}, {".linux", in.Linux}} {
		p := filepath.Join(dir, s.name[1:])
		if err := os.WriteFile(p, s.data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--add-section", s.name+"="+p, "--change-section-vma", fmt.Sprintf("%s=0x%x", s.name, vma))
		vma += 0x100000
	}
	theirs := filepath.Join(dir, "objcopy.efi")
	if out, err := runTool(t, objcopy, append(args, debianStub, theirs)...); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	b, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Inspect(ours)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Inspect(b)
	if err != nil {
		t.Fatalf("objcopy's UKI: %v", err)
	}
	digests := func(info *Info) map[string]string {
		m := map[string]string{}
		for _, s := range info.Sections {
			m[s.Name] = s.SHA256
		}
		return m
	}
	if da, do := digests(a), digests(o); !reflect.DeepEqual(da, do) {
		t.Errorf("section contents differ:\n ours    %v\n objcopy %v", da, do)
	}
	if a.Cmdline != o.Cmdline || a.OSRelease != o.OSRelease || a.Uname != o.Uname {
		t.Error("decoded texts differ")
	}
}

// TestInteropDebianStubHeaderRoom: Debian 12's stub has header room for
// seven new sections — all a signed UKI for it needs — and no more.
func TestInteropDebianStubHeaderRoom(t *testing.T) {
	stub := requireFile(t, debianStub, "systemd-boot-efi")
	in := debianStubInput()
	in.PCRSig = []byte(`{"sha256":[]}`)
	if _, err := Build(stub, in); err != nil {
		t.Fatalf("seven sections: %v", err)
	}
	in.Splash = []byte("BM")
	if _, err := Build(stub, in); err == nil || !strings.Contains(err.Error(), `not enough header space to add section ".linux"`) {
		t.Errorf("eight sections: %v", err)
	}
}
