package sysupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// payloadServer serves one file with real Range support (http.ServeContent)
// and can misbehave on demand.
type payloadServer struct {
	mu       sync.Mutex
	data     []byte
	modTime  time.Time
	cutAfter int  // > 0: the next GET sends only this many bytes, then drops the connection
	noRange  bool // answer every GET with 200 and the whole file
	ranges   []string
	requests int
}

func (s *payloadServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	data, mod, cut, noRange := s.data, s.modTime, s.cutAfter, s.noRange
	if r.Method == http.MethodGet {
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.cutAfter = 0
	}
	s.mu.Unlock()
	if cut > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if !mod.IsZero() {
			w.Header().Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
		}
		w.WriteHeader(http.StatusOK)
		w.Write(data[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	if noRange {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
		return
	}
	http.ServeContent(w, r, "payload", mod, bytes.NewReader(data))
}

func (s *payloadServer) seen() (requests int, ranges []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, append([]string(nil), s.ranges...)
}

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newPayloadServer(t *testing.T, data []byte) (*payloadServer, *httptest.Server) {
	t.Helper()
	ps := &payloadServer{data: data, modTime: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	srv := httptest.NewServer(ps)
	t.Cleanup(srv.Close)
	return ps, srv
}

func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d bytes of the payload", p, len(got), len(want))
	}
}

func TestFetchSuccessAndReuse(t *testing.T) {
	data := randomData(3<<20+123, 1)
	ps, srv := newPayloadServer(t, data)
	cache := filepath.Join(t.TempDir(), "cache", "sub")
	var calls []int64
	d := &Downloader{Client: srv.Client(), CacheDir: cache, Progress: func(name string, done, total int64) {
		if name != "img_1.raw.xz" || total != int64(len(data)) {
			t.Errorf("progress %q %d/%d", name, done, total)
		}
		calls = append(calls, done)
	}}
	want := sha256.Sum256(data)
	p, err := d.Fetch(context.Background(), srv.URL+"/img_1.raw.xz", want)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if filepath.Dir(p) != cache || filepath.Base(p) != fmt.Sprintf("%x", want) {
		t.Errorf("path %s", p)
	}
	if st, err := os.Stat(cache); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("cache dir: %v %v", st.Mode(), err)
	}
	if len(calls) < 3 || len(calls) > 6 || calls[len(calls)-1] != int64(len(data)) {
		t.Errorf("progress calls %v", calls)
	}
	if names := cacheEntries(t, cache); len(names) != 1 {
		t.Errorf("cache holds %v", names)
	}
	// A complete verified file is reused without asking the server.
	n, _ := ps.seen()
	if p2, err := d.Fetch(context.Background(), srv.URL+"/img_1.raw.xz", want); err != nil || p2 != p {
		t.Fatalf("reuse: %s %v", p2, err)
	}
	if n2, _ := ps.seen(); n2 != n {
		t.Errorf("reuse made %d requests", n2-n)
	}
	// A damaged cache file is not trusted: it is downloaded again.
	os.WriteFile(p, []byte("damaged"), 0o600)
	if p2, err := d.Fetch(context.Background(), srv.URL+"/img_1.raw.xz", want); err != nil || p2 != p {
		t.Fatalf("refetch: %s %v", p2, err)
	}
	checkFile(t, p, data)
	if n3, _ := ps.seen(); n3 != n+1 {
		t.Errorf("refetch made %d requests", n3-n)
	}
}

func TestFetchHashMismatch(t *testing.T) {
	data := randomData(50000, 2)
	_, srv := newPayloadServer(t, data)
	cache := t.TempDir()
	d := &Downloader{Client: srv.Client(), CacheDir: cache}
	want := sha256.Sum256([]byte("something else"))
	_, err := d.Fetch(context.Background(), srv.URL+"/x.raw", want)
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("err = %v", err)
	}
	got := sha256.Sum256(data)
	for _, s := range []string{srv.URL + "/x.raw", fmt.Sprintf("%x", want), fmt.Sprintf("%x", got)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if names := cacheEntries(t, cache); len(names) != 0 {
		t.Errorf("cache holds %v after a mismatch", names)
	}
}

