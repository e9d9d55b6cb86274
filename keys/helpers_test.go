package keys

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// setTime is the creation time of the shared test set.
var setTime = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// Generating a set takes five RSA keys; the tests share one, generated on
// first use, and copy it where they change it.
var shared struct {
	once sync.Once
	dir  string
	set  *Set
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(filepath.Dir(shared.dir))
	}
	os.Exit(code)
}

// sharedSet returns the shared set; tests must not modify its directory.
func sharedSet(t testing.TB) *Set {
	t.Helper()
	shared.once.Do(func() {
		parent, err := os.MkdirTemp("", "imago-keys-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = filepath.Join(parent, "keys")
		shared.set, shared.err = Generate(shared.dir, Options{Now: setTime, CommonName: "test"})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.set
}

// copySet copies the shared set into a new directory and returns it.
func copySet(t *testing.T) string {
	t.Helper()
	s := sharedSet(t)
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range Files() {
		data, err := os.ReadFile(s.Path(f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), data, f.Mode()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// snapshot returns every file of dir by name.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fmt.Sprintf("%v %x", info.Mode(), data)
	}
	return out
}
