package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"testing"
)

// memDevice is an in-memory device that grows on write, like a file.
type memDevice struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memDevice) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	copy(m.buf[off:], p)
	return len(p), nil
}

func (m *memDevice) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= int64(len(m.buf)) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// referenceTree builds the tree the plain way the format description says,
// level by level, one block at a time, for comparison with Format.
func referenceTree(t *testing.T, data []byte, p Params) (hashDev []byte, root []byte) {
	t.Helper()
	digest := func(block []byte) []byte {
		h := newHash(p.Algorithm)
		if p.HashType == 1 {
			h.Write(p.Salt)
			h.Write(block)
		} else {
			h.Write(block)
			h.Write(p.Salt)
		}
		return h.Sum(nil)
	}
	dsize := DigestSize(p.Algorithm)
	entry := dsize
	if p.HashType == 1 {
		for entry = 1; entry < dsize; entry *= 2 {
		}
	}
	fanout := 1
	for fanout*2 <= int(p.HashBlockSize)/dsize {
		fanout *= 2
	}
	var children [][]byte
	for i := uint64(0); i < p.DataBlocks; i++ {
		children = append(children, data[i*uint64(p.DataBlockSize):(i+1)*uint64(p.DataBlockSize)])
	}
	var levels [][]byte // bottom-up
	for len(children) > 1 {
		var level []byte
		var next [][]byte
		for i := 0; i < len(children); i += fanout {
			block := make([]byte, p.HashBlockSize)
			for j := 0; j < fanout && i+j < len(children); j++ {
				copy(block[j*entry:], digest(children[i+j]))
			}
			level = append(level, block...)
			next = append(next, block)
		}
		levels = append(levels, level)
		children = next
	}
	root = digest(children[0])
	first := p.HashOffset / uint64(p.HashBlockSize)
	if !p.NoSuperblock {
		first = (p.HashOffset + 512 + uint64(p.HashBlockSize) - 1) / uint64(p.HashBlockSize)
		sb, err := p.MarshalSuperblock()
		if err != nil {
			t.Fatal(err)
		}
		hashDev = make([]byte, p.HashOffset+512)
		copy(hashDev[p.HashOffset:], sb)
	}
	pos := first * uint64(p.HashBlockSize)
	for i := len(levels) - 1; i >= 0; i-- {
		if need := pos + uint64(len(levels[i])); need > uint64(len(hashDev)) {
			hashDev = append(hashDev, make([]byte, need-uint64(len(hashDev)))...)
		}
		copy(hashDev[pos:], levels[i])
		pos += uint64(len(levels[i]))
	}
	return hashDev, root
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func TestLayoutWorkedExample(t *testing.T) {
	// formats-disk §2.3: 300 blocks of 4096, sha256: levels 3+1 blocks,
	// hash device 5 × 4096 bytes.
	p := DefaultParams(300)
	l, err := p.Layout()
	if err != nil {
		t.Fatal(err)
	}
	if l.Levels() != 2 || l.LevelBlocks[0] != 3 || l.LevelBlocks[1] != 1 || l.HashBlocks != 4 || l.FirstHashBlock != 1 {
		t.Fatalf("layout %+v", l)
	}
	if l.LevelStart[1] != 1 || l.LevelStart[0] != 2 {
		t.Fatalf("levels must be stored top-down, got starts %v", l.LevelStart)
	}
	if size, _ := HashDeviceSize(p); size != 20480 {
		t.Fatalf("hash device size %d, want 20480", size)
	}
	for _, c := range []struct {
		blocks uint64
		levels int
	}{{1, 0}, {2, 1}, {128, 1}, {129, 2}, {16384, 2}, {16385, 3}} {
		l, err := DefaultParams(c.blocks).Layout()
		if err != nil || l.Levels() != c.levels {
			t.Errorf("%d blocks: %d levels (%v), want %d", c.blocks, l.Levels(), err, c.levels)
		}
	}
}

func TestLayoutFanoutAndEntries(t *testing.T) {
	for _, c := range []struct {
		alg      string
		hashType uint32
		hbs      uint32
		fanout   uint64
		entry    int
	}{
		{"sha256", 1, 4096, 128, 32}, {"sha256", 1, 512, 16, 32}, {"sha1", 1, 4096, 128, 32},
		{"sha1", 0, 4096, 128, 20}, {"sha384", 1, 4096, 64, 64}, {"sha384", 0, 4096, 64, 48},
		{"sha512", 1, 512, 8, 64}, {"sha224", 1, 1024, 32, 32},
	} {
		p := DefaultParams(1000)
		p.Algorithm, p.HashType, p.HashBlockSize = c.alg, c.hashType, c.hbs
		l, err := p.Layout()
		if err != nil || l.Fanout != c.fanout || l.EntrySize != c.entry {
			t.Errorf("%+v: fanout %d entry %d (%v)", c, l.Fanout, l.EntrySize, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	mod := []struct {
		name string
		f    func(*Params)
	}{
		{"hash type 2", func(p *Params) { p.HashType = 2 }},
		{"block 256", func(p *Params) { p.DataBlockSize = 256 }},
		{"block 3072", func(p *Params) { p.HashBlockSize = 3072 }},
		{"block 1 MiB", func(p *Params) { p.DataBlockSize = 1 << 20 }},
		{"md5", func(p *Params) { p.Algorithm = "md5" }},
		{"salt 257", func(p *Params) { p.Salt = make([]byte, 257) }},
		{"offset 100", func(p *Params) { p.HashOffset = 100 }},
		{"no data", func(p *Params) { p.DataBlocks = 0 }},
		{"huge data", func(p *Params) { p.DataBlocks = 1 << 62 }},
	}
	for _, m := range mod {
		p := DefaultParams(10)
		m.f(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: accepted", m.name)
		}
	}
	p := DefaultParams(10)
	p.DataBlockSize, p.HashBlockSize = MaxBlockSize, MinBlockSize
	if err := p.Validate(); err != nil {
		t.Errorf("512 KiB data blocks with 512-byte hash blocks: %v", err)
	}
}

// TestFormatMatchesReference compares Format with the plain reference
// implementation over many shapes, and with several worker counts and
// chunk sizes so that units, in-unit levels and the upper levels all
// meet the level boundaries in different places.
func TestFormatMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	algs := []string{"sha256", "sha256", "sha1", "sha224", "sha384", "sha512"}
	sizes := []uint32{512, 1024, 4096}
	for i := 0; i < 60; i++ {
		p := Params{
			HashType:      1,
			Algorithm:     algs[r.Intn(len(algs))],
			DataBlockSize: sizes[r.Intn(3)],
			HashBlockSize: sizes[r.Intn(3)],
			Salt:          randomBytes(r, []int{0, 1, 32, 64, 100, 256}[r.Intn(6)]),
			NoSuperblock:  r.Intn(3) == 0,
			HashOffset:    uint64(r.Intn(3)) * 512 * uint64(r.Intn(9)),
		}
		r.Read(p.UUID[:])
		if r.Intn(4) == 0 {
			p.HashType = 0
		}
		fan := 1
		for fan*2 <= int(p.HashBlockSize)/DigestSize(p.Algorithm) {
			fan *= 2
		}
		candidates := []int{1, 2, fan - 1, fan, fan + 1, fan*fan - 1, fan * fan, fan*fan + 1, 1 + r.Intn(3000)}
		p.DataBlocks = uint64(candidates[r.Intn(len(candidates))])
		if p.DataBlocks*uint64(p.DataBlockSize) > 8<<20 {
			p.DataBlocks = uint64(1 + r.Intn(3000))
		}
		data := randomBytes(r, int(p.DataBlocks)*int(p.DataBlockSize)+r.Intn(100))
		wantHash, wantRoot := referenceTree(t, data, p)
		for _, o := range []Options{{}, {Workers: 1}, {Workers: 3, ChunkSize: 1}, {Workers: 2, ChunkSize: 64 << 10}} {
			dev := &memDevice{}
			root, err := FormatWithOptions(bytes.NewReader(data), dev, p, o)
			if err != nil {
				t.Fatalf("case %d %+v: %v", i, p, err)
			}
			if !bytes.Equal(root, wantRoot) {
				t.Fatalf("case %d %+v opts %+v: root %x, want %x", i, p, o, root, wantRoot)
			}
			if !bytes.Equal(dev.buf, wantHash) {
				t.Fatalf("case %d %+v opts %+v: hash device differs (len %d vs %d)", i, p, o, len(dev.buf), len(wantHash))
			}
			if err := VerifyWithOptions(bytes.NewReader(data), dev, p, root, o); err != nil {
				t.Fatalf("case %d: verify: %v", i, err)
			}
		}
	}
}

func TestNoSuperblockExample(t *testing.T) {
	// formats-disk §2.4: --data-blocks=10 --hash-offset=40960
	// --no-superblock --salt=-: one tree block at 40960, root = sha256 of it.
	data := bytes.Repeat([]byte{0xa5}, 10*4096)
	p := DefaultParams(10)
	p.HashOffset, p.NoSuperblock = 40960, true
	dev := &memDevice{}
	root, err := Format(bytes.NewReader(data), dev, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.buf) != 40960+4096 || !bytes.Equal(dev.buf[:40960], make([]byte, 40960)) {
		t.Fatalf("hash device of %d bytes", len(dev.buf))
	}
	top := dev.buf[40960:]
	if sum := sha256.Sum256(top); !bytes.Equal(root, sum[:]) {
		t.Fatalf("root %x is not sha256 of the tree block", root)
	}
	leaf := sha256.Sum256(data[:4096])
	if !bytes.Equal(top[:32], leaf[:]) || !bytes.Equal(top[9*32:10*32], leaf[:]) || !bytes.Equal(top[10*32:], make([]byte, 4096-320)) {
		t.Fatal("tree block holds wrong digests")
	}
}

func TestSingleBlock(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 4096)
	p := DefaultParams(1)
	p.Salt = []byte{0xaa, 0xbb}
	dev := &memDevice{}
	root, err := Format(bytes.NewReader(data), dev, p)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(append([]byte{0xaa, 0xbb}, data...))
	if !bytes.Equal(root, want[:]) {
		t.Fatalf("root %x, want %x", root, want)
	}
	if len(dev.buf) != 512 {
		t.Fatalf("hash device has %d bytes, want just the superblock", len(dev.buf))
	}
	if l, _ := p.Layout(); l.HashBlocks != 0 {
		t.Fatal("hash blocks for a single data block")
	}
	if err := Verify(bytes.NewReader(data), dev, p, root); err != nil {
		t.Fatal(err)
	}
	data[7] ^= 1
	var c *CorruptionError
	if err := Verify(bytes.NewReader(data), dev, p, root); !errors.As(err, &c) || c.Kind != CorruptDataBlock || c.Block != 0 || !c.AgainstRoot {
		t.Fatalf("corrupt single block: %v", err)
	}
}

// TestVerifyNamesTheBadBlock flips one byte at a time and checks that
// Verify blames exactly the block that was changed.
func TestVerifyNamesTheBadBlock(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, p := range []Params{
		{HashType: 1, Algorithm: "sha256", DataBlockSize: 512, HashBlockSize: 512, DataBlocks: 300, Salt: []byte("salt")},
		{HashType: 0, Algorithm: "sha1", DataBlockSize: 1024, HashBlockSize: 4096, DataBlocks: 1000},
		{HashType: 1, Algorithm: "sha384", DataBlockSize: 4096, HashBlockSize: 512, DataBlocks: 70, HashOffset: 1024},
	} {
		data := randomBytes(r, int(p.DataBlocks*uint64(p.DataBlockSize)))
		dev := &memDevice{}
		root, err := FormatWithOptions(bytes.NewReader(data), dev, p, Options{ChunkSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := newGeometry(p)
		for k := 0; k < 40; k++ {
			var c *CorruptionError
			o := Options{ChunkSize: 1 << r.Intn(20)}
			if k%2 == 0 {
				block := uint64(r.Intn(int(p.DataBlocks)))
				off := block*uint64(p.DataBlockSize) + uint64(r.Intn(int(p.DataBlockSize)))
				data[off] ^= 0x10
				err := VerifyWithOptions(bytes.NewReader(data), dev, p, root, o)
				data[off] ^= 0x10
				if !errors.As(err, &c) || c.Kind != CorruptDataBlock || c.Block != block || c.Offset != int64(block*uint64(p.DataBlockSize)) {
					t.Fatalf("%+v: data block %d flipped: %v", p, block, err)
				}
				continue
			}
			level := r.Intn(g.Levels())
			block := uint64(r.Intn(int(g.LevelBlocks[level])))
			off := uint64(g.levelOffset(level, block)) + uint64(r.Intn(int(p.HashBlockSize)))
			dev.buf[off] ^= 0x01
			err := VerifyWithOptions(bytes.NewReader(data), dev, p, root, o)
			dev.buf[off] ^= 0x01
			if !errors.As(err, &c) || c.Kind != CorruptHashBlock || c.Level != level || c.Block != block {
				t.Fatalf("%+v: hash block %d of level %d flipped at %d: %v", p, block, level, off, err)
			}
			if c.AgainstRoot != (level == g.Levels()-1) {
				t.Fatalf("AgainstRoot %v for level %d", c.AgainstRoot, level)
			}
		}
		if err := Verify(bytes.NewReader(data), dev, p, root); err != nil {
			t.Fatalf("restored device: %v", err)
		}
		wrong := bytes.Clone(root)
		wrong[0] ^= 1
		if err := Verify(bytes.NewReader(data), dev, p, wrong); !IsCorruption(err) {
			t.Fatalf("wrong root hash: %v", err)
		}
	}
}

func TestVerifyFirstOfSeveral(t *testing.T) {
	p := Params{HashType: 1, Algorithm: "sha256", DataBlockSize: 512, HashBlockSize: 4096, DataBlocks: 5000}
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000*512/16)
	dev := &memDevice{}
	root, err := Format(bytes.NewReader(data), dev, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []int{4999, 3000, 2100, 17} {
		data[b*512+3] ^= 0xff
	}
	for _, o := range []Options{{Workers: 2, ChunkSize: 1}, {Workers: 7, ChunkSize: 70000}, {}} {
		var c *CorruptionError
		if err := VerifyWithOptions(bytes.NewReader(data), dev, p, root, o); !errors.As(err, &c) || c.Block != 17 {
			t.Fatalf("opts %+v: %v, want data block 17", o, err)
		}
	}
}

func TestVerifyRejectsNonZeroPadding(t *testing.T) {
	// sha1 with hash type 1 pads each 20-byte digest to 32 bytes; a
	// formatter that put junk there (and hashed it) is still rejected, as
	// veritysetup rejects it.
	p := Params{HashType: 1, Algorithm: "sha1", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 3}
	data := make([]byte, 3*4096)
	dev := &memDevice{}
	if _, err := Format(bytes.NewReader(data), dev, p); err != nil {
		t.Fatal(err)
	}
	top := dev.buf[4096:8192]
	top[25] = 1
	h := newBlockHasher(p)
	root := make([]byte, 20)
	h.sum(root, top)
	var c *CorruptionError
	if err := Verify(bytes.NewReader(data), dev, p, root); !errors.As(err, &c) || c.Kind != CorruptPadding || c.Offset != 4096+25 {
		t.Fatalf("padding: %v", err)
	}
}

func TestShortDevices(t *testing.T) {
	p := DefaultParams(10)
	data := make([]byte, 9*4096)
	if _, err := Format(bytes.NewReader(data), &memDevice{}, p); err == nil || IsCorruption(err) {
		t.Fatalf("short data device: %v", err)
	}
	full := make([]byte, 10*4096)
	dev := &memDevice{}
	root, err := Format(bytes.NewReader(full), dev, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(bytes.NewReader(data), dev, p, root); err == nil || IsCorruption(err) {
		t.Fatalf("verify short data: %v", err)
	}
	dev.buf = dev.buf[:4096+100]
	if err := Verify(bytes.NewReader(full), dev, p, root); err == nil || IsCorruption(err) {
		t.Fatalf("verify short hash: %v", err)
	}
	if err := Verify(bytes.NewReader(full), dev, p, root[:10]); err == nil {
		t.Fatal("short root hash accepted")
	}
}

func TestProgress(t *testing.T) {
	p := DefaultParams(3000)
	data := make([]byte, 3000*4096)
	var calls int
	var last uint64
	_, err := FormatWithOptions(bytes.NewReader(data), &memDevice{}, p, Options{ChunkSize: 1 << 20, Progress: func(done, total uint64) {
		calls++
		if done < last || total != 3000*4096 {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last != 3000*4096 {
		t.Fatalf("%d progress calls, last %d", calls, last)
	}
}

func TestPartitionUUIDs(t *testing.T) {
	// formats-disk §2.7, verified with systemd-repart 252.
	root, _ := hex.DecodeString("c67d57c29a5ff038b81a5a3824cff717cfaae73c7eafdf3caf530e09a626ca3c")
	data, hash, err := PartitionUUIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatUUID(data); got != "c67d57c2-9a5f-f038-b81a-5a3824cff717" {
		t.Errorf("data partition UUID %s", got)
	}
	if got := FormatUUID(hash); got != "cfaae73c-7eaf-df3c-af53-0e09a626ca3c" {
		t.Errorf("hash partition UUID %s", got)
	}
	if _, _, err := PartitionUUIDs(root[:15]); err == nil {
		t.Error("15-byte root hash accepted")
	}
}

func TestSeedDerivation(t *testing.T) {
	// formats-disk §2.6: repart 255+ with seed 0123456789abcdef0123456789abcdef.
	var seed [16]byte
	hex.Decode(seed[:], []byte("0123456789abcdef0123456789abcdef"))
	if got := hex.EncodeToString(SaltFromSeed(seed)); got != "c65b6ab68edf421fcc0cb48ba60f7f14f5186b4d003d21ab3b334b91de16759c" {
		t.Errorf("salt %s", got)
	}
	if got := FormatUUID(UUIDFromSeed(seed)); got != "898929e6-7747-423e-8593-3659ba461e7c" {
		t.Errorf("uuid %s", got)
	}
}

func TestUUIDText(t *testing.T) {
	u, err := ParseUUID("12345678-9ABC-def0-1234-56789abcdef0")
	if err != nil || FormatUUID(u) != "12345678-9abc-def0-1234-56789abcdef0" || u[0] != 0x12 || u[15] != 0xf0 {
		t.Fatalf("%x %v", u, err)
	}
	for _, bad := range []string{"", "12345678-9abc-def0-1234-56789abcdef", "12345678x9abc-def0-1234-56789abcdef0", "g2345678-9abc-def0-1234-56789abcdef0"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	r := bytes.NewReader(bytes.Repeat([]byte{0xff}, 16))
	v, err := RandomUUID(r)
	if err != nil || FormatUUID(v) != "ffffffff-ffff-4fff-bfff-ffffffffffff" {
		t.Fatalf("random UUID %s %v", FormatUUID(v), err)
	}
	if _, err := RandomUUID(bytes.NewReader(nil)); err == nil {
		t.Error("random UUID from empty reader")
	}
	s, err := RandomSalt(bytes.NewReader([]byte{1, 2, 3}), 3)
	if err != nil || !bytes.Equal(s, []byte{1, 2, 3}) {
		t.Fatal(s, err)
	}
}

func TestSuperblockLayout(t *testing.T) {
	u, _ := ParseUUID("12345678-1234-1234-1234-123456789abc")
	p := Params{HashType: 1, Algorithm: "SHA256", DataBlockSize: 4096, HashBlockSize: 1024, DataBlocks: 0x0102030405, Salt: []byte{0xde, 0xad}, UUID: u}
	b, err := p.MarshalSuperblock()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 512)
	copy(want, "verity")
	copy(want[8:], []byte{1, 0, 0, 0, 1, 0, 0, 0})
	copy(want[16:], []byte{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc})
	copy(want[32:], "sha256")
	copy(want[64:], []byte{0, 0x10, 0, 0, 0, 4, 0, 0, 5, 4, 3, 2, 1, 0, 0, 0, 2, 0})
	copy(want[88:], []byte{0xde, 0xad})
	if !bytes.Equal(b, want) {
		t.Fatalf("superblock\n%x\nwant\n%x", b, want)
	}
	got, err := ParseSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	p.Algorithm = "sha256"
	if fmt.Sprint(got) != fmt.Sprint(p) {
		t.Fatalf("parsed %+v, want %+v", got, p)
	}
	dev := &memDevice{}
	p.HashOffset = 8192
	if err := WriteSuperblock(dev, p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSuperblock(dev, 8192)
	if err != nil || back.HashOffset != 8192 || back.DataBlocks != p.DataBlocks {
		t.Fatalf("%+v %v", back, err)
	}
	if _, err := ReadSuperblock(dev, 100); err == nil {
		t.Error("misaligned superblock offset accepted")
	}
	if _, err := ReadSuperblock(dev, 8704); err == nil {
		t.Error("superblock past the end accepted")
	}
}

func TestParseSuperblockErrors(t *testing.T) {
	good, _ := DefaultParams(5).MarshalSuperblock()
	for _, c := range []struct {
		name string
		off  int
		val  byte
	}{
		{"signature", 0, 'V'}, {"signature pad", 7, 1}, {"version", 8, 2}, {"hash type", 12, 2},
		{"algorithm", 32, 'x'}, {"data block size", 65, 0x11}, {"hash block size", 68, 1}, {"salt size", 81, 2},
	} {
		b := bytes.Clone(good)
		b[c.off] = c.val
		if _, err := ParseSuperblock(b); err == nil {
			t.Errorf("%s corrupted: accepted", c.name)
		}
	}
	if _, err := ParseSuperblock(good[:511]); err == nil {
		t.Error("short superblock accepted")
	}
}

func TestHasherSaltedStateMatchesPlain(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	block := randomBytes(r, 4096)
	for _, alg := range []string{"sha1", "sha224", "sha256", "sha384", "sha512"} {
		for _, n := range []int{0, 31, 63, 64, 65, 128, 200, 256} {
			for _, ht := range []uint32{0, 1} {
				p := Params{Algorithm: alg, HashType: ht, Salt: randomBytes(r, n)}
				h := newBlockHasher(p)
				got := make([]byte, 64)
				for range 2 { // the state must be restored on every call
					h.sum(got, block)
				}
				ref := newHash(alg)
				if ht == 1 {
					ref.Write(p.Salt)
				}
				ref.Write(block)
				if ht == 0 {
					ref.Write(p.Salt)
				}
				if want := ref.Sum(nil); !bytes.Equal(got[:len(want)], want) {
					t.Fatalf("%s salt %d type %d: %x, want %x", alg, n, ht, got[:len(want)], want)
				}
			}
		}
	}
}