func TestFetchTruncatedThenResume(t *testing.T) {
	data := randomData(200000, 3)
	ps, srv := newPayloadServer(t, data)
	cache := t.TempDir()
	d := &Downloader{Client: srv.Client(), CacheDir: cache}
	want := sha256.Sum256(data)
	const n = 70000
	ps.cutAfter = n
	_, err := d.Fetch(context.Background(), srv.URL+"/p.tar.gz", want)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/p.tar.gz") {
		t.Fatalf("truncated body: err = %v", err)
	}
	_, partial, _ := d.cachePaths(want)
	st, err := os.Stat(partial)
	if err != nil || st.Size() != n {
		t.Fatalf("partial file: %v %v", st, err)
	}
	p, err := d.Fetch(context.Background(), srv.URL+"/p.tar.gz", want)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	_, ranges := ps.seen()
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", n) {
		t.Errorf("Range headers %q", ranges)
	}
	if names := cacheEntries(t, cache); len(names) != 1 {
		t.Errorf("cache holds %v", names)
	}
}

func TestFetchServerIgnoresRange(t *testing.T) {
	data := randomData(100000, 4)
	ps, srv := newPayloadServer(t, data)
	d := &Downloader{Client: srv.Client(), CacheDir: t.TempDir()}
	want := sha256.Sum256(data)
	ps.cutAfter = 30000
	if _, err := d.Fetch(context.Background(), srv.URL+"/f", want); err == nil {
		t.Fatal("truncated download succeeded")
	}
	ps.noRange = true
	p, err := d.Fetch(context.Background(), srv.URL+"/f", want)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if _, ranges := ps.seen(); len(ranges) != 2 || ranges[1] != "bytes=30000-" {
		t.Errorf("Range headers %q", ranges)
	}
}

func TestFetchRestartsOnChangedFileAndBadRange(t *testing.T) {
	old := randomData(80000, 5)
	ps, srv := newPayloadServer(t, old)
	d := &Downloader{Client: srv.Client(), CacheDir: t.TempDir()}
	// The file changes on the server between the interrupted and the
	// resumed download: If-Range makes the server send it whole.
	newData := randomData(90000, 6)
	want := sha256.Sum256(newData)
	ps.cutAfter = 40000
	if _, err := d.Fetch(context.Background(), srv.URL+"/f", want); err == nil {
		t.Fatal("truncated download succeeded")
	}
	ps.mu.Lock()
	ps.data, ps.modTime = newData, ps.modTime.Add(time.Hour)
	ps.mu.Unlock()
	p, err := d.Fetch(context.Background(), srv.URL+"/f", want)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, newData)
	if _, ranges := ps.seen(); len(ranges) != 2 || ranges[1] != "bytes=40000-" {
		t.Errorf("Range headers %q (one resumed request expected)", ranges)
	}

	// A partial file longer than the file: 416, then a fresh start.
	small := randomData(1000, 7)
	ps.mu.Lock()
	ps.data = small
	ps.mu.Unlock()
	want = sha256.Sum256(small)
	_, partial, _ := d.cachePaths(want)
	os.WriteFile(partial, randomData(5000, 8), 0o600)
	p, err = d.Fetch(context.Background(), srv.URL+"/f", want)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, small)
}

// A file that changes on a server giving no validator cannot be detected
// before the digest is known: the wrong result of the resumed download is
// dropped and the file fetched again from zero.
func TestFetchChangedWithoutValidator(t *testing.T) {
	ps, srv := newPayloadServer(t, randomData(60000, 12))
	ps.modTime = time.Time{}
	d := &Downloader{Client: srv.Client(), CacheDir: t.TempDir()}
	newData := randomData(60000, 13)
	want := sha256.Sum256(newData)
	ps.cutAfter = 20000
	if _, err := d.Fetch(context.Background(), srv.URL+"/f", want); err == nil {
		t.Fatal("truncated download succeeded")
	}
	ps.mu.Lock()
	ps.data = newData
	ps.mu.Unlock()
	p, err := d.Fetch(context.Background(), srv.URL+"/f", want)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, newData)
	if _, ranges := ps.seen(); len(ranges) != 3 || ranges[1] != "bytes=20000-" || ranges[2] != "" {
		t.Errorf("Range headers %q", ranges)
	}
	// The same for a local file behind a stale partial copy.
	src := filepath.Join(t.TempDir(), "f")
	want = sha256.Sum256(append(newData, 'x'))
	os.WriteFile(src, append(newData, 'x'), 0o644)
	_, partial, _ := d.cachePaths(want)
	os.WriteFile(partial, randomData(1000, 14), 0o600)
	if p, err := d.Fetch(context.Background(), "file://"+src, want); err != nil {
		t.Fatal(err)
	} else {
		checkFile(t, p, append(newData, 'x'))
	}
}

