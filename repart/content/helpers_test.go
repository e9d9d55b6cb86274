package content

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/repart/internal/fscheck"
)

const mib = 1 << 20

// makeTree creates the test tree under dir: files with several modes and
// owners, nested and empty directories, a symlink.
func makeTree(t *testing.T, dir string) map[string]fscheck.Entry {
	t.Helper()
	want := map[string]fscheck.Entry{
		"a.txt":       {Type: '-', Mode: 0o644, UID: 0, GID: 0, Data: "hello\n"},
		"exec.sh":     {Type: '-', Mode: 0o755, UID: 0, GID: 0, Data: "#!/bin/sh\necho hi\n"},
		"private.txt": {Type: '-', Mode: 0o600, UID: 1000, GID: 1000, Data: "secret\n"},
		"link":        {Type: 'l', Mode: 0o777, UID: 0, GID: 0, Data: "a.txt"},
		"sub":         {Type: 'd', Mode: 0o755, UID: 0, GID: 0, Data: ""},
		"sub/b.txt":   {Type: '-', Mode: 0o644, UID: 0, GID: 0, Data: strings.Repeat("nested ", 100)},
		"empty":       {Type: 'd', Mode: 0o700, UID: 0, GID: 0, Data: ""},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"sub", "empty"} {
		if err := os.Mkdir(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, e := range want {
		full := filepath.Join(dir, p)
		switch e.Type {
		case '-':
			if err := os.WriteFile(full, []byte(e.Data), 0o644); err != nil {
				t.Fatal(err)
			}
		case 'l':
			if err := os.Symlink(e.Data, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Chmod(full, os.FileMode(e.Mode)); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(full, e.UID, e.GID); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// pattern returns n bytes that differ from their neighbours and from any
// file system structure.
func pattern(n int64, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}
