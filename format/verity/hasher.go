package verity

import (
	"encoding"
	"hash"
)

// blockHasher computes the salted digest of one block without allocating.
// Each goroutine owns one.
type blockHasher struct {
	h    hash.Hash
	salt []byte
	// saltFirst is hash type 1: H(salt ‖ block); type 0 is H(block ‖ salt).
	saltFirst bool
	// saltedState, when set, is the hash state right after the salt was
	// written. Restoring it skips rehashing a salt of one input block or
	// more; shorter salts are merely buffered, so writing them is cheaper.
	saltedState []byte
	unmarshal   encoding.BinaryUnmarshaler
}

func newBlockHasher(p Params) *blockHasher {
	b := &blockHasher{h: newHash(p.Algorithm), salt: p.Salt, saltFirst: p.HashType == 1}
	if b.saltFirst && len(p.Salt) >= b.h.BlockSize() {
		m, okM := b.h.(encoding.BinaryMarshaler)
		u, okU := b.h.(encoding.BinaryUnmarshaler)
		if okM && okU {
			b.h.Write(p.Salt)
			if state, err := m.MarshalBinary(); err == nil {
				b.saltedState, b.unmarshal = state, u
			}
		}
	}
	return b
}

// sum writes the salted digest of block to dst, which must hold at least
// the digest size.
func (b *blockHasher) sum(dst, block []byte) {
	if b.saltedState == nil || b.unmarshal.UnmarshalBinary(b.saltedState) != nil {
		b.h.Reset()
		if b.saltFirst {
			b.h.Write(b.salt)
		}
	}
	b.h.Write(block)
	if !b.saltFirst {
		b.h.Write(b.salt)
	}
	// dst has room for the digest, so Sum appends in place.
	b.h.Sum(dst[:0])
}