func TestFetchFileURL(t *testing.T) {
	data := randomData(300000, 9)
	src := filepath.Join(t.TempDir(), "img_2.raw")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	var last int64
	d := &Downloader{CacheDir: cache, Progress: func(_ string, done, _ int64) { last = done }}
	want := sha256.Sum256(data)
	// A partial copy from an earlier run is completed.
	_, partial, _ := d.cachePaths(want)
	os.WriteFile(partial, data[:1000], 0o600)
	p, err := d.Fetch(context.Background(), "file://"+src, want)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, data)
	if last != int64(len(data)) {
		t.Errorf("progress ended at %d", last)
	}
	// Wrong hash: refused and cleaned up.
	bad := sha256.Sum256([]byte("x"))
	if _, err := d.Fetch(context.Background(), "file://"+src, bad); !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), "file://"+src) {
		t.Errorf("mismatch: %v", err)
	}
	if names := cacheEntries(t, cache); len(names) != 1 {
		t.Errorf("cache holds %v", names)
	}
	if _, err := d.Fetch(context.Background(), "file://"+src+".missing", bad); err == nil || !strings.Contains(err.Error(), src+".missing") {
		t.Errorf("missing file: %v", err)
	}
	if n, err := d.Size(context.Background(), "file://"+src); err != nil || n != int64(len(data)) {
		t.Errorf("Size = %d, %v", n, err)
	}
}

func TestFetchCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	d := &Downloader{Client: srv.Client(), CacheDir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := d.Fetch(ctx, srv.URL+"/slow", sha256.Sum256(nil))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancellation took %v", time.Since(start))
	}
	// An already cancelled context makes no request.
	if _, err := d.Fetch(ctx, srv.URL+"/slow", sha256.Sum256([]byte("y"))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestFetchErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	d := &Downloader{Client: srv.Client(), CacheDir: t.TempDir()}
	if _, err := d.Fetch(context.Background(), srv.URL+"/gone", sha256.Sum256(nil)); err == nil || !strings.Contains(err.Error(), srv.URL+"/gone") || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}
	if _, err := (&Downloader{}).Fetch(context.Background(), srv.URL, sha256.Sum256(nil)); err == nil {
		t.Error("no cache directory accepted")
	}
	if _, err := d.Size(context.Background(), srv.URL+"/gone"); err == nil {
		t.Error("Size of a missing file")
	}
}

func TestSize(t *testing.T) {
	data := randomData(12345, 10)
	_, srv := newPayloadServer(t, data)
	d := &Downloader{Client: srv.Client()}
	if n, err := d.Size(context.Background(), srv.URL+"/f"); err != nil || n != int64(len(data)) {
		t.Errorf("Size = %d, %v", n, err)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in          string
		start, size int64
		ok          bool
	}{
		{"bytes 100-199/200", 100, 200, true},
		{"bytes 0-9/*", 0, -1, true},
		{"bytes 5-9/3", 0, 0, false},
		{"bytes x-9/10", 0, 0, false},
		{"items 0-9/10", 0, 0, false},
		{"bytes 0-9", 0, 0, false},
		{"", 0, 0, false},
	} {
		start, size, ok := parseContentRange(c.in)
		if ok != c.ok || (ok && (start != c.start || size != c.size)) {
			t.Errorf("%q: %d %d %v", c.in, start, size, ok)
		}
	}
}
