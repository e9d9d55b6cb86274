package sysupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrHashMismatch is wrapped by errors about a payload whose SHA-256
// differs from the one the manifest lists.
var ErrHashMismatch = errors.New("SHA-256 mismatch")

// ErrSignature is wrapped by errors about a missing or bad SHA256SUMS.gpg.
var ErrSignature = errors.New("bad or missing manifest signature")

// progressStep is how many bytes pass between two Progress calls, so that
// a fast local copy does not flood the caller.
const progressStep = 1 << 20

// Downloader fetches url-file and url-tar payloads into a cache directory.
// A download is first written to "<sha256>.partial" and renamed to
// "<sha256>" once its digest is verified, so the cache only ever holds
// complete files under final names and an interrupted download can resume.
type Downloader struct {
	// Client fetches http(s) URLs; nil means http.DefaultClient.
	Client *http.Client
	// CacheDir holds complete and partial downloads; it is created with
	// mode 0700 if missing.
	CacheDir string
	// Progress, when not nil, is told how a download advances: the URL's
	// file name, bytes done and total (-1 if unknown).
	Progress func(name string, done, total int64)
}

func (d *Downloader) client() *http.Client {
	if d.Client == nil {
		return http.DefaultClient
	}
	return d.Client
}

// cachePaths returns the names of the complete file, the partial file and
// the file remembering the partial file's HTTP validator (ETag or
// Last-Modified), all derived from the expected digest so that different
// versions never share a file.
func (d *Downloader) cachePaths(want [32]byte) (final, partial, validator string) {
	final = filepath.Join(d.CacheDir, hex.EncodeToString(want[:]))
	return final, final + ".partial", final + ".partial.validator"
}

// Fetch downloads url into CacheDir and returns the path of the complete
// file whose SHA-256 (of the bytes as downloaded, i.e. still compressed)
// equals want. A complete verified file from an earlier run is reused
// without a request. A partial file left by an interrupted earlier run is
// resumed with an HTTP Range request (guarded by If-Range when the server
// gave a validator); a server that answers 200 instead of 206 restarts the
// download from zero, as does 416 or a changed file. file:// URLs are read
// locally with the same checks. On a hash mismatch the partial file is
// deleted and the error wraps ErrHashMismatch. A short body is an error
// naming the URL; the partial file is kept for resuming. A resumed
// download with the wrong digest is retried once from zero before it
// counts as a mismatch.
func (d *Downloader) Fetch(ctx context.Context, url string, want [32]byte) (string, error) {
	if d.CacheDir == "" {
		return "", fmt.Errorf("sysupdate: %s: no cache directory to download into", url)
	}
	if err := os.MkdirAll(d.CacheDir, 0o700); err != nil {
		return "", fmt.Errorf("sysupdate: cache: %w", err)
	}
	final, partial, validator := d.cachePaths(want)
	if ok, err := fileHasDigest(final, want); err != nil {
		return "", fmt.Errorf("sysupdate: cache: %w", err)
	} else if ok {
		return final, nil
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	for {
		// A resumed download whose result is wrong may have joined two
		// versions of a file that changed without the server saying so:
		// it gets one more try from zero.
		resumed := false
		if st, err := os.Stat(partial); err == nil && st.Size() > 0 {
			resumed = true
		}
		var err error
		if p, ok := strings.CutPrefix(url, "file://"); ok {
			err = d.copyLocal(ctx, url, p, partial)
		} else {
			err = d.download(ctx, url, partial, validator)
		}
		if err != nil {
			return "", err
		}
		got, err := fileDigest(partial)
		if err != nil {
			return "", fmt.Errorf("sysupdate: cache: %w", err)
		}
		if got == want {
			break
		}
		os.Remove(partial)
		os.Remove(validator)
		if !resumed {
			return "", fmt.Errorf("sysupdate: %s: %w: expected %x, got %x", url, ErrHashMismatch, want, got)
		}
	}
	// No fsync: a cached file is only ever used after its digest is
	// checked again (fileHasDigest), so one that a power loss damaged is
	// downloaded anew, and not syncing spares writing every payload to
	// the disk twice before the update itself writes it.
	if err := os.Rename(partial, final); err != nil {
		return "", fmt.Errorf("sysupdate: cache: %w", err)
	}
	os.Remove(validator)
	return final, nil
}

// fileHasDigest reports whether p exists and has the digest want. A
// cached file with another digest is corrupt and removed.
func fileHasDigest(p string, want [32]byte) (bool, error) {
	got, err := fileDigest(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if got != want {
		return false, os.Remove(p)
	}
	return true, nil
}

func fileDigest(p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("%s: %w", p, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// openPartial opens the partial file for appending and returns its size;
// restart truncates it first.
func openPartial(p string, restart bool) (*os.File, int64, error) {
	flags := os.O_WRONLY | os.O_CREATE
	if restart {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("sysupdate: cache: %w", err)
	}
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("sysupdate: cache: %w", err)
	}
	return f, n, nil
}

// copyLocal copies the file behind a file:// URL into partial, resuming
// where an earlier copy stopped when the source is at least that long.
func (d *Downloader) copyLocal(ctx context.Context, url, src, partial string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("sysupdate: %s: not a regular file", url)
	}
	out, done, err := openPartial(partial, false)
	if err != nil {
		return err
	}
	if done > st.Size() {
		out.Close()
		if out, done, err = openPartial(partial, true); err != nil {
			return err
		}
	}
	if _, err := in.Seek(done, io.SeekStart); err != nil {
		out.Close()
		return fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	n, err := d.copyBody(ctx, url, out, in, done, st.Size())
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sysupdate: cache: %w", cerr)
	}
	if err == nil && done+n != st.Size() {
		err = fmt.Errorf("sysupdate: %s: truncated: copied %d of %d bytes", url, done+n, st.Size())
	}
	return err
}

// download fetches url over HTTP into partial, resuming it if possible.
func (d *Downloader) download(ctx context.Context, url, partial, validatorFile string) error {
	restart := false
	for attempt := 0; ; attempt++ {
		out, done, err := openPartial(partial, restart)
		if err != nil {
			return err
		}
		err = d.downloadOnce(ctx, url, out, done, validatorFile)
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("sysupdate: cache: %w", cerr)
		}
		if errors.Is(err, errRestart) {
			if attempt == 0 {
				restart = true
				os.Remove(validatorFile)
				continue
			}
			return fmt.Errorf("sysupdate: %s: %w even from the start", url, err)
		}
		return err
	}
}

// errRestart asks download to drop the partial file and start over.
var errRestart = errors.New("the server answered the range request with a range not asked for")

func (d *Downloader) downloadOnce(ctx context.Context, url string, out *os.File, done int64, validatorFile string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	// The digest covers the bytes as stored on the server: ask for no
	// content coding, which also keeps net/http from transparently
	// decompressing a body sent with Content-Encoding: gzip.
	req.Header.Set("Accept-Encoding", "identity")
	if done > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", done))
		if v, err := os.ReadFile(validatorFile); err == nil && len(v) > 0 {
			req.Header.Set("If-Range", string(v))
		}
	}
	resp, err := d.client().Do(req)
	if err != nil {
		return fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	defer resp.Body.Close()
	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusOK:
		// A fresh download, or a server that ignores Range or says the
		// file changed: start from zero.
		if done > 0 {
			if err := out.Truncate(0); err != nil {
				return fmt.Errorf("sysupdate: cache: %w", err)
			}
			if _, err := out.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("sysupdate: cache: %w", err)
			}
			done = 0
		}
		total = resp.ContentLength
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != done {
			return errRestart
		}
		total = size
	case http.StatusRequestedRangeNotSatisfiable:
		return errRestart
	default:
		return fmt.Errorf("sysupdate: %s: HTTP status %s", url, resp.Status)
	}
	v := resp.Header.Get("ETag")
	if v == "" || strings.HasPrefix(v, "W/") {
		v = resp.Header.Get("Last-Modified")
	}
	if v != "" {
		if err := os.WriteFile(validatorFile, []byte(v), 0o600); err != nil {
			return fmt.Errorf("sysupdate: cache: %w", err)
		}
	} else {
		os.Remove(validatorFile)
	}
	n, err := d.copyBody(ctx, url, out, resp.Body, done, total)
	if err != nil {
		return err
	}
	if total >= 0 && done+n != total {
		return fmt.Errorf("sysupdate: %s: truncated: got %d of %d bytes", url, done+n, total)
	}
	return nil
}

