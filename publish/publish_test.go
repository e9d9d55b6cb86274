package publish

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imago-os/imago/keys"
)

func run(t *testing.T, dir string, opts Options, builds ...*fakeBuild) (*Result, error) {
	t.Helper()
	var dirs []string
	for _, b := range builds {
		dirs = append(dirs, b.dir)
	}
	opts.Dir = dir
	if opts.Signer == nil {
		opts.Signer = testSigner(t)
	}
	return Run(context.Background(), dirs, opts)
}

func mustRun(t *testing.T, dir string, opts Options, builds ...*fakeBuild) *Result {
	t.Helper()
	res, err := run(t, dir, opts, builds...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPublishTwoVersions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "www")
	v1, v2 := makeBuild(t, "imago-ref", "1"), makeBuild(t, "imago-ref", "2")
	var lines []string
	res := mustRun(t, dir, Options{Progress: func(s string) { lines = append(lines, s) }}, v1)
	if len(res.Written) != 4 || !res.ManifestWritten || res.SignedBy != testKeys(t).UpdateKeyFingerprint() ||
		!reflect.DeepEqual(res.Published, []Version{{"imago-ref", "1"}}) {
		t.Fatalf("first run: %+v", res)
	}
	// One line per payload, SHA256SUMS and its signature.
	if len(lines) != 6 {
		t.Errorf("progress: %q", lines)
	}
	verifyDir(t, dir, publishedNames(v1, Zstd))

	// A file that is not a payload stays and is not listed.
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = mustRun(t, dir, Options{}, v2)
	if len(res.Written) != 4 || len(res.Listed) != 8 || len(res.Removed) != 0 {
		t.Fatalf("second run: %+v", res)
	}
	verifyDir(t, dir, append(publishedNames(v1, Zstd), publishedNames(v2, Zstd)...))
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		t.Error(err)
	}

	// The compressed files decompress to the build's files, and the
	// zero-padded usr image shrank.
	for _, b := range []*fakeBuild{v1, v2} {
		for name, want := range b.payloads {
			if got := decompress(t, filepath.Join(dir, name+".zst"), Zstd); !bytes.Equal(got, want) {
				t.Errorf("%s.zst does not decompress to %s", name, name)
			}
		}
		fi, err := os.Stat(filepath.Join(dir, b.payloadOf(t, Usr)+".zst"))
		if err != nil || fi.Size() > 100<<10 || fi.Mode().Perm() != 0o644 {
			t.Errorf("usr image: %v %v", fi.Size(), err)
		}
	}
	// Neither the disk image nor logs are published, and no temporary
	// file is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".raw") || strings.Contains(n, ".log") || strings.HasPrefix(n, ".") {
			t.Errorf("unexpected %s in the publication directory", n)
		}
	}
}

func TestPublishCompressions(t *testing.T) {
	b := makeBuild(t, "imago-ref", "3")
	for _, c := range []Compression{None, Gzip, XZ, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			dir := t.TempDir()
			res := mustRun(t, dir, Options{Compression: c}, b)
			verifyDir(t, dir, publishedNames(b, c))
			for name, want := range b.payloads {
				if got := decompress(t, filepath.Join(dir, name+c.Suffix()), c); !bytes.Equal(got, want) {
					t.Errorf("%s%s does not decompress to the original", name, c.Suffix())
				}
			}
			for _, w := range res.Written {
				fi, err := os.Stat(filepath.Join(dir, w.Name))
				if err != nil || fi.Size() != w.Size || int64(len(b.payloads[strings.TrimSuffix(w.Name, c.Suffix())])) != w.SourceSize {
					t.Errorf("written %+v: %v", w, err)
				}
			}
		})
	}
}

func TestPublishKeep(t *testing.T) {
	dir := t.TempDir()
	// "10" is newer than "9" in version order, though not in byte order.
	v9, v10, other := makeBuild(t, "imago-ref", "9"), makeBuild(t, "imago-ref", "10"), makeBuild(t, "other", "1")
	mustRun(t, dir, Options{}, v9, other)
	res := mustRun(t, dir, Options{Keep: 1}, v10)
	if !reflect.DeepEqual(res.Removed, []Version{{"imago-ref", "9"}}) || len(res.RemovedFiles) != 4 {
		t.Fatalf("removed %+v %q", res.Removed, res.RemovedFiles)
	}
	for _, n := range publishedNames(v9, Zstd) {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", n, err)
		}
	}
	verifyDir(t, dir, append(publishedNames(v10, Zstd), publishedNames(other, Zstd)...))

	// Without --keep nothing goes.
	res = mustRun(t, dir, Options{}, v9)
	if len(res.Removed) != 0 || len(res.Listed) != 12 {
		t.Fatalf("%+v", res)
	}
}

