package content

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/repart/internal/fscheck"
)

const (
	testSeed  = "0123456789abcdef0123456789abcdef"
	testEpoch = 1640995200
)

type sfdiskPartition struct {
	Start int64  `json:"start"`
	Size  int64  `json:"size"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	Type  string `json:"type"`
}

func sfdiskPartitions(t *testing.T, img string) []sfdiskPartition {
	t.Helper()
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	var table struct {
		PartitionTable struct {
			Partitions []sfdiskPartition `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(testutil.Run(t, sfdisk, "--json", img), &table); err != nil {
		t.Fatal(err)
	}
	return table.PartitionTable.Partitions
}

// signer makes an RSA key and self-signed certificate with openssl, as an
// image builder would.
func signer(t *testing.T, dir string) (keyPath, certPath string, cert *x509.Certificate, key crypto.Signer) {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	keyPath, certPath = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	testutil.Run(t, openssl, "req", "-x509", "-nodes", "-subj", "/CN=imago repart content", "-days", "3650",
		"-keyout", keyPath, "-out", certPath, "-newkey", "rsa:2048")
	block := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM", p)
		}
		return blk.Bytes
	}
	cert, err := x509.ParseCertificate(block(certPath))
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(block(keyPath))
	if err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath, cert, k.(crypto.Signer)
}

// repartCase is one partition definition and how to check our content
// against systemd-repart's.
type repartCase struct {
	name, conf string
	spec       Spec   // Label and UUIDs are filled in from systemd-repart's table
	fsType     string // for blkid and the file listing
	compare    string // "bytes", "vfat", "tree", "verity-data", "verity-hash", "verity-sig"
	wantFiles  []string
}

