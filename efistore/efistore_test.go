package efistore

import (
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/efivar"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.IsEfivarfs() {
		t.Fatal("a temporary directory was taken for efivarfs")
	}
	return s, dir
}

func readHex(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestSetGetDelete(t *testing.T) {
	s, dir := openTemp(t)
	id := efivar.LoaderVar(efivar.LoaderEntryOneShot)
	path := filepath.Join(dir, "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f")

	if _, err := s.Get(id); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get(missing) = %v, want ErrNotExist", err)
	}
	if err := s.SetString(id, "testos-2.0.efi"); err != nil {
		t.Fatal(err)
	}
	// The efivars.tsv vector for `bootctl set-oneshot testos-2.0.efi`.
	const want = "0700000074006500730074006f0073002d0032002e0030002e006500660069000000"
	if got := readHex(t, path); got != want {
		t.Fatalf("file = %s, want %s", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	v, err := s.Get(id)
	if err != nil || v.Attributes != efivar.AttributesSystemd || efivar.DecodeString(v.Data) != "testos-2.0.efi" {
		t.Fatalf("Get = %+v, %v", v, err)
	}

	// A shorter value must not leave the tail of the longer one behind.
	if err := s.SetString(id, "a"); err != nil {
		t.Fatal(err)
	}
	if got := readHex(t, path); got != "0700000061000000" {
		t.Fatalf("after shorter write: %s", got)
	}

	ids, err := s.List()
	if err != nil || !reflect.DeepEqual(ids, []efivar.ID{id}) {
		t.Fatalf("List = %v, %v", ids, err)
	}

	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file still there after Delete: %v", err)
	}
	if err := s.Delete(id); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete(missing) = %v, want ErrNotExist", err)
	}
}

// TestSetSkipsIdenticalValue: like systemd, an unchanged value is not
// written again (each write wears the firmware's flash).
func TestSetSkipsIdenticalValue(t *testing.T) {
	s, dir := openTemp(t)
	id := efivar.SystemdVar(efivar.FactoryReset)
	if err := s.SetString(id, "1"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "FactoryReset-8cf2644b-4b0b-428f-9387-6d876050dc67")
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if err := s.SetString(id, "1"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(old) {
		t.Errorf("identical value was rewritten (mtime %v)", fi.ModTime())
	}
	// Other attributes are a different value.
	if err := s.Set(id, efivar.Variable{Attributes: efivar.AttributesLoaderVolatile, Data: efivar.EncodeFactoryResetRequest()}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.ModTime().Equal(old) {
		t.Error("changed attributes were not written")
	}
	if got := readHex(t, path); got != "0600000031000000" {
		t.Errorf("file = %s", got)
	}
}

func TestRefusals(t *testing.T) {
	s, dir := openTemp(t)
	if err := s.Set(efivar.SystemdVar("X"), efivar.Variable{Attributes: 7}); err == nil {
		t.Error("Set accepted an empty value")
	}
	if err := s.SetString(efivar.SystemdVar("X"), "a\x00b"); err == nil {
		t.Error("SetString accepted NUL")
	}
	for _, id := range []efivar.ID{{Name: "../x", Vendor: efivar.VendorSystemd}, {Name: "x", Vendor: "nope"}, {Name: "", Vendor: efivar.VendorSystemd}} {
		if err := s.SetString(id, "1"); err == nil {
			t.Errorf("SetString(%+v) succeeded", id)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused writes left files: %v", entries)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Open(file) = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
}

func TestGetBadFiles(t *testing.T) {
	s, dir := openTemp(t)
	id := efivar.SystemdVar("Short")
	path := filepath.Join(dir, "Short-8cf2644b-4b0b-428f-9387-6d876050dc67")
	if err := os.WriteFile(path, []byte{7, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(id); !errors.Is(err, efivar.ErrShort) || !strings.Contains(err.Error(), path) {
		t.Errorf("Get(short) = %v", err)
	}
	if err := os.Truncate(path, efivar.MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(id); !errors.Is(err, efivar.ErrTooLarge) {
		t.Errorf("Get(huge) = %v", err)
	}
}

func TestListSkipsForeignFiles(t *testing.T) {
	s, dir := openTemp(t)
	for _, name := range []string{"README", "FactoryReset-8CF2644B-4B0B-428F-9387-6D876050DC67", "LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte{6, 0, 0, 0}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "Dir-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"), 0o755); err != nil {
		t.Fatal(err)
	}
	ids, err := s.List()
	want := []efivar.ID{efivar.SystemdVar(efivar.FactoryReset), efivar.LoaderVar(efivar.LoaderInfo)}
	if err != nil || !reflect.DeepEqual(ids, want) {
		t.Errorf("List = %v, %v; want %v", ids, err, want)
	}
}

// TestReadOnlyRealEfivarfs reads (never writes) every variable of this
// machine's firmware when it booted through UEFI, and decodes the ones
// whose encoding systemd defines.
func TestReadOnlyRealEfivarfs(t *testing.T) {
	s, err := Open(DefaultDir)
	if err != nil {
		t.Skipf("no efivarfs here: %v", err)
	}
	if !s.IsEfivarfs() {
		t.Skipf("%s is not efivarfs", DefaultDir)
	}
	ids, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		v, err := s.Get(id)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		switch efivar.EncodingOf(id) {
		case efivar.EncodingUint64:
			if _, err := efivar.DecodeUint64(v.Data); err != nil {
				t.Errorf("%s: %v", id, err)
			}
		case efivar.EncodingDecimal:
			if _, err := efivar.DecodeDecimal(v.Data); err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
		t.Logf("%s %v %d bytes", id, v.Attributes, len(v.Data))
	}
}
