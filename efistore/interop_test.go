package efistore_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/efistore/efistoretest"
	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/internal/testutil"
)

// repartImage makes a small GPT image with systemd-repart: a root
// partition and a home partition marked FactoryReset=yes. It returns the
// definitions directory and the image.
func repartImage(t *testing.T, repart string) (defs, image string) {
	t.Helper()
	dir := t.TempDir()
	defs = filepath.Join(dir, "repart.d")
	if err := os.Mkdir(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"10-root.conf": "[Partition]\nType=root\nSizeMinBytes=1M\nSizeMaxBytes=1M\n",
		"20-home.conf": "[Partition]\nType=home\nSizeMinBytes=1M\nSizeMaxBytes=1M\nFactoryReset=yes\n",
	} {
		if err := os.WriteFile(filepath.Join(defs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image = filepath.Join(dir, "disk.raw")
	testutil.Run(t, repart, "--empty=create", "--size=8M", "--dry-run=no",
		"--seed=11111111-2222-3333-4444-555555555555", "--definitions="+defs, image)
	return defs, image
}

// repartOutcome is what systemd-repart made of the FactoryReset variable.
type repartOutcome int

const (
	outcomeNotRequested repartOutcome = iota
	outcomeReset
	outcomeRejected
)

func (o repartOutcome) String() string {
	return [...]string{"not requested", "reset", "rejected"}[o]
}

// runRepartInInitrd runs systemd-repart as the initrd would, with dir as
// efivarfs, and classifies what it did.
func runRepartInInitrd(t *testing.T, repart, dir, defs, image string) (repartOutcome, string) {
	t.Helper()
	res := efistoretest.Run(t, dir, []string{"SYSTEMD_IN_INITRD=1", "SYSTEMD_LOG_LEVEL=info"}, repart,
		"--root="+t.TempDir(), "--dry-run=no", "--seed=11111111-2222-3333-4444-555555555555",
		"--definitions="+defs, image)
	out := res.Stdout + res.Stderr
	switch {
	case res.ExitCode != 0 && strings.Contains(out, "Failed to parse EFI variable FactoryReset"):
		return outcomeRejected, out
	case res.ExitCode != 0:
		t.Fatalf("systemd-repart failed (exit %d):\n%s", res.ExitCode, out)
	case strings.Contains(out, "Factory reset requested via EFI variable FactoryReset.") &&
		strings.Contains(out, "Successfully deleted 1 partitions.") &&
		strings.Contains(out, "Successfully unset EFI variable FactoryReset."):
		return outcomeReset, out
	case strings.Contains(out, "Applying factory reset"):
		t.Fatalf("systemd-repart reset only partly:\n%s", out)
	}
	return outcomeNotRequested, out
}

// TestInteropRepartFactoryReset writes FactoryReset with the store and has
// systemd-repart 252, running as in the initrd, read it: every payload must
// mean to repart what efivar.DecodeFactoryReset says it means, and after a
// reset repart must have deleted the variable.
func TestInteropRepartFactoryReset(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	efistoretest.CheckNamespace(t)
	defs, image := repartImage(t, repart)

	utf16 := func(s string) []byte {
		b, err := efivar.EncodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name    string
		payload []byte
	}{
		{"imago request", efivar.EncodeFactoryResetRequest()},
		{"yes", utf16("yes")},
		{"TRUE", utf16("TRUE")},
		{"On", utf16("On")},
		{"y", utf16("y")},
		{"0", utf16("0")},
		{"off", utf16("off")},
		{"No", utf16("No")},
		{"1 without terminator", []byte{'1', 0}},
		{"1 then NUL then garbage", []byte{'1', 0, 0, 0, 'x', 0}},
		{"odd trailing byte", []byte{'1', 0, '2'}},
		{"stray trailing surrogate", []byte{0x00, 0xdc, '1', 0, 0, 0}},
		{"lone leading surrogate", []byte{0x3d, 0xd8, 'o', 0, 'n', 0, 0, 0}},
		{"UTF-8 1 (one odd byte)", []byte("1")},
		{"UTF-8 yes", []byte("yes")},
		{"maybe", utf16("maybe")},
		{"1 with blank", utf16("1 ")},
		{"long s", utf16("yeſ")},
	}
	store, err := efistore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := efivar.SystemdVar(efivar.FactoryReset)
	path, _ := store.Path(id)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := store.Set(id, efivar.Variable{Attributes: efivar.AttributesSystemd, Data: c.payload}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Delete(id) })
			want := outcomeNotRequested
			if on, err := efivar.DecodeFactoryReset(c.payload); err != nil {
				want = outcomeRejected
			} else if on {
				want = outcomeReset
			}
			got, out := runRepartInInitrd(t, repart, store.Dir(), defs, image)
			if got != want {
				t.Fatalf("payload %x: systemd-repart: %v, imago: %v\n%s", c.payload, got, want, out)
			}
			t.Logf("payload %x: %v", c.payload, got)
			_, statErr := os.Stat(path)
			if gone := errors.Is(statErr, fs.ErrNotExist); gone != (want == outcomeReset) {
				t.Errorf("variable deleted = %v after outcome %v", gone, got)
			}
		})
	}

	// Without the variable nothing happens, and outside the initrd even a
	// request is ignored.
	t.Run("absent", func(t *testing.T) {
		if got, out := runRepartInInitrd(t, repart, store.Dir(), defs, image); got != outcomeNotRequested {
			t.Fatalf("no variable: %v\n%s", got, out)
		}
	})
	t.Run("outside initrd", func(t *testing.T) {
		if err := store.SetString(id, "1"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Delete(id) })
		res := efistoretest.Run(t, store.Dir(), []string{"SYSTEMD_IN_INITRD=0"}, repart,
			"--dry-run=no", "--seed=11111111-2222-3333-4444-555555555555", "--definitions="+defs, image)
		if res.ExitCode != 0 || strings.Contains(res.Stderr, "Factory reset") {
			t.Fatalf("exit %d:\n%s", res.ExitCode, res.Stderr)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("variable gone outside the initrd: %v", err)
		}
	})
}