func TestPublishRefusesDamagedBuild(t *testing.T) {
	dir := t.TempDir()
	v1 := makeBuild(t, "imago-ref", "1")
	mustRun(t, dir, Options{}, v1)
	before := snapshot(t, dir)

	v2 := makeBuild(t, "imago-ref", "2")
	usr := v2.payloadOf(t, Usr)
	data := append([]byte(nil), v2.payloads[usr]...)
	data[100] ^= 1
	v2.write(t, usr, data)
	_, err := run(t, dir, Options{}, v2)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(v2.dir, usr)) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged build: %v", err)
	}
	// A missing file too, even when another build in the same run is fine.
	v3 := makeBuild(t, "imago-ref", "3")
	efi := v3.payloadOf(t, UKI)
	if err := os.Remove(filepath.Join(v3.dir, efi)); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, dir, Options{}, makeBuild(t, "imago-ref", "4"), v3)
	if err == nil || !strings.Contains(err.Error(), efi) {
		t.Fatalf("missing file: %v", err)
	}
	// No SHA256SUMS at all.
	_, err = run(t, dir, Options{}, &fakeBuild{dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not a build output directory") {
		t.Fatalf("no SHA256SUMS: %v", err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused publish changed the directory:\n%v\n%v", before, after)
	}
}

func TestRepublishIsNoop(t *testing.T) {
	dir := t.TempDir()
	v1 := makeBuild(t, "imago-ref", "1")
	mustRun(t, dir, Options{}, v1)
	before := snapshot(t, dir)
	// Again, and with another compression: the content is the same.
	for _, c := range []Compression{Zstd, Gzip} {
		res := mustRun(t, dir, Options{Compression: c}, v1, v1)
		if len(res.Written) != 0 || len(res.Unchanged) != 4 || res.ManifestWritten {
			t.Fatalf("%s: %+v", c, res)
		}
		if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
			t.Errorf("%s: republishing changed the directory", c)
		}
	}
	// A damaged signature is rewritten even when nothing else changed.
	if err := os.WriteFile(filepath.Join(dir, SignatureName), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := mustRun(t, dir, Options{}, v1); !res.ManifestWritten {
		t.Error("a bad SHA256SUMS.gpg was kept")
	}
	verifyDir(t, dir, publishedNames(v1, Zstd))
}

func TestPublishRefusesDifferentContent(t *testing.T) {
	dir := t.TempDir()
	v1 := makeBuild(t, "imago-ref", "1")
	mustRun(t, dir, Options{}, v1)
	before := snapshot(t, dir)

	// The same names, other content.
	same := makeBuild(t, "imago-ref", "1")
	rebuilt := &fakeBuild{dir: t.TempDir(), label: v1.label, payloads: map[string][]byte{}}
	names := []string{v1.label + ".raw"}
	rebuilt.write(t, v1.label+".raw", []byte("disk"))
	for name, data := range v1.payloads {
		changed := append([]byte(nil), data...)
		changed[0] ^= 0xff
		rebuilt.payloads[name] = changed
		rebuilt.write(t, name, changed)
		names = append(names, name)
	}
	resum(t, rebuilt, names)
	_, err := run(t, dir, Options{}, rebuilt)
	if err == nil || !strings.Contains(err.Error(), "different content") {
		t.Fatalf("same names, different content: %v", err)
	}
	// The same version with other partition UUIDs.
	_, err = run(t, dir, Options{}, same)
	if err == nil || !strings.Contains(err.Error(), "already published for version imago-ref_1") {
		t.Fatalf("same version, other UUIDs: %v", err)
	}
	// Two different builds of one version in the same run.
	_, err = run(t, t.TempDir(), Options{}, v1, same)
	if err == nil || !strings.Contains(err.Error(), "different builds of imago-ref_1") {
		t.Fatalf("two builds of one version: %v", err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("a refused publish changed the directory")
	}
}

// resum rewrites a fake build's SHA256SUMS for names.
func resum(t *testing.T, b *fakeBuild, names []string) {
	t.Helper()
	var lines []string
	for _, n := range names {
		d, _, err := fileDigest(context.Background(), filepath.Join(b.dir, n))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, hexOf(d)+"  "+n+"\n")
	}
	slices.Sort(lines)
	b.write(t, "SHA256SUMS", []byte(strings.Join(lines, "")))
}

func TestPublishLocked(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = run(t, dir, Options{}, makeBuild(t, "imago-ref", "1"))
	unlock()
	if err == nil || !strings.Contains(err.Error(), "another publish is running") {
		t.Fatalf("locked directory: %v", err)
	}
}

func TestRunOptions(t *testing.T) {
	b := makeBuild(t, "imago-ref", "1")
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Dir: t.TempDir()}, "no update signing key"},
		{Options{Dir: t.TempDir(), Signer: testSigner(t), Keep: -1}, "keep -1"},
		{Options{Dir: t.TempDir(), Signer: testSigner(t), Compression: "bz2"}, `compression "bz2"`},
		{Options{Signer: testSigner(t)}, "no publication directory"},
	} {
		if _, err := Run(context.Background(), []string{b.dir}, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestLoadSigner(t *testing.T) {
	set := testKeys(t)
	want := set.UpdateKeyFingerprint()
	for _, path := range []string{set.Dir, set.Path(keys.UpdateKeyFile)} {
		u, err := LoadSigner(path)
		if err != nil || u.Fingerprint() != want {
			t.Errorf("%s: %v", path, err)
		}
	}
	if _, err := LoadSigner(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("missing key: %v", err)
	}
	// The public keyring cannot sign.
	if _, err := LoadSigner(set.Path(keys.UpdateKeyringFile)); err == nil {
		t.Error("a public keyring was taken as a signing key")
	}
	// An empty path is the default key set directory.
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("HOME", home)
	if os.Geteuid() != 0 {
		if _, err := LoadSigner(""); err == nil || !strings.Contains(err.Error(), filepath.Join(home, "imago", "keys")) {
			t.Errorf("default key directory: %v", err)
		}
	}
}
