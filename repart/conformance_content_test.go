package repart_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/repart/content"
	"github.com/imago-os/imago/repart/internal/fscheck"
)

// cheapPBKDF keeps LUKS2 key slots fast to make in tests; systemd-repart
// benchmarks argon2id, which only changes the KDF costs in the header.
var cheapPBKDF = &content.PBKDF{Type: "argon2id", Iterations: 4, MemoryKiB: 32, Parallel: 1}

// loadSigner reads the PEM key and certificate openssl req wrote; nil
// when they do not parse (the run then fails as without a key).
func loadSigner(keyPath, certPath string) (crypto.Signer, *x509.Certificate) {
	der := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil
		}
		return blk.Bytes
	}
	k, err := x509.ParsePKCS8PrivateKey(der(keyPath))
	if err != nil {
		return nil, nil
	}
	c, err := x509.ParseCertificate(der(certPath))
	if err != nil {
		return nil, nil
	}
	signer, _ := k.(crypto.Signer)
	return signer, c
}

func atoi(t *testing.T, where, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s: %q is not a partition number", where, s)
	}
	return n
}

// partitionOf returns partition n of a side's disk as the GPT on it says.
func partitionOf(t *testing.T, where string, s *conformanceSide, n int) (p gpt.Partition, offset, size int64) {
	t.Helper()
	f, err := os.Open(s.image())
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, err := gpt.Read(f, fi.Size(), 0)
	if err != nil {
		t.Fatalf("%s: %s: %v", where, s.image(), err)
	}
	for _, q := range table.Partitions {
		if q.Number == n {
			offset, size = q.Bytes(table.SectorSize)
			return q, offset, size
		}
	}
	t.Fatalf("%s: %s has no partition %d", where, s.image(), n)
	return
}

// comparePartition compares partition n of the two disks.
func comparePartition(t *testing.T, where string, _ *conformanceEnv, sys, img *conformanceSide, n int, mode string) {
	t.Helper()
	_, off, size := partitionOf(t, where, sys, n)
	_, off2, size2 := partitionOf(t, where, img, n)
	if off != off2 || size != size2 {
		t.Fatalf("%s: partition %d at %d+%d and %d+%d", where, n, off, size, off2, size2)
	}
	where = fmt.Sprintf("%s: partition %d", where, n)
	switch {
	case mode == "bytes":
		a, b := fscheck.ReadRange(t, sys.image(), off, size), fscheck.ReadRange(t, img.image(), off, size)
		if i := fscheck.FirstDiff(a, b); i >= 0 {
			t.Fatalf("%s: byte %d differs (systemd %#02x, imago %#02x)", where, i, a[i], b[i])
		}
	case mode == "vfat":
		fscheck.CompareVFAT(t, where, fscheck.ReadRange(t, img.image(), off, size), fscheck.ReadRange(t, sys.image(), off, size))
	case strings.HasPrefix(mode, "tree:"):
		fsType := strings.TrimPrefix(mode, "tree:")
		want, got := fscheck.Blkid(t, sys.image(), off), fscheck.Blkid(t, img.image(), off)
		delete(want, "UUID_SUB") // btrfs device UUIDs are random
		delete(got, "UUID_SUB")
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: blkid: imago %v, systemd-repart %v", where, got, want)
		}
		if got["TYPE"] != fsType {
			t.Errorf("%s: blkid TYPE %q, want %q", where, got["TYPE"], fsType)
		}
		fscheck.CompareTrees(t, where+": imago vs systemd-repart",
			fscheck.List(t, fsType, fscheck.Extract(t, img.image(), off, size)),
			fscheck.List(t, fsType, fscheck.Extract(t, sys.image(), off, size)))
	default:
		t.Fatalf("%s: unknown compare mode %q", where, mode)
	}
}

// checkTree requires partition n of a disk to hold exactly the files of
// dir (for vfat: their types and contents).
func checkTree(t *testing.T, where string, _ *conformanceEnv, s *conformanceSide, n int, fsType, dir string) {
	t.Helper()
	_, off, size := partitionOf(t, where, s, n)
	got := fscheck.List(t, fsType, fscheck.Extract(t, s.image(), off, size))
	want := fscheck.WalkTree(t, dir)
	if fsType == "vfat" {
		want = fscheck.TypesAndData(want)
	}
	if len(want) == 0 {
		t.Fatalf("%s: %s is empty", where, dir)
	}
	fscheck.CompareTrees(t, fmt.Sprintf("%s: partition %d vs %s", where, n, dir), got, want)
}

// checkVerityGroup checks a verity group on one disk the way a booting
// system would: the signature (when there is one) verifies with the
// certificate and names the root hash, the partition UUIDs are its
// halves, and veritysetup accepts the data with the hash partition. The
// root hash comes from the hash partition when there is no signature.
func checkVerityGroup(t *testing.T, where string, env *conformanceEnv, s *conformanceSide, data, hash, sig int) {
	t.Helper()
	dp, doff, dsize := partitionOf(t, where, s, data)
	hp, hoff, hsize := partitionOf(t, where, s, hash)
	var root []byte
	if sig > 0 {
		_, soff, ssize := partitionOf(t, where, s, sig)
		root = fscheck.VerifySignature(t, fscheck.ReadRange(t, s.image(), soff, ssize), env.cert)
	} else {
		f, err := os.Open(s.image())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p, err := verity.ReadSuperblock(f, hoff)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		root, err = verity.FormatWithOptions(io0{f, doff, dsize}, discardWriter{}, p, verity.Options{})
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
	}
	d, h, err := verity.PartitionUUIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	if dp.UniqueGUID != gpt.GUID(d) || hp.UniqueGUID != gpt.GUID(h) {
		t.Errorf("%s: %s: UUIDs %s %s are not the halves of the root hash %x", where, s.image(), dp.UniqueGUID, hp.UniqueGUID, root)
	}
	fscheck.VerifyVerity(t, s.image(), doff, dsize, hoff, hsize, root)
}

// io0 reads a range of a file from 0.
type io0 struct {
	f         *os.File
	off, size int64
}

func (r io0) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > r.size {
		return 0, fmt.Errorf("read beyond the range")
	}
	return r.f.ReadAt(b, r.off+off)
}

type discardWriter struct{}

func (discardWriter) WriteAt(b []byte, _ int64) (int, error) { return len(b), nil }
