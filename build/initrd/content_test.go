package initrd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeTreeFile(t *testing.T, tree, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(tree, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestReadRepartDir(t *testing.T) {
	files, tools, err := readRepartDir("testdata/repart.d")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if strings.Join(names, " ") != "20-usr-b.conf 30-root.conf 50-swap.conf" {
		t.Errorf("files %v", names)
	}
	if strings.Join(tools, " ") != "mkfs.btrfs mkswap" {
		t.Errorf("tools %v", tools)
	}
	if f, tl, err := readRepartDir(""); err != nil || f != nil || tl != nil {
		t.Errorf("no dir: %v %v %v", f, tl, err)
	}
	empty := t.TempDir()
	if _, _, err := readRepartDir(empty); err == nil {
		t.Error("a directory without *.conf files accepted")
	}
	bad := t.TempDir()
	writeTreeFile(t, bad, "10-x.conf", "[Partition]\nType=root\nFormat=ntfs\n", 0o644)
	if _, _, err := readRepartDir(bad); err == nil || !strings.Contains(err.Error(), "10-x.conf:3") {
		t.Errorf("Format=ntfs: %v", err)
	}
	writeTreeFile(t, bad, "10-x.conf", "Type=root\n", 0o644)
	if _, _, err := readRepartDir(bad); err == nil {
		t.Error("assignment outside a section accepted")
	}
}

func TestResolveInstall(t *testing.T) {
	tree := t.TempDir()
	writeTreeFile(t, tree, "usr/lib/x86_64-linux-gnu/libtss2-esys.so.0", "", 0o644)
	writeTreeFile(t, tree, "usr/lib/i386-linux-gnu/libtss2-esys.so.0", "", 0o644)
	writeTreeFile(t, tree, "usr/sbin/mkfs.btrfs", "", 0o755)
	got, err := resolveInstall(tree, []string{"/usr/lib/*/libtss2-esys.so.0", "/usr/lib/x86_64-linux-gnu/libtss2-esys.so.0"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "/usr/lib/i386-linux-gnu/libtss2-esys.so.0 /usr/lib/x86_64-linux-gnu/libtss2-esys.so.0" {
		t.Fatalf("got %v", got)
	}
	for _, p := range []string{"/usr/lib/*/libtss2-rc.so.0", "usr/lib", "/usr/../etc/passwd", "/a b", "/[", "/x'y"} {
		if _, err := resolveInstall(tree, []string{p}); err == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
	if p, err := findProgram(tree, "mkfs.btrfs"); err != nil || p != "/usr/sbin/mkfs.btrfs" {
		t.Errorf("findProgram: %q %v", p, err)
	}
	if _, err := findProgram(tree, "mkswap"); err == nil || !strings.Contains(err.Error(), "mkswap") {
		t.Errorf("missing program: %v", err)
	}
}

func TestModules(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/md/dm-verity.ko":     "dm_verity",
		"kernel/fs/erofs/erofs.ko.xz":        "erofs",
		"kernel/drivers/char/tpm/tpm_tis.ko": "tpm_tis",
		"x/virtio-blk.ko.zst":                "virtio_blk",
		"y.ko.gz":                            "y",
	} {
		if got, ok := moduleName(in); !ok || got != want {
			t.Errorf("moduleName(%q) = %q %v", in, got, ok)
		}
	}
	for _, in := range []string{"modules.dep", ".ko", "a.kox"} {
		if _, ok := moduleName(in); ok {
			t.Errorf("moduleName(%q) accepted", in)
		}
	}
	dir := t.TempDir()
	if b, err := readBuiltin(dir); err != nil || len(b) != 0 {
		t.Fatalf("no modules.builtin: %v %v", b, err)
	}
	writeTreeFile(t, dir, "modules.builtin", "kernel/drivers/char/tpm/tpm_tis.ko\nkernel/drivers/char/tpm/tpm_crb.ko\n\n", 0o644)
	b, err := readBuiltin(dir)
	if err != nil || !b["tpm_tis"] || !b["tpm_crb"] || len(b) != 2 {
		t.Fatalf("builtin %v %v", b, err)
	}
}

func TestCheck(t *testing.T) {
	entries := []cpioEntry{
		{Name: "init", Mode: modeSymlink | 0o777, Size: 23, Data: []byte("usr/lib/systemd/systemd")},
		{Name: "usr/lib/systemd/systemd", Mode: modeRegular | 0o755},
		{Name: "usr/lib/repart.d/30-root.conf", Mode: modeRegular | 0o644, Size: 4, Data: []byte("root")},
		{Name: "usr/lib/repart.d/50-swap.conf", Mode: modeRegular | 0o644, Size: 4, Data: []byte("SWAP")},
		{Name: "usr/lib/modules/6.1.0-56-amd64/kernel/drivers/md/dm-verity.ko", Mode: modeRegular | 0o644},
		{Name: "usr/lib/modules/6.1.0-50-amd64/kernel/fs/erofs/erofs.ko", Mode: modeRegular | 0o644},
	}
	c := newContents(entries)
	req := requirements{
		files:   []string{"usr/lib/systemd/systemd", "init"},
		repart:  []repartFile{{Name: "30-root.conf", Data: []byte("root")}},
		drivers: []string{"dm_verity", "tpm-tis"},
		kernel:  "6.1.0-56-amd64",
		builtin: map[string]bool{"tpm_tis": true},
	}
	dc, err := c.check(req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(dc.modules, " ") != "dm_verity" || strings.Join(dc.builtin, " ") != "tpm-tis" {
		t.Fatalf("drivers %+v", dc)
	}
	req.files = append(req.files, "usr/bin/systemd-repart")
	req.repart = append(req.repart, repartFile{Name: "50-swap.conf", Data: []byte("swap")}, repartFile{Name: "60-home.conf"})
	req.drivers = append(req.drivers, "erofs")
	_, err = c.check(req)
	if err == nil {
		t.Fatal("missing pieces not found")
	}
	for _, want := range []string{"no /usr/bin/systemd-repart", "/usr/lib/repart.d/50-swap.conf differs", "no /usr/lib/repart.d/60-home.conf",
		"kernel module erofs neither in the initrd nor built into 6.1.0-56-amd64"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// fakeTree makes a tree with just enough for resolve: a kernel, a dpkg
// database, dracut, the default install files and mkfs tools.
func fakeTree(t *testing.T) string {
	tree := t.TempDir()
	writeTreeFile(t, tree, "boot/vmlinuz-6.1.0-56-amd64", "k", 0o644)
	writeTreeFile(t, tree, "usr/lib/modules/6.1.0-56-amd64/modules.builtin", "", 0o644)
	writeTreeFile(t, tree, "var/lib/dpkg/status", "Package: dracut\nStatus: install ok installed\nVersion: 059-4\nArchitecture: all\n", 0o644)
	writeTreeFile(t, tree, "usr/bin/dracut", "#!/bin/bash\n", 0o755)
	writeTreeFile(t, tree, "usr/sbin/mkfs.btrfs", "", 0o755)
	writeTreeFile(t, tree, "usr/sbin/mkswap", "", 0o755)
	for _, p := range DefaultInstall() {
		writeTreeFile(t, tree, strings.ReplaceAll(p, "*", "x86_64-linux-gnu"), "", 0o644)
	}
	return tree
}

func TestResolve(t *testing.T) {
	tree := fakeTree(t)
	epoch := time.Unix(1700000000, 0)
	base := Spec{Tree: tree, RepartDir: "testdata/repart.d", SourceDateEpoch: &epoch}
	r, err := resolve(base)
	if err != nil {
		t.Fatal(err)
	}
	if r.kernel.Version != "6.1.0-56-amd64" || r.Compression != "zstd" || r.level != 9 {
		t.Fatalf("resolved %+v", r)
	}
	joined := strings.Join(r.install, " ")
	for _, want := range []string{"/usr/sbin/mkfs.btrfs", "/usr/sbin/mkswap", "/usr/lib/x86_64-linux-gnu/libtss2-esys.so.0", "/usr/lib/systemd/systemd-pcrphase"} {
		if !strings.Contains(joined, want) {
			t.Errorf("install lacks %s: %s", want, joined)
		}
	}
	key := r.key()

	// Every input changes the key.
	later := time.Unix(1700000001, 0)
	otherRepart := t.TempDir()
	writeTreeFile(t, otherRepart, "30-root.conf", "[Partition]\nType=root\nFormat=btrfs\n", 0o644)
	for name, change := range map[string]func(*Spec){
		"modules":     func(s *Spec) { s.Modules = append(DefaultModules(), "systemd-sysusers") },
		"drivers":     func(s *Spec) { s.Drivers = []string{"virtio_blk"} },
		"filesystems": func(s *Spec) { s.Filesystems = []string{"erofs"} },
		"install":     func(s *Spec) { s.Install = DefaultInstall()[:3] },
		"repart":      func(s *Spec) { s.RepartDir = otherRepart },
		"files":       func(s *Spec) { s.Files = DefaultFiles()[1:] },
		"file data":   func(s *Spec) { s.Files = []File{{Path: "/etc/x", Data: []byte("y")}} },
		"no repart":   func(s *Spec) { s.RepartDir = "" },
		"gzip":        func(s *Spec) { s.Compression = "gzip" },
		"level":       func(s *Spec) { s.CompressionLevel = 19 },
		"epoch":       func(s *Spec) { s.SourceDateEpoch = &later },
	} {
		s := base
		change(&s)
		r, err := resolve(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.key() == key {
			t.Errorf("%s does not change the key", name)
		}
	}
	// So do the tree's packages and dracut configuration.
	writeTreeFile(t, tree, "etc/dracut.conf.d/10-x.conf", "add_drivers+=\" nvme \"\n", 0o644)
	if r, _ := resolve(base); r.key() == key {
		t.Error("dracut configuration does not change the key")
	}
	writeTreeFile(t, tree, "var/lib/dpkg/status", "Package: dracut\nStatus: install ok installed\nVersion: 059-5\nArchitecture: all\n", 0o644)
	if r, _ := resolve(base); r.key() == key {
		t.Error("the manifest does not change the key")
	}

	for name, change := range map[string]func(*Spec){
		"no tree":     func(s *Spec) { s.Tree = "" },
		"compression": func(s *Spec) { s.Compression = "xz" },
		"level":       func(s *Spec) { s.Compression, s.CompressionLevel = "gzip", 12 },
		"module name": func(s *Spec) { s.Modules = []string{"systemd; rm -rf /"} },
		"driver name": func(s *Spec) { s.Drivers = []string{"-x"} },
		"kernel":      func(s *Spec) { s.KernelVersion = "5.10.0" },
		"install":     func(s *Spec) { s.Install = []string{"/usr/lib/nothing"} },
	} {
		s := base
		change(&s)
		if _, err := resolve(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, missing := range []string{"usr/sbin/mkfs.btrfs", "usr/bin/dracut", "var/lib/dpkg/status"} {
		s := base
		s.Tree = fakeTree(t)
		if err := os.Remove(filepath.Join(s.Tree, missing)); err != nil {
			t.Fatal(err)
		}
		if _, err := resolve(s); err == nil {
			t.Errorf("a tree without %s accepted", missing)
		}
	}
}

func TestResolveRefusesBadFilePaths(t *testing.T) {
	tree := fakeTree(t)
	for _, p := range []string{"etc/x", "/", "/etc/../x", "/etc//x", ""} {
		if _, err := resolve(Spec{Tree: tree, Files: []File{{Path: p}}}); err == nil || !strings.Contains(err.Error(), "clean absolute path") {
			t.Errorf("file path %q: %v", p, err)
		}
	}
}
