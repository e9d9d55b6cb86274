package verity

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Options tune Format and Verify. The zero value uses every CPU and units
// of work of about 8 MiB.
type Options struct {
	// Workers is the number of hashing goroutines; 0 means GOMAXPROCS.
	Workers int
	// ChunkSize is roughly how many data bytes make one unit of work,
	// which a worker hashes and whose hash blocks it writes in one go; 0
	// means 8 MiB. Reads within a unit are at most 256 KiB, so memory use
	// stays at a few hundred KiB per worker.
	ChunkSize int
	// Progress, when set, is called after each chunk with the number of
	// data bytes processed so far and the total. Calls never overlap.
	Progress func(done, total uint64)
}

const defaultChunkSize = 8 << 20

func (o Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

func (o Options) chunkSize() uint64 {
	if o.ChunkSize > 0 {
		return uint64(o.ChunkSize)
	}
	return defaultChunkSize
}

// progress reports processed bytes to Options.Progress from any goroutine.
type progress struct {
	fn    func(done, total uint64)
	total uint64
	done  atomic.Uint64
	mu    sync.Mutex
}

func (p *progress) add(n uint64) {
	if p == nil || p.fn == nil {
		return
	}
	done := p.done.Add(n)
	p.mu.Lock()
	p.fn(done, p.total)
	p.mu.Unlock()
}

// forEachUnit runs work(worker, unit) for units 0..n-1 on up to workers
// goroutines, handing units out in increasing order. When a unit fails,
// units after it are no longer started, but every unit before it still
// runs, so the error returned is that of the lowest failing unit: the
// result does not depend on scheduling.
func forEachUnit(workers int, n uint64, work func(worker int, unit uint64) error) error {
	if uint64(workers) > n {
		workers = int(n)
	}
	if workers <= 1 {
		for u := uint64(0); u < n; u++ {
			if err := work(0, u); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next      atomic.Uint64
		failBound atomic.Uint64
		mu        sync.Mutex
		failed    = uint64(math.MaxUint64)
		firstErr  error
		wg        sync.WaitGroup
	)
	failBound.Store(math.MaxUint64)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				u := next.Add(1) - 1
				if u >= n || u > failBound.Load() {
					return
				}
				if err := work(w, u); err != nil {
					mu.Lock()
					if u < failed {
						failed, firstErr = u, err
						failBound.Store(u)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
