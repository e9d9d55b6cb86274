package verity

import (
	"fmt"
	"io"
)

// geometry is a Layout plus the derived sizes Format and Verify work with.
type geometry struct {
	Layout
	p        Params
	dbs, hbs uint64
	stride   uint64 // bytes per entry in a hash block
}

func newGeometry(p Params) (*geometry, error) {
	l, err := p.Layout()
	if err != nil {
		return nil, err
	}
	return &geometry{Layout: l, p: p, dbs: uint64(p.DataBlockSize), hbs: uint64(p.HashBlockSize), stride: uint64(l.EntrySize)}, nil
}

// entry returns the slot of child idx in a buffer of consecutive hash
// blocks, starting at the digest.
func (g *geometry) entry(buf []byte, idx uint64) []byte {
	off := (idx/g.Fanout)*g.hbs + (idx%g.Fanout)*g.stride
	return buf[off : off+uint64(g.DigestSize)]
}

// levelOffset is the byte offset on the hash device of block idx of level.
func (g *geometry) levelOffset(level int, idx uint64) int64 {
	return int64((g.LevelStart[level] + idx) * g.hbs)
}

// childCount is the number of blocks level feeds digests for: data
// blocks for level 0, the level below otherwise.
func (g *geometry) childCount(level int) uint64 {
	if level == 0 {
		return g.p.DataBlocks
	}
	return g.LevelBlocks[level-1]
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// readFull reads len(b) bytes at off of the named device. It takes only
// constant strings so that the hot path formats nothing.
func readFull(r io.ReaderAt, b []byte, off int64, device string) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("verity: reading %d bytes at %s offset %d: %w", len(b), device, off, err)
}

const (
	dataDevice = "data device"
	hashDevice = "hash device"
)

// Format writes the hash tree of the data device to the hash device and,
// unless p.NoSuperblock, the superblock at p.HashOffset, exactly as
// `veritysetup format` does, and returns the root hash. Only the tree's
// blocks and the 512-byte superblock are written; other bytes of the hash
// device are left alone.
func Format(data io.ReaderAt, hash io.WriterAt, p Params) ([]byte, error) {
	return FormatWithOptions(data, hash, p, Options{})
}

