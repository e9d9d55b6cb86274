package sysupdate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/sha256sums"
	"github.com/imago-os/imago/keys"
)

// noVerify is the --verify=no of tests whose sources are not signed.
var noVerify = false

// newSigner makes a key set in a temporary directory and returns its
// update signer.
func newSigner(t *testing.T, name string) *keys.UpdateSigner {
	t.Helper()
	set, err := keys.Generate(filepath.Join(t.TempDir(), name), keys.Options{CommonName: name})
	if err != nil {
		t.Fatal(err)
	}
	s, err := set.UpdateSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeKeyring(t *testing.T, s *keys.UpdateSigner, path string) {
	t.Helper()
	kr, err := s.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(kr))
}

// publishRelease writes payloads and their SHA256SUMS into dir and, if
// signer is not nil, SHA256SUMS.gpg.
func publishRelease(t *testing.T, dir string, signer *keys.UpdateSigner, files map[string]string) {
	t.Helper()
	var names []string
	for n, c := range files {
		writeFile(t, filepath.Join(dir, n), c)
		names = append(names, n)
	}
	entries, err := sha256sums.SumDir(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := sha256sums.WriteSysupdate(&b, entries); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "SHA256SUMS"), b.String())
	os.Remove(filepath.Join(dir, "SHA256SUMS.gpg"))
	if signer != nil {
		sig, err := signer.Sign(bytes.NewReader(b.Bytes()), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "SHA256SUMS.gpg"), string(sig))
	}
}

func TestManifestSignature(t *testing.T) {
	good, other := newSigner(t, "vendor"), newSigner(t, "intruder")
	base := t.TempDir()
	keyring := filepath.Join(base, "import-pubring.gpg")
	writeKeyring(t, good, keyring)
	pub := filepath.Join(base, "pub")
	files := map[string]string{"os_1.raw.xz": "one", "os_2.raw.xz": "two"}
	srv := httptest.NewServer(http.FileServer(http.Dir(pub)))
	defer srv.Close()
	def := "[Source]\nType=url-file\nPath=%s\nMatchPattern=os_@v.raw.xz\n[Target]\nType=regular-file\nPath=/var/lib/os\nMatchPattern=os_@v.raw\n%s"
	tr := mustParse(t, fmt.Sprintf(def, srv.URL, ""))
	if !tr.Verify {
		t.Fatal("Verify= does not default to yes")
	}
	env := Env{HTTPClient: srv.Client(), Keyring: keyring}
	ctx := context.Background()

	// Signed by the vendor key: accepted, over HTTP and file://.
	publishRelease(t, pub, good, files)
	d, err := tr.SourceInstances(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Instances) != 2 || d.Instances[0].Version() != "2" {
		t.Errorf("instances %+v", d.Instances)
	}
	trFile := mustParse(t, fmt.Sprintf(def, "file://"+pub, ""))
	if d, err := trFile.SourceInstances(ctx, env); err != nil || len(d.Instances) != 2 {
		t.Errorf("file://: %v", err)
	}
	// The keyring found below Root when Env.Keyring is empty.
	root := filepath.Join(base, "root")
	writeKeyring(t, good, filepath.Join(root, "usr/lib/systemd/import-pubring.gpg"))
	if _, err := tr.SourceInstances(ctx, Env{HTTPClient: srv.Client(), Root: root}); err != nil {
		t.Errorf("keyring below root: %v", err)
	}
	if _, err := tr.SourceInstances(ctx, Env{HTTPClient: srv.Client(), Root: filepath.Join(base, "empty")}); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "import-pubring.pgp") {
		t.Errorf("no keyring: %v", err)
	}

	// A manifest changed after signing.
	sums, _ := os.ReadFile(filepath.Join(pub, "SHA256SUMS"))
	writeFile(t, filepath.Join(pub, "SHA256SUMS"), string(sums)+strings.Repeat("0", 64)+"  os_9.raw.xz\n")
	if _, err := tr.SourceInstances(ctx, env); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered manifest: %v", err)
	}

	// Signed by a key that is not in the keyring.
	publishRelease(t, pub, other, files)
	_, err = tr.SourceInstances(ctx, env)
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), srv.URL+"/SHA256SUMS.gpg") || !strings.Contains(err.Error(), "not signed by a key in "+keyring) {
		t.Errorf("foreign signature: %v", err)
	}

	// Missing signature.
	publishRelease(t, pub, nil, files)
	_, err = tr.SourceInstances(ctx, env)
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), srv.URL+"/SHA256SUMS.gpg") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing signature: %v", err)
	}
	if _, err := trFile.SourceInstances(ctx, env); !errors.Is(err, ErrSignature) {
		t.Errorf("missing signature, file://: %v", err)
	}

	// Garbage where the signature should be.
	writeFile(t, filepath.Join(pub, "SHA256SUMS.gpg"), "not a signature")
	if _, err := tr.SourceInstances(ctx, env); !errors.Is(err, ErrSignature) {
		t.Errorf("garbage signature: %v", err)
	}
	os.Remove(filepath.Join(pub, "SHA256SUMS.gpg"))

	// Verify=no in the transfer, or the --verify=no override, skips only
	// the signature.
	on := true
	if d, err := tr.SourceInstances(ctx, Env{HTTPClient: srv.Client(), Keyring: keyring, Verify: &noVerify}); err != nil || len(d.Instances) != 2 {
		t.Errorf("Env.Verify=false: %v", err)
	}
	trNo := mustParse(t, fmt.Sprintf(def, srv.URL, "[Transfer]\nVerify=no\n"))
	if d, err := trNo.SourceInstances(ctx, env); err != nil || len(d.Instances) != 2 {
		t.Errorf("Verify=no: %v", err)
	}
	if _, err := trNo.SourceInstances(ctx, Env{HTTPClient: srv.Client(), Keyring: keyring, Verify: &on}); !errors.Is(err, ErrSignature) {
		t.Errorf("Env.Verify=true over Verify=no: %v", err)
	}
	// A broken manifest is still refused without verification.
	writeFile(t, filepath.Join(pub, "SHA256SUMS"), "not a manifest\n")
	if _, err := trNo.SourceInstances(ctx, env); err == nil || errors.Is(err, ErrSignature) {
		t.Errorf("broken manifest: %v", err)
	}
}

func TestFindKeyring(t *testing.T) {
	root := t.TempDir()
	if _, err := FindKeyring(root); err == nil {
		t.Fatal("found a keyring in an empty root")
	} else {
		for _, p := range keyringPaths {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
		}
	}
	// Add them from the lowest priority up; each new one wins.
	for i := len(keyringPaths) - 1; i >= 0; i-- {
		writeFile(t, filepath.Join(root, keyringPaths[i]), "k")
		got, err := FindKeyring(root)
		if want := filepath.Join(root, keyringPaths[i]); err != nil || got != want {
			t.Errorf("with %d keyrings: %s, %v; want %s", len(keyringPaths)-i, got, err, want)
		}
	}
	// A directory in the way is not a keyring.
	root = t.TempDir()
	os.MkdirAll(filepath.Join(root, keyringPaths[0]), 0o755)
	writeFile(t, filepath.Join(root, keyringPaths[3]), "k")
	if got, err := FindKeyring(root); err != nil || got != filepath.Join(root, keyringPaths[3]) {
		t.Errorf("directory in the way: %s %v", got, err)
	}
}
