package keys

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/efisig"
	"github.com/imago-os/imago/internal/testutil"
)

// TestInteropOpenSSL: openssl parses every certificate and key, sees
// RSA-2048 and SHA-256, and derives the PCR public key file from the PCR
// private key byte for byte.
func TestInteropOpenSSL(t *testing.T) {
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	s := sharedSet(t)
	for _, cert := range []string{"PK.crt", "KEK.crt", "db.crt", VerityCertificateFile} {
		text := string(testutil.Run(t, openssl, "x509", "-noout", "-text", "-in", s.Path(cert)))
		for _, want := range []string{"Public-Key: (2048 bit)", "Signature Algorithm: sha256WithRSAEncryption",
			"CA:TRUE", "Digital Signature, Certificate Sign", "Not After : Dec 31 23:59:59 9999 GMT"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: openssl x509 -text lacks %q", cert, want)
			}
		}
		if got := strings.Contains(text, "Code Signing"); got != (cert == "db.crt") {
			t.Errorf("%s: Code Signing extended key usage present: %v", cert, got)
		}
	}
	for _, key := range []string{"PK.key", "KEK.key", "db.key", VerityKeyFile, PCRPrivateKeyFile} {
		testutil.Run(t, openssl, "pkey", "-check", "-noout", "-in", s.Path(key))
	}
	pub := testutil.Run(t, openssl, "pkey", "-in", s.Path(PCRPrivateKeyFile), "-pubout")
	if want, _ := os.ReadFile(s.Path(PCRPublicKeyFile)); !bytes.Equal(pub, want) {
		t.Errorf("openssl pkey -pubout differs from %s", PCRPublicKeyFile)
	}
	// Our subject key identifier is the one openssl computes for the key.
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.crt")
	testutil.Run(t, openssl, "req", "-new", "-x509", "-key", s.Path("db.key"), "-subj", "/CN=ref/", "-out", ref)
	refText := testutil.Run(t, openssl, "x509", "-noout", "-ext", "subjectKeyIdentifier", "-in", ref)
	wantSKI := strings.ToUpper(strings.ReplaceAll(fmt.Sprintf("% x", s.DB.Certificate.SubjectKeyId), " ", ":"))
	if !strings.Contains(string(refText), wantSKI) {
		t.Errorf("openssl's subject key identifier %q, ours %s", refText, wantSKI)
	}
}

// TestInteropEfitools: efitools, given the generated certificates, keys,
// owner GUID and timestamp, writes exactly our .esl and .auth files, and
// reads our lists back.
func TestInteropEfitools(t *testing.T) {
	certToESL := testutil.RequireTool(t, "cert-to-efi-sig-list", "efitools")
	signESL := testutil.RequireTool(t, "sign-efi-sig-list", "efitools")
	eslToCerts := testutil.RequireTool(t, "sig-list-to-certs", "efitools")
	s := sharedSet(t)
	dir := t.TempDir()
	timestamp := efisig.TimeOf(setTime).String()
	for _, k := range s.SecureBootKeys() {
		esl := filepath.Join(dir, k.ListFile())
		testutil.Run(t, certToESL, "-g", s.Owner.String(), s.Path(k.CertificateFile()), esl)
		if got, _ := os.ReadFile(esl); !bytes.Equal(got, k.SignatureList) {
			t.Errorf("cert-to-efi-sig-list wrote another %s", k.ListFile())
		}
		signer := s.signerOf(k.Name)
		auth := filepath.Join(dir, k.AuthFile())
		testutil.Run(t, signESL, "-t", timestamp, "-g", s.Owner.String(), "-k", s.Path(signer.KeyFile()),
			"-c", s.Path(signer.CertificateFile()), k.Name, s.Path(k.ListFile()), auth)
		if got, _ := os.ReadFile(auth); !bytes.Equal(got, k.Auth) {
			t.Errorf("sign-efi-sig-list wrote another %s", k.AuthFile())
		}
		testutil.Run(t, eslToCerts, s.Path(k.ListFile()), filepath.Join(dir, k.Name))
		if got, _ := os.ReadFile(filepath.Join(dir, k.Name+"-0.der")); !bytes.Equal(got, k.Certificate.Raw) {
			t.Errorf("sig-list-to-certs read another certificate from %s", k.ListFile())
		}
	}
}

// TestInteropAuthenticode: the db key and certificate sign a PE with
// sbsign, and sbverify and osslsigncode accept the signature with the db
// certificate and refuse it with the KEK's.
func TestInteropAuthenticode(t *testing.T) {
	sbsign := testutil.RequireTool(t, "sbsign", "sbsigntool")
	sbverify := testutil.RequireTool(t, "sbverify", "sbsigntool")
	osslsigncode := testutil.RequireTool(t, "osslsigncode", "osslsigncode")
	s := sharedSet(t)
	signed := filepath.Join(t.TempDir(), "signed.efi")
	testutil.Run(t, sbsign, "--key", s.Path("db.key"), "--cert", s.Path("db.crt"), "--output", signed,
		filepath.Join("..", "format", "pe", "testdata", "unsigned.efi"))
	testutil.Run(t, sbverify, "--cert", s.Path("db.crt"), signed)
	testutil.Run(t, osslsigncode, "verify", "-CAfile", s.Path("db.crt"), "-in", signed)
	if _, err := testutil.RunErr(sbverify, "--cert", s.Path("KEK.crt"), signed); err == nil {
		t.Error("sbverify accepted the KEK certificate")
	}
	if _, err := testutil.RunErr(osslsigncode, "verify", "-CAfile", s.Path("KEK.crt"), "-in", signed); err == nil {
		t.Error("osslsigncode accepted the KEK certificate")
	}
}

