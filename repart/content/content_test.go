package content

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/repart/internal/fscheck"
)

func TestDerivedUUIDs(t *testing.T) {
	for _, c := range []struct {
		part, fs, luks string
	}{
		// Disk-format spec §4.5: root₀ of the seed 0123456789abcdef… and
		// its ext4 UUID, verified with systemd-repart 252; the LUKS UUID
		// of the golden encrypted partition, read from its header.
		{"9e90c9c3-c7e8-44f2-bf19-9ae2689de795", "e23fa935-5911-428c-b168-a4b761ee82bd", "1ac2da86-e263-4df5-889d-ad42a5da46ca"},
		{goldenPartUUID, "", "21ff6eff-9dc6-4557-b8a9-2ffc4182df12"},
		// A Verity=data file system in systemd 252: keyed with zeros.
		{"00000000-0000-0000-0000-000000000000", "3faed36c-01a6-4ccd-9b78-a1f4cbce9b1d", ""},
	} {
		p, err := gpt.ParseGUID(c.part)
		if err != nil {
			t.Fatal(err)
		}
		if got := FileSystemUUID(p).String(); c.fs != "" && got != c.fs {
			t.Errorf("FileSystemUUID(%s) = %s, want %s", c.part, got, c.fs)
		}
		if got := LUKSUUID(p).String(); c.luks != "" && got != c.luks {
			t.Errorf("LUKSUUID(%s) = %s, want %s", c.part, got, c.luks)
		}
	}
}

func TestEffectiveFormatAndValidate(t *testing.T) {
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{}, ""},
		{Spec{Format: "xfs"}, "xfs"},
		{Spec{MakeDirectories: []string{"/a"}}, "ext4"},
		{Spec{CopyFiles: []fsimage.CopyFile{{Source: "/a", Target: "/"}}}, "ext4"},
		{Spec{Encrypt: EncryptKeyFile}, "ext4"},
		{Spec{Encrypt: EncryptKeyFile, CopyBlocks: "/x"}, ""},
		{Spec{Encrypt: EncryptOff}, ""},
	} {
		if got := c.s.EffectiveFormat(); got != c.want {
			t.Errorf("%+v: EffectiveFormat %q, want %q", c.s, got, c.want)
		}
	}
	for name, s := range map[string]Spec{
		"blocks+format": {CopyBlocks: "/x", Format: "ext4"},
		"blocks+dirs":   {CopyBlocks: "/x", MakeDirectories: []string{"/a"}},
		"auto":          {CopyBlocks: "auto"},
		"swap+files":    {Format: "swap", MakeDirectories: []string{"/a"}},
		"f2fs":          {Format: "f2fs"},
		"tpm2":          {Encrypt: EncryptTPM2},
		"bad mode":      {Encrypt: "luks"},
		"sector size":   {SectorSize: 768},
	} {
		if err := s.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range []Range{{-512, 4096}, {0, 0}, {100, 4096}, {0, 1000}, {1 << 62, 4096}} {
		if err := Fill(context.Background(), f, r.Offset, r.Size, Spec{}); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Fill(ctx, f, 0, 4096, Spec{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestMinSize(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "blob"), make([]byte, 5001*512), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s     Spec
		grain int64
		want  int64
	}{
		{Spec{}, 4096, 0},
		{Spec{Format: "ext4"}, 4096, 1 << 20},
		{Spec{Format: "xfs"}, 4096, 14 << 20},
		{Spec{Format: "btrfs"}, 4096, 256 << 20},
		{Spec{Format: "vfat"}, 4096, 4096},
		{Spec{Format: "squashfs"}, 4096, 4096},
		{Spec{Format: "swap"}, 1 << 20, 1 << 20},
		{Spec{MakeDirectories: []string{"/a"}}, 4096, 1 << 20}, // implied ext4
		{Spec{Encrypt: EncryptKeyFile}, 4096, 16<<20 + 1<<20},
		{Spec{Encrypt: EncryptKeyFile, Format: "vfat"}, 4096, 16<<20 + 4096},
		{Spec{CopyBlocks: "/blob", Root: root}, 4096, 2564096},
		{Spec{CopyBlocks: "/blob", Root: root, Encrypt: EncryptKeyFile}, 4096, 16<<20 + 2564096},
	} {
		got, err := MinSize(c.s, c.grain)
		if err != nil || got != c.want {
			t.Errorf("MinSize(%+v, %d) = %d, %v; want %d", c.s, c.grain, got, err, c.want)
		}
	}
	if _, err := MinSize(Spec{CopyBlocks: "/missing", Root: root}, 4096); err == nil {
		t.Error("missing CopyBlocks= source accepted")
	}
	if _, err := MinSize(Spec{CopyBlocks: "auto"}, 4096); err == nil {
		t.Error("CopyBlocks=auto accepted")
	}
}

func TestMinimizedSize(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs", "squashfs-tools")
	root := t.TempDir()
	makeTree(t, filepath.Join(root, "srv"))
	n, err := MinimizedSize(context.Background(), Spec{Format: "squashfs", Root: root,
		CopyFiles: []fsimage.CopyFile{{Source: "/srv", Target: "/"}}, TempDir: t.TempDir()})
	if err != nil || n <= 0 || n%4096 != 0 || n > 64<<10 {
		t.Errorf("MinimizedSize = %d, %v", n, err)
	}
	if _, err := MinimizedSize(context.Background(), Spec{Format: "ext4"}); err == nil {
		t.Error("ext4 accepted")
	}
}

func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"c/abs":    "/a/b",          // absolute: inside the root
		"c/rel":    "../a",          // relative
		"c/escape": "../../../../a", // .. stops at the root
		"c/file":   "/a/b/f",
		"c/loop":   "loop2",
		"c/loop2":  "loop",
		"c/dangle": "/nothing",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for in, want := range map[string]string{
		"/a/b/f":         "a/b/f",
		"a/b/f":          "a/b/f",
		"/c/abs/f":       "a/b/f",
		"/c/rel/b":       "a/b",
		"/c/escape/b/f":  "a/b/f",
		"/../../a":       "a",
		"/c/file":        "a/b/f",
		"/c/./abs/../b/": "a/b",
		"/":              "",
	} {
		got, err := resolveInRoot(root, in)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("resolveInRoot(%q) = %q, %v; want %q", in, got, err, filepath.Join(root, want))
		}
	}
	for _, in := range []string{"/c/loop", "/c/dangle", "/missing", "/a/b/f/x", ""} {
		if got, err := resolveInRoot(root, in); err == nil {
			t.Errorf("resolveInRoot(%q) = %q, want an error", in, got)
		}
	}
}

