package publish

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// TestInteropDecompressTools has the reference decompressors (zstd, xz,
// gzip, built on the libraries systemd-pull uses) read what Run wrote.
func TestInteropDecompressTools(t *testing.T) {
	b := makeBuild(t, "imago-ref", "5")
	for _, tc := range []struct {
		c         Compression
		tool, pkg string
	}{
		{Zstd, "zstd", "zstd"},
		{XZ, "xz", "xz-utils"},
		{Gzip, "gzip", "gzip"},
	} {
		t.Run(string(tc.c), func(t *testing.T) {
			tool := testutil.RequireTool(t, tc.tool, tc.pkg)
			dir := t.TempDir()
			mustRun(t, dir, Options{Compression: tc.c}, b)
			for name, want := range b.payloads {
				got := testutil.Run(t, tool, "-d", "-c", filepath.Join(dir, name+tc.c.Suffix()))
				if !bytes.Equal(got, want) {
					t.Errorf("%s -d %s%s: not the build's file", tc.tool, name, tc.c.Suffix())
				}
			}
		})
	}
}
