package debian

import (
	"archive/tar"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeArchive serves Release files for the suites of Sources(...,
// "bookworm", nil) under /debian and /debian-security; bookworm-security
// has only a Release file, as some archives do.
func fakeArchive(t *testing.T) (*httptest.Server, map[string][]byte) {
	files := map[string][]byte{
		"/debian/dists/bookworm/InRelease":                  []byte("Origin: Debian\nSuite: stable\nDate: Sat, 11 Jul 2026 10:16:37 UTC\n"),
		"/debian/dists/bookworm-updates/InRelease":          []byte("Origin: Debian\nSuite: stable-updates\n"),
		"/debian-security/dists/bookworm-security/Release":  []byte("Origin: Debian\nSuite: stable-security\n"),
		"/debian-security/dists/bookworm-security/ignored":  []byte("x"),
		"/debian/dists/bookworm/main/binary-amd64/Packages": []byte("x"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, files
}

func fakeSpec(srv *httptest.Server) Spec {
	s := testSpec()
	s.Sources = Sources(srv.URL+"/debian", srv.URL+"/debian-security/", "bookworm", nil)
	return s
}

func TestArchiveState(t *testing.T) {
	srv, files := fakeArchive(t)
	n, err := fakeSpec(srv).normalized()
	if err != nil {
		t.Fatal(err)
	}
	got, err := archiveState(context.Background(), srv.Client(), n.Sources)
	if err != nil {
		t.Fatal(err)
	}
	// The same files as apt keeps them in its lists, in another order,
	// give the same key.
	lists := t.TempDir()
	for name, path := range map[string]string{
		"a_debian-security_dists_bookworm-security_Release": "/debian-security/dists/bookworm-security/Release",
		"a_debian_dists_bookworm-updates_InRelease":         "/debian/dists/bookworm-updates/InRelease",
		"a_debian_dists_bookworm_InRelease":                 "/debian/dists/bookworm/InRelease",
	} {
		if err := os.WriteFile(filepath.Join(lists, name), files[path], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fromLists, count, err := stateOfLists(lists)
	if err != nil || count != 3 {
		t.Fatalf("stateOfLists: %d files, %v", count, err)
	}
	if got != fromLists {
		t.Fatalf("state %s from the archive, %s from the lists", got, fromLists)
	}
	// A changed Release file changes the state.
	files["/debian/dists/bookworm-updates/InRelease"] = []byte("Origin: Debian\nSuite: stable-updates\nDate: later\n")
	changed, err := archiveState(context.Background(), srv.Client(), n.Sources)
	if err != nil || changed == got {
		t.Fatalf("state after a change: %s, %v", changed, err)
	}
	// A missing suite is an error that names it.
	n.Sources[1].Suite = "bookworm-backports"
	if _, err := archiveState(context.Background(), srv.Client(), n.Sources); err == nil || !strings.Contains(err.Error(), "bookworm-backports") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing suite: %v", err)
	}
}

// writeEntry stores a cache entry for spec and state whose tarball holds a
// dpkg database with one package, a set-uid file of another owner, a
// symlink and a device node.
func writeEntry(t *testing.T, cacheDir string, spec Spec, state string) (entry string, manifest string) {
	t.Helper()
	n, err := spec.normalized()
	if err != nil {
		t.Fatal(err)
	}
	entry = filepath.Join(cacheDir, "debian", n.key(), state)
	if err := os.MkdirAll(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n"
	mtime := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./var/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./var/lib/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./var/lib/dpkg/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./var/lib/dpkg/status", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(status)), ModTime: mtime},
		{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "./usr/su", Typeflag: tar.TypeReg, Mode: 0o4750, Uid: 123, Gid: 456, ModTime: mtime},
		{Name: "./bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin", ModTime: mtime},
		{Name: "./null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mtime},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Name == "./var/lib/dpkg/status" {
			tw.Write([]byte(status))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(entry, tarballName), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest = "base-files\t12.4\tamd64\n"
	if err := os.WriteFile(filepath.Join(entry, manifestName), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return entry, manifest
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: trees have files of several owners and device nodes")
	}
}

func TestBootstrapCacheHit(t *testing.T) {
	requireRoot(t)
	srv, _ := fakeArchive(t)
	spec := fakeSpec(srv)
	n, _ := spec.normalized()
	state, err := archiveState(context.Background(), srv.Client(), n.Sources)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	entry, manifest := writeEntry(t, cache, spec, state)
	// An entry for an older state and a stale staging directory are left
	// alone by a hit.
	old, _ := writeEntry(t, cache, spec, strings.Repeat("0", 64))

	var log []string
	tree := filepath.Join(t.TempDir(), "tree")
	res, err := Bootstrap(context.Background(), spec, tree, Options{CacheDir: cache, HTTPClient: srv.Client(),
		Progress: func(m string) { log = append(log, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.CacheHit || res.Offline || res.ArchiveState != state || res.Tarball != filepath.Join(entry, tarballName) || res.SpecKey != n.key() {
		t.Fatalf("result %+v", res)
	}
	if res.Manifest.String() != manifest {
		t.Fatalf("manifest %q", res.Manifest.String())
	}
	fi, err := os.Lstat(filepath.Join(tree, "usr/su"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o750 || st.Uid != 123 || st.Gid != 456 {
		t.Fatalf("usr/su: mode %v owner %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	if l, err := os.Readlink(filepath.Join(tree, "bin")); err != nil || l != "usr/bin" {
		t.Fatalf("bin -> %q, %v", l, err)
	}
	if fi, err := os.Lstat(filepath.Join(tree, "null")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("null: %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("a cache hit removed another entry: %v", err)
	}
	if !strings.Contains(strings.Join(log, "\n"), "cached tree") {
		t.Fatalf("progress:\n%s", strings.Join(log, "\n"))
	}

	// The tree must be empty.
	if _, err := Bootstrap(context.Background(), spec, tree, Options{CacheDir: cache, HTTPClient: srv.Client()}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty tree: %v", err)
	}

	// A manifest that does not match the tarball is caught.
	if err := os.WriteFile(filepath.Join(entry, manifestName), []byte("base-files\t12.5\tamd64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Bootstrap(context.Background(), spec, filepath.Join(t.TempDir(), "t"), Options{CacheDir: cache, HTTPClient: srv.Client()}); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("mismatched manifest: %v", err)
	}
}

func TestBootstrapOffline(t *testing.T) {
	requireRoot(t)
	srv, _ := fakeArchive(t)
	spec := fakeSpec(srv)
	cache := t.TempDir()
	older, _ := writeEntry(t, cache, spec, strings.Repeat("1", 64))
	newer, _ := writeEntry(t, cache, spec, strings.Repeat("2", 64))
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(older, tarballName), past, past); err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	srv.Close()

	var log []string
	res, err := Bootstrap(context.Background(), spec, filepath.Join(t.TempDir(), "tree"), Options{CacheDir: cache, HTTPClient: client,
		Progress: func(m string) { log = append(log, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Offline || !res.CacheHit || res.Tarball != filepath.Join(newer, tarballName) {
		t.Fatalf("offline result %+v", res)
	}
	if !strings.Contains(strings.Join(log, "\n"), "may be out of date") {
		t.Fatalf("progress does not warn:\n%s", strings.Join(log, "\n"))
	}

	// Without a cache entry, an unreachable archive is an error.
	_, err = Bootstrap(context.Background(), spec, filepath.Join(t.TempDir(), "tree"), Options{CacheDir: t.TempDir(), HTTPClient: client})
	if err == nil || !strings.Contains(err.Error(), "archive state") {
		t.Fatalf("no entry, no archive: %v", err)
	}
}

func TestPruneSiblings(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, entry bool) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if entry {
			for _, f := range []string{tarballName, manifestName} {
				if err := os.WriteFile(filepath.Join(p, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		return p
	}
	keep := mk("keep", true)
	old := mk("old", true)
	fresh := mk(stagingGlob+"fresh", false)
	stale := mk(stagingGlob+"stale", false)
	other := mk("not-an-entry", false)
	past := time.Now().Add(-2 * staleStaging)
	if err := os.Chtimes(stale, past, past); err != nil {
		t.Fatal(err)
	}
	pruneSiblings(dir, keep)
	for p, want := range map[string]bool{keep: true, old: false, fresh: true, stale: false, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
