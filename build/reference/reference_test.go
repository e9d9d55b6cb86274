package reference

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFiles(t *testing.T) {
	want := []string{
		"extra/usr/lib/imago/health-check",
		"extra/usr/lib/imago/health.d/10-usr-verity",
		"extra/usr/lib/systemd/network/80-imago-dhcp.network",
		"extra/usr/lib/systemd/system/boot-complete.target.d/50-imago-health.conf",
		"extra/usr/lib/systemd/system/imago-health-check.service",
		"extra/usr/lib/systemd/system/imago-update.service",
		"extra/usr/lib/systemd/system/imago-update.timer",
		"extra/usr/lib/systemd/system/multi-user.target.d/10-imago-network.conf",
		"extra/usr/lib/systemd/system/systemd-boot-check-no-failures.service.d/50-imago-reboot.conf",
		"extra/usr/lib/systemd/system/systemd-cryptsetup@.service.d/50-imago-udev-settle.conf",
		"extra/usr/lib/systemd/system/timers.target.d/50-imago-update.conf",
		"imago.conf",
		"repart.d/10-usr-a.conf", "repart.d/11-usr-a-verity.conf", "repart.d/12-usr-a-verity-sig.conf",
		"repart.d/20-usr-b.conf", "repart.d/21-usr-b-verity.conf", "repart.d/22-usr-b-verity-sig.conf",
		"repart.d/30-root.conf", "repart.d/40-home.conf", "repart.d/50-swap.conf",
		"sysupdate.d/10-usr.conf", "sysupdate.d/20-usr-verity.conf", "sysupdate.d/30-usr-verity-sig.conf",
		"sysupdate.d/90-uki.conf",
	}
	if got := Files(); !reflect.DeepEqual(got, want) {
		t.Errorf("Files() = %q", got)
	}
}

// TestWriteToRefuses: with one file in the way, nothing is written.
func TestWriteToRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "repart.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "repart.d", "50-swap.conf")
	if err := os.WriteFile(mine, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := WriteTo(dir, false)
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &pe) || pe.Path != mine {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "imago.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("files were written although one existed")
	}
	written, err := WriteTo(dir, true)
	if err != nil || len(written) != len(Files()) {
		t.Fatalf("overwrite: %d files, %v", len(written), err)
	}
	data, _ := os.ReadFile(mine)
	embedded, _ := fs.ReadFile(FS(), "repart.d/50-swap.conf")
	if string(data) != string(embedded) {
		t.Error("overwrite left the old content")
	}
	if fi, _ := os.Stat(mine); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "extra/usr/lib/imago/health-check")); fi.Mode().Perm() != 0o755 {
		t.Errorf("script mode %v, want 0755", fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*", ".imago-init-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}
