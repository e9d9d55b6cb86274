package dissect

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// TestReadsSystemdRepartImage dissects an image that systemd-repart built
// with a signed verity group, and checks every partition against sfdisk's
// reading and the group against the root hash systemd-repart printed.
func TestReadsSystemdRepartImage(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	ri := testutil.MakeRepartImage(t)
	image, rootHash, cert := ri.Path, ri.RootHash, ri.Certificate

	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	img, err := Open(f, fi.Size(), Options{Trusted: []*x509.Certificate{cert}, VerifyHashTree: true})
	if err != nil {
		t.Fatal(err)
	}

	// Every partition as sfdisk sees it.
	var sf struct {
		PartitionTable struct {
			ID         string `json:"id"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
				UUID  string `json:"uuid"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(testutil.Run(t, sfdisk, "--json", image), &sf); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(img.DiskGUID, sf.PartitionTable.ID) {
		t.Errorf("disk GUID %s, sfdisk says %s", img.DiskGUID, sf.PartitionTable.ID)
	}
	if len(img.Partitions) != len(sf.PartitionTable.Partitions) {
		t.Fatalf("%d partitions, sfdisk says %d", len(img.Partitions), len(sf.PartitionTable.Partitions))
	}
	ss := sf.PartitionTable.SectorSize
	for i, want := range sf.PartitionTable.Partitions {
		got := img.Partitions[i]
		if got.Offset != want.Start*ss || got.Size != want.Size*ss || !strings.EqualFold(got.TypeUUID, want.Type) ||
			!strings.EqualFold(got.UUID, want.UUID) || got.Label != want.Name || !strings.HasSuffix(want.Node, "raw"+strconv.Itoa(got.Number)) {
			t.Errorf("partition %d: %+v, sfdisk says %+v", i, got, want)
		}
	}

	if len(img.VerityGroups) != 1 {
		t.Fatalf("got %d verity groups, want 1: %+v", len(img.VerityGroups), img.VerityGroups)
	}
	g := img.VerityGroups[0]
	if g.RootHash != rootHash || g.Data != 1 || g.Hash != 2 || g.Signature != 3 || g.Failed() ||
		g.UUIDs.Status != StatusOK || g.SignatureCheck.Status != StatusOK || g.HashTree.Status != StatusOK {
		t.Errorf("verity group %+v, systemd-repart's root hash %s", g, rootHash)
	}
	if got := img.Partitions[0].Version; got != "7.1" {
		t.Errorf("version %q, want 7.1", got)
	}
	if !img.Partitions[3].Empty {
		t.Errorf("partition 4 should be an empty slot: %+v", img.Partitions[3])
	}
	if _, err := hex.DecodeString(rootHash); err != nil {
		t.Error(err)
	}
}
