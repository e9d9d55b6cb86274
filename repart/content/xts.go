package content

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
)

// xtsPlain64 is dm-crypt's aes-xts-plain64 (IEEE 1619 XTS-AES, without
// ciphertext stealing since sectors are whole AES blocks): each sector is
// one XTS data unit whose tweak is its "plain64" IV, the little-endian
// 64-bit sector number counted in 512-byte units from the start of the
// encrypted segment, also for larger sectors (LUKS2 does not set dm-crypt's
// iv_large_sectors).
type xtsPlain64 struct {
	data, tweak cipher.Block
	sectorSize  int
}

// newXTSPlain64 takes the whole volume key: the data key followed by the
// tweak key (32 bytes for AES-128, 64 for AES-256).
func newXTSPlain64(key []byte, sectorSize int) (*xtsPlain64, error) {
	if len(key) != 32 && len(key) != 64 {
		return nil, fmt.Errorf("xts: key of %d bytes, want 32 or 64", len(key))
	}
	if sectorSize < 512 || sectorSize > 4096 || sectorSize&(sectorSize-1) != 0 {
		return nil, fmt.Errorf("xts: bad sector size %d", sectorSize)
	}
	half := len(key) / 2
	d, err := aes.NewCipher(key[:half])
	if err != nil {
		return nil, err
	}
	t, err := aes.NewCipher(key[half:])
	if err != nil {
		return nil, err
	}
	return &xtsPlain64{data: d, tweak: t, sectorSize: sectorSize}, nil
}

// crypt encrypts (or decrypts) b in place. b holds whole sectors; the
// first starts at byte offset off of the segment, a multiple of the sector
// size.
func (x *xtsPlain64) crypt(b []byte, off int64, decrypt bool) {
	for i := 0; i+x.sectorSize <= len(b); i += x.sectorSize {
		x.cryptSector(b[i:i+x.sectorSize], uint64(off+int64(i))/512, decrypt)
	}
}

func (x *xtsPlain64) cryptSector(s []byte, iv uint64, decrypt bool) {
	var t [16]byte
	binary.LittleEndian.PutUint64(t[:8], iv)
	x.tweak.Encrypt(t[:], t[:])
	lo := binary.LittleEndian.Uint64(t[:8])
	hi := binary.LittleEndian.Uint64(t[8:])
	var buf [16]byte
	for j := 0; j < len(s); j += 16 {
		binary.LittleEndian.PutUint64(t[:8], lo)
		binary.LittleEndian.PutUint64(t[8:], hi)
		blk := s[j : j+16]
		subtle.XORBytes(buf[:], blk, t[:])
		if decrypt {
			x.data.Decrypt(buf[:], buf[:])
		} else {
			x.data.Encrypt(buf[:], buf[:])
		}
		subtle.XORBytes(blk, buf[:], t[:])
		// Multiply the tweak by x in GF(2^128), little-endian.
		carry := hi >> 63
		hi = hi<<1 | lo>>63
		lo = lo<<1 ^ carry*0x87
	}
}

// cryptParallel is crypt spread over the CPUs, for large buffers.
func (x *xtsPlain64) cryptParallel(b []byte, off int64, decrypt bool) {
	sectors := len(b) / x.sectorSize
	workers := min(runtime.GOMAXPROCS(0), sectors/64+1)
	if workers <= 1 {
		x.crypt(b, off, decrypt)
		return
	}
	per := (sectors + workers - 1) / workers * x.sectorSize
	var wg sync.WaitGroup
	for start := 0; start < len(b); start += per {
		end := min(start+per, len(b))
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.crypt(b[start:end], off+int64(start), decrypt)
		}()
	}
	wg.Wait()
}
