package sysupdate

// Update throughput: how fast Update downloads a url-file payload, checks
// it, decompresses it and writes it into a partition slot of an image
// file, compared with writing the same bytes straight to an image file on
// the same file system (BenchmarkDiskWrite, what dd conv=fsync does).
//
//	go test -run '^$' -bench . -benchtime 3x ./sysupdate
//
// BenchmarkFetch and BenchmarkDecompress time the download and the
// decoding phases alone. Every benchmark sets the decompressed payload
// size as bytes per operation, so the MB/s columns compare directly.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/imago-os/imago/internal/testutil"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
)

// benchPayloadSize is the decompressed payload of every benchmark: large
// enough that per-update overhead (definitions, GPT, HTTP) is noise.
const benchPayloadSize = 256 << 20

// benchPayload returns n bytes shaped like a zero-padded erofs image:
// the first half incompressible, the second half zeros.
func benchPayload(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'}).Read(b[:n/2])
	return b
}

// benchCompress encodes raw as the reference tools would publish it:
// zstd and gzip at their default levels; xz as liblzma lays out such
// data (see xzLike).
func benchCompress(tb testing.TB, format string, raw []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	switch format {
	case "none":
		return raw
	case "zst", "zst-sized":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(raw)
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
	case "gz":
		w := gzip.NewWriter(&buf)
		w.Write(raw)
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
	case "xz":
		return xzLike(tb, raw)
	default:
		tb.Fatalf("unknown format %q", format)
	}
	return buf.Bytes()
}

// xzLike encodes raw (random bytes, then zeros, as benchPayload makes
// them) as an xz file. Pure-Go LZMA compression of 128 MiB of random data
// takes minutes, and liblzma stores such data as uncompressed LZMA2
// chunks anyway; so the random half becomes one xz stream of uncompressed
// chunks written here, and the zero half a run of identical LZMA-compressed
// streams of 8 MiB each (concatenated streams are valid xz). The decoder
// thus sees what it would see in a file made by xz(1).
func xzLike(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	zeroAt := len(raw)
	for zeroAt > 0 && raw[zeroAt-1] == 0 {
		zeroAt--
	}
	out := xzStored(raw[:zeroAt])
	const unit = 8 << 20
	rest := raw[zeroAt:]
	var zs []byte
	for len(rest) > 0 {
		n := min(unit, len(rest))
		if zs == nil || n != unit {
			var buf bytes.Buffer
			w, err := xz.NewWriter(&buf)
			if err != nil {
				tb.Fatal(err)
			}
			w.Write(rest[:n])
			if err := w.Close(); err != nil {
				tb.Fatal(err)
			}
			zs = buf.Bytes()
		}
		out = append(out, zs...)
		rest = rest[n:]
	}
	return out
}

// xzStored builds one xz stream (CRC64 check, one block, LZMA2 with an
// 8 MiB dictionary) holding data in uncompressed LZMA2 chunks.
func xzStored(data []byte) []byte {
	le32 := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	uvarint := func(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
	flags := []byte{0x00, 0x04} // check type CRC64
	out := append([]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, flags...)
	out = le32(out, crc32.ChecksumIEEE(flags))

	// Block header: size byte, block flags (one filter, no sizes), the
	// LZMA2 filter (ID 0x21, one property byte: dictionary 2<<22), padding.
	hdr := []byte{0, 0x00, 0x21, 0x01, 22, 0, 0, 0}
	hdr[0] = byte((len(hdr)+4)/4 - 1)
	hdr = le32(hdr, crc32.ChecksumIEEE(hdr))
	out = append(out, hdr...)

	start := len(out)
	for k := 0; k < len(data); k += 1 << 16 {
		chunk := data[k:min(k+1<<16, len(data))]
		ctl := byte(0x02) // uncompressed, dictionary kept
		if k == 0 {
			ctl = 0x01 // uncompressed, dictionary reset
		}
		out = append(out, ctl, byte((len(chunk)-1)>>8), byte(len(chunk)-1))
		out = append(out, chunk...)
	}
	out = append(out, 0x00) // end of LZMA2 data
	compressed := len(out) - start
	for (len(out)-start)%4 != 0 {
		out = append(out, 0)
	}
	out = binary.LittleEndian.AppendUint64(out, crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)))

	// Index: one record (unpadded block size, uncompressed size).
	idx := []byte{0x00}
	idx = uvarint(idx, 1)
	idx = uvarint(idx, uint64(len(hdr)+compressed+8))
	idx = uvarint(idx, uint64(len(data)))
	for len(idx)%4 != 0 {
		idx = append(idx, 0)
	}
	idx = le32(idx, crc32.ChecksumIEEE(idx))
	out = append(out, idx...)

	footer := le32(nil, uint32(len(idx)/4-1))
	footer = append(footer, flags...)
	out = le32(out, crc32.ChecksumIEEE(footer))
	out = append(out, footer...)
	return append(out, 'Y', 'Z')
}

