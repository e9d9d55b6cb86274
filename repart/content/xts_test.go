package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"strings"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestXTSVectors checks XTS-AES-128 against the test vectors of IEEE
// 1619-2007, Annex B (vectors 1 to 3: 32-byte data units).
func TestXTSVectors(t *testing.T) {
	for _, v := range []struct {
		key1, key2 string
		unit       uint64
		plain      string
		cipher     string
	}{
		{strings.Repeat("00", 16), strings.Repeat("00", 16), 0, strings.Repeat("00", 32),
			"917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e"},
		{strings.Repeat("11", 16), strings.Repeat("22", 16), 0x3333333333, strings.Repeat("44", 32),
			"c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0"},
		{"fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0", strings.Repeat("22", 16), 0x3333333333, strings.Repeat("44", 32),
			"af85336b597afc1a900b2eb21ec949d292df4c047e0b21532186a5971a227a89"},
	} {
		x, err := newXTSPlain64(mustHex(t, v.key1+v.key2), 512)
		if err != nil {
			t.Fatal(err)
		}
		b := mustHex(t, v.plain)
		x.cryptSector(b, v.unit, false)
		if got := hex.EncodeToString(b); got != v.cipher {
			t.Errorf("unit %#x: %s, want %s", v.unit, got, v.cipher)
		}
		x.cryptSector(b, v.unit, true)
		if got := hex.EncodeToString(b); got != v.plain {
			t.Errorf("unit %#x: decrypts to %s", v.unit, got)
		}
	}
}

// TestXTSLongUnits checks 512- and 4096-byte data units, which exercise
// the tweak multiplication over many blocks: IEEE 1619-2007 vector 4 (its
// ciphertext's SHA-256), and sectors at several positions, including one
// past 2^32 sectors, whose ciphertext hashes were computed with OpenSSL's
// AES-128-XTS (through Python's cryptography package; `openssl enc` has no
// XTS) using the plain64 IV: the sector number in 512-byte units,
// little-endian.
func TestXTSLongUnits(t *testing.T) {
	v4, err := newXTSPlain64(mustHex(t, "27182818284590452353602874713526"+"31415926535897932384626433832795"), 512)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	v4.crypt(b, 0, false)
	if got := hex.EncodeToString(b[:32]); got != "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89c" {
		t.Errorf("vector 4 starts %s", got)
	}
	if got := sha256Hex(b); got != "ebee4d64dd2395bb2d6a2d37a0a48ecb2bf4913cfc99d27c2214f2f4144715ea" {
		t.Errorf("vector 4: sha256 %s", got)
	}

	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*37 + 11)
	}
	for _, c := range []struct {
		sectorSize int
		offset     int64
		sha256     string
	}{
		{512, 0, "bb6df81d9faeab7b48344faed89a959811689f503955867ca1027a9061a8e0e7"},
		{512, 512, "dce6318e3cbb555948596142f9dcca2e40749d0365b2b6ea083e7b72924b5075"},
		{512, 16 << 20, "ed92c0c5b13c4c1b6ad455a6b8e3650daf40369bebbb17d5868720f764853082"},
		{512, 1 << 41, "5e1cf5dbbad9deaee7b9bd97822017b29bb665810d29ecc13ba621a97a3e1f17"},
		{4096, 0, "d34f256099564e7326b208c403e5c04657ed475aeed5324d445e5f4db8285048"},
		{4096, 4096, "4659febc0c470c96616ce8ef086f7935c8eff417da9bf0eb290d7f88f3675ebe"},
		{4096, 123 * 4096, "4162bb22b065c919cb8304e373cbc75f97227dc286afa8a54df420dab01683f1"},
	} {
		x, err := newXTSPlain64(key, c.sectorSize)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, c.sectorSize)
		for i := range b {
			b[i] = byte((i*7 + 3) ^ int(c.offset>>9))
		}
		x.crypt(b, c.offset, false)
		if got := sha256Hex(b); got != c.sha256 {
			t.Errorf("sector size %d at %d: sha256 %s, want %s", c.sectorSize, c.offset, got, c.sha256)
		}
	}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestXTSParallelAndRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	for _, ss := range []int{512, 4096} {
		key := make([]byte, 64) // AES-256-XTS works too
		rnd.Read(key)
		x, err := newXTSPlain64(key, ss)
		if err != nil {
			t.Fatal(err)
		}
		plain := make([]byte, 300*ss)
		rnd.Read(plain)
		a := append([]byte(nil), plain...)
		b := append([]byte(nil), plain...)
		x.crypt(a, 8192, false)
		x.cryptParallel(b, 8192, false)
		if !bytes.Equal(a, b) {
			t.Fatalf("sector size %d: parallel result differs", ss)
		}
		if bytes.Equal(a, plain) {
			t.Fatal("nothing encrypted")
		}
		x.cryptParallel(b, 8192, true)
		if !bytes.Equal(b, plain) {
			t.Fatalf("sector size %d: round trip differs", ss)
		}
	}
	if _, err := newXTSPlain64(make([]byte, 16), 512); err == nil {
		t.Error("accepted a 16-byte key")
	}
	if _, err := newXTSPlain64(make([]byte, 32), 384); err == nil {
		t.Error("accepted sector size 384")
	}
}
