package sysupdate

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecompress feeds arbitrary payloads to the format detection and the
// decoders: no input may panic, and plain data must pass through intact.
func FuzzDecompress(f *testing.F) {
	plain := bytes.Repeat([]byte("fuzz "), 200)
	f.Add(plain)
	f.Add([]byte("xx"))
	f.Add([]byte{})
	f.Add(gzipData(f, plain))
	f.Add(xzData(f, plain))
	f.Add(zstdData(f, plain))
	f.Add([]byte("BZh91AY&SY"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Decompress(bytes.NewReader(in))
		if err != nil {
			return
		}
		defer r.Close()
		// Bounded, so that a small bomb does not stall the fuzzer.
		out, err := io.ReadAll(io.LimitReader(r, 8<<20))
		if err != nil {
			return
		}
		compressed := bytes.HasPrefix(in, magicGzip) || bytes.HasPrefix(in, magicXz) || bytes.HasPrefix(in, magicZstd) ||
			(len(in) >= 4 && bytes.HasPrefix(in, magicBzip2) && in[3] >= '1' && in[3] <= '9')
		if !compressed && !bytes.Equal(out, in) {
			t.Fatalf("uncompressed input changed: %q -> %q", in, out)
		}
	})
}

// tarPayloadSize sums the sizes an archive's headers claim, or returns -1
// for an unreadable archive.
func tarPayloadSize(in []byte) int64 {
	tr := tar.NewReader(bytes.NewReader(in))
	var n int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			return -1
		}
		n += h.Size
	}
}

// FuzzExtractTar extracts arbitrary archives into a directory beside a
// sentinel: no input may panic or touch anything outside the directory.
func FuzzExtractTar(f *testing.F) {
	f.Add(makeTar(f, sampleTree))
	f.Add(makeTar(f, []tarEntry{{name: "../x", typ: tar.TypeReg, mode: 0o644, body: "evil"}}))
	f.Add(makeTar(f, []tarEntry{
		{name: "l", typ: tar.TypeSymlink, link: "../outside"},
		{name: "l/victim", typ: tar.TypeReg, mode: 0o644, body: "evil"},
	}))
	f.Add(makeTar(f, []tarEntry{
		{name: "l", typ: tar.TypeSymlink, link: ".."},
		{name: "h", typ: tar.TypeLink, link: "l/outside/victim"},
		{name: "l", typ: tar.TypeReg, mode: 0o644, body: "x"},
	}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, in []byte) {
		// Sparse entries can claim huge sizes filled with zeros; they
		// test nothing about paths.
		if n := tarPayloadSize(in); n > 1<<20 {
			return
		}
		base := t.TempDir()
		dir := filepath.Join(base, "dir")
		outside := filepath.Join(base, "outside")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		victim := filepath.Join(outside, "victim")
		if err := os.WriteFile(victim, []byte("safe"), 0o644); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Stat(victim)
		// Extracted directories may be read-only: make them removable.
		defer filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		_ = ExtractTar(bytes.NewReader(in), dir)

		entries, err := os.ReadDir(base)
		if err != nil || len(entries) != 2 {
			t.Fatalf("beside the directory: %v %v", entries, err)
		}
		outs, _ := os.ReadDir(outside)
		after, err := os.Stat(victim)
		if len(outs) != 1 || err != nil || !after.ModTime().Equal(before.ModTime()) || after.Mode() != before.Mode() {
			t.Fatalf("outside changed: %v %v", outs, err)
		}
		if b, _ := os.ReadFile(victim); string(b) != "safe" {
			t.Fatalf("victim = %q", b)
		}
		if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
			t.Fatalf("directory replaced: %v", err)
		}
	})
}