// FormatWithOptions is Format with tuning and progress reporting.
//
// The data device is cut into units of whole leaf hash blocks' worth of
// data blocks (about Options.ChunkSize bytes), hashed by parallel workers
// that read 256 KiB at a time. Each worker also builds every upper level that lies
// wholly inside its unit, so what is left for the end is a small in-memory
// level whose size is a tiny fraction of the data.
func FormatWithOptions(data io.ReaderAt, hash io.WriterAt, p Params, o Options) ([]byte, error) {
	g, err := newGeometry(p)
	if err != nil {
		return nil, err
	}
	root := make([]byte, g.DigestSize)
	prog := &progress{fn: o.Progress, total: p.DataBlocks * g.dbs}
	if g.Levels() == 0 {
		// A single data block: its digest is the root hash.
		block := make([]byte, g.dbs)
		if err := readFull(data, block, 0, dataDevice); err != nil {
			return nil, err
		}
		newBlockHasher(p).sum(root, block)
		prog.add(g.dbs)
	} else if err := g.formatTree(data, hash, root, o, prog); err != nil {
		return nil, err
	}
	if !p.NoSuperblock {
		if err := WriteSuperblock(hash, p); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// unitPlan says how the data device is split among workers.
type unitPlan struct {
	leafBlocks uint64 // leaf hash blocks per unit (a power of two)
	dataBlocks uint64 // data blocks per unit
	readBlocks uint64 // data blocks per ReadAt
	levels     int    // levels 0..levels-1 are built inside a unit
	units      uint64
}

func (g *geometry) planUnits(chunk uint64) unitPlan {
	var u unitPlan
	u.readBlocks = max(1, min(chunk, readSize)/g.dbs)
	u.leafBlocks = 1
	for u.leafBlocks*2*g.Fanout*g.dbs <= chunk && u.leafBlocks < g.LevelBlocks[0] {
		u.leafBlocks *= 2
	}
	u.dataBlocks = u.leafBlocks * g.Fanout
	u.readBlocks = min(u.readBlocks, u.dataBlocks, g.p.DataBlocks)
	// Level i is complete inside a unit when a unit holds a whole number
	// of its blocks, i.e. fanout^i divides leafBlocks (all powers of two).
	u.levels = 1
	span := g.Fanout
	for u.levels < g.Levels() && span <= u.leafBlocks {
		u.levels++
		span *= g.Fanout
	}
	u.units = ceilDiv(g.p.DataBlocks, u.dataBlocks)
	return u
}

// formatWorker holds one goroutine's buffers.
type formatWorker struct {
	hasher *blockHasher
	data   []byte
	levels [][]byte // hash blocks of each in-unit level
}

func (g *geometry) formatTree(data io.ReaderAt, hash io.WriterAt, root []byte, o Options, prog *progress) error {
	plan := g.planUnits(o.chunkSize())
	// next holds the level above the units' highest level, filled by the workers with the
	// digests of their highest blocks; when that is the tree's top level
	// it holds the root hash instead.
	var next []byte
	if plan.levels < g.Levels() {
		next = make([]byte, g.LevelBlocks[plan.levels]*g.hbs)
	}
	nWorkers := min(o.workers(), int(min(plan.units, 1<<16)))
	workers := make([]*formatWorker, nWorkers)
	err := forEachUnit(nWorkers, plan.units, func(w int, unit uint64) error {
		fw := workers[w]
		if fw == nil {
			fw = &formatWorker{hasher: newBlockHasher(g.p), data: make([]byte, plan.readBlocks*g.dbs)}
			blocks := plan.leafBlocks
			for i := 0; i < plan.levels; i++ {
				fw.levels = append(fw.levels, make([]byte, blocks*g.hbs))
				blocks = max(1, blocks/g.Fanout)
			}
			workers[w] = fw
		}
		return g.formatUnit(data, hash, fw, plan, unit, next, root, prog)
	})
	if err != nil {
		return err
	}
	if next == nil {
		return nil
	}
	// The remaining upper levels are small: build them in memory.
	h := newBlockHasher(g.p)
	for level := plan.levels; level < g.Levels(); level++ {
		if _, err := hash.WriteAt(next, g.levelOffset(level, 0)); err != nil {
			return fmt.Errorf("verity: writing hash level %d: %w", level, err)
		}
		if level == g.Levels()-1 {
			h.sum(root, next[:g.hbs])
			break
		}
		above := make([]byte, g.LevelBlocks[level+1]*g.hbs)
		for j := uint64(0); j < g.LevelBlocks[level]; j++ {
			h.sum(g.entry(above, j), next[j*g.hbs:(j+1)*g.hbs])
		}
		next = above
	}
	return nil
}

// formatUnit hashes one unit of data blocks and writes the hash blocks of
// every level that lies inside the unit.
func (g *geometry) formatUnit(data io.ReaderAt, hash io.WriterAt, fw *formatWorker, plan unitPlan, unit uint64, next, root []byte, prog *progress) error {
	first := unit * plan.dataBlocks
	children := min(plan.dataBlocks, g.p.DataBlocks-first)
	firstChild := first
	for level := 0; level < plan.levels; level++ {
		blocks := ceilDiv(children, g.Fanout)
		out := fw.levels[level][:blocks*g.hbs]
		clear(out) // padding and the unused tail of the last block are zero
		if level == 0 {
			for done := uint64(0); done < children; {
				n := min(plan.readBlocks, children-done)
				buf := fw.data[:n*g.dbs]
				if err := readFull(data, buf, int64((first+done)*g.dbs), dataDevice); err != nil {
					return err
				}
				for j := uint64(0); j < n; j++ {
					fw.hasher.sum(g.entry(out, done+j), buf[j*g.dbs:(j+1)*g.dbs])
				}
				done += n
				prog.add(n * g.dbs)
			}
		} else {
			in := fw.levels[level-1]
			for j := uint64(0); j < children; j++ {
				fw.hasher.sum(g.entry(out, j), in[j*g.hbs:(j+1)*g.hbs])
			}
		}
		firstBlock := firstChild / g.Fanout
		if _, err := hash.WriteAt(out, g.levelOffset(level, firstBlock)); err != nil {
			return fmt.Errorf("verity: writing hash level %d blocks %d-%d: %w", level, firstBlock, firstBlock+blocks-1, err)
		}
		children, firstChild = blocks, firstBlock
	}
	// Hand the digests of this unit's highest blocks to the level above,
	// or, at the top of the tree, produce the root hash.
	in := fw.levels[plan.levels-1]
	if next == nil {
		fw.hasher.sum(root, in[:g.hbs])
		return nil
	}
	for j := uint64(0); j < children; j++ {
		fw.hasher.sum(g.entry(next, firstChild+j), in[j*g.hbs:(j+1)*g.hbs])
	}
	return nil
}

// readSize is how much data one ReadAt fetches. It is small enough for the
// buffer to stay in a core's L2 cache, so the blocks are hashed from cache
// right after the copy instead of being fetched from memory a second time.
const readSize = 256 << 10
