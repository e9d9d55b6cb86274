// Package verity owns the dm-verity hash tree: it formats a hash device for
// a data device, verifies one, and reads and writes the version 1 verity
// superblock, exactly as `veritysetup format` and `veritysetup verify` of
// cryptsetup 2.6.1 do (docs/formats/verity.md). It also derives what
// systemd derives from verity: the data and hash partition UUIDs from a root
// hash (systemd 252 and later) and the salt and superblock UUID from a
// repart seed (systemd-repart 255 and later).
//
// The package works on io.ReaderAt and io.WriterAt. It never draws random
// numbers by itself: callers pass the salt and UUID, or an io.Reader of
// random bytes to RandomSalt and RandomUUID.
package verity

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/bits"
)

// Defaults of veritysetup 2.6.1.
const (
	DefaultAlgorithm = "sha256"
	DefaultBlockSize = 4096
	DefaultSaltSize  = 32
	DefaultHashType  = 1
)

// Limits libcryptsetup enforces.
const (
	MaxSaltSize          = 256
	MinBlockSize         = 512
	MaxBlockSize         = 512 * 1024
	maxLevels            = 63
	superblockAlignment  = 512
	maxAlgorithmNameSize = 31
)

// Params describes one verity hash tree: everything the kernel and
// veritysetup need besides the root hash.
type Params struct {
	// HashType is 1 for the normal format (salt before the block, digests
	// padded to a power of two) and 0 for the original Chrome OS format
	// (salt after the block, digests packed).
	HashType uint32
	// Algorithm is the lowercase hash name: sha1, sha224, sha256, sha384
	// or sha512.
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	// DataBlocks is the number of data blocks the tree covers (at least 1).
	DataBlocks uint64
	// Salt is at most 256 bytes; empty means no salt.
	Salt []byte
	// UUID is stored in the superblock; unused without one.
	UUID [16]byte
	// HashOffset is the byte offset of the superblock (or, without one,
	// of the tree) on the hash device. It must be a multiple of 512.
	HashOffset uint64
	// NoSuperblock leaves the superblock out; the tree then starts at
	// block HashOffset / HashBlockSize.
	NoSuperblock bool
}

// DefaultParams returns veritysetup's defaults for dataBlocks data blocks,
// with no salt and a zero UUID: callers fill those in.
func DefaultParams(dataBlocks uint64) Params {
	return Params{
		HashType:      DefaultHashType,
		Algorithm:     DefaultAlgorithm,
		DataBlockSize: DefaultBlockSize,
		HashBlockSize: DefaultBlockSize,
		DataBlocks:    dataBlocks,
	}
}

// DigestSize returns the digest length in bytes of a supported algorithm,
// or 0 when the name is not supported.
func DigestSize(algorithm string) int {
	if h := newHash(algorithm); h != nil {
		return h.Size()
	}
	return 0
}

