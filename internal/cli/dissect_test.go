package cli

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

func TestDissectRepartImage(t *testing.T) {
	ri := testutil.MakeRepartImage(t)

	code, out, errOut := run(t, "dissect", "--verify", "--certificate="+ri.CertificatePath, ri.Path)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{
		"usr-x86-64-verity-sig", "fooOS_7.1_verity", "(empty slot)", "read-only",
		"root hash         " + ri.RootHash, "partition UUIDs   match the root hash",
		"signature         valid, signed by CN=repart interop", "hash tree         verified",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = run(t, "dissect", "--json", ri.Path)
	var img struct {
		Partitions []struct {
			Number   int    `json:"number"`
			TypeName string `json:"typeName"`
			Version  string `json:"version"`
		} `json:"partitions"`
		VerityGroups []struct {
			RootHash       string                  `json:"rootHash"`
			SignatureCheck struct{ Status string } `json:"signatureCheck"`
		} `json:"verityGroups"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &img) != nil {
		t.Fatalf("--json: exit %d, %s", code, out)
	}
	if len(img.Partitions) != 4 || img.Partitions[0].TypeName != "usr-x86-64" || img.Partitions[0].Version != "7.1" ||
		len(img.VerityGroups) != 1 || img.VerityGroups[0].RootHash != ri.RootHash ||
		img.VerityGroups[0].SignatureCheck.Status != "skipped" {
		t.Errorf("--json: %+v", img)
	}
}

func TestDissectWrongCertificate(t *testing.T) {
	ri := testutil.MakeRepartImage(t)
	other := filepath.Join(t.TempDir(), "other.pem")
	writeSelfSignedCert(t, other)
	code, out, errOut := run(t, "dissect", "--certificate="+other, ri.Path)
	if code != 1 || !strings.Contains(out, "signature         FAILED") ||
		errOut != "imago: "+ri.Path+": verity group usr-x86-64 failed its checks\n" {
		t.Errorf("exit %d\nstdout: %s\nstderr: %q", code, out, errOut)
	}
}

func TestDissectNotAnImage(t *testing.T) {
	path := testutil.WriteFile(t, "zeros.raw", make([]byte, 1<<20))
	code, _, errOut := run(t, "dissect", path)
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, path) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func writeSelfSignedCert(t *testing.T, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
