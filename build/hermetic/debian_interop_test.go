package hermetic

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

// The real-tree test: a Debian 12 minbase tree with systemd, made by
// mmdebstrap, goes through Apply and the offline first boot; every
// difference between the tree and the first-boot root must be one the
// report names.

const (
	debianSuite  = "bookworm"
	debianMirror = "http://deb.debian.org/debian"
	// debianEpoch fixes the timestamps mmdebstrap writes.
	debianEpoch = "1700000000"
)

var debianPackages = []string{"systemd", "systemd-sysv", "dbus", "udev"}

// testCacheDir is where test trees are kept between runs.
func testCacheDir() string {
	if d := os.Getenv("IMAGO_CACHE_DIR"); d != "" {
		return filepath.Join(d, "test-trees")
	}
	if os.Geteuid() == 0 {
		return "/var/cache/imago/test-trees"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "imago", "test-trees")
	}
	return filepath.Join(os.TempDir(), "imago-test-trees")
}

// debianTree extracts a cached mmdebstrap tarball into a temporary
// directory, making the tarball first when the cache lacks it. The cache key
// is the suite, variant, package list and mirror.
func debianTree(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: builds a Debian tree with mmdebstrap")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has files of several owners")
	}
	mm := testutil.RequireTool(t, "mmdebstrap", "mmdebstrap")
	tar := testutil.RequireTool(t, "tar", "tar")
	key := sha256.Sum256([]byte(strings.Join([]string{debianSuite, "minbase", strings.Join(debianPackages, ","), debianMirror, debianEpoch}, "\n")))
	dir := testCacheDir()
	tarball := filepath.Join(dir, "debian-"+hex.EncodeToString(key[:8])+".tar")
	if _, err := os.Stat(tarball); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		tmp := tarball + ".tmp.tar"
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, mm, "--variant=minbase", "--mode=root", "--include="+strings.Join(debianPackages, ","), debianSuite, tmp, debianMirror)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+debianEpoch)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			t.Fatalf("mmdebstrap: %v\n%s", err, out)
		}
		if err := os.Rename(tmp, tarball); err != nil {
			t.Fatal(err)
		}
		t.Logf("made %s in %s", tarball, time.Since(start).Round(time.Second))
	}
	root := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, tar, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", tarball, "-C", root)
	return root
}

func TestInteropDebianFirstBoot(t *testing.T) {
	tree := debianTree(t)
	epoch := time.Unix(1700000000, 0)
	opt := Options{ImageID: "imago-test", ImageVersion: "1.2", RootPasswordHash: testRootHash, SourceDateEpoch: &epoch}
	start := time.Now()
	rep, err := Apply(tree, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Apply took %s", time.Since(start).Round(time.Millisecond))
	// Minimal Debian with systemd becomes hermetic without problems left.
	for _, f := range rep.Problems() {
		t.Errorf("problem: %s %s: %s", f.Kind, f.Path, f.Reason)
	}
	// A second run leaves /usr as it is.
	first := snapshot(t, filepath.Join(tree, "usr"), true)
	if _, err := Apply(tree, opt); err != nil {
		t.Fatal(err)
	}
	if second := snapshot(t, filepath.Join(tree, "usr"), true); second != first {
		a, b := strings.Split(first, "\n"), strings.Split(second, "\n")
		for i := 0; i < len(a) && i < len(b); i++ {
			if a[i] != b[i] {
				t.Fatalf("second run changed /usr, first at\n%s\n%s", a[i], b[i])
			}
		}
		t.Fatalf("second run changed /usr: %d entries, then %d", len(a), len(b))
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())
	newRoot := simulateFirstBoot(t, tree)
	diffs, extra := compareFirstBoot(t, tree, newRoot)
	logDiffs(t, rep, diffs, extra)
	for _, d := range unexplained(rep, diffs) {
		t.Errorf("not explained by the report: %s", d)
	}
	checkRootPassword(t, newRoot, testRootHash)
	checkDropIns(t, newRoot)
}
