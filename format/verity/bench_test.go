package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"math/rand"
	"testing"
)

// discard is a hash device that drops what is written.
type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// BenchmarkFormat hashes 256 MiB held in memory, so it measures hashing and
// tree building, not the disk.
func BenchmarkFormat(b *testing.B) {
	const size = 256 << 20
	data := randomBytes(rand.New(rand.NewSource(1)), size)
	for _, c := range []struct {
		name string
		dbs  uint32
		o    Options
	}{
		{"4096/all-cpus", 4096, Options{}},
		{"4096/1-worker", 4096, Options{Workers: 1}},
		{"512/all-cpus", 512, Options{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := DefaultParams(size / uint64(c.dbs))
			p.DataBlockSize, p.HashBlockSize = c.dbs, c.dbs
			p.Salt = bytes.Repeat([]byte{0x5a}, 32)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FormatWithOptions(bytes.NewReader(data), discard{}, p, c.o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify checks 256 MiB held in memory.
func BenchmarkVerify(b *testing.B) {
	const size = 256 << 20
	data := randomBytes(rand.New(rand.NewSource(1)), size)
	p := DefaultParams(size / 4096)
	p.Salt = bytes.Repeat([]byte{0x5a}, 32)
	dev := &memDevice{}
	root, err := Format(bytes.NewReader(data), dev, p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(bytes.NewReader(data), dev, p, root); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaltedBlockHash compares two ways to start each block's hash
// with a 32-byte salt: Reset and write the salt again, or restore a state
// saved after the salt. For salts shorter than SHA-256's 64-byte input
// block the salt is only buffered, so rewriting it is the cheaper one.
func BenchmarkSaltedBlockHash(b *testing.B) {
	block := make([]byte, 4096)
	salt := bytes.Repeat([]byte{1}, 32)
	out := make([]byte, 32)
	b.Run("reset-write", func(b *testing.B) {
		h := sha256.New()
		b.SetBytes(4096)
		b.ReportAllocs()
		for b.Loop() {
			h.Reset()
			h.Write(salt)
			h.Write(block)
			h.Sum(out[:0])
		}
	})
	b.Run("restore-state", func(b *testing.B) {
		h := sha256.New()
		h.Write(salt)
		state, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
		u := h.(encoding.BinaryUnmarshaler)
		b.SetBytes(4096)
		b.ReportAllocs()
		for b.Loop() {
			if err := u.UnmarshalBinary(state); err != nil {
				b.Fatal(err)
			}
			h.Write(block)
			h.Sum(out[:0])
		}
	})
	b.Run("blockHasher", func(b *testing.B) {
		h := newBlockHasher(Params{HashType: 1, Algorithm: "sha256", Salt: salt})
		b.SetBytes(4096)
		b.ReportAllocs()
		for b.Loop() {
			h.sum(out, block)
		}
	})
}
