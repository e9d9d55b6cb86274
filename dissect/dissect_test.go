package dissect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/format/veritysig"
)

const mib = 1 << 20

func newCert(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// testImage is a disk image made with imago's own format packages: a usr
// partition, its verity hash partition and its signature partition.
type testImage struct {
	path     string
	size     int64
	table    *gpt.Table
	rootHash []byte
	cert     *x509.Certificate
}

func mustType(t *testing.T, name string) gpt.GUID {
	t.Helper()
	typ, ok := dps.LookupName(name, dps.ArchX86_64)
	if !ok {
		t.Fatalf("unknown type %s", name)
	}
	return gpt.GUID(typ.UUID)
}

func makeImage(t *testing.T) *testImage {
	t.Helper()
	const size = 8 * mib
	path := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	table, err := gpt.New(size, 512, gpt.GUID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	const dataOff, dataSize = 1 * mib, 2 * mib
	const hashOff, hashSize = 3 * mib, 1 * mib
	const sigOff = 4 * mib
	data := make([]byte, dataSize)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, dataOff); err != nil {
		t.Fatal(err)
	}
	p := verity.DefaultParams(dataSize / 4096)
	p.Salt = make([]byte, 32)
	root, err := verity.Format(io.NewSectionReader(f, dataOff, dataSize), io.NewOffsetWriter(f, hashOff), p)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := newCert(t, "dissect test")
	sig, err := veritysig.Sign(root, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := sig.MarshalPartition(veritysig.PartitionSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(payload, sigOff); err != nil {
		t.Fatal(err)
	}
	dataUUID, hashUUID, err := verity.PartitionUUIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	lba := func(off int64) uint64 { return uint64(off / 512) }
	table.Partitions = []gpt.Partition{
		{Number: 1, TypeGUID: mustType(t, "usr"), UniqueGUID: gpt.GUID(dataUUID),
			FirstLBA: lba(dataOff), LastLBA: lba(dataOff+dataSize) - 1, Name: "fooOS_1.2", Attributes: 1 << 60},
		{Number: 2, TypeGUID: mustType(t, "usr-verity"), UniqueGUID: gpt.GUID(hashUUID),
			FirstLBA: lba(hashOff), LastLBA: lba(hashOff+hashSize) - 1, Name: "fooOS_1.2_verity", Attributes: 1 << 60},
		{Number: 3, TypeGUID: mustType(t, "usr-verity-sig"), UniqueGUID: gpt.GUID{9},
			FirstLBA: lba(sigOff), LastLBA: lba(sigOff+veritysig.PartitionSize) - 1, Name: "fooOS_1.2_verity_sig"},
		{Number: 4, TypeGUID: mustType(t, "usr"), UniqueGUID: gpt.GUID{10},
			FirstLBA: lba(5 * mib), LastLBA: lba(6*mib) - 1, Name: "_empty"},
		{Number: 5, TypeGUID: mustType(t, "usr-verity"), UniqueGUID: gpt.GUID{11},
			FirstLBA: lba(6 * mib), LastLBA: lba(7*mib) - 1, Name: "_empty"},
		{Number: 6, TypeGUID: mustType(t, "usr-verity-sig"), UniqueGUID: gpt.GUID{12},
			FirstLBA: lba(7 * mib), LastLBA: lba(7*mib+veritysig.PartitionSize) - 1, Name: "_empty"},
	}
	if err := gpt.Write(f, size, table); err != nil {
		t.Fatal(err)
	}
	return &testImage{path: path, size: size, table: table, rootHash: root, cert: cert}
}

func (ti *testImage) open(t *testing.T, opts Options) *Image {
	t.Helper()
	f, err := os.Open(ti.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := Open(f, ti.size, opts)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (ti *testImage) patch(t *testing.T, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(ti.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestPartitions(t *testing.T) {
	ti := makeImage(t)
	img := ti.open(t, Options{})
	if len(img.Partitions) != 6 {
		t.Fatalf("got %d partitions, want 6", len(img.Partitions))
	}
	usr := img.Partitions[0]
	if usr.TypeName != "usr-x86-64" || usr.Label != "fooOS_1.2" || usr.ImageName != "fooOS" || usr.Version != "1.2" ||
		usr.Offset != 1*mib || usr.Size != 2*mib || strings.Join(usr.Flags, ",") != "read-only" {
		t.Errorf("usr partition: %+v", usr)
	}
	if hash := img.Partitions[1]; hash.Version != "1.2" || hash.TypeName != "usr-x86-64-verity" {
		t.Errorf("hash partition: %+v", hash)
	}
	if sig := img.Partitions[2]; sig.Version != "1.2" || sig.TypeName != "usr-x86-64-verity-sig" {
		t.Errorf("signature partition: %+v", sig)
	}
	if empty := img.Partitions[3]; !empty.Empty || empty.Version != "" {
		t.Errorf("empty slot: %+v", empty)
	}
	if img.DiskGUID != "01020300-0000-0000-0000-000000000000" || img.SectorSize != 512 {
		t.Errorf("disk: guid %s sector %d", img.DiskGUID, img.SectorSize)
	}
}

func TestVerityGroupChecks(t *testing.T) {
	ti := makeImage(t)
	img := ti.open(t, Options{Trusted: []*x509.Certificate{ti.cert}, VerifyHashTree: true})
	if len(img.VerityGroups) != 2 {
		t.Fatalf("got %d verity groups, want 2: %+v", len(img.VerityGroups), img.VerityGroups)
	}
	// The free B slot is a group of its own, with nothing to check: its
	// signature partition holds only zeros.
	if free := img.VerityGroups[1]; !free.Empty || free.Data != 4 || free.Hash != 5 || free.Signature != 6 ||
		free.Failed() || free.SignatureCheck.Status != StatusSkipped {
		t.Errorf("free slot: %+v", free)
	}
	g := img.VerityGroups[0]
	if g.Type != "usr-x86-64" || g.Data != 1 || g.Hash != 2 || g.Signature != 3 || g.Empty {
		t.Errorf("group members: %+v", g)
	}
	if g.RootHash != hex.EncodeToString(ti.rootHash) {
		t.Errorf("root hash %s, want %x", g.RootHash, ti.rootHash)
	}
	for name, c := range map[string]CheckResult{"uuids": g.UUIDs, "signature": g.SignatureCheck, "hash tree": g.HashTree} {
		if c.Status != StatusOK {
			t.Errorf("%s: %+v", name, c)
		}
	}
	if g.SignedBy != "CN=dissect test" || g.Failed() {
		t.Errorf("signed by %q, failed %v", g.SignedBy, g.Failed())
	}
}

func TestChecksSkippedUnlessAsked(t *testing.T) {
	ti := makeImage(t)
	g := ti.open(t, Options{}).VerityGroups[0]
	if g.UUIDs.Status != StatusOK || g.SignatureCheck.Status != StatusSkipped || g.HashTree.Status != StatusSkipped || g.Failed() {
		t.Errorf("%+v", g)
	}
}

func TestUntrustedSignature(t *testing.T) {
	ti := makeImage(t)
	other, _ := newCert(t, "someone else")
	g := ti.open(t, Options{Trusted: []*x509.Certificate{other}}).VerityGroups[0]
	if g.SignatureCheck.Status != StatusFailed || !g.Failed() {
		t.Errorf("signature from an untrusted certificate: %+v", g.SignatureCheck)
	}
}

func TestFlippedDataByte(t *testing.T) {
	ti := makeImage(t)
	// A byte in the sixth 4 KiB block of the usr partition.
	ti.patch(t, 1*mib+5*4096+17, []byte{0xff ^ 0x5a})
	g := ti.open(t, Options{VerifyHashTree: true}).VerityGroups[0]
	if g.HashTree.Status != StatusFailed || !strings.Contains(g.HashTree.Detail, "data block 5") {
		t.Errorf("flipped data byte: %+v", g.HashTree)
	}
}

func TestUUIDMismatch(t *testing.T) {
	ti := makeImage(t)
	f, err := os.OpenFile(ti.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ti.table.Partitions[0].UniqueGUID = gpt.GUID{0xaa}
	if err := gpt.Write(f, ti.size, ti.table); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g := ti.open(t, Options{}).VerityGroups[0]
	// The data partition is still found through its label's version.
	if g.Data != 1 || g.UUIDs.Status != StatusFailed || !strings.Contains(g.UUIDs.Detail, "data partition 1") {
		t.Errorf("UUID mismatch: %+v", g)
	}
}

func TestCorruptSignaturePartition(t *testing.T) {
	ti := makeImage(t)
	ti.patch(t, 4*mib, []byte(`{"rootHash":"zz`))
	g := ti.open(t, Options{}).VerityGroups[0]
	if g.SignatureCheck.Status != StatusFailed || g.UUIDs.Status != StatusSkipped || !g.Failed() {
		t.Errorf("corrupt signature: %+v", g)
	}
}

func TestParseLabel(t *testing.T) {
	for _, c := range []struct {
		label         string
		d             dps.Designator
		name, version string
		empty         bool
	}{
		{"fooOS_1.2", dps.DesignatorUsr, "fooOS", "1.2", false},
		{"fooOS_1.2_verity", dps.DesignatorUsrVerity, "fooOS", "1.2", false},
		{"fooOS_1.2_verity_sig", dps.DesignatorUsrVeritySig, "fooOS", "1.2", false},
		{"fooOS_1.2_verity", dps.DesignatorUsr, "fooOS", "1.2_verity", false},
		{"_empty", dps.DesignatorUsr, "", "", true},
		{"esp", dps.DesignatorESP, "", "", false},
		{"_1.2", dps.DesignatorUsr, "", "", false},
		{"fooOS_", dps.DesignatorUsr, "", "", false},
	} {
		name, version, empty := ParseLabel(c.label, c.d)
		if name != c.name || version != c.version || empty != c.empty {
			t.Errorf("ParseLabel(%q) = %q, %q, %v; want %q, %q, %v", c.label, name, version, empty, c.name, c.version, c.empty)
		}
	}
}

func TestNoTable(t *testing.T) {
	_, err := Open(strings.NewReader(strings.Repeat("\x00", 1*mib)), 1*mib, Options{})
	if err == nil || !strings.Contains(err.Error(), "dissect:") {
		t.Fatalf("want an error for a disk without GPT, got %v", err)
	}
}