// gpgRun runs gpg with stdin and returns its combined output.
func gpgRun(gpg string, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gpg, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.CombinedOutput()
}

// newGPGHome makes an empty gpg home directory whose agent is stopped at
// the end of the test.
func newGPGHome(t *testing.T) string {
	t.Helper()
	// Short, since gpg-agent's socket path must fit sockaddr_un.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gpgconf, err := exec.LookPath("gpgconf"); err == nil {
			_ = exec.Command(gpgconf, "--homedir", home, "--kill", "all").Run()
		}
		os.RemoveAll(home)
	})
	return home
}

// TestInteropGPG: gpg, run exactly as systemd-sysupdate 252 runs it
// (systemd-pull's verification), verifies our manifest signature with
// import-pubring.gpg and refuses a changed manifest; gpg imports our
// secret key, and its signature verifies with our verifier.
func TestInteropGPG(t *testing.T) {
	gpg := testutil.RequireTool(t, "gpg", "gnupg")
	s := sharedSet(t)
	manifest := []byte(strings.Repeat("ab", 32) + "  imago_2.0.efi\n")
	sig, err := s.SignUpdateManifest(bytes.NewReader(manifest), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	sigPath := filepath.Join(t.TempDir(), "SHA256SUMS.gpg")
	if err := os.WriteFile(sigPath, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	verifyWith := func(sigPath string, content []byte) ([]byte, error) {
		home := newGPGHome(t)
		return gpgRun(gpg, content, "--no-options", "--no-default-keyring", "--no-auto-key-locate",
			"--no-auto-check-trustdb", "--batch", "--trust-model=always", "--homedir="+home,
			"--keyring="+s.Path(UpdateKeyringFile), "--verify", sigPath, "-")
	}
	verify := func(content []byte) ([]byte, error) { return verifyWith(sigPath, content) }
	out, err := verify(manifest)
	if err != nil {
		t.Fatalf("gpg --verify: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `Good signature from "test update signing"`) ||
		!strings.Contains(string(out), s.UpdateKeyFingerprint()) {
		t.Errorf("gpg said:\n%s", out)
	}
	if out, err := verify(append(manifest, '\n')); err == nil {
		t.Errorf("gpg verified a changed manifest:\n%s", out)
	}
	// A signing time before the key's creation (an old SOURCE_DATE_EPOCH)
	// still gives a signature gpg takes.
	early, err := s.SignUpdateManifest(bytes.NewReader(manifest), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	earlyPath := filepath.Join(t.TempDir(), "early.gpg")
	if err := os.WriteFile(earlyPath, early, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := verifyWith(earlyPath, manifest); err != nil {
		t.Errorf("gpg refused the early signature: %v\n%s", err, out)
	}

	// gpg takes the secret key and signs; we verify.
	home := newGPGHome(t)
	if out, err := gpgRun(gpg, nil, "--batch", "--homedir="+home, "--import", s.Path(UpdateKeyFile)); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	list, err := gpgRun(gpg, nil, "--batch", "--homedir="+home, "--with-colons", "--list-secret-keys")
	if err != nil || !strings.Contains(string(list), "fpr:::::::::"+s.UpdateKeyFingerprint()+":") {
		t.Fatalf("gpg --list-secret-keys: %v\n%s", err, list)
	}
	gpgSig, err := gpgRun(gpg, manifest, "--batch", "--homedir="+home, "--detach-sign", "-o", "-", "-")
	if err != nil {
		t.Fatalf("gpg --detach-sign: %v\n%s", err, gpgSig)
	}
	keyring, err := os.ReadFile(s.Path(UpdateKeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	fpr, err := VerifyUpdateManifest(bytes.NewReader(keyring), bytes.NewReader(manifest), bytes.NewReader(gpgSig))
	if err != nil || fpr != s.UpdateKeyFingerprint() {
		t.Fatalf("verifying gpg's signature: %q, %v", fpr, err)
	}
	// The keyring holds public packets only.
	packets, err := gpgRun(gpg, nil, "--batch", "--homedir="+newGPGHome(t), "--list-packets", s.Path(UpdateKeyringFile))
	if err != nil || !strings.Contains(string(packets), ":public key packet:") || strings.Contains(string(packets), "secret") {
		t.Fatalf("gpg --list-packets: %v\n%s", err, packets)
	}
}
