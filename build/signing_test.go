package build

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/dissect"
	"github.com/imago-os/imago/format/authenticode"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/keys"
)

// TestReferenceSigned checks what the reference image's signing produces:
// the UKI and systemd-boot in the ESP carry Authenticode signatures by the
// key set's db key that sbverify and osslsigncode accept, the UKI has .pcrpkey (the key
// set's PCR key) and .pcrsig, the ESP holds the enrollment files and
// "secure-boot-enroll force", and SHA256SUMS.gpg verifies with gpgv
// against the keyring the image carries.
func TestReferenceSigned(t *testing.T) {
	res := sharedReference(t)
	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	osslsigncode := testutil.RequireTool(t, "osslsigncode", "osslsigncode")
	mcopy := testutil.RequireTool(t, "mcopy", "mtools")
	gpgv := testutil.RequireTool(t, "gpgv", "gpgv")
	set, err := keys.Load(shared.keys)
	if err != nil {
		t.Fatal(err)
	}
	dbCert := filepath.Join(shared.keys, set.DB.CertificateFile())
	work := t.TempDir()

	// The UKI artifact.
	ukiPath := filepath.Join(res.OutputDir, res.Label+".efi")
	image, err := os.ReadFile(ukiPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authenticode.Verify(image, []*x509.Certificate{set.DB.Certificate}); err != nil {
		t.Errorf("UKI: %v", err)
	}
	if _, err := authenticode.Verify(image, []*x509.Certificate{set.KEK.Certificate}); err == nil {
		t.Error("UKI verifies against the KEK certificate, which did not sign it")
	}
	testutil.Run(t, sbverify, "--cert", dbCert, ukiPath)
	testutil.Run(t, osslsigncode, "verify", "-CAfile", dbCert, ukiPath)
	info, err := uki.Inspect(image)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, s := range info.Sections {
		sections[s.Name] = true
	}
	for _, name := range []string{".linux", ".initrd", ".cmdline", ".osrel", ".uname", ".pcrsig", ".pcrpkey"} {
		if !sections[name] {
			t.Errorf("UKI has no %s section (sections: %v)", name, info.Sections)
		}
	}
	if len(info.PCR11) == 0 {
		t.Error("no PCR 11 prediction")
	}

	// The ESP, read out of the disk image with mtools.
	img := openDisk(t, res.Image, false)
	var espPart *dissect.Partition
	for i, p := range img.Partitions {
		if p.TypeName == "esp" {
			espPart = &img.Partitions[i]
		}
	}
	if espPart == nil {
		t.Fatal("no ESP")
	}
	fromESP := func(path string) []byte {
		t.Helper()
		dst := filepath.Join(work, strings.ReplaceAll(path, "/", "_"))
		testutil.Run(t, mcopy, "-n", "-i", res.Image+"@@"+strconv.FormatInt(espPart.Offset, 10), "::/"+path, dst)
		data, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, loader := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"} {
		data := fromESP(loader)
		if _, err := authenticode.Verify(data, []*x509.Certificate{set.DB.Certificate}); err != nil {
			t.Errorf("%s: %v", loader, err)
		}
		testutil.Run(t, sbverify, "--cert", dbCert, filepath.Join(work, strings.ReplaceAll(loader, "/", "_")))
		testutil.Run(t, osslsigncode, "verify", "-CAfile", dbCert, filepath.Join(work, strings.ReplaceAll(loader, "/", "_")))
	}
	if got := fromESP("EFI/Linux/" + res.Label + ".efi"); !bytes.Equal(got, image) {
		t.Error("the ESP's UKI differs from the UKI artifact")
	}
	for _, k := range set.SecureBootKeys() {
		if got := fromESP("loader/keys/auto/" + k.AuthFile()); !bytes.Equal(got, k.Auth) {
			t.Errorf("loader/keys/auto/%s differs from the key set's", k.AuthFile())
		}
	}
	if conf := string(fromESP("loader/loader.conf")); !strings.Contains(conf, "secure-boot-enroll force\n") {
		t.Errorf("loader.conf lacks secure-boot-enroll force:\n%s", conf)
	}

	// SHA256SUMS.gpg against the public keyring, as gpgv checks it.
	ring, err := set.UpdateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	ringPath := filepath.Join(work, "pubring.gpg")
	if err := os.WriteFile(ringPath, ring, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, gpgv, "--keyring", ringPath, filepath.Join(res.OutputDir, "SHA256SUMS.gpg"), filepath.Join(res.OutputDir, "SHA256SUMS"))
	sums, err := os.ReadFile(filepath.Join(res.OutputDir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(res.OutputDir, "SHA256SUMS.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.VerifyUpdateManifest(bytes.NewReader(ring), bytes.NewReader(append(sums, '\n')), bytes.NewReader(sig)); err == nil {
		t.Error("SHA256SUMS.gpg verifies a changed SHA256SUMS")
	}
}
