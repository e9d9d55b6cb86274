package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-os/imago/format/authenticode"
	"github.com/imago-os/imago/format/pe"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/keys"
	"github.com/imago-os/imago/vm/vmtest"
)

const authenticodeVectors = "../../format/authenticode/testdata/"

// copyFile copies a file into dir and returns the new path.
func copyFile(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// lastSigningTime returns the signingTime of an image's last signature.
func lastSigningTime(t *testing.T, image []byte) time.Time {
	t.Helper()
	sigs, err := authenticode.Signatures(image)
	if err != nil || len(sigs) == 0 {
		t.Fatalf("signatures: %v", err)
	}
	for _, a := range sigs[len(sigs)-1].Message.Signers[0].SignedAttributes {
		if a.Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}) {
			var when time.Time
			if _, err := asn1.Unmarshal(a.Values[0], &when); err != nil {
				t.Fatal(err)
			}
			return when
		}
	}
	t.Fatal("no signingTime")
	return time.Time{}
}

func loadTestSigner(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	certs, err := loadCertificates(authenticodeVectors + "db-test.crt")
	if err != nil {
		t.Fatal(err)
	}
	key, err := loadSigningKey(authenticodeVectors + "db-test.key")
	if err != nil {
		t.Fatal(err)
	}
	return certs[0], key.(*rsa.PrivateKey)
}

