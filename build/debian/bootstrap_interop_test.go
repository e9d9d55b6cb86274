package debian_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/build/debian"
	"github.com/imago-os/imago/build/debian/debiantest"
	"github.com/imago-os/imago/format/osrelease"
	"github.com/imago-os/imago/internal/testutil"
)

// warmLimit bounds a bootstrap from the cache: fetching three Release
// files and extracting a 650 MB tarball take a few seconds on an idle
// machine and half a minute on a busy one; a cold bootstrap takes more than
// a minute even on an idle one. Result.CacheHit is the exact check.
const warmLimit = 2 * time.Minute

// TestInteropBootstrap bootstraps the default package set twice with the
// real mmdebstrap and archive: the second time must come from the cache
// and give the same tree.
func TestInteropBootstrap(t *testing.T) {
	first := debiantest.Tree(t)
	tree := first.Tree

	rel, path, err := osrelease.Load(tree)
	if err != nil {
		t.Fatal(err)
	}
	if rel.ID() != "debian" || rel.VersionID() != "12" {
		t.Fatalf("%s: ID=%q VERSION_ID=%q", path, rel.ID(), rel.VersionID())
	}
	if _, err := os.Stat(filepath.Join(tree, "usr/lib/os-release")); err != nil {
		t.Fatal(err)
	}

	k, err := debian.FindKernel(tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s at %s", k.Version, k.Image)
	if fi, err := os.Stat(k.Image); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("kernel image %s: %v", k.Image, err)
	}
	if p, ok := first.Manifest.Lookup("linux-image-" + k.Version); !ok {
		t.Errorf("manifest lacks linux-image-%s", k.Version)
	} else {
		t.Logf("%s %s", p.Name, p.Version)
	}

	sd, ok := first.Manifest.Lookup("systemd")
	if !ok || !strings.HasPrefix(sd.Version, "252.") {
		t.Fatalf("systemd in the manifest: %+v %v", sd, ok)
	}
	for _, want := range []string{"systemd-sysv", "udev", "dbus", "cryptsetup", "dracut", "dracut-core", "btrfs-progs", "systemd-boot-efi",
		"libtss2-esys-3.0.2-0", "libtss2-rc0", "libtss2-mu0", "libtss2-tcti-device0"} {
		if _, ok := first.Manifest.Lookup(want); !ok {
			t.Errorf("manifest lacks %s", want)
		}
	}
	if _, ok := first.Manifest.Lookup("initramfs-tools"); ok {
		t.Error("initramfs-tools is installed")
	}

	// The manifest is what dpkg-query says.
	dpkgQuery := testutil.RequireTool(t, "dpkg-query", "dpkg")
	out := testutil.Run(t, dpkgQuery, "--admindir="+filepath.Join(tree, "var/lib/dpkg"), "-W",
		"-f", `${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\n`)
	var want []string
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "installed\t"); ok {
			want = append(want, rest+"\n")
		}
	}
	sort.Strings(want)
	if got := first.Manifest.String(); got != strings.Join(want, "") {
		t.Errorf("manifest differs from dpkg-query:\n%s\n---\n%s", got, strings.Join(want, ""))
	}

	checkClean(t, tree)

	start := time.Now()
	second, err := debian.Bootstrap(context.Background(), debiantest.Spec(), filepath.Join(t.TempDir(), "tree"), debian.Options{CacheDir: debiantest.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	t.Logf("second bootstrap: cache hit %v in %s", second.CacheHit, warm.Round(time.Millisecond))
	if !second.CacheHit {
		t.Error("second bootstrap missed the cache")
	}
	if warm > warmLimit {
		t.Errorf("bootstrap from the cache took %s (limit %s)", warm, warmLimit)
	}
	if second.Tarball != first.Tarball || second.ArchiveState != first.ArchiveState {
		t.Errorf("second bootstrap used %s (state %s), first %s (state %s)", second.Tarball, second.ArchiveState, first.Tarball, first.ArchiveState)
	}
	a, err := debiantest.Listing(tree)
	if err != nil {
		t.Fatal(err)
	}
	b, err := debiantest.Listing(second.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("the two trees differ:\n%s", firstDiff(a, b))
	}
	t.Logf("%d files, listing identical", strings.Count(a, "\n"))
}

// checkClean checks what the tree must not contain: package lists and
// downloads, an initrd, files of the build host, the stand-ins for the
// initrd tools.
func checkClean(t *testing.T, tree string) {
	t.Helper()
	lists, _ := filepath.Glob(filepath.Join(tree, "var/lib/apt/lists/*_*"))
	debs, _ := filepath.Glob(filepath.Join(tree, "var/cache/apt/archives/*.deb"))
	pkgcache, _ := filepath.Glob(filepath.Join(tree, "var/cache/apt/*.bin"))
	initrds, _ := filepath.Glob(filepath.Join(tree, "boot/initrd.img-*"))
	for what, files := range map[string][]string{"apt lists": lists, "downloaded packages": debs, "apt caches": pkgcache, "initrds": initrds} {
		if len(files) > 0 {
			t.Errorf("%s left in the tree: %v", what, files)
		}
	}
	for _, p := range []string{"etc/resolv.conf", "etc/hostname", "usr/bin/dracut.imago-stub", "usr/sbin/update-initramfs"} {
		if _, err := os.Lstat(filepath.Join(tree, p)); err == nil {
			t.Errorf("%s is in the tree", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(tree, "usr/bin/dracut")); err != nil || fi.Size() < 10000 {
		t.Errorf("usr/bin/dracut is not dracut: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(tree, "var/lib/dpkg/diversions")); err == nil && bytes.Contains(b, []byte("imago")) {
		t.Errorf("diversions left behind:\n%s", b)
	}
	if b, err := os.ReadFile(filepath.Join(tree, "etc/machine-id")); err != nil || len(b) != 0 {
		t.Errorf("etc/machine-id is %q, %v; want empty", b, err)
	}
}

// TestInteropBootstrapReproducible bootstraps without the cache and
// compares the tarball with the cached one: with SOURCE_DATE_EPOCH and the
// same archive state they must be byte-identical.
func TestInteropBootstrapReproducible(t *testing.T) {
	cached := debiantest.Tree(t)
	start := time.Now()
	fresh, err := debian.Bootstrap(context.Background(), debiantest.Spec(), filepath.Join(t.TempDir(), "tree"), debian.Options{
		CacheDir: t.TempDir(),
		Progress: func(m string) { t.Log(m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold bootstrap: %s", time.Since(start).Round(time.Second))
	if fresh.CacheHit {
		t.Fatal("an empty cache had the tree")
	}
	if fresh.ArchiveState != cached.ArchiveState {
		t.Skipf("the archive changed since the cached tree was made (%s, now %s)", cached.ArchiveState, fresh.ArchiveState)
	}
	a, sizeA, err := fileHash(cached.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	b, sizeB, err := fileHash(fresh.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		la, _ := debiantest.Listing(cached.Tree)
		lb, _ := debiantest.Listing(fresh.Tree)
		t.Fatalf("tarballs differ (%d and %d bytes); first differing file:\n%s", sizeA, sizeB, firstDiff(la, lb))
	}
	t.Logf("tarballs identical: %d bytes, SHA-256 %s", sizeA, a)
}

// firstDiff returns the first differing lines of two listings.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return "- " + la[i] + "\n+ " + lb[i]
		}
	}
	return "(one listing is a prefix of the other)"
}

// fileHash returns the SHA-256 of a file's content, in hex, and its size.
func fileHash(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
