package testutil

import (
	"os"
	"testing"

	"github.com/imago-os/imago/format/gpt"
)

// WriteGPTImage creates the image file path of size bytes holding table
// (primary and backup). Partition contents are left zero.
func WriteGPTImage(t testing.TB, path string, size int64, table *gpt.Table) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := gpt.Write(f, size, table); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// ReadGPTImage reads the partition table of the image file path,
// detecting its sector size.
func ReadGPTImage(t testing.TB, path string) *gpt.Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, err := gpt.Read(f, fi.Size(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return table
}
