package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// veritysetupSuperblock is the superblock veritysetup 2.6.1 wrote for 24
// data blocks with --salt=000102…1f and a fixed --uuid (trailing zeros cut).
const veritysetupSuperblock = "766572697479000001000000010000000b9a6c5e58e14d7f9a532b2c1c1de0c4" +
	"7368613235360000000000000000000000000000000000000000000000000000" +
	"0010000000100000180000000000000020000000000000000001020304050607" +
	"08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func sbSeed(t testing.TB, p Params) []byte {
	b, err := p.MarshalSuperblock()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// isCanonical reports whether a superblock's bytes are what MarshalSuperblock
// writes for its fields: zero padding, zero unused salt, and a lowercase,
// NUL-padded algorithm name.
func isCanonical(b []byte) bool {
	name := b[sbAlgorithm : sbAlgorithm+sbAlgorithmSize]
	n := bytes.IndexByte(name, 0)
	if n < 0 || strings.ToLower(string(name[:n])) != string(name[:n]) || !allZero(name[n:]) {
		return false
	}
	saltSize := int(b[sbSaltSize]) | int(b[sbSaltSize+1])<<8
	return allZero(b[sbSaltSize+2:sbSalt]) && allZero(b[sbSalt+saltSize:SuperblockSize])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func FuzzSuperblock(f *testing.F) {
	real, _ := hex.DecodeString(veritysetupSuperblock)
	f.Add(append(real, make([]byte, SuperblockSize-len(real))...))
	f.Add(sbSeed(f, DefaultParams(1)))
	f.Add(sbSeed(f, Params{HashType: 0, Algorithm: "sha1", DataBlockSize: 512, HashBlockSize: 512 * 1024, DataBlocks: 1 << 40, Salt: bytes.Repeat([]byte{7}, 256)}))
	upper := sbSeed(f, Params{HashType: 1, Algorithm: "sha512", DataBlockSize: 1024, HashBlockSize: 2048, Salt: []byte{1}})
	copy(upper[sbAlgorithm:], "SHA512")
	f.Add(upper)
	junk := sbSeed(f, DefaultParams(9))
	junk[400], junk[84], junk[sbSalt+5] = 1, 2, 3
	f.Add(junk)
	f.Add([]byte("verity\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseSuperblock(data)
		if err != nil {
			return
		}
		if len(data) < SuperblockSize {
			t.Fatal("parsed a short superblock")
		}
		b, err := p.MarshalSuperblock()
		if err != nil {
			t.Fatalf("parsed superblock does not marshal: %v", err)
		}
		p2, err := ParseSuperblock(b)
		if err != nil {
			t.Fatalf("marshalled superblock does not parse: %v", err)
		}
		if p2.HashType != p.HashType || p2.Algorithm != p.Algorithm || p2.UUID != p.UUID ||
			p2.DataBlockSize != p.DataBlockSize || p2.HashBlockSize != p.HashBlockSize ||
			p2.DataBlocks != p.DataBlocks || !bytes.Equal(p2.Salt, p.Salt) {
			t.Fatalf("round trip changed %+v to %+v", p, p2)
		}
		if b2, _ := p2.MarshalSuperblock(); !bytes.Equal(b2, b) {
			t.Fatal("marshal is not stable")
		}
		if canonical := isCanonical(data); canonical != bytes.Equal(b, data[:SuperblockSize]) {
			t.Fatalf("canonical input %v, but byte-exact round trip %v", canonical, !canonical)
		}
	})
}

// FuzzFormatVerify formats small random data with random geometry, checks
// the tree against the reference construction, verifies it, and checks
// that a flipped data byte is blamed on its block.
func FuzzFormatVerify(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 4096), uint8(0), uint8(0), uint8(32), uint16(5), false, uint8(0))
	f.Add(bytes.Repeat([]byte("abc"), 3000), uint8(1), uint8(0), uint8(0), uint16(700), true, uint8(1))
	f.Add(make([]byte, 512*40), uint8(0), uint8(1), uint8(200), uint16(65535), false, uint8(4))
	algs := []string{"sha256", "sha1", "sha224", "sha384", "sha512"}
	f.Fuzz(func(t *testing.T, data []byte, dbsShift, hbsShift, saltLen uint8, flip uint16, chromeOS bool, alg uint8) {
		if len(data) > 128<<10 {
			data = data[:128<<10]
		}
		p := Params{HashType: 1, Algorithm: algs[int(alg)%len(algs)],
			DataBlockSize: 512 << (dbsShift % 4), HashBlockSize: 512 << (hbsShift % 4),
			Salt: bytes.Repeat([]byte{saltLen}, int(saltLen))}
		if chromeOS {
			p.HashType = 0
		}
		p.DataBlocks = uint64(len(data)) / uint64(p.DataBlockSize)
		if p.DataBlocks == 0 {
			if _, err := Format(bytes.NewReader(data), &memDevice{}, p); err == nil {
				t.Fatal("formatted zero blocks")
			}
			return
		}
		dev := &memDevice{}
		root, err := FormatWithOptions(bytes.NewReader(data), dev, p, Options{ChunkSize: 1024})
		if err != nil {
			t.Fatal(err)
		}
		wantHash, wantRoot := referenceTree(t, data, p)
		if !bytes.Equal(root, wantRoot) || !bytes.Equal(dev.buf, wantHash) {
			t.Fatal("tree differs from the reference")
		}
		if err := Verify(bytes.NewReader(data), dev, p, root); err != nil {
			t.Fatal(err)
		}
		pos := int(flip) % (int(p.DataBlocks) * int(p.DataBlockSize))
		bad := bytes.Clone(data)
		bad[pos] ^= 0x40
		var c *CorruptionError
		if err := Verify(bytes.NewReader(bad), dev, p, root); !errors.As(err, &c) || c.Kind != CorruptDataBlock || c.Block != uint64(pos)/uint64(p.DataBlockSize) {
			t.Fatalf("flipped byte %d: %v", pos, err)
		}
	})
}
