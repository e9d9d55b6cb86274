//go:build !linux

package repart

import (
	"fmt"
	"os"

	"github.com/imago-os/imago/format/gpt"
)

func blockDeviceSize(f *os.File) (int64, error) {
	return 0, fmt.Errorf("block devices: %w", ErrUnsupported)
}

func blockSectorSize(f *os.File) (int, error) {
	return 0, fmt.Errorf("block devices: %w", ErrUnsupported)
}

func blockDiscard(f *os.File, offset, length int64) error {
	return fmt.Errorf("discard: %w", ErrUnsupported)
}

func punchHole(f *os.File, offset, length int64) error {
	return fmt.Errorf("punching holes: %w", ErrUnsupported)
}

func allocateFile(f *os.File, size int64) error {
	return fmt.Errorf("fallocate: %w", ErrUnsupported)
}

func lockFile(f *os.File, exclusive bool) error { return nil }

func rereadPartitions(f *os.File, old, new *gpt.Table, fromScratch bool) error { return nil }

func sameDevice(a, b os.FileInfo) bool { return true }
