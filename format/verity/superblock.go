package verity

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// SuperblockSize is the size of the version 1 verity superblock.
const SuperblockSize = 512

// Superblock field offsets (all integers little-endian).
const (
	sbSignature     = 0
	sbVersion       = 8
	sbHashType      = 12
	sbUUID          = 16
	sbAlgorithm     = 32
	sbDataBlockSize = 64
	sbHashBlockSize = 68
	sbDataBlocks    = 72
	sbSaltSize      = 80
	sbSalt          = 88
	sbAlgorithmSize = 32
)

var superblockSignature = []byte("verity\x00\x00")

// MarshalSuperblock returns the 512-byte superblock describing p, as
// libcryptsetup writes it: the algorithm name lowercased and NUL-padded,
// unused salt bytes and padding zero. HashOffset and NoSuperblock are not
// stored in it.
func (p Params) MarshalSuperblock() ([]byte, error) {
	if p.HashType > 1 {
		return nil, fmt.Errorf("verity: superblock: unsupported hash type %d", p.HashType)
	}
	if !validBlockSize(p.DataBlockSize) || !validBlockSize(p.HashBlockSize) {
		return nil, fmt.Errorf("verity: superblock: unsupported block sizes %d/%d", p.DataBlockSize, p.HashBlockSize)
	}
	alg := strings.ToLower(p.Algorithm)
	if DigestSize(alg) == 0 || len(alg) > maxAlgorithmNameSize {
		return nil, fmt.Errorf("verity: superblock: unsupported hash algorithm %q", p.Algorithm)
	}
	if len(p.Salt) > MaxSaltSize {
		return nil, fmt.Errorf("verity: superblock: salt of %d bytes is longer than %d", len(p.Salt), MaxSaltSize)
	}
	b := make([]byte, SuperblockSize)
	copy(b[sbSignature:], superblockSignature)
	binary.LittleEndian.PutUint32(b[sbVersion:], 1)
	binary.LittleEndian.PutUint32(b[sbHashType:], p.HashType)
	copy(b[sbUUID:], p.UUID[:])
	copy(b[sbAlgorithm:], alg)
	binary.LittleEndian.PutUint32(b[sbDataBlockSize:], p.DataBlockSize)
	binary.LittleEndian.PutUint32(b[sbHashBlockSize:], p.HashBlockSize)
	binary.LittleEndian.PutUint64(b[sbDataBlocks:], p.DataBlocks)
	binary.LittleEndian.PutUint16(b[sbSaltSize:], uint16(len(p.Salt)))
	copy(b[sbSalt:], p.Salt)
	return b, nil
}

// ParseSuperblock decodes a version 1 verity superblock from the first 512
// bytes of b, accepting what libcryptsetup accepts: padding and salt bytes
// past the salt size are ignored, and the algorithm name is matched without
// regard to case. The result has HashOffset 0; DataBlocks may be 0, which
// veritysetup takes as "the whole data device".
func ParseSuperblock(b []byte) (Params, error) {
	var p Params
	if len(b) < SuperblockSize {
		return p, fmt.Errorf("verity: superblock: %d bytes, need %d", len(b), SuperblockSize)
	}
	if !bytes.Equal(b[sbSignature:sbSignature+8], superblockSignature) {
		return p, fmt.Errorf("verity: superblock: no verity signature (found %q)", b[sbSignature:sbSignature+8])
	}
	if v := binary.LittleEndian.Uint32(b[sbVersion:]); v != 1 {
		return p, fmt.Errorf("verity: superblock: unsupported version %d", v)
	}
	p.HashType = binary.LittleEndian.Uint32(b[sbHashType:])
	if p.HashType > 1 {
		return p, fmt.Errorf("verity: superblock: unsupported hash type %d", p.HashType)
	}
	copy(p.UUID[:], b[sbUUID:sbUUID+16])
	name := b[sbAlgorithm : sbAlgorithm+sbAlgorithmSize]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	p.Algorithm = strings.ToLower(string(name))
	if DigestSize(p.Algorithm) == 0 {
		return p, fmt.Errorf("verity: superblock: unsupported hash algorithm %q", name)
	}
	p.DataBlockSize = binary.LittleEndian.Uint32(b[sbDataBlockSize:])
	p.HashBlockSize = binary.LittleEndian.Uint32(b[sbHashBlockSize:])
	if !validBlockSize(p.DataBlockSize) {
		return p, fmt.Errorf("verity: superblock: unsupported data block size %d", p.DataBlockSize)
	}
	if !validBlockSize(p.HashBlockSize) {
		return p, fmt.Errorf("verity: superblock: unsupported hash block size %d", p.HashBlockSize)
	}
	p.DataBlocks = binary.LittleEndian.Uint64(b[sbDataBlocks:])
	saltSize := int(binary.LittleEndian.Uint16(b[sbSaltSize:]))
	if saltSize > MaxSaltSize {
		return p, fmt.Errorf("verity: superblock: salt size %d is larger than %d", saltSize, MaxSaltSize)
	}
	p.Salt = bytes.Clone(b[sbSalt : sbSalt+saltSize])
	return p, nil
}

// ReadSuperblock reads and decodes the superblock at offset on the hash
// device; the result's HashOffset is offset.
func ReadSuperblock(r io.ReaderAt, offset int64) (Params, error) {
	if offset < 0 || offset%superblockAlignment != 0 {
		return Params{}, fmt.Errorf("verity: superblock offset %d is not a multiple of %d", offset, superblockAlignment)
	}
	b := make([]byte, SuperblockSize)
	if n, err := r.ReadAt(b, offset); n < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Params{}, fmt.Errorf("verity: reading superblock at offset %d: %w", offset, err)
	}
	p, err := ParseSuperblock(b)
	if err != nil {
		return Params{}, err
	}
	p.HashOffset = uint64(offset)
	return p, nil
}

// WriteSuperblock writes p's superblock at p.HashOffset. It writes exactly
// 512 bytes and leaves the rest of the block as it was, like libcryptsetup.
func WriteSuperblock(w io.WriterAt, p Params) error {
	if p.HashOffset%superblockAlignment != 0 || p.HashOffset > 1<<62 {
		return fmt.Errorf("verity: superblock offset %d is not a multiple of %d", p.HashOffset, superblockAlignment)
	}
	b, err := p.MarshalSuperblock()
	if err != nil {
		return err
	}
	if _, err := w.WriteAt(b, int64(p.HashOffset)); err != nil {
		return fmt.Errorf("verity: writing superblock at offset %d: %w", p.HashOffset, err)
	}
	return nil
}
