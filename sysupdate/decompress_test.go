package sysupdate

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// compressTool runs a compressor command on data, skipping the test case
// when the command is not installed.
func compressTool(t *testing.T, data []byte, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func gzipData(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func xzData(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	w, err := xz.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstdData(t testing.TB, data []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(data, nil)
}

func decompressAll(t *testing.T, in []byte) ([]byte, error) {
	t.Helper()
	r, err := Decompress(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestDecompress(t *testing.T) {
	plain := bytes.Repeat([]byte("imago payload, "), 20000)
	plain = append(plain, randomData(70000, 11)...)
	cases := []struct {
		name string
		make func(t *testing.T) []byte
	}{
		{"gzip", func(t *testing.T) []byte { return gzipData(t, plain) }},
		{"xz", func(t *testing.T) []byte { return xzData(t, plain) }},
		{"zstd", func(t *testing.T) []byte { return zstdData(t, plain) }},
		{"xz-utils", func(t *testing.T) []byte { return compressTool(t, plain, "xz", "-c", "-T1") }},
		{"zstd-cli", func(t *testing.T) []byte { return compressTool(t, plain, "zstd", "-c", "-q") }},
		{"bzip2", func(t *testing.T) []byte { return compressTool(t, plain, "bzip2", "-c") }},
		{"plain", func(*testing.T) []byte { return plain }},
		// Two concatenated gzip members, as pigz or cat make them.
		{"gzip-multi", func(t *testing.T) []byte {
			return append(gzipData(t, plain[:1000]), gzipData(t, plain[1000:])...)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.make(t)
			if c.name != "plain" && len(in) >= len(plain) {
				t.Fatalf("%d compressed bytes for %d", len(in), len(plain))
			}
			got, err := decompressAll(t, in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("got %d bytes, want %d", len(got), len(plain))
			}
		})
	}
}

func TestDecompressShortStreams(t *testing.T) {
	// Streams shorter than any magic, and prefixes of magics that are not
	// complete, pass through unchanged.
	for _, in := range []string{"", "x", "xx", "\x1f", "BZ", "BZh", "BZhx", "\xfd7zX", "(\xb5/"} {
		got, err := decompressAll(t, []byte(in))
		if err != nil || string(got) != in {
			t.Errorf("%q: got %q, %v", in, got, err)
		}
	}
}

func TestDecompressCorrupt(t *testing.T) {
	plain := bytes.Repeat([]byte("abcdefgh"), 10000)
	gz := gzipData(t, plain)
	// Damage the deflate data, keeping the header valid: the error shows
	// when reading.
	gz[len(gz)/2] ^= 0xff
	gz[len(gz)/2+1] ^= 0xff
	r, err := Decompress(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("Decompress: %v", err)
	}
	if _, err := io.ReadAll(r); err == nil {
		t.Error("corrupt gzip read without error")
	}
	r.Close()
	// Damaged checksum trailer.
	gz = gzipData(t, plain)
	gz[len(gz)-5] ^= 1
	if _, err := decompressAll(t, gz); err == nil {
		t.Error("gzip with a bad CRC read without error")
	}
	// Truncated streams of every format fail instead of ending quietly.
	for name, c := range map[string][]byte{"gzip": gzipData(t, plain), "xz": xzData(t, plain), "zstd": zstdData(t, plain)} {
		if _, err := decompressAll(t, c[:len(c)/2]); err == nil {
			t.Errorf("truncated %s read without error", name)
		}
	}
	zs := zstdData(t, plain)
	zs[len(zs)/2] ^= 0xff
	if _, err := decompressAll(t, zs); err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Errorf("corrupt zstd: %v", err)
	}
}
