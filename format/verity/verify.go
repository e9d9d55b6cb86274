package verity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Verify checks the data and hash devices against the root hash. It
// accepts exactly what `veritysetup verify` accepts, but checks top-down,
// as the kernel trusts blocks: first the top hash block against the root
// hash, then each level against the verified level above, then every data
// block against the verified leaf digests. So a *CorruptionError names the
// block that is actually bad: a corrupt hash block is never blamed on the
// data it covers. When several blocks are bad, it names the first one of
// the highest level. The superblock, if any, is not read: p must already
// hold its parameters (see ReadSuperblock).
func Verify(data, hash io.ReaderAt, p Params, root []byte) error {
	return VerifyWithOptions(data, hash, p, root, Options{})
}

// VerifyWithOptions is Verify with tuning and progress reporting; progress
// counts data bytes.
func VerifyWithOptions(data, hash io.ReaderAt, p Params, root []byte, o Options) error {
	g, err := newGeometry(p)
	if err != nil {
		return err
	}
	if len(root) != g.DigestSize {
		return fmt.Errorf("verity: root hash is %d bytes, %s needs %d", len(root), p.Algorithm, g.DigestSize)
	}
	h := newBlockHasher(p)
	digest := make([]byte, g.DigestSize)
	prog := &progress{fn: o.Progress, total: p.DataBlocks * g.dbs}

	if g.Levels() == 0 {
		block := make([]byte, g.dbs)
		if err := readFull(data, block, 0, dataDevice); err != nil {
			return err
		}
		h.sum(digest, block)
		if !bytes.Equal(digest, root) {
			return &CorruptionError{Kind: CorruptDataBlock, Level: -1, AgainstRoot: true}
		}
		prog.add(g.dbs)
		return nil
	}

	top := g.Levels() - 1
	block := make([]byte, g.hbs)
	if err := readFull(hash, block, g.levelOffset(top, 0), hashDevice); err != nil {
		return err
	}
	h.sum(digest, block)
	if !bytes.Equal(digest, root) {
		return &CorruptionError{Kind: CorruptHashBlock, Level: top, Offset: g.levelOffset(top, 0), AgainstRoot: true}
	}
	if err := g.checkPadding(block, top, 0); err != nil {
		return err
	}
	for level := top - 1; level >= -1; level-- {
		if err := g.verifyLevel(data, hash, level, o, prog); err != nil {
			return err
		}
	}
	return nil
}

// checkPadding reports non-zero bytes in hash block idx of level where the
// format has zeros: after each digest (type 1) and after the last entry.
func (g *geometry) checkPadding(block []byte, level int, idx uint64) error {
	entries := min(g.Fanout, g.childCount(level)-idx*g.Fanout)
	pad := func(from, to uint64) error {
		for i := from; i < to; i++ {
			if block[i] != 0 {
				return &CorruptionError{Kind: CorruptPadding, Level: level, Block: idx, Offset: g.levelOffset(level, idx) + int64(i)}
			}
		}
		return nil
	}
	if g.stride > uint64(g.DigestSize) {
		for e := uint64(0); e < entries; e++ {
			if err := pad(e*g.stride+uint64(g.DigestSize), (e+1)*g.stride); err != nil {
				return err
			}
		}
	}
	return pad(entries*g.stride, g.hbs)
}

// verifyWorker holds one goroutine's buffers.
type verifyWorker struct {
	hasher *blockHasher
	blocks []byte
	parent []byte
	digest []byte
}

// verifyLevel checks every block of level (-1 for the data blocks) against
// the digests in the level above, which has already been verified.
func (g *geometry) verifyLevel(data, hash io.ReaderAt, level int, o Options, prog *progress) error {
	src, bs, count := hash, g.hbs, uint64(0)
	if level < 0 {
		src, bs, count = data, g.dbs, g.p.DataBlocks
	} else {
		count = g.LevelBlocks[level]
	}
	base := func(idx uint64) int64 {
		if level < 0 {
			return int64(idx * g.dbs)
		}
		return g.levelOffset(level, idx)
	}
	// Units cover whole parent blocks so each parent block is read once.
	perUnit := max(g.Fanout, o.chunkSize()/bs/g.Fanout*g.Fanout)
	perUnit = min(perUnit, ceilDiv(count, g.Fanout)*g.Fanout)
	units := ceilDiv(count, perUnit)
	readBlocks := min(max(1, min(o.chunkSize(), readSize)/bs), perUnit, count)
	what := hashDevice
	if level < 0 {
		what = dataDevice
	}
	nWorkers := min(o.workers(), int(min(units, 1<<16)))
	workers := make([]*verifyWorker, nWorkers)
	return forEachUnit(nWorkers, units, func(w int, unit uint64) error {
		vw := workers[w]
		if vw == nil {
			vw = &verifyWorker{
				hasher: newBlockHasher(g.p),
				blocks: make([]byte, readBlocks*bs),
				parent: make([]byte, perUnit/g.Fanout*g.hbs),
				digest: make([]byte, g.DigestSize),
			}
			workers[w] = vw
		}
		first := unit * perUnit
		n := min(perUnit, count-first)
		parentFirst, parentN := first/g.Fanout, ceilDiv(n, g.Fanout)
		parent := vw.parent[:parentN*g.hbs]
		if err := readFull(hash, parent, g.levelOffset(level+1, parentFirst), hashDevice); err != nil {
			return err
		}
		for done := uint64(0); done < n; {
			m := min(readBlocks, n-done)
			blocks := vw.blocks[:m*bs]
			if err := readFull(src, blocks, base(first+done), what); err != nil {
				return err
			}
			for j := uint64(0); j < m; j++ {
				block := blocks[j*bs : (j+1)*bs]
				idx := first + done + j
				vw.hasher.sum(vw.digest, block)
				if !bytes.Equal(vw.digest, g.entry(parent, done+j)) {
					kind := CorruptHashBlock
					if level < 0 {
						kind = CorruptDataBlock
					}
					return &CorruptionError{Kind: kind, Level: level, Block: idx, Offset: base(idx)}
				}
				if level >= 0 {
					if err := g.checkPadding(block, level, idx); err != nil {
						return err
					}
				}
			}
			done += m
			if level < 0 {
				prog.add(m * bs)
			}
		}
		return nil
	})
}

// IsCorruption reports whether err says a block failed verification, as
// opposed to an I/O or parameter error.
func IsCorruption(err error) bool {
	var c *CorruptionError
	return errors.As(err, &c)
}
