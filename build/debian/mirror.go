package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// maxReleaseFile bounds a Release file; Debian's largest (bookworm's
// InRelease) is about 150 kB.
const maxReleaseFile = 16 << 20

// fetchTimeout bounds the fetch of one Release file.
const fetchTimeout = 30 * time.Second

// archiveState fetches the InRelease file of every source (its Release
// file when the archive has no InRelease) and returns the state key of
// their contents (stateKey).
func archiveState(ctx context.Context, client *http.Client, sources []Source) (string, error) {
	var sums []string
	for _, src := range sources {
		body, err := fetchRelease(ctx, client, src)
		if err != nil {
			return "", err
		}
		sums = append(sums, sha256Hex(body))
	}
	return stateKey(sums), nil
}

// fetchRelease returns the body of the source's InRelease file, or of its
// Release file when InRelease does not exist (HTTP 404).
func fetchRelease(ctx context.Context, client *http.Client, src Source) ([]byte, error) {
	body, status, err := get(ctx, client, src.releaseURL("InRelease"))
	if err == nil && status == http.StatusNotFound {
		body, status, err = get(ctx, client, src.releaseURL("Release"))
	}
	if err != nil {
		return nil, fmt.Errorf("debian: archive state of %s %s: %w", src.URI, src.Suite, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("debian: archive state of %s %s: HTTP %d for %s", src.URI, src.Suite, status, src.releaseURL("InRelease"))
	}
	return body, nil
}

func get(ctx context.Context, client *http.Client, url string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReleaseFile+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", url, err)
	}
	if len(body) > maxReleaseFile {
		return nil, 0, fmt.Errorf("%s: larger than %d bytes", url, maxReleaseFile)
	}
	return body, resp.StatusCode, nil
}

// stateKey combines the SHA-256 sums of the Release files of an archive
// state. Sorting makes it independent of the order, so that the key
// computed from the files fetched before a bootstrap equals the key
// computed from apt's copies of them afterwards.
func stateKey(sums []string) string {
	s := append([]string(nil), sums...)
	sort.Strings(s)
	sum := sha256.Sum256([]byte(strings.Join(s, "\n") + "\n"))
	return hex.EncodeToString(sum[:])
}

// stateOfLists returns the state key of the Release files apt downloaded,
// as the bootstrap's customize hook copied them into dir, and how many
// there were.
func stateOfLists(dir string) (string, int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, fmt.Errorf("debian: archive state: %w", err)
	}
	var sums []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", 0, fmt.Errorf("debian: archive state: %w", err)
		}
		sums = append(sums, sha256Hex(b))
	}
	return stateKey(sums), len(sums), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
