package cli

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
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

	"github.com/imago-os/imago/format/veritysig"
	"github.com/imago-os/imago/internal/testutil"
)

// The signature partition systemd-repart 252 wrote, with its key and
// certificate (see format/veritysig).
const (
	sigVectorDir      = "../../format/veritysig/testdata/"
	sigVectorRootHash = "5c3bba5d17871dfb667171f3429b27a11a64a9c25e15f09be1c79b66b70857f5"
)

// writeKeyPair writes a fresh key in the given PEM encoding and a
// self-signed certificate for it, and returns both paths.
func writeKeyPair(t *testing.T, encoding string) (keyPath, certPath string) {
	t.Helper()
	var key crypto.Signer
	var blocks []*pem.Block
	switch encoding {
	case "pkcs1":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = k
		blocks = []*pem.Block{{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}}
	case "sec1", "pkcs8":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
		if encoding == "sec1" {
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			// As `openssl ecparam -genkey` writes it: parameters first.
			blocks = []*pem.Block{{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}},
				{Type: "EC PRIVATE KEY", Bytes: der}}
		} else {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			blocks = []*pem.Block{{Type: "PRIVATE KEY", Bytes: der}}
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "imago cli " + encoding},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath, certPath = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	var keyPEM []byte
	for _, b := range blocks {
		keyPEM = append(keyPEM, pem.EncodeToMemory(b)...)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}

func TestVeritySignReproducesRepart(t *testing.T) {
	want, err := os.ReadFile(sigVectorDir + "repart252.partition")
	if err != nil {
		t.Fatal(err)
	}
	keyArgs := []string{"--root-hash=" + sigVectorRootHash, "--private-key=" + sigVectorDir + "repart252-signer.key",
		"--certificate=" + sigVectorDir + "repart252-signer.crt"}

	out := filepath.Join(t.TempDir(), "sig.raw")
	code, stdout, stderr := run(t, append([]string{"verity", "sign", "--output=" + out}, keyArgs...)...)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("--output differs from systemd-repart's partition")
	}

	code, stdout, _ = run(t, append([]string{"verity", "sign"}, keyArgs...)...)
	if text := string(bytes.TrimRight(want, "\x00")) + "\n"; code != 0 || stdout != text {
		t.Errorf("stdout: exit %d, %q, want %q", code, stdout, text)
	}

	code, stdout, _ = run(t, append([]string{"verity", "sign", "--padding=partition"}, keyArgs...)...)
	if code != 0 || stdout != string(want) {
		t.Errorf("--padding=partition on stdout: exit %d, %d bytes", code, len(stdout))
	}

	code, _, _ = run(t, append([]string{"verity", "sign", "--output=" + out, "--padding=none"}, keyArgs...)...)
	if got, _ := os.ReadFile(out); code != 0 || !bytes.Equal(got, bytes.TrimRight(want, "\x00")) {
		t.Errorf("--padding=none to a file: exit %d, %q", code, got)
	}

	code, stdout, _ = run(t, append([]string{"verity", "sign", "--json", "--output=" + out}, keyArgs...)...)
	var res veritySignResult
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil {
		t.Fatalf("--json: exit %d, %v, %q", code, err, stdout)
	}
	if res.RootHash != sigVectorRootHash || res.Output != out || res.Size != veritysig.PartitionSize || res.Padding != "partition" ||
		!strings.Contains(string(want), `"signature":"`+res.Signature+`"`) ||
		!strings.Contains(string(want), `"certificateFingerprint":"`+res.CertificateFingerprint+`"`) {
		t.Errorf("--json report %+v", res)
	}
}

