package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/sha256sums"
	"github.com/imago-os/imago/keys"
)

// writeFakeBuild writes the files `imago build` leaves for id_version, with
// random content and a correct SHA256SUMS, and returns the directory.
func writeFakeBuild(t *testing.T, id, version string) string {
	t.Helper()
	dir := t.TempDir()
	label := id + "_" + version
	random := func(n int) []byte {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	var names []string
	for _, name := range []string{
		label + "_" + hex.EncodeToString(random(16)) + ".usr.raw",
		label + "_" + hex.EncodeToString(random(16)) + ".usr-verity.raw",
		label + "_" + hex.EncodeToString(random(16)) + ".usr-verity-sig.raw",
		label + ".efi", label + ".raw", label + ".manifest",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), random(4096), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	entries, err := sha256sums.SumDir(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	var sums bytes.Buffer
	if err := sha256sums.Write(&sums, entries); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), sums.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPublish(t *testing.T) {
	keyDir := filepath.Join(t.TempDir(), "keys")
	set, err := keys.Generate(keyDir, keys.Options{CommonName: "cli publish test"})
	if err != nil {
		t.Fatal(err)
	}
	www := filepath.Join(t.TempDir(), "www")
	v1, v2 := writeFakeBuild(t, "imago-ref", "1"), writeFakeBuild(t, "imago-ref", "2")

	// Text: one progress line per file on stderr, a summary on stdout.
	code, out, errOut := run(t, "publish", "--key="+keyDir, "--compress=gz", v1, "--to="+www)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if n := strings.Count(errOut, "\n"); n != 6 || !strings.Contains(errOut, "wrote imago-ref_1.efi.gz ") {
		t.Errorf("stderr:\n%s", errOut)
	}
	if !strings.HasPrefix(out, "Published 1 version(s) into "+www+": 4 file(s) written") || !strings.Contains(out, set.UpdateKeyFingerprint()) {
		t.Errorf("stdout: %q", out)
	}

	// JSON, with the OpenPGP key file, retiring version 1.
	code, out, errOut = run(t, "publish", "--json", "--keep=1", "--key="+set.Path(keys.UpdateKeyFile), v2, "--to", www)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Published []struct {
			ImageID string `json:"image_id"`
			Version string `json:"version"`
		} `json:"published"`
		Written []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"written"`
		Removed      []struct{ Version string } `json:"removed"`
		RemovedFiles []string                   `json:"removed_files"`
		Listed       []struct{ Name string }    `json:"listed"`
		SignedBy     string                     `json:"signed_by"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(res.Published) != 1 || res.Published[0].Version != "2" || len(res.Written) != 4 || len(res.Removed) != 1 ||
		res.Removed[0].Version != "1" || len(res.RemovedFiles) != 4 || len(res.Listed) != 4 || res.SignedBy != set.UpdateKeyFingerprint() {
		t.Fatalf("JSON: %s", out)
	}
	for _, w := range res.Written {
		fi, err := os.Stat(filepath.Join(www, w.Name))
		if err != nil || fi.Size() != w.Size || len(w.SHA256) != 64 || !strings.HasSuffix(w.Name, ".zst") {
			t.Errorf("written %+v: %v", w, err)
		}
	}
	sums, err := os.ReadFile(filepath.Join(www, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(www, "SHA256SUMS.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := set.UpdateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.VerifyUpdateManifest(bytes.NewReader(ring), bytes.NewReader(sums), bytes.NewReader(sig)); err != nil {
		t.Error(err)
	}

	// A damaged build: one error line naming the file, exit 1.
	if err := os.WriteFile(filepath.Join(v1, "imago-ref_1.efi"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "publish", "--key="+keyDir, v1, "--to="+www)
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "imago: ") ||
		!strings.Contains(errOut, filepath.Join(v1, "imago-ref_1.efi")) {
		t.Errorf("damaged build: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestPublishUsage(t *testing.T) {
	build := writeFakeBuild(t, "imago-ref", "1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--to=" + t.TempDir()}, "requires at least 1 arg"},
		{[]string{"publish", build}, "--to=DIR is required"},
		{[]string{"publish", "--compress=bz2", build, "--to=" + t.TempDir()}, `compression "bz2"`},
		{[]string{"publish", "--keep=-1", build, "--to=" + t.TempDir()}, "--keep=-1"},
		{[]string{"publish", "--key=" + filepath.Join(t.TempDir(), "missing"), build, "--to=" + t.TempDir()}, "missing"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}
