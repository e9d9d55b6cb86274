package veritysig

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// signerFiles creates a key and self-signed certificate with openssl, as an
// image builder would, and returns their paths and the parsed pair.
func signerFiles(t *testing.T, keyAlg ...string) (keyPath, certPath string) {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	keyPath, certPath = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	args := append([]string{"req", "-x509", "-nodes", "-subj", "/CN=imago verity interop", "-days", "3650",
		"-keyout", keyPath, "-out", certPath, "-newkey"}, keyAlg...)
	testutil.Run(t, openssl, args...)
	return keyPath, certPath
}

func loadSigner(t *testing.T, keyPath, certPath string) (*x509.Certificate, any) {
	t.Helper()
	cert, err := x509.ParseCertificate(readPEMBlock(t, certPath))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(readPEMBlock(t, keyPath))
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// repartSignaturePartition builds an image with systemd-repart (a root
// partition copied from a file, its verity hash partition and its signature
// partition) and returns the signature partition's bytes and the root hash
// repart reports.
func repartSignaturePartition(t *testing.T, keyPath, certPath string) (part []byte, rootHash string) {
	t.Helper()
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	dir := t.TempDir()
	defs := filepath.Join(dir, "repart.d")
	if err := os.Mkdir(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("imago verity signature interop\n"), 1<<15) // ~1 MiB
	dataPath := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(dataPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"10-root.conf":   "[Partition]\nType=root\nLabel=data\nCopyBlocks=" + dataPath + "\nVerity=data\nVerityMatchKey=root\n",
		"20-verity.conf": "[Partition]\nType=root-verity\nLabel=hash\nVerity=hash\nVerityMatchKey=root\nSizeMinBytes=1M\nSizeMaxBytes=1M\n",
		"30-sig.conf":    "[Partition]\nType=root-verity-sig\nLabel=sig\nVerity=signature\nVerityMatchKey=root\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(defs, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image := filepath.Join(dir, "image.raw")
	out := testutil.Run(t, repart, "--definitions="+defs, "--empty=create", "--size=auto",
		"--seed=0123456789abcdef0123456789abcdef", "--private-key="+keyPath, "--certificate="+certPath,
		"--json=short", image)
	var report []struct {
		Label    string  `json:"label"`
		RootHash *string `json:"roothash"`
	}
	// repart prints progress lines before the JSON on some versions.
	if err := json.Unmarshal(out[bytes.IndexByte(out, '['):], &report); err != nil {
		t.Fatalf("repart --json: %v: %s", err, out)
	}
	for _, p := range report {
		if p.RootHash != nil {
			rootHash = *p.RootHash
		}
	}
	if rootHash == "" {
		t.Fatalf("repart reported no root hash: %s", out)
	}

	var table struct {
		PartitionTable struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(testutil.Run(t, sfdisk, "--json", image), &table); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	ss := table.PartitionTable.SectorSize
	for _, p := range table.PartitionTable.Partitions {
		if p.Name == "sig" {
			return img[p.Start*ss : (p.Start+p.Size)*ss], rootHash
		}
	}
	t.Fatal("no signature partition in the image")
	return nil, ""
}

func TestInteropRepartRSA(t *testing.T) {
	keyPath, certPath := signerFiles(t, "rsa:2048")
	cert, key := loadSigner(t, keyPath, certPath)
	part, rootHash := repartSignaturePartition(t, keyPath, certPath)
	if len(part) != PartitionSize {
		t.Errorf("repart's signature partition is %d bytes, want %d", len(part), PartitionSize)
	}
	sig, err := Parse(part)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sig.RootHash); got != rootHash {
		t.Errorf("rootHash %s, repart reported %s", got, rootHash)
	}
	if !bytes.Equal(sig.CertificateFingerprint, Fingerprint(cert)) {
		t.Errorf("fingerprint %x, want %x", sig.CertificateFingerprint, Fingerprint(cert))
	}
	if _, err := sig.Verify([]*x509.Certificate{cert}); err != nil {
		t.Fatalf("repart's signature does not verify: %v", err)
	}
	ours, err := Sign(sig.RootHash, cert, key.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	full, err := ours.MarshalPartition(PartitionSize)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(full, part) {
		t.Fatalf("our partition differs from repart's:\nours   %s\nrepart %s", bytes.TrimRight(full, "\x00"), bytes.TrimRight(part, "\x00"))
	}
}

func TestInteropRepartEC(t *testing.T) {
	keyPath, certPath := signerFiles(t, "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
	cert, _ := loadSigner(t, keyPath, certPath)
	part, rootHash := repartSignaturePartition(t, keyPath, certPath)
	sig, err := Parse(part)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sig.RootHash); got != rootHash {
		t.Errorf("rootHash %s, repart reported %s", got, rootHash)
	}
	if _, err := sig.Verify([]*x509.Certificate{cert}); err != nil {
		t.Fatalf("repart's ECDSA signature does not verify: %v", err)
	}
	// ECDSA signatures are randomized; the text must still round-trip.
	text, err := sig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.TrimRight(part, "\x00"); !bytes.Equal(text, want) {
		t.Errorf("re-marshalled JSON differs:\nours   %s\nrepart %s", text, want)
	}
}

func pemCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// TestInteropOpenSSLVerifiesOurs checks our signature over the hex root hash
// with `openssl smime -verify` and `openssl cms -verify`, both trusting the
// certificate as a CA and trusting only the given signer as systemd does.
func TestInteropOpenSSLVerifiesOurs(t *testing.T) {
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	cert, key := vectorSigner(t)
	ecCert, ecKey := newECSigner(t)
	ecCertPath := filepath.Join(t.TempDir(), "ec.pem")
	if err := os.WriteFile(ecCertPath, pemCert(ecCert), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		sign     func() (*Signature, error)
		certPath string
	}{
		{"rsa", func() (*Signature, error) { return Sign(mustHex(t, vectorRootHash), cert, key) }, vectorCert},
		{"p256", func() (*Signature, error) { return Sign(mustHex(t, vectorRootHash), ecCert, ecKey) }, ecCertPath},
	} {
		t.Run(c.name, func(t *testing.T) {
			sig, err := c.sign()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			sigPath, contentPath := filepath.Join(dir, "sig.der"), filepath.Join(dir, "roothash.txt")
			if err := os.WriteFile(sigPath, sig.PKCS7, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(contentPath, SignedContent(sig.RootHash), 0o644); err != nil {
				t.Fatal(err)
			}
			common := []string{"-verify", "-binary", "-inform", "DER", "-in", sigPath, "-content", contentPath, "-out", os.DevNull}
			for _, args := range [][]string{
				append(append([]string{"smime"}, common...), "-CAfile", c.certPath, "-purpose", "any"),
				append(append([]string{"smime"}, common...), "-noverify", "-nointern", "-certfile", c.certPath),
				append(append([]string{"cms"}, common...), "-CAfile", c.certPath, "-purpose", "any"),
			} {
				testutil.Run(t, openssl, args...)
			}
			// And openssl refuses it over other content (the hex with a newline).
			if err := os.WriteFile(contentPath, append(SignedContent(sig.RootHash), '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := testutil.RunErr(openssl, append(append([]string{"smime"}, common...), "-noverify", "-nointern", "-certfile", c.certPath)...); err == nil {
				t.Error("openssl accepted the signature over the root hash with a newline")
			}
		})
	}
}

// TestInteropOpenSSLSignatureAccepted feeds a signature made by
// `openssl smime -sign -binary -noattr` to Verify, and checks it equals ours.
func TestInteropOpenSSLSignatureAccepted(t *testing.T) {
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	cert, key := vectorSigner(t)
	dir := t.TempDir()
	contentPath, sigPath := filepath.Join(dir, "roothash.txt"), filepath.Join(dir, "sig.der")
	if err := os.WriteFile(contentPath, []byte(vectorRootHash), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, openssl, "smime", "-sign", "-binary", "-noattr", "-in", contentPath, "-inkey", vectorKey,
		"-signer", vectorCert, "-outform", "DER", "-out", sigPath)
	der, err := os.ReadFile(sigPath)
	if err != nil {
		t.Fatal(err)
	}
	sig := &Signature{RootHash: mustHex(t, vectorRootHash), PKCS7: der}
	if _, err := sig.Verify([]*x509.Certificate{cert}); err != nil {
		t.Fatal(err)
	}
	ours, err := Sign(sig.RootHash, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours.PKCS7, der) {
		t.Errorf("our PKCS#7 differs from openssl's:\nours    %x\nopenssl %x", ours.PKCS7, der)
	}
	if strings.Contains(string(SignedContent(sig.RootHash)), "\n") {
		t.Error("signed content has a newline")
	}
}