func TestSbsignSbverify(t *testing.T) {
	dir := t.TempDir()
	in := copyFile(t, authenticodeVectors+"unsigned.efi", dir)
	key, cert := authenticodeVectors+"db-test.key", authenticodeVectors+"db-test.crt"

	code, stdout, stderr := run(t, "sbsign", "--key="+key, "--cert="+cert, in)
	if code != 0 || stdout != "" || stderr != "Signing Unsigned original image\n" {
		t.Fatalf("sbsign: exit %d, %q, %q", code, stdout, stderr)
	}
	signed := in + ".signed"
	got, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	c, k := loadTestSigner(t)
	image, _ := os.ReadFile(in)
	want, err := authenticode.SignWithOptions(image, c, k, authenticode.Options{Time: lastSigningTime(t, got)})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("sbsign output differs from authenticode.Sign (%v)", err)
	}

	code, stdout, _ = run(t, "sbverify", "--cert="+cert, signed)
	if code != 0 || stdout != "Signature verification OK\n" {
		t.Errorf("sbverify: exit %d, %q", code, stdout)
	}

	// A second signature is appended.
	twice := filepath.Join(dir, "twice.efi")
	code, _, stderr = run(t, "sbsign", "--key="+key, "--cert="+cert, "--output="+twice, signed)
	if code != 0 || stderr != "Image was already signed; adding additional signature\n" {
		t.Fatalf("second sbsign: exit %d, %q", code, stderr)
	}
	if entries, _ := authenticode.Certificates(mustRead(t, twice)); len(entries) != 2 {
		t.Errorf("%d signatures, want 2", len(entries))
	}

	// Failures: unsigned, tampered, wrong certificate.
	code, stdout, stderr = run(t, "sbverify", "--cert="+cert, in)
	if code != 1 || stdout != "Signature verification failed\n" || stderr != "No signature table present\n" {
		t.Errorf("sbverify unsigned: exit %d, %q, %q", code, stdout, stderr)
	}
	tampered := bytes.Clone(got)
	tampered[0x400] ^= 1
	tamperedPath := filepath.Join(dir, "tampered.efi")
	if err := os.WriteFile(tamperedPath, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, "sbverify", "--cert="+cert, tamperedPath)
	if code != 1 || stdout != "Signature verification failed\n" || !strings.HasPrefix(stderr, "Hash doesn't match image\n got:       ") {
		t.Errorf("sbverify tampered: exit %d, %q, %q", code, stdout, stderr)
	}
	otherCert := writeSelfSigned(t, dir)
	if code, stdout, _ = run(t, "sbverify", "--cert="+otherCert, signed); code != 1 || stdout != "Signature verification failed\n" {
		t.Errorf("sbverify wrong cert: exit %d, %q", code, stdout)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSelfSigned writes a fresh self-signed certificate and returns its path.
func writeSelfSigned(t *testing.T, dir string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "other.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSbsignInterop: sbsigntool accepts imago's output, imago accepts
// sbsign's, and --list prints what sbverify --list prints.
func TestSbsignInterop(t *testing.T) {
	sbsign := testutil.RequireTool(t, "sbsign", "sbsigntool")
	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	dir := t.TempDir()
	in := copyFile(t, authenticodeVectors+"unsigned-trailer.efi", dir)
	key, cert := authenticodeVectors+"db-test.key", authenticodeVectors+"db-test.crt"
	ours, theirs := filepath.Join(dir, "ours.efi"), filepath.Join(dir, "theirs.efi")
	if code, _, stderr := run(t, "sbsign", "--key="+key, "--cert="+cert, "--output="+ours, in); code != 0 {
		t.Fatal(stderr)
	}
	testutil.Run(t, sbsign, "--key", key, "--cert", cert, "--output", theirs, in)
	if out := testutil.Run(t, sbverify, "--cert", cert, ours); string(out) != "Signature verification OK\n" {
		t.Errorf("sbverify: %q", out)
	}
	if code, stdout, stderr := run(t, "sbverify", "--cert="+cert, theirs); code != 0 || stdout != "Signature verification OK\n" {
		t.Errorf("imago sbverify of sbsign's output: exit %d, %q, %q", code, stdout, stderr)
	}
	twice := filepath.Join(dir, "twice.efi")
	testutil.Run(t, sbsign, "--key", key, "--cert", cert, "--output", twice, theirs)
	want := testutil.Run(t, sbverify, "--list", twice)
	if code, stdout, _ := run(t, "sbverify", "--list", twice); code != 0 || stdout != string(want) {
		t.Errorf("--list:\n%s\nsbverify --list:\n%s", stdout, want)
	}
}

// TestUKIBuildSigned builds a UKI with Secure Boot and PCR signing and
// checks it against sbsign/sbverify and systemd-measure 252 (with a
// software TPM): .pcrsig is systemd-measure's document as ukify stores it.
func TestUKIBuildSigned(t *testing.T) {
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
	initrd := write("initrd", []byte("an initrd"))
	pcrKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pcrPriv, pcrPub := writeMeasureKeyPair(t, dir, "pcr", pcrKey)
	sbKey, sbCert := authenticodeVectors+"db-test.key", authenticodeVectors+"db-test.crt"
	out := filepath.Join(dir, "signed.efi")
	common := []string{"uki", "build", "--stub=" + stub, "--linux=" + kernel, "--initrd=" + initrd,
		"--cmdline=console=ttyS0", "--os-release=ID=test\nIMAGE_VERSION=1\n",
		"--pcr-private-key=" + pcrPriv, "--pcr-public-key=" + pcrPub}
	code, stdout, stderr := run(t, append(common, "--secureboot-private-key="+sbKey, "--secureboot-certificate="+sbCert, "--output="+out)...)
	if code != 0 || stdout != "Wrote signed "+out+"\n" {
		t.Fatalf("uki build: exit %d, %q, %q", code, stdout, stderr)
	}
	signed := mustRead(t, out)

	// Signing is the last step: the same build unsigned, signed by
	// authenticode.Sign with the same time, gives the same bytes.
	unsignedPath := filepath.Join(dir, "unsigned.efi")
	if code, _, stderr := run(t, append(common, "--output="+unsignedPath)...); code != 0 {
		t.Fatal(stderr)
	}
	unsigned := mustRead(t, unsignedPath)
	c, k := loadTestSigner(t)
	resigned, err := authenticode.SignWithOptions(unsigned, c, k, authenticode.Options{Time: lastSigningTime(t, signed)})
	if err != nil || !bytes.Equal(resigned, signed) {
		t.Fatalf("signed UKI is not the unsigned build signed (%v)", err)
	}

	// inspect: signer and PCR 11 predictions.
	code, stdout, _ = run(t, "uki", "inspect", "--json", out)
	var info uki.Info
	if err := json.Unmarshal([]byte(stdout), &info); code != 0 || err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if !info.Signed || len(info.SignedBy) != 1 || info.SignedBy[0] != c.Subject.String() {
		t.Errorf("inspect signer: %+v", info.SignedBy)
	}
	if len(info.PCR11) != 16 {
		t.Errorf("inspect: %d PCR 11 values, want 4 banks × 4 phases", len(info.PCR11))
	}
	code, stdout, _ = run(t, "uki", "inspect", out)
	if code != 0 || !strings.Contains(stdout, "signed by: CN=Test DB key") || !strings.Contains(stdout, "sha256  enter-initrd:leave-initrd ") {
		t.Errorf("inspect text:\n%s", stdout)
	}

	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	if got := testutil.Run(t, sbverify, "--cert", sbCert, out); string(got) != "Signature verification OK\n" {
		t.Errorf("sbverify: %q", got)
	}
	osslsigncode := testutil.RequireTool(t, "osslsigncode", "osslsigncode")
	if got := testutil.Run(t, osslsigncode, "verify", "-CAfile", sbCert, "-in", out); !strings.Contains(string(got), "Signature verification: ok") {
		t.Errorf("osslsigncode: %s", got)
	}

	// .pcrsig against systemd-measure sign over the UKI's own sections.
	measureTool := testutil.RequireTool(t, "systemd-measure", "systemd")
	python := testutil.RequireTool(t, "python3", "python3")
	tcti := testutil.StartSWTPM(t)
	checkPCRSig := func(image []byte, extra ...string) {
		t.Helper()
		f, err := pe.Parse(image)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"sign", "--private-key=" + pcrPriv, "--public-key=" + pcrPub, "--json=short", "--tpm2-device=" + tcti}
		for _, s := range []struct{ section, flag string }{{".linux", "linux"}, {".osrel", "osrel"}, {".cmdline", "cmdline"}, {".initrd", "initrd"}, {".pcrpkey", "pcrpkey"}} {
			i := f.Section(s.section)
			if i < 0 {
				t.Fatalf("no %s section", s.section)
			}
			args = append(args, "--"+s.flag+"="+write("sec"+s.section, f.Contents(i)))
		}
		code, measured, errOut := runSystemdMeasure(t, measureTool, append(args, extra...))
		if code != 0 {
			if strings.Contains(errOut, "TPM2") && !testutil.InCI() {
				t.Skip("systemd-measure sign could not use the TPM: " + errOut)
			}
			t.Fatalf("systemd-measure: %s", errOut)
		}
		want := testutil.Run(t, python, "-c", "import json,sys; sys.stdout.write(json.dumps(json.loads(open(sys.argv[1]).read())))", write("measured.json", []byte(measured)))
		got := f.Contents(f.Section(".pcrsig"))
		if !bytes.Equal(got, want) {
			t.Errorf(".pcrsig:\n%s\nsystemd-measure (as ukify stores it):\n%s", got, want)
		}
		if pk := f.Contents(f.Section(".pcrpkey")); !bytes.Equal(pk, mustRead(t, pcrPub)) {
			t.Errorf(".pcrpkey is not the public key file")
		}
	}
	checkPCRSig(signed)

	// --phases and --pcr-banks are passed on as systemd-measure's --phase
	// and --bank.
	custom := filepath.Join(dir, "custom.efi")
	if code, _, stderr := run(t, append(common, "--phases=enter-initrd:leave-initrd enter-initrd", "--pcr-banks=sha256", "--output="+custom)...); code != 0 {
		t.Fatal(stderr)
	}
	checkPCRSig(mustRead(t, custom), "--phase=enter-initrd:leave-initrd", "--phase=enter-initrd", "--bank=sha256")
}

// Firmware the Secure Boot test runs (Debian package ovmf).
const (
	sbOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	sbOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd" // no keys: setup mode
	sbBootEFI  = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

// TestSecureBootUKI enrolls a generated key set in OVMF (systemd-boot 252's
// automatic enrollment), then boots systemd-boot and a UKI, both signed by
// imago with the db key, with Secure Boot enforced: the guest reports
// SecureBoot enabled. The same UKI with one byte changed is refused.
func TestSecureBootUKI(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	qemu := testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	for _, p := range []string{sbOVMFCode, sbOVMFVars, sbBootEFI} {
		if _, err := os.Stat(p); err != nil {
			if testutil.InCI() {
				t.Fatal(err)
			}
			t.Skip(err)
		}
	}
	stub := requireStub(t)
	kernel := vmtest.RequireKernel(t)
	initrd := vmtest.Initrd(t, kernel)
	keyDir := filepath.Join(t.TempDir(), "keys")
	set, err := keys.Generate(keyDir, keys.Options{CommonName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	dbKey, dbCert := set.Path(set.DB.KeyFile()), set.Path(set.DB.CertificateFile())

	vars := filepath.Join(t.TempDir(), "vars.fd")
	if err := os.WriteFile(vars, mustRead(t, sbOVMFVars), 0o644); err != nil {
		t.Fatal(err)
	}
	makeESP := func(loaderConf string, uki []byte) string {
		esp := t.TempDir()
		for _, d := range []string{"EFI/BOOT", "EFI/Linux", "loader/keys/auto"} {
			if err := os.MkdirAll(filepath.Join(esp, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if code, _, stderr := run(t, "sbsign", "--key="+dbKey, "--cert="+dbCert, "--output="+filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), sbBootEFI); code != 0 {
			t.Fatal(stderr)
		}
		for _, k := range set.SecureBootKeys() {
			if err := os.WriteFile(filepath.Join(esp, "loader/keys/auto", k.AuthFile()), k.Auth, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(esp, "loader/loader.conf"), []byte(loaderConf), 0o644); err != nil {
			t.Fatal(err)
		}
		if uki != nil {
			if err := os.WriteFile(filepath.Join(esp, "EFI/Linux/test.efi"), uki, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return esp
	}

	// 1. Setup mode: systemd-boot enrolls the keys and resets.
	console := bootSecureBootVM(t, qemu, vars, makeESP("timeout 5\nsecure-boot-enroll force\n", nil), "")
	if !strings.Contains(console, "Enrolling secure boot keys") {
		t.Fatalf("systemd-boot did not enroll:\n%s", console)
	}

	// 2. A signed UKI with .pcrsig boots with Secure Boot enforced.
	ukiPath := filepath.Join(t.TempDir(), "test.efi")
	code, _, stderr := run(t, "uki", "build", "--stub="+stub, "--linux="+kernel.Vmlinuz, "--initrd="+initrd,
		"--cmdline="+vmtest.Append("hang"), "--os-release=ID=test\nIMAGE_ID=test\nIMAGE_VERSION=1\n",
		"--pcr-private-key="+set.Path(keys.PCRPrivateKeyFile), "--pcr-public-key="+set.Path(keys.PCRPublicKeyFile),
		"--secureboot-private-key="+dbKey, "--secureboot-certificate="+dbCert, "--output="+ukiPath)
	if code != 0 {
		t.Fatal(stderr)
	}
	signed := mustRead(t, ukiPath)
	console = bootSecureBootVM(t, qemu, vars, makeESP("timeout 0\n", signed), "secureboot=")
	if !strings.Contains(console, "secureboot=1 setupmode=0") {
		t.Fatalf("the guest does not report Secure Boot enforced:\n%s", console)
	}
	t.Logf("signed UKI: %s", consoleLine(console, "secureboot="))

	// 3. One changed byte in the kernel section: the firmware refuses it
	// and systemd-boot reports the refusal.
	f, err := pe.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(signed)
	tampered[f.Sections[f.Section(".linux")].PointerToRawData+0x1000] ^= 1
	refused := `Error loading \EFI\Linux\test.efi: Access Denied`
	console = bootSecureBootVM(t, qemu, vars, makeESP("timeout 0\n", tampered), refused)
	if strings.Contains(console, "Linux version") {
		t.Fatalf("the tampered UKI started:\n%s", console)
	}
	t.Logf("tampered UKI: %s", consoleLine(console, refused))
}

// bootSecureBootVM boots OVMF with Secure Boot support, the variable store
// vars and the directory esp as its disk, and returns the serial console
// once it shows until, or once the machine resets when until is empty.
func bootSecureBootVM(t *testing.T, qemu, vars, esp, until string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35,smm=on,accel=tcg", "-smp", "1", "-m", "512",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+sbOVMFCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-drive", "if=virtio,format=raw,file=fat:rw:"+esp,
		"-nic", "none", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot")
	var console syncBuffer
	cmd.Stdout, cmd.Stderr = &console, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if until != "" || ctx.Err() != nil {
				t.Fatalf("qemu ended (%v) before the console showed %q:\n%s", err, until, console.String())
			}
			return console.String()
		case <-tick.C:
			if until != "" && strings.Contains(console.String(), until) {
				time.Sleep(500 * time.Millisecond) // the rest of the line
				_ = cmd.Process.Kill()
				<-done
				return console.String()
			}
		}
	}
}

// consoleLine returns the console line containing s.
func consoleLine(console, s string) string {
	for _, line := range strings.Split(console, "\n") {
		if strings.Contains(line, s) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// syncBuffer collects the serial console while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