// TestBenchPayloadsDecompress checks that the benchmark's compressed
// payloads (the hand-built xz layout in particular) decompress to the raw
// bytes, so the benchmarks measure a real decode.
func TestBenchPayloadsDecompress(t *testing.T) {
	raw := benchPayload(3<<20 + 12345)
	for _, f := range []string{"none", "zst", "xz", "gz"} {
		enc := benchCompress(t, f, raw)
		r, err := Decompress(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("%s: decompressed %d bytes (%v), want the %d raw bytes", f, len(got), err, len(raw))
		}
	}
	// The stored-chunk stream is well-formed on its own too, and
	// corrupting its check is noticed.
	s := xzStored(raw[:100000])
	s[len(s)-40] ^= 1
	r, _ := Decompress(bytes.NewReader(s))
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("corrupt xz stream decoded without error")
	}
}

// makeBenchDisk writes a GPT image file with two usr-x86-64 slots of slot
// bytes each, labelled _empty, and returns the disk size.
func makeBenchDisk(tb testing.TB, path string, slot int64) int64 {
	tb.Helper()
	size := 1<<20 + 2*slot + 1<<20
	tab, err := gpt.New(size, 512, gpt.GUID{0xbe, 0x4c})
	if err != nil {
		tb.Fatal(err)
	}
	usr, ok := dps.LookupName("usr", dps.ArchX86_64)
	if !ok {
		tb.Fatal("no usr-x86-64 partition type")
	}
	for k := range 2 {
		first := uint64(2048) + uint64(k)*uint64(slot/512)
		tab.Partitions = append(tab.Partitions, gpt.Partition{Number: k + 1, TypeGUID: gpt.GUID(usr.UUID),
			UniqueGUID: gpt.GUID{0xbe, byte(k + 1)}, FirstLBA: first, LastLBA: first + uint64(slot/512) - 1, Name: "_empty"})
	}
	testutil.WriteGPTImage(tb, path, size, tab)
	return size
}

// BenchmarkUpdatePartition times a whole update (definitions, SHA256SUMS,
// download over loopback HTTP into an empty cache, SHA-256 check,
// decompression, write and fsync into a fresh _empty slot, relabel) per
// payload format. zst-sized has @s in its source name, so Update need not
// decompress once just to learn the payload size.
func BenchmarkUpdatePartition(b *testing.B) {
	pub := b.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(pub)))
	defer srv.Close()
	raw := benchPayload(benchPayloadSize)
	want := sha256.Sum256(raw)

	for _, format := range []string{"none", "zst", "zst-sized", "xz", "gz"} {
		name, pattern := "usr_1.raw", "usr_@v.raw"
		switch format {
		case "zst":
			name, pattern = "usr_1.raw.zst", "usr_@v.raw.zst"
		case "zst-sized":
			name, pattern = fmt.Sprintf("usr_1_%d.raw.zst", len(raw)), "usr_@v_@s.raw.zst"
		case "xz":
			name, pattern = "usr_1.raw.xz", "usr_@v.raw.xz"
		case "gz":
			name, pattern = "usr_1.raw.gz", "usr_@v.raw.gz"
		}
		dir := filepath.Join(pub, format)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		enc := benchCompress(b, format, raw)
		if err := os.WriteFile(filepath.Join(dir, name), enc, 0o644); err != nil {
			b.Fatal(err)
		}
		sums := fmt.Sprintf("%x  %s\n", sha256.Sum256(enc), name)
		if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums), 0o644); err != nil {
			b.Fatal(err)
		}

		b.Run(format, func(b *testing.B) {
			w := b.TempDir()
			defs, disk, cache := filepath.Join(w, "defs"), filepath.Join(w, "disk.raw"), filepath.Join(w, "cache")
			def := "[Source]\nType=url-file\nPath=" + srv.URL + "/" + format + "/\nMatchPattern=" + pattern + "\n" +
				"[Target]\nType=partition\nPath=" + disk + "\nMatchPattern=usr_@v\nMatchPartitionType=usr-x86-64\n"
			if err := os.MkdirAll(defs, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(defs, "50-usr.transfer"), []byte(def), 0o644); err != nil {
				b.Fatal(err)
			}
			no := false
			env := Env{Verify: &no, CacheDir: cache, HTTPClient: srv.Client()}
			ctx := context.Background()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := os.RemoveAll(cache); err != nil {
					b.Fatal(err)
				}
				makeBenchDisk(b, disk, benchPayloadSize)
				b.StartTimer()

				ts, err := Load(Options{Definitions: defs, Specifiers: &testSpec})
				if err != nil {
					b.Fatal(err)
				}
				p, err := BuildPlan(ctx, ts, PlanOptions{Env: env})
				if err != nil {
					b.Fatal(err)
				}
				res, err := p.Update(ctx, "", UpdateOptions{})
				if err != nil {
					b.Fatal(err)
				}

				b.StopTimer()
				if len(res.Installed) != 1 || res.Installed[0].Name != "usr_1" {
					b.Fatalf("installed %+v, want usr_1", res.Installed)
				}
				if i == 0 {
					checkSlot(b, disk, res.Installed[0].Partition, benchPayloadSize, want)
				}
				b.StartTimer()
			}
		})
	}
}

