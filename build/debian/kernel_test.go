package debian

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mkfile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindKernel(t *testing.T) {
	tree := t.TempDir()
	if _, err := FindKernel(tree); err == nil {
		t.Fatal("no usr/lib/modules: no error")
	}
	// A modules directory without an image (left by a removed kernel) is
	// not a kernel.
	mkfile(t, filepath.Join(tree, "usr/lib/modules/6.1.0-50-amd64/modules.dep"))
	if _, err := FindKernel(tree); err == nil || !strings.Contains(err.Error(), "no kernel image") {
		t.Fatalf("no image: %v", err)
	}
	mkfile(t, filepath.Join(tree, "usr/lib/modules/6.1.0-56-amd64/modules.dep"))
	mkfile(t, filepath.Join(tree, "boot/vmlinuz-6.1.0-56-amd64"))
	k, err := FindKernel(tree)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-56-amd64" || k.Image != filepath.Join(tree, "boot/vmlinuz-6.1.0-56-amd64") ||
		k.ModulesDir != filepath.Join(tree, "usr/lib/modules/6.1.0-56-amd64") {
		t.Fatalf("kernel %+v", k)
	}
	// The image may also be in the modules directory.
	mkfile(t, filepath.Join(tree, "usr/lib/modules/6.6.0/vmlinuz"))
	if _, err := FindKernel(tree); err == nil || !strings.Contains(err.Error(), "6.1.0-56-amd64, 6.6.0") {
		t.Fatalf("two kernels: %v", err)
	}
	k, err = KernelVersion(tree, "6.6.0")
	if err != nil || k.Image != filepath.Join(tree, "usr/lib/modules/6.6.0/vmlinuz") {
		t.Fatalf("KernelVersion: %+v, %v", k, err)
	}
	for _, v := range []string{"", "..", "a/b", "6.1.0-50-amd64"} {
		if _, err := KernelVersion(tree, v); err == nil {
			t.Errorf("KernelVersion(%q): no error", v)
		}
	}
	// A symlink is not an image.
	if err := os.Symlink("/boot/vmlinuz", filepath.Join(tree, "boot/vmlinuz-6.1.0-50-amd64")); err != nil {
		t.Fatal(err)
	}
	if _, err := KernelVersion(tree, "6.1.0-50-amd64"); err == nil {
		t.Error("symlinked image accepted")
	}
}
