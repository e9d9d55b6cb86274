package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/keys"
)

func TestKeysGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	code, out, errOut := run(t, "keys", "generate", "--common-name=cli test", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Generated a key set in " + dir + ":\n", "  PK.key ", "0600", "  import-pubring.gpg ",
		"Secure Boot signature owner: ", "OpenPGP update signing key: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	s, err := keys.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.PK.Certificate.Subject.CommonName != "cli test Secure Boot PK" || !strings.Contains(out, s.UpdateKeyFingerprint()) ||
		!strings.Contains(out, s.Owner.String()) {
		t.Errorf("subject %q; output:\n%s", s.PK.Certificate.Subject.CommonName, out)
	}
	before, err := os.ReadFile(filepath.Join(dir, "PK.key"))
	if err != nil {
		t.Fatal(err)
	}

	// A second run refuses, in one line, and changes nothing.
	code, out, errOut = run(t, "keys", "generate", dir)
	wantErr := "imago: keys generate: keys: " + filepath.Join(dir, "PK.key") + " already exists; pass --force to replace the key set\n"
	if code != 1 || out != "" || errOut != wantErr {
		t.Fatalf("second run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "PK.key")); string(after) != string(before) {
		t.Fatal("the refused run changed PK.key")
	}

	// --force replaces the set; --json describes it.
	code, out, errOut = run(t, "keys", "generate", "--force", "--json", dir)
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errOut)
	}
	var res keysGenerateJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s2, err := keys.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Directory != dir || res.SignatureOwner != s2.Owner.String() || res.UpdateKeyFingerprint != s2.UpdateKeyFingerprint() ||
		len(res.Files) != len(keys.Files()) || s2.Owner == s.Owner {
		t.Fatalf("JSON %+v", res)
	}
	private := map[string]bool{"PK.key": true, "KEK.key": true, "db.key": true, "verity.key": true,
		"tpm2-pcr-private-key.pem": true, "update-signing.key": true}
	for _, f := range res.Files {
		wantMode, wantPerm := "0644", "-rw-r--r--"
		if private[f.Name] {
			wantMode, wantPerm = "0600", "-rw-------"
		}
		info, err := os.Stat(f.Path)
		if err != nil || f.Path != filepath.Join(dir, f.Name) || f.Mode != wantMode || info.Mode().Perm().String() != wantPerm {
			t.Errorf("file %+v: %v %v", f, info.Mode(), err)
		}
	}
}

func TestKeysGenerateUsage(t *testing.T) {
	code, _, errOut := run(t, "keys", "generate")
	if code != 1 || !strings.HasPrefix(errOut, "imago: ") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, "keys", "generate", "--common-name=a<b>", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "common name") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
