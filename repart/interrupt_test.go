package repart_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/repart"
)

// memDisk is an image file in memory: it grows, and a discarded range
// reads as zeros.
type memDisk struct{ b []byte }

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write beyond the end of the disk")
	}
	return copy(m.b[off:], p), nil
}

func (m *memDisk) Size() (int64, error) { return int64(len(m.b)), nil }

func (m *memDisk) Discard(off, n int64) error {
	clear(m.b[off : off+n])
	return nil
}

func (m *memDisk) Grow(size int64, _ bool) error {
	if size > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, size-int64(len(m.b)))...)
	}
	return nil
}

// crashDisk lets the first budget writes (WriteAt, Discard, Grow) through
// and then fails every later one, as if the machine stopped there.
type crashDisk struct {
	*memDisk
	budget, done int
	torn         bool
}

var errCrash = errors.New("simulated crash")

func (c *crashDisk) step() error {
	if c.done >= c.budget {
		return errCrash
	}
	c.done++
	return nil
}

// WriteAt tears the write that crashes: the first half of its sectors
// reach the disk.
func (c *crashDisk) WriteAt(p []byte, off int64) (int, error) {
	if err := c.step(); err != nil {
		if c.done == c.budget && !c.torn {
			c.torn = true
			half := len(p) / 2 / 512 * 512
			c.memDisk.WriteAt(p[:half], off)
		}
		return 0, err
	}
	return c.memDisk.WriteAt(p, off)
}

func (c *crashDisk) Discard(off, n int64) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.memDisk.Discard(off, n)
}

func (c *crashDisk) Grow(size int64, allocate bool) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.memDisk.Grow(size, allocate)
}

func mustDefs(t *testing.T, files ...string) []*repart.Definition {
	t.Helper()
	var defs []*repart.Definition
	for i, text := range files {
		d, err := repart.ParseDefinitionFile(fmt.Sprintf("%02d.conf", i), []byte(text), repart.ParseOptions{Arch: dps.ArchX86_64})
		if err != nil {
			t.Fatal(err)
		}
		defs = append(defs, d)
	}
	return defs
}

var testSeed = dps.UUID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}

// tableState is what a reader sees: the partitions and where the usable
// area ends.
type tableState struct {
	DiskGUID   gpt.GUID
	LastUsable uint64
	Partitions []gpt.Partition
}

func readState(t *testing.T, m *memDisk) (tableState, error) {
	t.Helper()
	tab, err := gpt.Read(m, int64(len(m.b)), 512)
	if err != nil {
		return tableState{}, err
	}
	return tableState{tab.DiskGUID, tab.LastUsableLBA, tab.Partitions}, nil
}

// TestInterruptedRun crashes runs after every possible number of writes and
// requires the partition table to read back as one of the states a
// complete step leaves (the old table, each intermediate table systemd also
// writes, the new table), never as something corrupt or in between.
func TestInterruptedRun(t *testing.T) {
	base := mustDefs(t,
		"[Partition]\nType=esp\nSizeMinBytes=4M\nSizeMaxBytes=4M\n",
		"[Partition]\nType=root\nSizeMaxBytes=8M\nFactoryReset=yes\n",
	)
	more := mustDefs(t,
		"[Partition]\nType=esp\nSizeMinBytes=4M\nSizeMaxBytes=4M\n",
		"[Partition]\nType=root\nSizeMaxBytes=12M\nFactoryReset=yes\n",
		"[Partition]\nType=home\nFactoryReset=yes\nLabel=home\n",
		"[Partition]\nType=swap\nSizeMinBytes=1M\nSizeMaxBytes=1M\n",
	)
	start := &memDisk{}
	if _, err := repart.Run(context.Background(), start, repart.Options{
		Definitions: base, Seed: testSeed, Empty: repart.EmptyCreate, Write: true, Size: 16 << 20,
	}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		opts repart.Options
		grow int64 // grow the disk before the run, as dd to a larger disk does
	}{
		{"add and grow on a larger disk", repart.Options{Definitions: more}, 32 << 20},
		{"grow the image with --size", repart.Options{Definitions: more, Size: 40 << 20}, 0},
		{"factory reset", repart.Options{Definitions: more, FactoryReset: true}, 40 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			initial := &memDisk{b: append([]byte(nil), start.b...)}
			if c.grow > 0 {
				initial.Grow(c.grow, false)
			}
			oldState, err := readState(t, initial)
			if err != nil {
				t.Fatal(err)
			}
			opts := c.opts
			opts.Seed, opts.Write = testSeed, true

			// The complete run, counting its writes and recording every
			// state the table passes through.
			full := &crashDisk{memDisk: &memDisk{b: append([]byte(nil), initial.b...)}, budget: 1 << 30}
			if _, err := repart.Run(context.Background(), full, opts); err != nil {
				t.Fatal(err)
			}
			newState, err := readState(t, full.memDisk)
			if err != nil {
				t.Fatal(err)
			}
			if reflect.DeepEqual(oldState, newState) {
				t.Fatal("the run changed nothing")
			}
			allowed := []tableState{oldState, newState}
			names := []string{"old", "new"}
			for n := 0; n <= full.done; n++ {
				d := &crashDisk{memDisk: &memDisk{b: append([]byte(nil), initial.b...)}, budget: n}
				_, err := repart.Run(context.Background(), d, opts)
				if n < full.done && !errors.Is(err, errCrash) {
					t.Fatalf("crash after %d writes: run returned %v", n, err)
				}
				st, err := readState(t, d.memDisk)
				if err != nil {
					t.Fatalf("crash after %d of %d writes: table unreadable: %v", n, full.done, err)
				}
				known := false
				for _, a := range allowed {
					if reflect.DeepEqual(st, a) {
						known = true
					}
				}
				if !known {
					// A complete intermediate table systemd also writes:
					// the resized table (--size) or the one without the
					// reset partitions. It must be a subset of the old
					// partitions with the old geometry.
					if !subsetOf(st.Partitions, oldState.Partitions) {
						t.Fatalf("crash after %d of %d writes: table is neither old nor new nor an intermediate state:\n%+v", n, full.done, st)
					}
					allowed = append(allowed, st)
					names = append(names, fmt.Sprintf("intermediate after %d writes", n))
				}
				// Running again completes the job. A factory reset is
				// asked for again only if it did not happen yet.
				rerun := opts
				rerun.FactoryReset = opts.FactoryReset && reflect.DeepEqual(st, oldState)
				if _, err := repart.Run(context.Background(), d.memDisk, rerun); err != nil {
					t.Fatalf("crash after %d writes: rerun failed: %v", n, err)
				}
				again, err := readState(t, d.memDisk)
				if err != nil || !reflect.DeepEqual(again, newState) {
					t.Fatalf("crash after %d writes: rerun gave %+v (%v), want %+v", n, again, err, newState)
				}
			}
			t.Logf("%d writes; states seen: %v", full.done, names)
		})
	}
}

func subsetOf(ps, of []gpt.Partition) bool {
	for _, p := range ps {
		found := false
		for _, q := range of {
			if reflect.DeepEqual(p, q) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