func TestCopyBlocksSources(t *testing.T) {
	root := t.TempDir()
	for name, size := range map[string]int{"ok": 4096, "odd": 1000, "empty": 0, "big": 8192} {
		if err := os.WriteFile(filepath.Join(root, name), pattern(int64(size), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fill := func(src string, size int64) error {
		return Fill(context.Background(), f, 4096, size, Spec{CopyBlocks: src, Root: root})
	}
	if err := fill("/ok", 4096); err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{
		"/odd":      "not a multiple of 512",
		"/empty":    "is empty",
		"/big":      "do not fit",
		"/dir":      "only regular files",
		"/dev/null": "no such file",
		"/missing":  "no such file",
	} {
		if err := fill(src, 4096); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CopyBlocks=%s: %v, want %q", src, err, want)
		}
	}
	// Without a root, host paths are taken as they are; a character
	// device is refused.
	if err := Fill(context.Background(), f, 0, 4096, Spec{CopyBlocks: "/dev/null"}); err == nil || !strings.Contains(err.Error(), "character device") {
		t.Errorf("CopyBlocks=/dev/null: %v", err)
	}
}

// TestFillVFATWithFiles populates a vfat partition, which systemd-repart
// can only do where the kernel mounts vfat, and checks the files with
// mtools.
func TestFillVFATWithFiles(t *testing.T) {
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	testutil.RequireTool(t, "mcopy", "mtools")
	root := t.TempDir()
	tree := makeTree(t, filepath.Join(root, "srv"))
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := Spec{Format: "vfat", Root: root, Label: "esp", FSUUID: gpt.GUID{0xde, 0xad, 0xbe, 0xef},
		CopyFiles:       []fsimage.CopyFile{{Source: "/srv", Target: "/"}, {Source: "srv/a.txt", Target: "/EFI/x.txt"}},
		MakeDirectories: []string{"/loader/entries"}, TempDir: t.TempDir()}
	if err := Fill(context.Background(), f, mib, 64*mib, s); err != nil {
		t.Fatal(err)
	}
	got := fscheck.Blkid(t, img, mib)
	if got["TYPE"] != "vfat" || got["UUID"] != "DEAD-BEEF" || got["LABEL"] != "ESP" {
		t.Errorf("blkid: %v", got)
	}
	want := map[string]fscheck.Entry{"EFI": {Type: 'd'}, "EFI/x.txt": {Type: '-', Data: tree["a.txt"].Data},
		"loader": {Type: 'd'}, "loader/entries": {Type: 'd'}}
	for p, e := range tree {
		if p != "link" { // vfat has no symlinks; a top-level one is left out
			want[p] = fscheck.Entry{Type: e.Type, Data: e.Data}
		}
	}
	fscheck.CompareTrees(t, "vfat", fscheck.List(t, "vfat", fscheck.Extract(t, img, mib, 64*mib)), want)
}

// TestFillStaysInRange fills a range in the middle of a file full of a
// pattern with every kind of content and checks that not one byte outside
// the range changed, and that what the content leaves over is zero.
func TestFillStaysInRange(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	testutil.RequireTool(t, "mksquashfs", "squashfs-tools")
	testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	root := t.TempDir()
	makeTree(t, filepath.Join(root, "srv"))
	blob := pattern(1*mib+512, 3)
	if err := os.WriteFile(filepath.Join(root, "blob"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	const before, size, after = 3 * mib, 24 * mib, 2 * mib
	files := []fsimage.CopyFile{{Source: "/srv", Target: "/"}}
	cases := map[string]Spec{
		"empty":     {},
		"blocks":    {CopyBlocks: "/blob", Root: root},
		"ext4":      {Format: "ext4", Root: root, CopyFiles: files},
		"squashfs":  {Format: "squashfs", Root: root, CopyFiles: files},
		"encrypted": {Format: "ext4", Encrypt: EncryptKeyFile, PBKDF: cheapPBKDF, Root: root, CopyFiles: files},
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			s.TempDir = t.TempDir()
			img := filepath.Join(t.TempDir(), "disk.img")
			orig := pattern(before+size+after, 5)
			if err := os.WriteFile(img, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := Fill(context.Background(), f, before, size, s); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(orig) || !bytes.Equal(got[:before], orig[:before]) || !bytes.Equal(got[before+size:], orig[before+size:]) {
				t.Fatal("bytes outside the range changed")
			}
			in := got[before : before+size]
			if bytes.Contains(in, orig[before+size/2:before+size/2+64]) {
				t.Error("the old content is still inside the range")
			}
			switch name {
			case "empty":
				if !bytes.Equal(in, make([]byte, size)) {
					t.Error("an empty partition is not all zeros")
				}
			case "blocks":
				if !bytes.Equal(in[:len(blob)], blob) || !bytes.Equal(in[len(blob):], make([]byte, size-len(blob))) {
					t.Error("CopyBlocks= content is not the source followed by zeros")
				}
			case "squashfs":
				if !bytes.Equal(in[size-mib:], make([]byte, mib)) {
					t.Error("the end of the squashfs partition is not zero")
				}
			}
		})
	}
	// Verity: data filled, then the hash and signature partitions.
	t.Run("verity", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "disk.img")
		orig := pattern(10*mib, 6)
		if err := os.WriteFile(img, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		data, hash, sig := Range{mib, 4 * mib}, Range{6 * mib, mib}, Range{8 * mib, 16384}
		root, err := FormatVerityHash(context.Background(), f, data, hash, VerityOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cert, key := testSigner(t)
		if err := WriteVeritySignature(f, sig, root, cert, key); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range []Range{{0, 6 * mib}, {7 * mib, mib}, {8*mib + 16384, 2*mib - 16384}} {
			if !bytes.Equal(got[out.Offset:out.Offset+out.Size], orig[out.Offset:out.Offset+out.Size]) {
				t.Errorf("bytes in %v changed", out)
			}
		}
		need, err := VerityHashSize(data.Size, 512)
		if err != nil {
			t.Fatal(err)
		}
		if tail := got[hash.Offset+need : hash.Offset+hash.Size]; !bytes.Equal(tail, make([]byte, len(tail))) {
			t.Error("the hash partition is not zero after the tree")
		}
		p, err := verity.ReadSuperblock(f, hash.Offset)
		if err != nil || p.DataBlockSize != 512 || len(p.Salt) != 32 || bytes.Equal(p.Salt, make([]byte, 32)) || p.UUID == ([16]byte{}) {
			t.Errorf("superblock %+v %v", p, err)
		}
	})
}

func TestVerityOptions(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(8 * mib); err != nil {
		t.Fatal(err)
	}
	var seed [16]byte
	copy(seed[:], mustHex(t, testSeed))
	salt, uuid := VeritySeeded(seed)
	// Spec §2.6: systemd 255's values for this seed.
	if hexs := hex.EncodeToString(salt); hexs != "c65b6ab68edf421fcc0cb48ba60f7f14f5186b4d003d21ab3b334b91de16759c" {
		t.Errorf("salt %s", hexs)
	}
	if uuid.String() != "898929e6-7747-423e-8593-3659ba461e7c" {
		t.Errorf("uuid %s", uuid)
	}
	data, hash := Range{0, 4 * mib}, Range{4 * mib, 2 * mib}
	r1, err := FormatVerityHash(context.Background(), f, data, hash, VerityOptions{BlockSize: 4096, Salt: salt, UUID: uuid})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := FormatVerityHash(context.Background(), f, data, hash, VerityOptions{BlockSize: 4096, Salt: salt, UUID: uuid})
	if err != nil || !bytes.Equal(r1, r2) {
		t.Errorf("seeded verity is not reproducible: %x %x %v", r1, r2, err)
	}
	p, err := verity.ReadSuperblock(f, hash.Offset)
	if err != nil || p.DataBlockSize != 4096 || !bytes.Equal(p.Salt, salt) || p.UUID != [16]byte(uuid) || p.DataBlocks != 1024 {
		t.Errorf("superblock %+v %v", p, err)
	}
	for name, c := range map[string]struct {
		data, hash Range
		o          VerityOptions
	}{
		"overlap":    {Range{0, 4 * mib}, Range{3 * mib, mib}, VerityOptions{}},
		"too small":  {Range{0, 4 * mib}, Range{4 * mib, 4096}, VerityOptions{}},
		"block size": {Range{0, 4 * mib}, Range{4 * mib, mib}, VerityOptions{BlockSize: 1000}},
		"unaligned":  {Range{0, 4*mib + 512}, Range{5 * mib, mib}, VerityOptions{BlockSize: 4096}},
	} {
		if _, err := FormatVerityHash(context.Background(), f, c.data, c.hash, c.o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n, err := VerityHashSize(16*mib, 512); err != nil || n <= mib {
		// Spec §2.5: 16 MiB of data in 512-byte blocks need more than 1 MiB.
		t.Errorf("VerityHashSize(16 MiB, 512) = %d, %v", n, err)
	}
	if _, _, err := VerityPartitionUUIDs([]byte{1, 2, 3}); err == nil {
		t.Error("VerityPartitionUUIDs accepted a 3-byte hash")
	}
	d, h, err := VerityPartitionUUIDs(mustHex(t, "c67d57c29a5ff038b81a5a3824cff717cfaae73c7eafdf3caf530e09a626ca3c"))
	if err != nil || d.String() != "c67d57c2-9a5f-f038-b81a-5a3824cff717" || h.String() != "cfaae73c-7eaf-df3c-af53-0e09a626ca3c" {
		t.Errorf("VerityPartitionUUIDs: %s %s %v", d, h, err)
	}
}

// testSigner returns a self-signed RSA signer made with openssl.
func testSigner(t *testing.T) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	_, _, cert, key := signer(t, t.TempDir())
	return cert, key
}
