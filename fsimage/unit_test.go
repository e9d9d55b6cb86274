package fsimage

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/internal/toolexec"
)

func TestMangleLabel(t *testing.T) {
	for _, c := range []struct{ typ, in, want string }{
		{"ext4", "root-x86-64", "root-x86-64"},
		{"ext4", "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnop"},
		{"ext4", "ääääääääää", "ääääääää"},              // 2-byte characters: 16 bytes
		{"ext4", "abcdefghijklmno€", "abcdefghijklmno"}, // a 3-byte character that does not fit
		{"ext3", "abcdefghijklmnopq", "abcdefghijklmnop"},
		{"ext2", "a\x00bc", "a"},
		{"xfs", "xfs-label-longer", "xfs-label-lo"},
		{"swap", "swap-label-that-is-long", "swap-label-that"},
		{"erofs", "usr-erofs-label-too-long", "usr-erofs-label-"},
		{"btrfs", strings.Repeat("x", 40), strings.Repeat("x", 40)},
		{"squashfs", "anything", ""},
		{"vfat", "esp", "ESP"},
		{"vfat", "Ünïcode.Label:long", "_N_CODE_LAB"},
		{"vfat", `a*b?c.d,e;f`, "A_B_C_D_E_F"},
		{"vfat", ":/\\|+=<>[]\"", "___________"},
		{"vfat", "tab\there", "TAB_HERE"},
		{"vfat", "del\x7f", "DEL_"},
		{"vfat", "", ""},
		{"vfat", "€€€€€€€€€€€€", "___________"},
	} {
		got, err := MangleLabel(c.typ, c.in)
		if err != nil || got != c.want {
			t.Errorf("MangleLabel(%s, %q) = %q, %v; want %q", c.typ, c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ typ, in string }{
		{"ext4", "bad\xffutf8"},
		{"vfat", "bad\xc3"},
		{"xfs", "\uFFFE"},
		{"vfat", "\uFDD0"},
		{"swap", "\U0001FFFF"},
		{"ext4", "\xed\xa0\x80"}, // a UTF-16 surrogate
		{"ext4", "\xc0\xaf"},     // overlong
	} {
		if got, err := MangleLabel(c.typ, c.in); err == nil {
			t.Errorf("MangleLabel(%s, %q) = %q, want an error", c.typ, c.in, got)
		}
	}
}

func FuzzMangleLabel(f *testing.F) {
	for _, s := range []string{"", "esp", "root-x86-64", "Ünïcode.Label:long", "\xff", "ääääääääää", "a\x00b", "\uFDD0", "€€€€€€€€€€€€"} {
		for _, typ := range []string{"vfat", "ext4", "xfs", "swap", "erofs", "btrfs", "squashfs"} {
			f.Add(typ, s)
		}
	}
	f.Fuzz(func(t *testing.T, typ, label string) {
		got, err := MangleLabel(typ, label)
		if err != nil {
			return
		}
		if strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("%q -> %q: NUL kept", label, got)
		}
		if _, mangled := labelMax[typ]; (mangled || typ == "vfat") && !utf8.ValidString(got) {
			t.Fatalf("%s %q -> %q: invalid UTF-8", typ, label, got)
		}
		if max, ok := labelMax[typ]; ok && (len(got) > max || !strings.HasPrefix(label, got)) {
			t.Fatalf("%s %q -> %q: not a prefix of at most %d bytes", typ, label, got, max)
		}
		if typ == "vfat" {
			if len(got) > fatLabelMax {
				t.Fatalf("%q -> %q: too long", label, got)
			}
			for _, c := range []byte(got) {
				if c < ' ' || c >= 127 || ('a' <= c && c <= 'z') || strings.IndexByte(fatForbidden, c) >= 0 {
					t.Fatalf("%q -> %q: byte %q not allowed", label, got, c)
				}
			}
		}
		// Mangling is idempotent.
		again, err := MangleLabel(typ, got)
		if err != nil || again != got {
			t.Fatalf("%s %q -> %q -> %q, %v", typ, label, got, again, err)
		}
	})
}

func TestUUIDFormats(t *testing.T) {
	if got := uuidString(testUUID); got != testUUIDString {
		t.Fatalf("uuidString = %s", got)
	}
	if got := fatVolumeID(testUUID); got != "01234567" {
		t.Fatalf("fatVolumeID = %s", got)
	}
	u, err := parseUUID(strings.ToUpper(testUUIDString))
	if err != nil || u != testUUID {
		t.Fatalf("parseUUID = %x %v", u, err)
	}
	if u, err := parseUUID(strings.ReplaceAll(testUUIDString, "-", "")); err != nil || u != testUUID {
		t.Fatalf("parseUUID = %x %v", u, err)
	}
	for _, bad := range []string{"", "0123", testUUIDString[:35] + "g", "01234567-89ab-4cde-8f01_23456789abcd"} {
		if _, err := parseUUID(bad); err == nil {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

func TestProtofile(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "b/c"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644))
	must(syscall.Chmod(filepath.Join(dir, "a"), 0o4755))
	must(syscall.Chmod(filepath.Join(dir, "b"), 0o2750))
	must(os.Chown(filepath.Join(dir, "b"), 3, 4))
	must(os.Symlink("/target", filepath.Join(dir, "b/l")))
	must(syscall.Mknod(filepath.Join(dir, "b/c/dev"), syscall.S_IFBLK|0o600, 8<<8|1))
	must(syscall.Mkfifo(filepath.Join(dir, "b/c/fifo"), 0o600))
	must(syscall.Mknod(filepath.Join(dir, "b/c/sock"), syscall.S_IFSOCK|0o600, 0))
	var b strings.Builder
	must(writeProtofile(&b, dir))
	want := `/
0 0
d--755 0 0
a -u-755 0 0 ./a
b d-g750 3 4
c d--755 0 0
dev b--600 0 0 8 1
fifo p--600 0 0
$
l l--777 0 4 /target
$
$
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	must(os.WriteFile(filepath.Join(dir, "with space"), nil, 0o644))
	if err := writeProtofile(&b, dir); err == nil || !strings.Contains(err.Error(), "with space") {
		t.Fatalf("err = %v", err)
	}
}

func TestDevNumbers(t *testing.T) {
	// glibc's makedev(259, 65537).
	dev := uint64(65537&0xff) | uint64(259&0xfff)<<8 | uint64(65537&^0xff)<<12 | uint64(259&^0xfff)<<32
	if devMajor(dev) != 259 || devMinor(dev) != 65537 {
		t.Fatalf("%d %d", devMajor(dev), devMinor(dev))
	}
}

// sparseSource makes a file of n bytes with data only in the given
// extents.
func sparseSource(t *testing.T, n int64, extents map[int64][]byte) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "src"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	for off, b := range extents {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestCopyIntoRange(t *testing.T) {
	const n = 3 * mib
	extents := map[int64][]byte{
		0:                pattern(5000, 1),
		mib + 12345:      pattern(100, 2),
		2*mib + 1:        pattern(3*4096, 3),   // spans blocks, with a zero block in the middle below
		n - 10:           []byte("0123456789"), // up to the end
		mib / 2:          make([]byte, 8192),   // written zeros: data to SEEK_DATA, skipped when punching
		2*mib + 1 + 4096: make([]byte, 4096),   // overwrites the middle block with zeros
	}
	src := sparseSource(t, n, extents)
	want := make([]byte, n)
	if _, err := src.ReadAt(want, 0); err != nil {
		t.Fatal(err)
	}
	for _, used := range []int64{n, n - 5} { // the whole file, or an image shorter than it
		for _, direct := range []bool{true, false} {
			const off, size = 4096 * 3, n + mib
			dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
			if err != nil {
				t.Fatal(err)
			}
			orig := pattern(off+size+100, 0xEE)
			if _, err := dst.WriteAt(orig, 0); err != nil {
				t.Fatal(err)
			}
			var w interface {
				WriteAt([]byte, int64) (int, error)
			} = dst
			if !direct {
				w = writerAtOnly{dst}
			}
			if err := copyIntoRange(w, off, size, src, used); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst.Name())
			dst.Close()
			if err != nil {
				t.Fatal(err)
			}
			exp := append([]byte(nil), orig...)
			copy(exp[off:off+size], make([]byte, size))
			copy(exp[off:], want[:used])
			if !bytes.Equal(got, exp) {
				t.Fatalf("used=%d direct=%v: content differs", used, direct)
			}
		}
	}
}

func TestCopyIntoRangeKeepsSparse(t *testing.T) {
	src := sparseSource(t, 64*mib, map[int64][]byte{0: pattern(4096, 9), 32 * mib: pattern(4096, 8)})
	dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := copyIntoRange(dst, mib, 64*mib, src, 64*mib); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(dst.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 65*mib || st.Blocks*512 > mib {
		t.Fatalf("size %d, allocated %d bytes", st.Size, st.Blocks*512)
	}
}

// TestErofsChecksum recomputes the superblock checksum mkfs.erofs wrote,
// then checks that a relabelled image passes fsck.erofs.
func TestErofsChecksum(t *testing.T) {
	testutil.RequireTool(t, "mkfs.erofs", "erofs-utils")
	fsck := testutil.RequireTool(t, "fsck.erofs", "erofs-utils")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "e.img")
	if _, err := toolexec.Run(context.Background(), "mkfs.erofs", []string{"-U", testUUIDString, img, dir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	block := b[erofsSuperOffset:4096]
	if binary.LittleEndian.Uint32(block[erofsOffFeatCompat:])&erofsCompatSBChksum == 0 {
		t.Fatal("mkfs.erofs wrote no superblock checksum")
	}
	if got, want := erofsChecksum(block), binary.LittleEndian.Uint32(block[erofsOffChecksum:]); got != want {
		t.Fatalf("checksum %#x, mkfs.erofs wrote %#x", got, want)
	}
	if err := setErofsLabel(img, "labelled"); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, fsck, img)
	checkBlkid(t, img, 0, map[string]string{"TYPE": "erofs", "LABEL": "labelled", "UUID": testUUIDString})
	// (Neither fsck.erofs 1.5 nor blkid 2.38 verifies the checksum; the
	// kernel does. The recomputation above is the proof of the formula.)
	b, _ = os.ReadFile(img)
	block = b[erofsSuperOffset:4096]
	if got, want := erofsChecksum(block), binary.LittleEndian.Uint32(block[erofsOffChecksum:]); got != want {
		t.Fatalf("after relabelling: checksum %#x, stored %#x", got, want)
	}
	if !bytes.Equal(block[erofsOffVolumeName:erofsOffVolumeName+16], []byte("labelled\x00\x00\x00\x00\x00\x00\x00\x00")) {
		t.Fatalf("volume name %q", block[erofsOffVolumeName:erofsOffVolumeName+16])
	}
	if err := setErofsLabel(filepath.Join(dir, "f"), "x"); err == nil {
		t.Fatal("no superblock accepted")
	}
	if err := setErofsLabel(img, strings.Repeat("x", 17)); err == nil {
		t.Fatal("17-byte label accepted")
	}
}
