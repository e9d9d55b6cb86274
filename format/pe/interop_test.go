package pe

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

// Debian 12's EFI binaries from the systemd-boot-efi package.
const (
	debianStub     = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	debianSdBoot   = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	sdBootPackage  = "systemd-boot-efi"
	toolRunTimeout = 2 * time.Minute
)

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

// runTool runs a program and returns its combined output and error.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolRunTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// throwawayKey writes a fresh RSA key and self-signed certificate as PEM
// files and returns their paths and the certificate.
func throwawayKey(t *testing.T) (keyPath, certPath string, cert *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "imago test signer, do not trust"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	dir := t.TempDir()
	keyPath, certPath = filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath, cert
}

var (
	calculatedDigest   = regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)
	calculatedChecksum = regexp.MustCompile(`Calculated PE checksum\s*:\s*([0-9A-Fa-f]+)`)
)

// TestInteropDebianBinaries parses systemd-boot and systemd-stub as Debian
// ships them: the headers re-encode to the same bytes, the layout is sound,
// and the CheckSum their linker wrote is the one we compute.
func TestInteropDebianBinaries(t *testing.T) {
	for _, path := range []string{debianStub, debianSdBoot} {
		b := requireFile(t, path, sdBootPackage)
		f, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !bytes.Equal(f.Bytes(), b) {
			t.Errorf("%s: Bytes differs from the file", path)
		}
		if err := f.CheckLayout(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if got := f.Checksum(); got != f.OptionalHeader.CheckSum || got == 0 {
			t.Errorf("%s: Checksum 0x%x, header says 0x%x", path, got, f.OptionalHeader.CheckSum)
		}
		if f.OptionalHeader.Magic != MagicPE32Plus || f.FileHeader.Machine != MachineAMD64 || f.OptionalHeader.Subsystem != SubsystemEFIApplication {
			t.Errorf("%s: not a PE32+ x86-64 EFI application: %+v", path, f.FileHeader)
		}
	}
}

// TestInteropOsslsigncodeChecksum compares our CheckSum of unsigned images,
// including ones with sections we appended, with osslsigncode's.
func TestInteropOsslsigncodeChecksum(t *testing.T) {
	tool := testutil.RequireTool(t, "osslsigncode", "osslsigncode")
	f := mustParse(t, synthImage())
	if _, err := f.AddSection(".osrel", []byte("ID=test\n"), SectionMemRead|SectionCntInitializedData); err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string][]byte{"unsigned.efi": readFile(t, "testdata/unsigned.efi"), "added.efi": f.Bytes()} {
		path := testutil.WriteFile(t, name, img)
		out, _ := runTool(t, tool, "verify", path) // fails: no signature, but reports the checksum
		m := calculatedChecksum.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no calculated checksum in osslsigncode output:\n%s", name, out)
		}
		want, _ := strconv.ParseUint(m[1], 16, 32)
		if got := mustParse(t, img).Checksum(); got != uint32(want) {
			t.Errorf("%s: Checksum 0x%x, osslsigncode 0x%x", name, got, want)
		}
	}
}

// TestInteropSbsign signs images whose sections we appended with sbsign and
// checks: sbsign sees no gaps between sections, sbverify and osslsigncode
// accept the signature, the digest inside it and osslsigncode's calculated
// digest equal ours, and sbsign's CheckSum equals ours.
func TestInteropSbsign(t *testing.T) {
	sbsign := testutil.RequireTool(t, "sbsign", "sbsigntool")
	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	osslsigncode := testutil.RequireTool(t, "osslsigncode", "osslsigncode")
	keyPath, certPath, cert := throwawayKey(t)

	synth := mustParse(t, synthImage())
	for _, s := range []struct{ name, data string }{{".osrel", "ID=test\n"}, {".cmdline", "quiet"}, {".linux", strings.Repeat("kernel", 999)}} {
		if _, err := synth.AddSection(s.name, []byte(s.data), SectionMemRead|SectionCntInitializedData); err != nil {
			t.Fatal(err)
		}
	}
	images := map[string][]byte{"synth.efi": synth.Bytes()}
	if b, err := os.ReadFile(debianStub); err == nil {
		stub := mustParse(t, b)
		stub.StripSymbolTable()
		if _, err := stub.AddSection(".linux", bytes.Repeat([]byte{0x90}, 5000), SectionMemRead|SectionCntCode); err != nil {
			t.Fatal(err)
		}
		images["stub.efi"] = stub.Bytes()
	}

	for name, img := range images {
		t.Run(name, func(t *testing.T) {
			in := testutil.WriteFile(t, name, img)
			signed := in + ".signed"
			out, err := runTool(t, sbsign, "--key", keyPath, "--cert", certPath, "--output", signed, in)
			if err != nil {
				t.Fatalf("sbsign: %v\n%s", err, out)
			}
			if strings.Contains(out, "warning") || strings.Contains(out, "gaps") {
				t.Errorf("sbsign warned:\n%s", out)
			}
			if out, err := runTool(t, sbverify, "--cert", certPath, signed); err != nil || !strings.Contains(out, "Signature verification OK") {
				t.Errorf("sbverify: %v\n%s", err, out)
			}
			b, err := os.ReadFile(signed)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := AuthenticodeDigest(b, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			unsignedDigest, _ := AuthenticodeDigest(img, crypto.SHA256)
			if !bytes.Equal(ours, unsignedDigest) {
				t.Errorf("digest of the signed copy %x differs from the unsigned image's %x", ours, unsignedDigest)
			}
			if inSig := signatureDigest(t, b, cert); !bytes.Equal(ours, inSig) {
				t.Errorf("digest %x, signature carries %x", ours, inSig)
			}
			f := mustParse(t, b)
			if got := f.Checksum(); got != f.OptionalHeader.CheckSum {
				t.Errorf("Checksum 0x%x, sbsign wrote 0x%x", got, f.OptionalHeader.CheckSum)
			}
			out, err = runTool(t, osslsigncode, "verify", "-CAfile", certPath, signed)
			m := calculatedDigest.FindStringSubmatch(out)
			if err != nil || m == nil {
				t.Fatalf("osslsigncode verify: %v\n%s", err, out)
			}
			if !strings.EqualFold(m[1], hex.EncodeToString(ours)) {
				t.Errorf("osslsigncode calculated %s, we %x", m[1], ours)
			}
		})
	}
}
