package initrd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/build/debian/debiantest"
	"github.com/imago-os/imago/internal/testutil"
)

// TestInteropBuild builds the default initrd with the tree's real dracut,
// unpacks it with the real zstd, checks what first boot needs is in it,
// compares the member list with GNU cpio's, and builds it again from the
// cache and from scratch: the bytes must be the same each time.
func TestInteropBuild(t *testing.T) {
	zstd := testutil.RequireTool(t, "zstd", "zstd")
	chroot := testutil.RequireTool(t, "chroot", "coreutils")
	testutil.RequireTool(t, "unshare", "util-linux")
	tree := debiantest.Tree(t).Tree
	before, err := debiantest.Listing(tree)
	if err != nil {
		t.Fatal(err)
	}

	epoch := debiantest.Epoch
	spec := Spec{Tree: tree, RepartDir: "testdata/repart.d", SourceDateEpoch: &epoch}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	scratch := t.TempDir()
	cache := filepath.Join(scratch, "cache")
	out := filepath.Join(scratch, "initrd.img")
	start := time.Now()
	res, err := Build(ctx, spec, out, Options{CacheDir: cache, Progress: func(m string) { t.Log(m) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %s: %d bytes zstd, %d bytes uncompressed, %d members; modules %v; built in %v",
		time.Since(start).Round(time.Millisecond), res.Size, res.UncompressedSize, res.Files, res.Modules, res.Builtin)
	if res.CacheHit {
		t.Fatal("an empty cache had the initrd")
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(img)) != res.Size || !bytes.HasPrefix(img, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("%s: %d bytes, not a zstd frame of %d", out, len(img), res.Size)
	}

	// Unpack with the real zstd and read every member.
	archive := testutil.Run(t, zstd, "-dc", out)
	if int64(len(archive)) != res.UncompressedSize {
		t.Fatalf("zstd -d gives %d bytes, Build said %d", len(archive), res.UncompressedSize)
	}
	entries, err := readNewc(bytes.NewReader(archive), func(name string) bool { return strings.HasPrefix(name, "usr/lib/repart.d/") })
	if err != nil {
		t.Fatal(err)
	}
	c := newContents(entries)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	all := "\n" + strings.Join(names, "\n") + "\n"
	for _, want := range []string{
		"usr/bin/systemd-repart",
		"usr/lib/systemd/system/systemd-repart.service",
		"usr/lib/systemd/system/initrd-root-fs.target.wants/systemd-repart.service",
		"usr/lib/systemd/system-generators/systemd-veritysetup-generator",
		"usr/lib/systemd/systemd-veritysetup",
		"usr/lib/systemd/systemd-cryptsetup",
		"usr/lib/systemd/system-generators/systemd-cryptsetup-generator",
		"usr/lib/systemd/systemd-pcrphase",
		"usr/lib/systemd/system/initrd.target.wants/systemd-pcrphase-initrd.service",
		"usr/lib/systemd/systemd-udevd",
		"usr/sbin/mkfs.btrfs",
		"usr/sbin/mkswap",
		"etc/initrd-release",
	} {
		if !c.has(want) {
			t.Errorf("no /%s", want)
		}
	}
	for _, suffix := range []string{
		"/cryptsetup/libcryptsetup-token-systemd-tpm2.so", "/libtss2-esys.so.0", "/libtss2-rc.so.0", "/libtss2-mu.so.0",
		"/libtss2-tcti-device.so.0", "/libcryptsetup.so.12", "/libfdisk.so.1",
	} {
		if !strings.Contains(all, suffix+"\n") {
			t.Errorf("no usr/lib/*%s", suffix)
		}
	}
	for _, f := range []string{"20-usr-b.conf", "30-root.conf", "50-swap.conf"} {
		want, err := os.ReadFile(filepath.Join("testdata/repart.d", f))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := c.data("usr/lib/repart.d/" + f); !ok || !bytes.Equal(got, want) {
			t.Errorf("/usr/lib/repart.d/%s: %q", f, got)
		}
	}
	kver := res.KernelVersion
	builtin, err := readBuiltin(filepath.Join(tree, "usr/lib/modules", kver))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"virtio_blk", "virtio_pci", "virtio_scsi", "virtio_console", "dm-verity", "dm-crypt", "dm-mod",
		"erofs", "squashfs", "btrfs", "ext4", "vfat", "tpm_tis", "tpm_crb", "efivarfs"} {
		found := false
		for _, e := range entries {
			if n, ok := moduleName(e.Name); ok && n == normalizeModule(m) && strings.HasPrefix(e.Name, "usr/lib/modules/"+kver+"/") {
				found = true
			}
		}
		if !found && !builtin[normalizeModule(m)] {
			t.Errorf("kernel module %s neither in the initrd nor built in", m)
		}
	}

	// GNU cpio (the tree's) lists the same members.
	listFile := filepath.Join(tree, "var/tmp/imago-test-initrd.cpio")
	if err := os.WriteFile(listFile, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	cpioOut := testutil.Run(t, chroot, tree, "/usr/bin/cpio", "-it", "--quiet", "-F", "/var/tmp/imago-test-initrd.cpio")
	os.Remove(listFile)
	var cpioNames []string
	for _, l := range strings.Split(strings.TrimSpace(string(cpioOut)), "\n") {
		cpioNames = append(cpioNames, cleanName(l))
	}
	sort.Strings(cpioNames)
	sort.Strings(names)
	if strings.Join(cpioNames, "\n") != strings.Join(names, "\n") {
		t.Errorf("cpio -t lists %d members, readNewc %d", len(cpioNames), len(names))
	}

	// The build leaves the tree as it was and nothing mounted.
	after, err := debiantest.Listing(tree)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Error("building the initrd changed the tree")
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), tree) {
		t.Errorf("mounts left in the tree:\n%s", mounts)
	}

	// From the cache: the same bytes, at once.
	start = time.Now()
	out2 := filepath.Join(scratch, "initrd2.img")
	res2, err := Build(ctx, spec, out2, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.CacheHit || res2.Key != res.Key || res2.Size != res.Size || res2.Files != res.Files {
		t.Errorf("second build: %+v", res2)
	}
	if img2, err := os.ReadFile(out2); err != nil || !bytes.Equal(img2, img) {
		t.Errorf("the cached initrd differs: %v", err)
	}
	t.Logf("from the cache in %s", time.Since(start).Round(time.Millisecond))

	// From scratch again: reproducible.
	start = time.Now()
	out3 := filepath.Join(scratch, "initrd3.img")
	res3, err := Build(ctx, spec, out3, Options{CacheDir: filepath.Join(scratch, "cache3")})
	if err != nil {
		t.Fatal(err)
	}
	if res3.CacheHit {
		t.Error("an empty cache had the initrd")
	}
	if img3, err := os.ReadFile(out3); err != nil || !bytes.Equal(img3, img) {
		t.Errorf("a second build from scratch gives other bytes (%d, first %d): %v", res3.Size, res.Size, err)
	}
	t.Logf("rebuilt in %s: same bytes", time.Since(start).Round(time.Millisecond))
}
