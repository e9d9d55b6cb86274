package publish

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imago-os/imago/format/sha256sums"
	"github.com/imago-os/imago/keys"
)

// Generating a key set takes several RSA keys; the tests share one.
var shared struct {
	once   sync.Once
	parent string
	set    *keys.Set
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.parent != "" {
		os.RemoveAll(shared.parent)
	}
	os.Exit(code)
}

// testKeys returns the shared key set; tests must not change its files.
func testKeys(t testing.TB) *keys.Set {
	t.Helper()
	shared.once.Do(func() {
		if shared.parent, shared.err = os.MkdirTemp("", "imago-publish-test-"); shared.err != nil {
			return
		}
		shared.set, shared.err = keys.Generate(filepath.Join(shared.parent, "keys"),
			keys.Options{CommonName: "publish test", Now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.set
}

func testSigner(t testing.TB) *keys.UpdateSigner {
	t.Helper()
	u, err := testKeys(t).UpdateSigner()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// fakeBuild is a build output directory as `imago build` leaves it.
type fakeBuild struct {
	dir   string
	label string
	// payloads maps the name of each update payload to its content.
	payloads map[string][]byte
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// makeBuild writes a build output of id and version with random payloads
// (the usr image zero-padded like a real one), a correct SHA256SUMS and
// its signature.
func makeBuild(t testing.TB, id, version string) *fakeBuild {
	t.Helper()
	label := id + "_" + version
	uuid := func() string { return hex.EncodeToString(randomBytes(t, 16)) }
	b := &fakeBuild{dir: t.TempDir(), label: label, payloads: map[string][]byte{
		label + "_" + uuid() + ".usr.raw":            append(randomBytes(t, 48<<10), make([]byte, 2<<20)...),
		label + "_" + uuid() + ".usr-verity.raw":     randomBytes(t, 8<<10),
		label + "_" + uuid() + ".usr-verity-sig.raw": append([]byte(`{"rootHash":"`+uuid()+`"}`), make([]byte, 4096)...),
		label + ".efi": randomBytes(t, 24<<10),
	}}
	others := map[string][]byte{
		label + ".raw":          randomBytes(t, 32<<10),
		label + ".verity.crt":   []byte("-----BEGIN CERTIFICATE-----\n"),
		label + ".manifest":     []byte("base-files 12.4\n"),
		label + ".hermetic.txt": []byte("hermetic\n"),
	}
	var names []string
	for _, m := range []map[string][]byte{b.payloads, others} {
		for n, data := range m {
			b.write(t, n, data)
			names = append(names, n)
		}
	}
	b.write(t, label+".build.log", []byte("log\n"))
	entries, err := sha256sums.SumDir(b.dir, names)
	if err != nil {
		t.Fatal(err)
	}
	var sums bytes.Buffer
	if err := sha256sums.Write(&sums, entries); err != nil {
		t.Fatal(err)
	}
	b.write(t, "SHA256SUMS", sums.Bytes())
	sig, err := testSigner(t).Sign(bytes.NewReader(sums.Bytes()), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	b.write(t, "SHA256SUMS.gpg", sig)
	return b
}

func (b *fakeBuild) write(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(b.dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// payloadOf returns the name of the build's payload of kind k.
func (b *fakeBuild) payloadOf(t testing.TB, k Kind) string {
	t.Helper()
	for n := range b.payloads {
		if p, ok := ParseName(n); ok && p.Kind == k {
			return n
		}
	}
	t.Fatalf("no %s payload", k)
	return ""
}

// payloadNames returns the build's payload names sorted.
func (b *fakeBuild) payloadNames() []string {
	var names []string
	for n := range b.payloads {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// snapshot returns every file of dir (names, content, mode and mtime), to
// tell whether anything changed.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[strings.TrimPrefix(path, dir)] = hex.EncodeToString(sum[:]) + " " + fi.Mode().String() + " " + fi.ModTime().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decompress returns the content of a published file.
func decompress(t testing.TB, path string, c Compression) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader
	switch c {
	case None:
		return data
	case Gzip:
		if r, err = gzip.NewReader(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	case XZ:
		if r, err = xz.NewReader(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	case Zstd:
		d, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// verifyDir checks that dir's SHA256SUMS lists exactly want (names), that
// every listed digest is the file's, and that SHA256SUMS.gpg verifies
// with the test key set's keyring.
func verifyDir(t testing.TB, dir string, want []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sha256sums.ParseSysupdateBytes(data)
	if err != nil {
		t.Fatalf("systemd-sysupdate would refuse SHA256SUMS: %v\n%s", err, data)
	}
	var got []string
	for _, e := range m.Entries() {
		got = append(got, e.Name)
	}
	want = append([]string(nil), want...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("SHA256SUMS lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if bad, err := sha256sums.VerifyTree(dir, m); err != nil || len(bad) > 0 {
		t.Errorf("SHA256SUMS does not match the files: %v %v", bad, err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, SignatureName))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := os.Open(testKeys(t).Path(keys.UpdateKeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	fpr, err := keys.VerifyUpdateManifest(ring, bytes.NewReader(data), bytes.NewReader(sig))
	if err != nil || fpr != testKeys(t).UpdateKeyFingerprint() {
		t.Errorf("SHA256SUMS.gpg: signer %q, %v", fpr, err)
	}
}

// publishedNames returns the names the build's payloads get with c.
func publishedNames(b *fakeBuild, c Compression) []string {
	var out []string
	for _, n := range b.payloadNames() {
		out = append(out, n+c.Suffix())
	}
	return out
}
