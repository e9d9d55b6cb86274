package repart_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/repart"
	"github.com/imago-os/imago/repart/content"
)

// runOnImage runs the engine with the content step on the image file at
// path, creating it with size bytes when it does not exist.
func runOnImage(t *testing.T, path string, size uint64, defs []*repart.Definition, c repart.ContentOptions, root string) (*repart.Plan, error) {
	t.Helper()
	var disk *repart.DeviceFile
	var err error
	empty := repart.EmptyRefuse
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		disk, err = repart.CreateImage(path)
		empty = repart.EmptyCreate
	} else {
		disk, err = repart.OpenDevice(path, true)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	return repart.Run(context.Background(), disk, repart.Options{Definitions: defs, Seed: testSeed, Empty: empty, Write: true,
		Size: size, Content: repart.NewContent(c), Root: root, Device: path, Logf: t.Logf})
}

// TestContentCopyBlocksAuto: CopyBlocks=auto copies the booted partition
// of the same type and takes its UUID, and is refused with --root=, as by
// systemd-repart.
func TestContentCopyBlocksAuto(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "booted-root")
	data := bytes.Repeat([]byte("the booted root partition\n"), 60000)[:3001*512]
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bootedUUID := mustUUID(t, "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3")
	var asked dps.UUID
	opts := repart.ContentOptions{FindBooted: func(u dps.UUID) (content.BootedPartition, error) {
		asked = u
		return content.BootedPartition{Device: src, UUID: gpt.GUID(bootedUUID), Size: int64(len(data))}, nil
	}}
	defs := mustDefs(t, "[Partition]\nType=root\nCopyBlocks=auto\nSizeMinBytes=1M\nSizeMaxBytes=1M\n")
	img := filepath.Join(dir, "disk.img")
	plan, err := runOnImage(t, img, 16<<20, defs, opts, "")
	if err != nil {
		t.Fatal(err)
	}
	if asked != defs[0].Type.UUID {
		t.Errorf("looked for type %s", asked)
	}
	p := plan.Partitions[0]
	if p.UUID != bootedUUID || p.Size != 1540096 {
		t.Errorf("partition UUID %s size %d, want the booted partition's %s and its size rounded up", p.UUID, p.Size, bootedUUID)
	}
	if tab := testutil.ReadGPTImage(t, img); dps.UUID(tab.Partitions[0].UniqueGUID) != bootedUUID {
		t.Errorf("table: %+v", tab.Partitions)
	}
	got, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[p.Offset:p.Offset+uint64(len(data))], data) || !bytes.Equal(got[p.Offset+uint64(len(data)):p.Offset+p.Size], make([]byte, p.Size-uint64(len(data)))) {
		t.Error("the partition does not hold the booted partition's blocks followed by zeros")
	}

	_, err = runOnImage(t, filepath.Join(dir, "rooted.img"), 16<<20, defs, opts, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "CopyBlocks=auto cannot be used with --root=") {
		t.Errorf("CopyBlocks=auto with --root: %v", err)
	}
}

// TestContentRefusals: what the content step cannot make is refused
// before the partition table changes.
func TestContentRefusals(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if _, err := runOnImage(t, img, 32<<20, mustDefs(t, "[Partition]\nType=usr\nSizeMaxBytes=8M\n"), repart.ContentOptions{}, ""); err != nil {
		t.Fatal(err)
	}
	before := testutil.ReadGPTImage(t, img)
	for _, c := range []struct {
		name string
		defs []string
		want string
	}{
		{"hash partition of an existing data partition", []string{
			"[Partition]\nType=usr\nVerity=data\nVerityMatchKey=u\nSizeMaxBytes=8M\n",
			"[Partition]\nType=usr-verity\nVerity=hash\nVerityMatchKey=u\nSizeMaxBytes=1M\n"},
			"Verity=data partition of the group is not created in this run"},
		{"Encrypt=tpm2", []string{"[Partition]\nType=usr\nSizeMaxBytes=8M\n", "[Partition]\nType=home\nEncrypt=tpm2\n"},
			"Encrypt=tpm2 needs the TPM2"},
		{"hash partition too small", []string{"[Partition]\nType=usr\nSizeMaxBytes=8M\n",
			"[Partition]\nType=root\nVerity=data\nVerityMatchKey=r\nSizeMinBytes=4M\nSizeMaxBytes=4M\n",
			"[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=r\nSizeMinBytes=4K\nSizeMaxBytes=4K\n"},
			"too small"},
	} {
		_, err := runOnImage(t, img, 0, mustDefs(t, c.defs...), repart.ContentOptions{}, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
		if errors.Is(err, repart.ErrTPM2Offline) != (c.name == "Encrypt=tpm2") {
			t.Errorf("%s: errors.Is(ErrTPM2Offline) is wrong for %v", c.name, err)
		}
		if after := testutil.ReadGPTImage(t, img); len(after.Partitions) != len(before.Partitions) {
			t.Errorf("%s: the table changed: %+v", c.name, after.Partitions)
		}
	}

	// A signature partition without a key is refused before anything is
	// created.
	sig, err := repart.ParseDefinitionFile("30-sig.conf", []byte("[Partition]\nType=usr-verity-sig\nVerity=signature\nVerityMatchKey=u\n"),
		repart.ParseOptions{Arch: dps.ArchX86_64, Signing: true})
	if err != nil {
		t.Fatal(err)
	}
	defs := append(mustDefs(t, "[Partition]\nType=usr\nVerity=data\nVerityMatchKey=u\nSizeMaxBytes=8M\n",
		"[Partition]\nType=usr-verity\nVerity=hash\nVerityMatchKey=u\nSizeMaxBytes=1M\n"), sig)
	if _, err := runOnImage(t, filepath.Join(dir, "sig.img"), 32<<20, defs, repart.ContentOptions{}, ""); err == nil || !strings.Contains(err.Error(), "needs a private key and a certificate") {
		t.Errorf("signature without a key: %v", err)
	}
}