// parseContentRange parses "bytes START-END/SIZE" (SIZE may be "*", then
// -1 is returned).
func parseContentRange(s string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	if sz == "*" {
		return start, -1, true
	}
	size, err = strconv.ParseInt(sz, 10, 64)
	if err != nil || size < start {
		return 0, 0, false
	}
	return start, size, true
}

// copyBody appends r to out, reporting progress, and returns the number
// of bytes copied. A body that ends early is an error naming url.
func (d *Downloader) copyBody(ctx context.Context, url string, out io.Writer, r io.Reader, done, total int64) (int64, error) {
	name := path.Base(url)
	buf := make([]byte, 256<<10)
	var n, reported int64
	report := func() {
		if d.Progress != nil {
			d.Progress(name, done+n, total)
		}
		reported = n
	}
	report()
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("sysupdate: %s: %w", url, err)
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := out.Write(buf[:m]); err != nil {
				return n, fmt.Errorf("sysupdate: cache: %w", err)
			}
			n += int64(m)
			if n-reported >= progressStep {
				report()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if cerr := ctx.Err(); cerr != nil {
				return n, fmt.Errorf("sysupdate: %s: %w", url, cerr)
			}
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				return n, fmt.Errorf("sysupdate: %s: truncated after %d bytes: %w", url, done+n, rerr)
			}
			return n, fmt.Errorf("sysupdate: %s: %w", url, rerr)
		}
	}
	if n != reported || n == 0 {
		report()
	}
	return n, nil
}

// Size returns the download size of url via a HEAD request (file://: the
// file's size), -1 if the server does not say.
func (d *Downloader) Size(ctx context.Context, url string) (int64, error) {
	if p, ok := strings.CutPrefix(url, "file://"); ok {
		st, err := os.Stat(p)
		if err != nil {
			return -1, fmt.Errorf("sysupdate: %s: %w", url, err)
		}
		return st.Size(), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return -1, fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	resp, err := d.client().Do(req)
	if err != nil {
		return -1, fmt.Errorf("sysupdate: %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, fmt.Errorf("sysupdate: %s: HTTP status %s", url, resp.Status)
	}
	return resp.ContentLength, nil
}
