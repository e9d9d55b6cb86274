package fsutil

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Errorf("SyncDir(%s): %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	if err := SyncDir(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("SyncDir(missing) = %v", err)
	}
}

func TestReadFileMax(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	data := bytes.Repeat([]byte("ab"), 50)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFileMax(p, 100); err != nil || !bytes.Equal(got, data) {
		t.Errorf("at the limit: %d bytes, %v", len(got), err)
	}
	if _, err := ReadFileMax(p, 99); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadFileMax(filepath.Join(dir, "missing"), 100); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// proc files report size 0: the limit holds while reading.
	if got, err := ReadFileMax("/proc/self/status", 1<<20); err != nil || len(got) == 0 {
		t.Errorf("/proc/self/status: %d bytes, %v", len(got), err)
	}
	if _, err := ReadFileMax("/proc/self/status", 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("/proc/self/status over the limit: %v", err)
	}
}

// TestReadFileMaxPipe feeds a FIFO, whose size stat cannot tell, more
// than the limit: the reader stops after max+1 bytes.
func TestReadFileMaxPipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		_, err = w.Write(make([]byte, 64))
		w.Close()
		done <- err
	}()
	if _, err := ReadFileMax(p, 32); !errors.Is(err, ErrTooLarge) {
		t.Errorf("FIFO over the limit: %v", err)
	}
	<-done // the write may fail with EPIPE once the reader is gone
}