// TestMatchesSystemdRepart has systemd-repart 252 create a disk image with
// one partition per kind of content, then fills the same ranges of a
// second image with Fill, FormatVerityHash and WriteVeritySignature, using
// the labels and UUIDs of systemd-repart's table, and compares: blkid's
// view (UUID, LABEL, TYPE, BLOCK_SIZE, ...) for every file system, bytes
// for swap, squashfs, CopyBlocks=, the verity hash and the signature, vfat
// everywhere but the label entry's timestamps, and the files offline tools
// extract for ext4, xfs, btrfs and a staged squashfs.
func TestMatchesSystemdRepart(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	for _, tool := range []struct{ name, pkg string }{{"mkfs.vfat", "dosfstools"}, {"mkfs.ext4", "e2fsprogs"},
		{"mkfs.xfs", "xfsprogs"}, {"mkfs.btrfs", "btrfs-progs"}, {"mksquashfs", "squashfs-tools"}, {"mkswap", "util-linux"},
		{"veritysetup", "cryptsetup-bin"}} {
		testutil.RequireTool(t, tool.name, tool.pkg)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Fatal("systemd-repart needs loop devices to format: ", err)
	}
	work := t.TempDir()
	root := filepath.Join(work, "root")
	tree := makeTree(t, filepath.Join(root, "srv"))
	blob := pattern(3*mib, 7)
	if err := os.WriteFile(filepath.Join(root, "blob.img"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	keyPath, certPath, cert, key := signer(t, work)
	ep := time.Unix(testEpoch, 0)

	under := func(prefix string, extra ...string) []string {
		var out []string
		for p := range tree {
			out = append(out, prefix+p)
		}
		return append(out, extra...)
	}
	cases := []repartCase{
		{name: "10-esp", conf: "Type=esp\nLabel=Ünïcode.Label:long\nFormat=vfat\nSizeMinBytes=64M\nSizeMaxBytes=64M\n",
			spec: Spec{Format: "vfat"}, fsType: "vfat", compare: "vfat"},
		{name: "20-ext4", conf: "Type=linux-generic\nLabel=a-rather-long-ext4-label\nFormat=ext4\nCopyFiles=/srv:/opt\nCopyFiles=/srv/a.txt:/etc/motd\nMakeDirectories=/var/lib/x /etc\nSizeMinBytes=32M\nSizeMaxBytes=32M\n",
			spec: Spec{Format: "ext4", CopyFiles: []fsimage.CopyFile{{Source: "/srv", Target: "/opt"}, {Source: "/srv/a.txt", Target: "/etc/motd"}},
				MakeDirectories: []string{"/var/lib/x", "/etc"}},
			fsType: "ext4", compare: "tree", wantFiles: under("opt/", "opt", "etc", "etc/motd", "var", "var/lib", "var/lib/x")},
		{name: "30-xfs", conf: "Type=srv\nFormat=xfs\nCopyFiles=/srv:/\nSizeMinBytes=300M\nSizeMaxBytes=300M\n",
			spec: Spec{Format: "xfs", CopyFiles: []fsimage.CopyFile{{Source: "/srv", Target: "/"}}}, fsType: "xfs", compare: "tree", wantFiles: under("")},
		{name: "40-btrfs", conf: "Type=home\nFormat=btrfs\nCopyFiles=/srv:/\nMakeDirectories=/extra/dir\nSizeMinBytes=256M\nSizeMaxBytes=256M\n",
			spec:   Spec{Format: "btrfs", CopyFiles: []fsimage.CopyFile{{Source: "/srv", Target: "/"}}, MakeDirectories: []string{"/extra/dir"}},
			fsType: "btrfs", compare: "tree", wantFiles: under("", "extra", "extra/dir")},
		{name: "50-swap", conf: "Type=swap\nFormat=swap\nSizeMinBytes=8M\nSizeMaxBytes=8M\n",
			spec: Spec{Format: "swap"}, fsType: "swap", compare: "bytes"},
		{name: "60-squashfs", conf: "Type=var\nFormat=squashfs\nCopyFiles=/srv:/\nSizeMinBytes=8M\nSizeMaxBytes=8M\n",
			spec: Spec{Format: "squashfs", CopyFiles: []fsimage.CopyFile{{Source: "/srv", Target: "/"}}}, fsType: "squashfs", compare: "bytes"},
		{name: "65-squashfs-staged", conf: "Type=tmp\nFormat=squashfs\nCopyFiles=/srv:/a\nCopyFiles=/srv/sub:/b\nMakeDirectories=/c/d\nSizeMinBytes=8M\nSizeMaxBytes=8M\n",
			spec:   Spec{Format: "squashfs", CopyFiles: []fsimage.CopyFile{{Source: "/srv", Target: "/a"}, {Source: "/srv/sub", Target: "/b"}}, MakeDirectories: []string{"/c/d"}},
			fsType: "squashfs", compare: "tree", wantFiles: under("a/", "a", "b", "b/b.txt", "c", "c/d")},
		{name: "70-blocks", conf: "Type=linux-generic\nLabel=blocks\nCopyBlocks=/blob.img\nSizeMinBytes=4M\nSizeMaxBytes=4M\n",
			spec: Spec{CopyBlocks: "/blob.img"}, compare: "bytes"},
		{name: "80-usr", conf: "Type=usr\nLabel=usr\nFormat=squashfs\nCopyFiles=/srv:/\nVerity=data\nVerityMatchKey=usr\nSizeMinBytes=8M\nSizeMaxBytes=8M\n",
			spec: Spec{Format: "squashfs", CopyFiles: []fsimage.CopyFile{{Source: "/srv", Target: "/"}}}, fsType: "squashfs", compare: "verity-data"},
		{name: "81-usr-verity", conf: "Type=usr-verity\nLabel=usr-verity\nVerity=hash\nVerityMatchKey=usr\nSizeMinBytes=1M\nSizeMaxBytes=1M\n", compare: "verity-hash"},
		{name: "82-usr-verity-sig", conf: "Type=usr-verity-sig\nVerity=signature\nVerityMatchKey=usr\n", compare: "verity-sig"},
	}
	defs := filepath.Join(work, "defs")
	if err := os.Mkdir(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if err := os.WriteFile(filepath.Join(defs, c.name+".conf"), []byte("[Partition]\n"+c.conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	theirs := filepath.Join(work, "theirs.img")
	testutil.Run(t, "env", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", testEpoch), repart, "--empty=create", "--size=auto",
		"--seed="+testSeed, "--definitions="+defs, "--root="+root, "--dry-run=no",
		"--private-key="+keyPath, "--certificate="+certPath, theirs)
	parts := sfdiskPartitions(t, theirs)
	if len(parts) != len(cases) {
		t.Fatalf("systemd-repart made %d partitions, want %d", len(parts), len(cases))
	}
	fi, err := os.Stat(theirs)
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(work, "ours.img")
	disk, err := os.Create(ours)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	if err := disk.Truncate(fi.Size()); err != nil {
		t.Fatal(err)
	}
	theirDisk, err := os.Open(theirs)
	if err != nil {
		t.Fatal(err)
	}
	defer theirDisk.Close()

	rangeOf := func(p sfdiskPartition) Range { return Range{p.Start * 512, p.Size * 512} }
	var dataRange Range
	var rootHash []byte
	for i, c := range cases {
		p := parts[i]
		r := rangeOf(p)
		t.Run(c.name, func(t *testing.T) {
			partUUID, err := gpt.ParseGUID(p.UUID)
			if err != nil {
				t.Fatal(err)
			}
			s := c.spec
			s.Root = root
			s.Label = p.Name
			s.FSUUID = FileSystemUUID(partUUID)
			if c.fsType == "squashfs" {
				// systemd-repart ran with SOURCE_DATE_EPOCH, which
				// mksquashfs honours. (fsimage passes it to mkfs.vfat as
				// --invariant, which overrides the volume ID.)
				s.SourceDateEpoch = &ep
			}
			s.TempDir = t.TempDir()
			switch c.compare {
			case "verity-data":
				// systemd 252 formats the data partition before its UUID
				// (the root hash) is known.
				s.FSUUID = FileSystemUUID(gpt.GUID{})
				dataRange = r
			case "verity-hash":
				sb, err := verity.ReadSuperblock(theirDisk, r.Offset)
				if err != nil {
					t.Fatal(err)
				}
				if sb.DataBlockSize != 512 || sb.HashBlockSize != 512 || sb.Algorithm != "sha256" || sb.HashType != 1 || len(sb.Salt) != VeritySaltSize {
					t.Errorf("systemd-repart's superblock: %+v", sb)
				}
				if sb.DataBlocks != uint64(dataRange.Size/512) {
					t.Errorf("systemd-repart's superblock covers %d blocks, want %d", sb.DataBlocks, dataRange.Size/512)
				}
				rootHash, err = FormatVerityHash(context.Background(), disk, dataRange, r, VerityOptions{BlockSize: 512, Salt: sb.Salt, UUID: gpt.GUID(sb.UUID)})
				if err != nil {
					t.Fatal(err)
				}
				wantData, wantHash := parts[i-1].UUID, p.UUID
				d, h, err := VerityPartitionUUIDs(rootHash)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.EqualFold(d.String(), wantData) || !strings.EqualFold(h.String(), wantHash) {
					t.Errorf("partition UUIDs from our root hash %x: %s %s, systemd-repart's %s %s", rootHash, d, h, wantData, wantHash)
				}
				compareBytes(t, ours, theirs, r)
				fscheck.VerifyVerity(t, ours, dataRange.Offset, dataRange.Size, r.Offset, r.Size, rootHash)
				return
			case "verity-sig":
				if rootHash == nil {
					t.Fatal("no root hash")
				}
				if err := WriteVeritySignature(disk, r, rootHash, cert, key); err != nil {
					t.Fatal(err)
				}
				compareBytes(t, ours, theirs, r)
				if got := fscheck.VerifySignature(t, fscheck.ReadRange(t, ours, r.Offset, r.Size), certPath); !bytes.Equal(got, rootHash) {
					t.Fatalf("signature partition has root hash %x, want %x", got, rootHash)
				}
				return
			}
			if err := Fill(context.Background(), disk, r.Offset, r.Size, s); err != nil {
				t.Fatal(err)
			}
			if c.fsType != "" {
				want, got := fscheck.Blkid(t, theirs, r.Offset), fscheck.Blkid(t, ours, r.Offset)
				delete(want, "UUID_SUB") // btrfs's device UUID is random
				delete(got, "UUID_SUB")
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("blkid: ours %v, systemd-repart's %v", got, want)
				}
				if got["TYPE"] != c.fsType {
					t.Errorf("blkid TYPE %q, want %q", got["TYPE"], c.fsType)
				}
				checkFSUUID(t, c.fsType, got["UUID"], s.FSUUID)
			}
			switch c.compare {
			case "bytes", "verity-data":
				compareBytes(t, ours, theirs, r)
			case "vfat":
				compareVFAT(t, fscheck.ReadRange(t, ours, r.Offset, r.Size), fscheck.ReadRange(t, theirs, r.Offset, r.Size))
			case "tree":
				got := fscheck.List(t, c.fsType, fscheck.Extract(t, ours, r.Offset, r.Size))
				want := fscheck.List(t, c.fsType, fscheck.Extract(t, theirs, r.Offset, r.Size))
				fscheck.CompareTrees(t, "ours vs systemd-repart's", got, want)
				for _, f := range c.wantFiles {
					if _, ok := got[f]; !ok {
						t.Errorf("%s missing", f)
					}
				}
				if len(got) != len(c.wantFiles) {
					t.Errorf("%d files, want %d", len(got), len(c.wantFiles))
				}
			}
			if c.name == "70-blocks" && !bytes.Equal(fscheck.ReadRange(t, ours, r.Offset, int64(len(blob))), blob) {
				t.Error("CopyBlocks= content differs from the source")
			}
		})
	}
}

func compareBytes(t *testing.T, ours, theirs string, r Range) {
	t.Helper()
	a, b := fscheck.ReadRange(t, ours, r.Offset, r.Size), fscheck.ReadRange(t, theirs, r.Offset, r.Size)
	if i := fscheck.FirstDiff(a, b); i >= 0 {
		t.Errorf("byte %d of %d differs: ours %#x, systemd-repart's %#x", i, r.Size, a[i], b[i])
	}
}

// checkFSUUID checks that the file system carries the UUID we asked for,
// in the form blkid prints for its type.
func checkFSUUID(t *testing.T, fsType, got string, u gpt.GUID) {
	t.Helper()
	want := u.String()
	switch fsType {
	case "vfat":
		want = strings.ToUpper(fmt.Sprintf("%x-%x", u[0:2], u[2:4]))
	case "squashfs":
		want = ""
	}
	if got != want {
		t.Errorf("blkid UUID %q, want %q", got, want)
	}
}

// compareVFAT requires two FAT file systems to be equal except inside the
// volume-label directory entry, whose times come from the clock.
func compareVFAT(t *testing.T, ours, theirs []byte) {
	t.Helper()
	for i := 0; i < len(ours); {
		j := fscheck.FirstDiff(ours[i:], theirs[i:])
		if j < 0 {
			return
		}
		d := i + j
		entry := d / 32 * 32
		if ours[entry+11] != 0x08 || !bytes.Equal(ours[entry:entry+11], theirs[entry:entry+11]) {
			t.Fatalf("byte %#x differs (ours %#x, systemd-repart's %#x), not in a volume label entry", d, ours[d], theirs[d])
		}
		i = entry + 32
	}
}
