package authenticode

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// interopInputs are real UEFI binaries to sign: Debian's systemd-boot and
// systemd-stub, and the spec vectors (one of them already signed, so that
// appending a second signature is compared too).
func interopInputs(t *testing.T) map[string]string {
	inputs := map[string]string{
		"unsigned":         "testdata/unsigned.efi",
		"unsigned-trailer": "testdata/unsigned-trailer.efi",
		"already-signed":   "testdata/unsigned.signed.efi",
	}
	for _, p := range []string{"/usr/lib/systemd/boot/efi/systemd-bootx64.efi", "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"} {
		if _, err := os.Stat(p); err == nil {
			inputs[filepath.Base(p)] = p
		} else if testutil.InCI() {
			t.Fatalf("%s: %v", p, err)
		}
	}
	return inputs
}

// TestInteropSbsign signs real binaries with sbsign 0.9.4 and with Sign
// (using sbsign's signing time) and compares every byte; then sbverify and
// osslsigncode check our output, and Verify checks sbsign's.
func TestInteropSbsign(t *testing.T) {
	sbsign := testutil.RequireTool(t, "sbsign", "sbsigntool")
	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	osslsigncode := testutil.RequireTool(t, "osslsigncode", "osslsigncode")
	cert, key := testCert(t), testKey(t)
	for name, in := range interopInputs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			theirsPath := filepath.Join(dir, "sbsign.efi")
			testutil.Run(t, sbsign, "--key", "testdata/db-test.key", "--cert", "testdata/db-test.crt", "--output", theirsPath, in)
			theirs := readFile(t, theirsPath)
			image := readFile(t, in)
			ours, err := SignWithOptions(image, cert, key, Options{Time: signingTimeOf(t, theirs)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Fatalf("differs from sbsign at byte %d (%d vs %d bytes)", firstDiff(ours, theirs), len(ours), len(theirs))
			}
			oursPath := testutil.WriteFile(t, "ours.efi", ours)
			if out := testutil.Run(t, sbverify, "--cert", "testdata/db-test.crt", oursPath); !strings.Contains(string(out), "Signature verification OK") {
				t.Errorf("sbverify: %s", out)
			}
			// osslsigncode reads only a table holding one WIN_CERTIFICATE
			// (it calls sbsign's own two-signature output corrupted).
			if name != "already-signed" {
				if out := testutil.Run(t, osslsigncode, "verify", "-CAfile", "testdata/db-test.crt", "-in", oursPath); !strings.Contains(string(out), "Signature verification: ok") {
					t.Errorf("osslsigncode: %s", out)
				}
			}
			if _, err := Verify(theirs, []*x509.Certificate{cert}); err != nil {
				t.Errorf("Verify(sbsign's output): %v", err)
			}
			// A flipped byte in the middle of the signed part is refused by
			// both sbverify and Verify.
			tampered := bytes.Clone(theirs)
			tampered[len(image)/2] ^= 0x40
			tamperedPath := testutil.WriteFile(t, "tampered.efi", tampered)
			if _, err := testutil.RunErr(sbverify, "--cert", "testdata/db-test.crt", tamperedPath); err == nil {
				t.Error("sbverify accepted the tampered image")
			}
			if _, err := Verify(tampered, []*x509.Certificate{cert}); err == nil {
				t.Error("Verify accepted the tampered image")
			}
		})
	}
}
