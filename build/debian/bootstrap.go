package debian

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/imago-os/imago/internal/toolexec"
)

// Options say where Bootstrap caches and whom it tells.
type Options struct {
	// CacheDir is imago's cache directory; Bootstrap keeps its entries in
	// CacheDir/debian. "" means no cache: the tarball is made in a
	// temporary directory and removed afterwards.
	CacheDir string
	// Progress, when set, receives one line per step, and mmdebstrap's
	// status lines while it runs.
	Progress func(msg string)
	// HTTPClient fetches the archive's Release files; nil means
	// http.DefaultClient, which honours $http_proxy.
	HTTPClient *http.Client
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// Result is a bootstrapped tree.
type Result struct {
	// Tree is the root directory of the tree, as passed to Bootstrap.
	Tree string
	// Manifest lists the installed packages.
	Manifest Manifest
	// Tarball is the cache entry the tree was extracted from; "" when
	// Options.CacheDir was "".
	Tarball string
	// SpecKey is the SHA-256 of the normalized Spec, in hex.
	SpecKey string
	// ArchiveState is the SHA-256 of the Release files the packages came
	// from (see the package documentation), in hex.
	ArchiveState string
	// CacheHit says that the tree came from the cache, without running
	// mmdebstrap.
	CacheHit bool
	// Offline says that the archive could not be reached and the newest
	// cache entry for the Spec was used; it may be out of date.
	Offline bool
}

// Cache entry files.
const (
	tarballName  = "rootfs.tar"
	manifestName = "manifest.txt"
	entryName    = "entry.json"
	stagingGlob  = ".tmp-"
	// staleStaging is the age after which a staging directory left by an
	// interrupted build is removed.
	staleStaging = 24 * time.Hour
)

// Bootstrap makes a root tree from Debian packages in the directory tree,
// which must not exist or be empty. It needs root: the tree has files of
// several owners, and device nodes.
//
// The tarball comes from the cache when an entry exists for the Spec and
// the archive's current state; otherwise mmdebstrap makes it and it is
// stored, replacing the entries of the same Spec for older archive states.
// When the archive cannot be reached, the newest entry for the Spec is used
// (Result.Offline) and Progress says so.
func Bootstrap(ctx context.Context, spec Spec, tree string, opts Options) (*Result, error) {
	n, err := spec.normalized()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("debian: bootstrapping needs root: the tree has files of several owners and device nodes")
	}
	if err := checkEmptyDir(tree); err != nil {
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	res := &Result{Tree: tree, SpecKey: n.key()}

	// mmdebstrap's hooks run in another directory: every path it gets is
	// absolute.
	if opts.CacheDir != "" {
		abs, err := filepath.Abs(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("debian: cache: %w", err)
		}
		opts.CacheDir = abs
	}
	cacheRoot := opts.CacheDir
	if cacheRoot == "" {
		tmp, err := os.MkdirTemp("", "imago-debian-")
		if err != nil {
			return nil, fmt.Errorf("debian: %w", err)
		}
		defer os.RemoveAll(tmp)
		cacheRoot = tmp
	}
	specDir := filepath.Join(cacheRoot, "debian", res.SpecKey)

	start := time.Now()
	state, stateErr := archiveState(ctx, client, n.Sources)
	var entry string
	switch {
	case stateErr == nil:
		res.ArchiveState = state
		opts.progress("debian: archive state %s (%s)", short(state), time.Since(start).Round(time.Millisecond))
		if e := filepath.Join(specDir, state); isEntry(e) {
			entry = e
			res.CacheHit = true
		}
	case ctx.Err() != nil:
		return nil, stateErr
	default:
		e := newestEntry(specDir)
		if e == "" || opts.CacheDir == "" {
			return nil, stateErr
		}
		entry = e
		res.ArchiveState = filepath.Base(e)
		res.CacheHit = true
		res.Offline = true
		opts.progress("debian: %v; using the cached tree of archive state %s, which may be out of date", stateErr, short(res.ArchiveState))
	}

	if entry == "" && opts.CacheDir != "" {
		// One bootstrap per Spec at a time: a second build waits for the
		// first and then finds its entry.
		unlock, err := lockDir(ctx, specDir, opts)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if e := filepath.Join(specDir, res.ArchiveState); isEntry(e) {
			entry = e
			res.CacheHit = true
		}
	}
	if entry == "" {
		opts.progress("debian: bootstrapping %s %s (%s, %d packages) with mmdebstrap", n.Release, n.Architecture, n.Variant, len(n.Packages))
		start = time.Now()
		e, actual, err := makeEntry(ctx, n, specDir, opts)
		if err != nil {
			return nil, err
		}
		if actual != res.ArchiveState {
			opts.progress("debian: the archive changed during the bootstrap; cached under the new state %s", short(actual))
		}
		res.ArchiveState = actual
		entry = e
		opts.progress("debian: bootstrapped in %s", time.Since(start).Round(time.Second))
		if opts.CacheDir != "" {
			pruneSiblings(specDir, entry)
		}
	} else {
		opts.progress("debian: cached tree %s", entry)
	}

	start = time.Now()
	if err := Extract(ctx, filepath.Join(entry, tarballName), tree); err != nil {
		return nil, err
	}
	m, err := ReadManifest(tree)
	if err != nil {
		return nil, err
	}
	if want, err := os.ReadFile(filepath.Join(entry, manifestName)); err != nil || string(want) != m.String() {
		return nil, fmt.Errorf("debian: the tree extracted from %s does not have the packages of its manifest", entry)
	}
	opts.progress("debian: extracted %d packages into %s in %s", len(m), tree, time.Since(start).Round(time.Millisecond))
	res.Manifest = m
	if opts.CacheDir != "" {
		res.Tarball = filepath.Join(entry, tarballName)
	}
	return res, nil
}

// makeEntry runs mmdebstrap for the normalized spec n and stores the
// tarball, the manifest and a description as a new entry of specDir. It
// returns the entry and the archive state the packages came from.
func makeEntry(ctx context.Context, n Spec, specDir string, opts Options) (string, string, error) {
	if err := os.MkdirAll(specDir, 0o755); err != nil {
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	staging, err := os.MkdirTemp(specDir, stagingGlob)
	if err != nil {
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.RemoveAll(staging)
		}
	}()
	hookOut := filepath.Join(staging, "hook")
	tmp := filepath.Join(staging, "tmp")
	for _, d := range []string{hookOut, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", "", fmt.Errorf("debian: cache: %w", err)
		}
	}
	env := []string{"TMPDIR=" + tmp, hookOutEnv + "=" + hookOut}
	runOpts := []toolexec.Option{toolexec.Stderr(toolexec.LineWriter(func(l string) {
		// Status lines, without the echo of every hook command.
		if (strings.HasPrefix(l, "I: ") && !strings.HasPrefix(l, "I: running --")) || strings.HasPrefix(l, "W: ") || strings.HasPrefix(l, "E: ") {
			opts.progress("mmdebstrap: %s", l)
		}
	}))}
	if n.SourceDateEpoch != nil {
		env = append(env, "SOURCE_DATE_EPOCH="+epochString(n.SourceDateEpoch))
	} else {
		runOpts = append(runOpts, toolexec.UnsetEnv("SOURCE_DATE_EPOCH"))
	}
	runOpts = append(runOpts, toolexec.Env(env...))
	if _, err := toolexec.Run(ctx, "mmdebstrap", n.mmdebstrapArgs(filepath.Join(staging, tarballName)), runOpts...); err != nil {
		return "", "", fmt.Errorf("debian: %w", err)
	}

	state, count, err := stateOfLists(filepath.Join(hookOut, "lists"))
	if err != nil {
		return "", "", err
	}
	if count != len(n.Sources) {
		return "", "", fmt.Errorf("debian: apt fetched %d Release files for %d sources", count, len(n.Sources))
	}
	status, err := os.Open(filepath.Join(hookOut, "status"))
	if err != nil {
		return "", "", fmt.Errorf("debian: %w", err)
	}
	m, err := ParseStatus(status)
	status.Close()
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(staging, manifestName), []byte(m.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	desc, err := json.MarshalIndent(struct {
		Spec         Spec
		ArchiveState string
		Created      time.Time
		Packages     int
	}{n, state, time.Now().UTC(), len(m)}, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, entryName), append(desc, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	if err := os.RemoveAll(hookOut); err != nil {
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	entry := filepath.Join(specDir, state)
	if err := os.Rename(staging, entry); err != nil {
		if isEntry(entry) {
			// Another build stored the same entry meanwhile.
			return entry, state, nil
		}
		return "", "", fmt.Errorf("debian: cache: %w", err)
	}
	renamed = true
	return entry, state, nil
}

// Extract unpacks a tree tarball Bootstrap made (Result.Tarball) into the
// directory tree, which must not exist or be empty, keeping owners, modes,
// device nodes and extended attributes (POSIX ACLs included).
func Extract(ctx context.Context, tarball, tree string) error {
	if err := checkEmptyDir(tree); err != nil {
		return err
	}
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return fmt.Errorf("debian: %w", err)
	}
	args := []string{"--extract", "--file=" + tarball, "--directory=" + tree,
		"--numeric-owner", "--same-owner", "--preserve-permissions", "--xattrs", "--xattrs-include=*"}
	if _, err := toolexec.Run(ctx, "tar", args); err != nil {
		return fmt.Errorf("debian: extract: %w", err)
	}
	return nil
}

// checkEmptyDir fails unless dir does not exist or is an empty directory.
func checkEmptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("debian: tree: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF || (err == nil && len(names) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("debian: tree %s: %w", dir, err)
	}
	return fmt.Errorf("debian: tree %s is not empty", dir)
}

// isEntry says whether dir is a complete cache entry. Entries appear by
// rename, so a present manifest means a complete one.
func isEntry(dir string) bool {
	for _, name := range []string{tarballName, manifestName} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// newestEntry returns the most recently made entry of specDir, or "".
func newestEntry(specDir string) string {
	entries, err := os.ReadDir(specDir)
	if err != nil {
		return ""
	}
	var best string
	var bestTime time.Time
	for _, e := range entries {
		dir := filepath.Join(specDir, e.Name())
		if strings.HasPrefix(e.Name(), ".") || !isEntry(dir) {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, tarballName))
		if err != nil {
			continue
		}
		if best == "" || fi.ModTime().After(bestTime) {
			best, bestTime = dir, fi.ModTime()
		}
	}
	return best
}

// pruneSiblings removes the entries of specDir other than keep (they are
// for archive states that have passed) and staging directories that
// interrupted builds left behind. Failures only leave files behind.
func pruneSiblings(specDir, keep string) {
	entries, err := os.ReadDir(specDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(specDir, e.Name())
		if dir == keep {
			continue
		}
		if strings.HasPrefix(e.Name(), stagingGlob) {
			if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < staleStaging {
				continue
			}
		} else if !isEntry(dir) {
			continue
		}
		os.RemoveAll(dir)
	}
}

func short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}

// lockName is the lock file of a Spec's cache directory.
const lockName = ".lock"

// lockDir takes an exclusive lock on dir's lock file, waiting while
// another process holds it, until ctx is done. The returned function
// releases it.
func lockDir(ctx context.Context, dir string, opts Options) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("debian: cache: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("debian: cache: %w", err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("debian: cache: lock %s: %w", f.Name(), err)
		}
		if !told {
			opts.progress("debian: waiting for another build of the same tree")
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