func TestVeritySignVerifyKeyEncodings(t *testing.T) {
	for _, encoding := range []string{"pkcs1", "sec1", "pkcs8"} {
		t.Run(encoding, func(t *testing.T) {
			keyPath, certPath := writeKeyPair(t, encoding)
			_, otherCert := writeKeyPair(t, "pkcs8")
			out := filepath.Join(t.TempDir(), "sig.raw")
			rootHash := strings.Repeat("0123456789abcdef", 4)
			code, _, stderr := run(t, "verity", "sign", "--root-hash="+rootHash, "--private-key="+keyPath, "--certificate="+certPath, "--output="+out)
			if code != 0 {
				t.Fatalf("sign: exit %d: %s", code, stderr)
			}
			code, stdout, stderr := run(t, "verity", "verify-signature", "--certificate="+certPath, "--root-hash="+rootHash, out)
			if code != 0 || !strings.Contains(stdout, "valid signature of root hash "+rootHash) || !strings.Contains(stdout, "imago cli "+encoding) {
				t.Fatalf("verify: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			// Several trusted certificates: any one may be the signer.
			code, _, stderr = run(t, "verity", "verify-signature", "--certificate="+otherCert, "--certificate="+certPath, out)
			if code != 0 {
				t.Errorf("verify with two certificates: exit %d: %s", code, stderr)
			}
			code, stdout, stderr = run(t, "verity", "verify-signature", "--json", "--certificate="+certPath, out)
			var res verityVerifySignatureResult
			if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || !res.Valid || res.RootHash != rootHash || len(res.Signers) != 1 {
				t.Errorf("verify --json: exit %d, %q, %s", code, stdout, stderr)
			}
		})
	}
}

func TestVerityVerifySignatureFailures(t *testing.T) {
	_, otherCert := writeKeyPair(t, "pkcs8")
	vector := sigVectorDir + "repart252.partition"
	cert := "--certificate=" + sigVectorDir + "repart252-signer.crt"
	data, err := os.ReadFile(vector)
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Clone(data)
	garbage[len(garbage)-1] = 'x'
	garbagePath := testutil.WriteFile(t, "garbage.raw", garbage)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"untrusted signer", []string{"--certificate=" + otherCert, vector}, "not among the trusted certificates"},
		{"root hash mismatch", []string{cert, "--root-hash=" + strings.Repeat("00", 32), vector}, "differs from the expected root hash"},
		{"embedded NUL", []string{cert, garbagePath}, "embedded NUL byte"},
		{"missing file", []string{cert, filepath.Join(t.TempDir(), "nope")}, "no such file"},
		{"no certificate", []string{vector}, "--certificate is required"},
		{"certificate file without certificate", []string{"--certificate=" + vector, vector}, "no PEM certificate"},
		{"bad root hash flag", []string{cert, "--root-hash=xyz", vector}, "invalid root hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"verity", "verify-signature"}, c.args...)...)
			if code != 1 || stdout != "" || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "imago: ") {
				t.Errorf("exit %d, stdout %q, stderr %q, want one line with %q", code, stdout, stderr, c.want)
			}
		})
	}

	code, stdout, _ := run(t, "verity", "verify-signature", "--json", "--certificate="+otherCert, vector)
	var res verityVerifySignatureResult
	if err := json.Unmarshal([]byte(stdout), &res); code != 1 || err != nil || res.Valid || !strings.Contains(res.Error, "not among") {
		t.Errorf("--json failure: exit %d, %q", code, stdout)
	}

	// Standard input.
	var out, errOut bytes.Buffer
	if code := Main([]string{"verity", "verify-signature", cert, "-"}, bytes.NewReader(data), &out, &errOut); code != 0 {
		t.Errorf("stdin: exit %d: %s", code, errOut.String())
	}
}

func TestVeritySignErrors(t *testing.T) {
	keyPath, certPath := writeKeyPair(t, "sec1")
	otherKey, _ := writeKeyPair(t, "pkcs8")
	rh := "--root-hash=" + sigVectorRootHash
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing flags", []string{rh}, "are required"},
		{"bad padding", []string{rh, "--private-key=" + keyPath, "--certificate=" + certPath, "--padding=some"}, "want none or partition"},
		{"bad root hash", []string{"--root-hash=abc", "--private-key=" + keyPath, "--certificate=" + certPath}, "invalid root hash"},
		{"key of another certificate", []string{rh, "--private-key=" + otherKey, "--certificate=" + certPath}, "does not match the certificate"},
		{"certificate as key", []string{rh, "--private-key=" + certPath, "--certificate=" + certPath}, "no PEM private key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := run(t, append([]string{"verity", "sign"}, c.args...)...)
			if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q, want %q", code, stderr, c.want)
			}
		})
	}
}

// TestVeritySignOpenSSLKeys signs with keys as openssl writes them
// (traditional PKCS#1 RSA, SEC1 EC with parameters) and checks the result
// with openssl.
func TestVeritySignOpenSSLKeys(t *testing.T) {
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		gen  []string
	}{
		{"rsa-traditional", []string{"genrsa", "-traditional", "-out", "KEY", "2048"}},
		{"ec-sec1", []string{"ecparam", "-name", "prime256v1", "-genkey", "-out", "KEY"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			key, cert := filepath.Join(dir, c.name+".key"), filepath.Join(dir, c.name+".crt")
			gen := append([]string{}, c.gen...)
			for i := range gen {
				if gen[i] == "KEY" {
					gen[i] = key
				}
			}
			testutil.Run(t, openssl, gen...)
			testutil.Run(t, openssl, "req", "-x509", "-new", "-key", key, "-subj", "/CN="+c.name, "-days", "30", "-out", cert)
			out := filepath.Join(dir, c.name+".raw")
			code, _, stderr := run(t, "verity", "sign", "--root-hash="+sigVectorRootHash, "--private-key="+key, "--certificate="+cert, "--output="+out)
			if code != 0 {
				t.Fatalf("sign: exit %d: %s", code, stderr)
			}
			data, _ := os.ReadFile(out)
			sig, err := veritysig.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			der, content := filepath.Join(dir, c.name+".p7"), filepath.Join(dir, c.name+".txt")
			if err := os.WriteFile(der, sig.PKCS7, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(content, []byte(sigVectorRootHash), 0o644); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, openssl, "smime", "-verify", "-binary", "-inform", "DER", "-in", der, "-content", content,
				"-noverify", "-nointern", "-certfile", cert, "-out", os.DevNull)
		})
	}
}