// newHash returns a fresh hash for a supported algorithm name, or nil.
func newHash(algorithm string) hash.Hash {
	switch algorithm {
	case "sha1":
		return sha1.New()
	case "sha224":
		return sha256.New224()
	case "sha256":
		return sha256.New()
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return nil
}

// validBlockSize mirrors libcryptsetup: a power of two from 512 bytes to
// 512 KiB.
func validBlockSize(n uint32) bool {
	return n >= MinBlockSize && n <= MaxBlockSize && n&(n-1) == 0
}

// Validate checks the parameters the way veritysetup does before it
// formats or verifies, and also that every offset fits in an int64.
func (p Params) Validate() error {
	_, err := p.Layout()
	return err
}

// Layout describes where each level of the tree lies on the hash device.
// Level 0 holds the digests of the data blocks; the last level is a single
// block whose digest is the root hash. Levels are stored top-down: the top
// level first, level 0 last.
type Layout struct {
	// DigestSize is the algorithm's digest length; EntrySize is the space
	// one digest takes in a hash block (padded to a power of two for hash
	// type 1, packed for type 0).
	DigestSize, EntrySize int
	// Fanout is the number of digests in one hash block.
	Fanout uint64
	// LevelBlocks[i] is the number of hash blocks of level i.
	LevelBlocks []uint64
	// LevelStart[i] is the index, in hash blocks from the start of the hash
	// device, of the first block of level i.
	LevelStart []uint64
	// FirstHashBlock is the index of the first tree block (the top level).
	FirstHashBlock uint64
	// HashBlocks is the number of blocks in the tree.
	HashBlocks uint64
}

// Levels returns the number of levels of the tree; 0 when the single data
// block's digest is itself the root hash.
func (l Layout) Levels() int { return len(l.LevelBlocks) }

// Layout validates the parameters and computes the tree's geometry.
func (p Params) Layout() (Layout, error) {
	var l Layout
	if p.HashType > 1 {
		return l, fmt.Errorf("verity: unsupported hash type %d (want 0 or 1)", p.HashType)
	}
	if !validBlockSize(p.DataBlockSize) {
		return l, fmt.Errorf("verity: unsupported data block size %d (want a power of two from %d to %d)", p.DataBlockSize, MinBlockSize, MaxBlockSize)
	}
	if !validBlockSize(p.HashBlockSize) {
		return l, fmt.Errorf("verity: unsupported hash block size %d (want a power of two from %d to %d)", p.HashBlockSize, MinBlockSize, MaxBlockSize)
	}
	l.DigestSize = DigestSize(p.Algorithm)
	if l.DigestSize == 0 {
		return l, fmt.Errorf("verity: unsupported hash algorithm %q", p.Algorithm)
	}
	if len(p.Salt) > MaxSaltSize {
		return l, fmt.Errorf("verity: salt of %d bytes is longer than %d", len(p.Salt), MaxSaltSize)
	}
	if p.HashOffset%superblockAlignment != 0 {
		return l, fmt.Errorf("verity: hash offset %d is not a multiple of %d", p.HashOffset, superblockAlignment)
	}
	if p.HashOffset > math.MaxInt64/2 {
		return l, fmt.Errorf("verity: hash offset %d is too large", p.HashOffset)
	}
	if p.DataBlocks == 0 {
		return l, errors.New("verity: no data blocks")
	}
	if p.DataBlocks > math.MaxInt64/uint64(p.DataBlockSize) {
		return l, fmt.Errorf("verity: %d data blocks of %d bytes overflow the device size", p.DataBlocks, p.DataBlockSize)
	}

	// A hash block holds the largest power of two of digests that fits;
	// type 1 also pads each digest to a power of two.
	bitsPerLevel := uint(bits.Len32(p.HashBlockSize/uint32(l.DigestSize)) - 1)
	l.Fanout = 1 << bitsPerLevel
	l.EntrySize = l.DigestSize
	if p.HashType == 1 {
		l.EntrySize = 1 << bits.Len(uint(l.DigestSize-1))
	}

	levels := 0
	for bitsPerLevel*uint(levels) < 64 && (p.DataBlocks-1)>>(bitsPerLevel*uint(levels)) != 0 {
		levels++
	}
	if levels > maxLevels {
		return l, errors.New("verity: hash tree has too many levels")
	}

	if p.NoSuperblock {
		l.FirstHashBlock = p.HashOffset / uint64(p.HashBlockSize)
	} else {
		l.FirstHashBlock = (p.HashOffset + SuperblockSize + uint64(p.HashBlockSize) - 1) / uint64(p.HashBlockSize)
	}
	l.LevelBlocks = make([]uint64, levels)
	l.LevelStart = make([]uint64, levels)
	pos := l.FirstHashBlock
	for i := levels - 1; i >= 0; i-- {
		shift := uint(i+1) * bitsPerLevel
		if shift > 63 {
			return l, errors.New("verity: hash area overflow")
		}
		n := (p.DataBlocks-1)>>shift + 1
		l.LevelStart[i] = pos
		l.LevelBlocks[i] = n
		if pos+n < pos {
			return l, errors.New("verity: hash area overflow")
		}
		pos += n
		l.HashBlocks += n
	}
	if pos > math.MaxInt64/uint64(p.HashBlockSize) {
		return l, errors.New("verity: hash device size overflows")
	}
	return l, nil
}

// HashDeviceSize returns the byte offset just past the end of the tree on
// the hash device: the least size the hash device must have. veritysetup
// prints it as "Hash device size" when the hash offset is 0.
func HashDeviceSize(p Params) (int64, error) {
	l, err := p.Layout()
	if err != nil {
		return 0, err
	}
	return int64((l.FirstHashBlock + l.HashBlocks) * uint64(p.HashBlockSize)), nil
}

// CorruptionKind says what failed to verify.
type CorruptionKind int

// The kinds of corruption Verify reports.
const (
	// CorruptDataBlock: a data block does not match its digest in level 0.
	CorruptDataBlock CorruptionKind = iota
	// CorruptHashBlock: a hash block does not match its digest in the
	// level above, or, for the top block, the root hash.
	CorruptHashBlock
	// CorruptPadding: a hash block has non-zero bytes where the format
	// requires zeros.
	CorruptPadding
)

// CorruptionError names the first block that failed verification.
type CorruptionError struct {
	Kind CorruptionKind
	// Level is the hash level of a bad hash block; -1 for a data block.
	Level int
	// Block is the index of the block within the data device (data blocks)
	// or within its level (hash blocks).
	Block uint64
	// Offset is the byte offset of the block on its device (for padding,
	// of the first non-zero byte).
	Offset int64
	// AgainstRoot is set when the block was compared with the root hash
	// itself rather than with a digest in a hash block.
	AgainstRoot bool
}

// Error names the block, its level and its byte offset.
func (e *CorruptionError) Error() string {
	switch e.Kind {
	case CorruptDataBlock:
		if e.AgainstRoot {
			return fmt.Sprintf("verity: data block %d (data device offset %d) does not match the root hash", e.Block, e.Offset)
		}
		return fmt.Sprintf("verity: data block %d (data device offset %d) does not match its hash", e.Block, e.Offset)
	case CorruptHashBlock:
		if e.AgainstRoot {
			return fmt.Sprintf("verity: hash block %d of level %d (hash device offset %d) does not match the root hash", e.Block, e.Level, e.Offset)
		}
		return fmt.Sprintf("verity: hash block %d of level %d (hash device offset %d) does not match its hash", e.Block, e.Level, e.Offset)
	default:
		return fmt.Sprintf("verity: hash block %d of level %d has non-zero padding at hash device offset %d", e.Block, e.Level, e.Offset)
	}
}