// checkSlot fails unless slot n of disk (slots of slot bytes from 1 MiB
// on) holds bytes with the digest want.
func checkSlot(tb testing.TB, disk string, n int, slot int64, want [32]byte) {
	tb.Helper()
	f, err := os.Open(disk)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 1<<20+int64(n-1)*slot, slot)); err != nil {
		tb.Fatal(err)
	}
	if got := [32]byte(h.Sum(nil)); got != want {
		tb.Fatalf("%s: partition %d does not hold the payload", disk, n)
	}
}

// BenchmarkDiskWrite is the baseline for BenchmarkUpdatePartition: the
// same decompressed bytes written from memory in 1 MiB WriteAt calls into
// a fresh image file of the same size on the same file system, then
// fsynced (dd bs=1M conv=fsync,notrunc).
func BenchmarkDiskWrite(b *testing.B) {
	raw := benchPayload(benchPayloadSize)
	disk := filepath.Join(b.TempDir(), "disk.raw")
	size := 1<<20 + 2*int64(benchPayloadSize) + 1<<20
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.Remove(disk)
		f, err := os.Create(disk)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for off := 0; off < len(raw); off += 1 << 20 {
			if _, err := f.WriteAt(raw[off:min(off+1<<20, len(raw))], int64(1<<20+off)); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetch is the download phase of BenchmarkUpdatePartition alone:
// Downloader.Fetch over loopback HTTP into an empty cache, with the
// SHA-256 check and the fsync of the cached file. Bytes per operation are
// the decompressed payload's, as above, so the phases add up.
func BenchmarkFetch(b *testing.B) {
	raw := benchPayload(benchPayloadSize)
	for _, format := range []string{"none", "zst"} {
		b.Run(format, func(b *testing.B) {
			dir := b.TempDir()
			enc := benchCompress(b, format, raw)
			if err := os.WriteFile(filepath.Join(dir, "payload"), enc, 0o644); err != nil {
				b.Fatal(err)
			}
			want := sha256.Sum256(enc)
			srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
			defer srv.Close()
			cache := filepath.Join(b.TempDir(), "cache")
			d := &Downloader{Client: srv.Client(), CacheDir: cache}
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := os.RemoveAll(cache); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := d.Fetch(context.Background(), srv.URL+"/payload", want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecompress is the decoding alone, from memory to nowhere;
// Update decodes a compressed partition payload twice (once to learn its
// size unless the source name has @s, once to write it).
func BenchmarkDecompress(b *testing.B) {
	raw := benchPayload(benchPayloadSize)
	for _, format := range []string{"zst", "xz", "gz"} {
		b.Run(format, func(b *testing.B) {
			enc := benchCompress(b, format, raw)
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r, err := Decompress(bytes.NewReader(enc))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, r)
				r.Close()
				if err != nil || n != int64(len(raw)) {
					b.Fatalf("decompressed %d bytes (%v), want %d", n, err, len(raw))
				}
			}
		})
	}
}
