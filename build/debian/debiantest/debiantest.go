// Package debiantest gives tests a Debian 12 root tree made by
// debian.Bootstrap with debian.DefaultPackages, kept in imago's cache
// directory so that only the first test run on a machine downloads and
// installs packages, and a listing of a tree for comparing two of them.
package debiantest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-os/imago/build/debian"
	"github.com/imago-os/imago/internal/testutil"
)

// Epoch is the SOURCE_DATE_EPOCH of the test tree.
var Epoch = time.Unix(1700000000, 0)

// CacheDir returns imago's cache directory as the CLI finds it:
// $IMAGO_CACHE_DIR, else /var/cache/imago for root, else
// $XDG_CACHE_HOME/imago (~/.cache/imago).
func CacheDir() string {
	if d := os.Getenv("IMAGO_CACHE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/imago"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "imago")
	}
	return filepath.Join(os.TempDir(), "imago-cache")
}

// Spec returns the test tree's specification: Debian 12 from
// deb.debian.org with its updates and security suites, for the machine's
// architecture, minbase plus debian.DefaultPackages, timestamps at Epoch.
func Spec() debian.Spec {
	arch := runtime.GOARCH // Go and Debian agree on amd64 and arm64.
	epoch := Epoch
	return debian.Spec{
		Release:         "bookworm",
		Sources:         debian.Sources("http://deb.debian.org/debian", "http://deb.debian.org/debian-security", "bookworm", nil),
		Architecture:    arch,
		Packages:        debian.DefaultPackages(arch),
		SourceDateEpoch: &epoch,
	}
}

// Require skips a test that needs a real tree when it cannot have one:
// under -short (a first bootstrap takes minutes), or when not root. Under
// CI a missing mmdebstrap fails the test.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: bootstraps a Debian tree (cached in " + CacheDir() + ")")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has files of several owners and device nodes")
	}
	testutil.RequireTool(t, "mmdebstrap", "mmdebstrap")
	testutil.RequireTool(t, "tar", "tar")
}

// Tree bootstraps Spec into a new temporary directory, from the cache when
// it can, and returns the result. Progress goes to the test log.
func Tree(t testing.TB) *debian.Result {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := debian.Bootstrap(ctx, Spec(), filepath.Join(t.TempDir(), "tree"), debian.Options{
		CacheDir: CacheDir(),
		Progress: func(m string) { t.Log(m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tree %s: %d packages, cache hit %v, %s", res.Tree, len(res.Manifest), res.CacheHit, time.Since(start).Round(time.Millisecond))
	return res
}

// Listing describes every file of the tree rooted at root, one line each
// in path order: path, type and mode, owner, size, link target or device
// number, modification time, extended attributes, and the SHA-256 of a
// regular file's content. Two trees with the same listing are the same
// tree.
func Listing(root string) (string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat data", path)
		}
		extra := ""
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			extra = "-> " + target
		case fi.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0:
			extra = fmt.Sprintf("dev %d", st.Rdev)
		case fi.Mode().IsRegular():
			sum, err := fileSHA256(path)
			if err != nil {
				return err
			}
			extra = "sha256 " + sum
		}
		mtime := ""
		if !fi.IsDir() {
			// A directory's mtime changes when anything is created in it
			// (a test's scratch files), so only files' are compared.
			mtime = fi.ModTime().UTC().Format(time.RFC3339Nano)
		}
		xattrs, err := xattrList(path)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %s %d:%d %d %s %s %s", rel, fi.Mode(), st.Uid, st.Gid, sizeOf(fi), mtime, xattrs, extra))
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n", nil
}

func sizeOf(fi os.FileInfo) int64 {
	if fi.Mode().IsRegular() {
		return fi.Size()
	}
	return 0
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// xattrList returns the extended attributes of path as name=hex pairs;
// a symlink's are not read (the calls would follow it).
func xattrList(path string) (string, error) {
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(path, buf)
	if err == syscall.ENOTSUP {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s: listxattr: %w", path, err)
	}
	var names []string
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) > 0 {
			names = append(names, string(name))
		}
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		val := make([]byte, 64<<10)
		m, err := syscall.Getxattr(path, name, val)
		if err != nil {
			return "", fmt.Errorf("%s: getxattr %s: %w", path, name, err)
		}
		out = append(out, fmt.Sprintf("%s=%x", name, val[:m]))
	}
	return strings.Join(out, ","), nil
}
