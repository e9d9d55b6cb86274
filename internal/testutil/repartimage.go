package testutil

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
	"testing"
	"time"
)

// RepartImage is a disk image built by the real systemd-repart: a /usr
// partition labelled fooOS_7.1 with 3 MiB of random content, its verity hash
// and signature partitions, and an empty 1 MiB usr slot labelled _empty.
type RepartImage struct {
	// Path is the image file.
	Path string
	// CertificatePath and KeyPath are the PEM files that signed the root hash.
	CertificatePath, KeyPath string
	// Certificate is the signer's certificate.
	Certificate *x509.Certificate
	// RootHash is the root hash systemd-repart printed, in hex.
	RootHash string
}

// MakeRepartImage builds a RepartImage in a temporary directory. It needs
// systemd-repart; see RequireTool.
func MakeRepartImage(t testing.TB) *RepartImage {
	t.Helper()
	repart := RequireTool(t, "systemd-repart", "systemd")
	dir := t.TempDir()
	img := &RepartImage{
		Path:            filepath.Join(dir, "disk.raw"),
		CertificatePath: filepath.Join(dir, "cert.pem"),
		KeyPath:         filepath.Join(dir, "key.pem"),
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "repart interop"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(24 * time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if img.Certificate, err = x509.ParseCertificate(certDER); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, img.KeyPath, "PRIVATE KEY", keyDER)
	writePEM(t, img.CertificatePath, "CERTIFICATE", certDER)

	payload := make([]byte, 3<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	usr := filepath.Join(dir, "usr.img")
	if err := os.WriteFile(usr, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	defs := filepath.Join(dir, "definitions")
	if err := os.Mkdir(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"20-usr.conf":            "[Partition]\nType=usr\nLabel=fooOS_7.1\nCopyBlocks=" + usr + "\nVerity=data\nVerityMatchKey=usr\n",
		"21-usr-verity.conf":     "[Partition]\nType=usr-verity\nLabel=fooOS_7.1_verity\nVerity=hash\nVerityMatchKey=usr\nSizeMinBytes=1M\nSizeMaxBytes=1M\n",
		"22-usr-verity-sig.conf": "[Partition]\nType=usr-verity-sig\nLabel=fooOS_7.1_verity_sig\nVerity=signature\nVerityMatchKey=usr\n",
		"30-empty.conf":          "[Partition]\nType=usr\nLabel=_empty\nSizeMinBytes=1M\nSizeMaxBytes=1M\n",
	} {
		if err := os.WriteFile(filepath.Join(defs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := Run(t, repart, "--definitions="+defs, "--empty=create", "--size=auto", "--dry-run=no",
		"--seed=0123456789abcdef0123456789abcdef", "--json=short",
		"--private-key="+img.KeyPath, "--certificate="+img.CertificatePath, img.Path)
	var planned []struct {
		RootHash string `json:"roothash"`
	}
	if err := json.Unmarshal(out, &planned); err != nil {
		t.Fatalf("systemd-repart --json=short: %v\n%s", err, out)
	}
	for _, p := range planned {
		if p.RootHash != "" && p.RootHash != "-" {
			img.RootHash = p.RootHash
		}
	}
	if img.RootHash == "" {
		t.Fatalf("systemd-repart printed no root hash:\n%s", out)
	}
	return img
}

func writePEM(t testing.TB, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
