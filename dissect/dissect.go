// Package dissect inspects disk images laid out by the Discoverable
// Partitions Specification: it lists the GPT partitions with their DPS types,
// labels and the versions those labels carry, groups each root or /usr
// partition with its dm-verity hash and signature partitions, and checks such
// a group the way systemd 252's image dissection does: the partition UUIDs
// must be the halves of the signed root hash, the signature must come from a
// trusted certificate, and (on request) every block must match the hash tree.
//
// It works on any io.ReaderAt, so an image file and a block device are read
// the same way, without loop devices.
package dissect

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/format/veritysig"
)

// EmptyLabel is the label systemd-sysupdate gives a free A/B slot.
const EmptyLabel = "_empty"

// Image is what Open found on a disk image.
type Image struct {
	// Size is the size of the disk in bytes.
	Size int64 `json:"size"`
	// SectorSize is the logical sector size the table was found with.
	SectorSize int `json:"sectorSize"`
	// DiskGUID identifies the disk.
	DiskGUID string `json:"diskGuid"`
	// UsedBackup is set when the primary GPT was damaged and the backup was read.
	UsedBackup bool `json:"usedBackup,omitempty"`
	// Warnings are problems with the table that did not stop reading it.
	Warnings []string `json:"warnings,omitempty"`
	// Partitions are the used GPT entries in table order.
	Partitions []Partition `json:"partitions"`
	// VerityGroups pair data partitions with their hash and signature partitions.
	VerityGroups []VerityGroup `json:"verityGroups,omitempty"`
}

// Partition is one GPT entry, with what its type and label tell.
type Partition struct {
	// Number is the 1-based entry number (the N of /dev/sdaN).
	Number int `json:"number"`
	// Offset and Size are in bytes.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
	// TypeUUID is the partition type; TypeName is systemd's name for it,
	// empty for types outside the Discoverable Partitions Specification.
	TypeUUID string `json:"typeUuid"`
	TypeName string `json:"typeName,omitempty"`
	// UUID is the partition's own UUID.
	UUID string `json:"uuid"`
	// Label is the GPT partition name.
	Label string `json:"label"`
	// ImageName and Version come from a NAME_VERSION label, as sysupdate
	// writes them; both are empty for other labels, Empty marks "_empty".
	ImageName string `json:"imageName,omitempty"`
	Version   string `json:"version,omitempty"`
	Empty     bool   `json:"empty,omitempty"`
	// Attributes is the raw 64-bit attribute field; Flags names its bits.
	Attributes uint64   `json:"attributes"`
	Flags      []string `json:"flags,omitempty"`

	designator dps.Designator
	typ        dps.Type
}

// Check results of a VerityGroup.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// VerityGroup is a root or /usr partition with its dm-verity hash partition
// and, when present, its signature partition.
type VerityGroup struct {
	// Type is the DPS name of the data partition's type ("usr-x86-64").
	Type string `json:"type"`
	// Empty marks a free A/B slot: partitions labelled "_empty", which
	// hold nothing to check until an update fills them.
	Empty bool `json:"empty,omitempty"`
	// Data, Hash and Signature are partition numbers, 0 when missing.
	Data      int `json:"data,omitempty"`
	Hash      int `json:"hash,omitempty"`
	Signature int `json:"signature,omitempty"`
	// RootHash is the root hash the signature partition carries.
	RootHash string `json:"rootHash,omitempty"`
	// UUIDs says whether the data and hash partition UUIDs are the first
	// and last 16 bytes of the root hash, as the boot path and systemd's
	// dissection require.
	UUIDs CheckResult `json:"uuids"`
	// SignatureCheck is the PKCS#7 check against the trusted certificates.
	SignatureCheck CheckResult `json:"signatureCheck"`
	// SignedBy is the subject of the certificate that signed the root hash.
	SignedBy string `json:"signedBy,omitempty"`
	// HashTree is the block-by-block check of data against hash tree.
	HashTree CheckResult `json:"hashTree"`
}

// CheckResult is the outcome of one check: StatusOK, StatusFailed with the
// reason, or StatusSkipped with why it could not or was not asked to run.
type CheckResult struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func ok(detail string) CheckResult     { return CheckResult{StatusOK, detail} }
func failed(detail string) CheckResult { return CheckResult{StatusFailed, detail} }
func skipped(why string) CheckResult   { return CheckResult{StatusSkipped, why} }

// Failed reports whether any check of the group failed.
func (g *VerityGroup) Failed() bool {
	return g.UUIDs.Status == StatusFailed || g.SignatureCheck.Status == StatusFailed ||
		g.HashTree.Status == StatusFailed
}

// Options say which checks Open runs.
type Options struct {
	// Trusted are the certificates a verity signature must come from; with
	// none, signatures are parsed but not checked.
	Trusted []*x509.Certificate
	// VerifyHashTree checks every data block against the hash tree, which
	// reads whole partitions.
	VerifyHashTree bool
	// Progress, when set, is told about the hash tree check's progress.
	Progress func(group string, done, total uint64)
}

// Open reads the partition table of a disk of size bytes and checks its
// verity groups as opts asks.
func Open(r io.ReaderAt, size int64, opts Options) (*Image, error) {
	table, err := gpt.Read(r, size, 0)
	if err != nil {
		return nil, fmt.Errorf("dissect: %w", err)
	}
	img := &Image{
		Size:       size,
		SectorSize: table.SectorSize,
		DiskGUID:   table.DiskGUID.String(),
		UsedBackup: table.UsedBackup,
		Warnings:   table.Warnings,
	}
	for _, p := range table.Partitions {
		img.Partitions = append(img.Partitions, describe(p, table.SectorSize))
	}
	img.VerityGroups = groupVerity(r, img.Partitions)
	for i := range img.VerityGroups {
		checkGroup(r, img, &img.VerityGroups[i], opts)
	}
	return img, nil
}

func describe(p gpt.Partition, sectorSize int) Partition {
	out := Partition{
		Number:     p.Number,
		Offset:     int64(p.FirstLBA) * int64(sectorSize),
		Size:       int64(p.Sectors()) * int64(sectorSize),
		TypeUUID:   p.TypeGUID.String(),
		UUID:       p.UniqueGUID.String(),
		Label:      p.Name,
		Attributes: p.Attributes,
		Flags:      dps.FlagNames(p.Attributes),
	}
	if t, found := dps.LookupUUID(dps.UUID(p.TypeGUID)); found {
		out.TypeName = t.Name
		out.designator = t.Designator
		out.typ = t
	}
	out.ImageName, out.Version, out.Empty = ParseLabel(p.Name, out.designator)
	return out
}

// ParseLabel splits a partition label of the form NAME_VERSION, as
// sysupdate writes it (for example "fooOS_1.2"), into its image name and
// version. Hash and signature partitions carry a "_verity" or "_verity_sig"
// suffix after the version, which is dropped. The label "_empty" marks a
// free slot. Labels of another shape give empty strings.
func ParseLabel(label string, d dps.Designator) (name, version string, empty bool) {
	if label == EmptyLabel {
		return "", "", true
	}
	rest := label
	switch {
	case d.IsVeritySig():
		rest = strings.TrimSuffix(rest, "_verity_sig")
	case d.IsVerity():
		rest = strings.TrimSuffix(rest, "_verity")
	}
	name, version, found := strings.Cut(rest, "_")
	if !found || name == "" || version == "" {
		return "", "", false
	}
	return name, version, false
}

// groupVerity pairs verity partitions. A signature partition names its group
// through the root hash, whose halves are the data and hash partition
// UUIDs; partitions not found that way are paired by the version in their
// labels, so a group whose UUIDs do not match is still reported as a group.
func groupVerity(r io.ReaderAt, parts []Partition) []VerityGroup {
	used := map[int]bool{}
	var groups []VerityGroup
	for i := range parts {
		sig := &parts[i]
		if !sig.designator.IsVeritySig() {
			continue
		}
		dataType, _ := sig.typ.Sibling(sig.designator.Data())
		hashType, _ := sig.typ.Sibling(sig.designator.Data().Verity())
		g := VerityGroup{Type: dataType.Name, Signature: sig.Number, Empty: sig.Empty}
		used[sig.Number] = true
		if g.Empty {
			emptySlot := func(p *Partition) bool { return p.Empty }
			g.Data = findPartition(parts, used, dataType, emptySlot)
			g.Hash = findPartition(parts, used, hashType, emptySlot)
			groups = append(groups, g)
			continue
		}
		if s, err := readSignature(r, sig); err == nil {
			g.RootHash = hex.EncodeToString(s.RootHash)
			if dataUUID, hashUUID, err := verity.PartitionUUIDs(s.RootHash); err == nil {
				g.Data = findPartition(parts, used, dataType, func(p *Partition) bool { return p.UUID == verity.FormatUUID(dataUUID) })
				g.Hash = findPartition(parts, used, hashType, func(p *Partition) bool { return p.UUID == verity.FormatUUID(hashUUID) })
			}
		}
		byVersion := func(p *Partition) bool {
			return p.Version != "" && p.Version == sig.Version && p.ImageName == sig.ImageName
		}
		if g.Data == 0 {
			g.Data = findPartition(parts, used, dataType, byVersion)
		}
		if g.Hash == 0 {
			g.Hash = findPartition(parts, used, hashType, byVersion)
		}
		groups = append(groups, g)
	}
	// Hash partitions without a signature partition.
	for i := range parts {
		h := &parts[i]
		if !h.designator.IsVerity() || used[h.Number] {
			continue
		}
		used[h.Number] = true
		dataType, _ := h.typ.Sibling(h.designator.Data())
		g := VerityGroup{Type: dataType.Name, Hash: h.Number, Empty: h.Empty}
		g.Data = findPartition(parts, used, dataType, func(p *Partition) bool {
			return p.Version == h.Version && p.ImageName == h.ImageName && p.Empty == h.Empty
		})
		groups = append(groups, g)
	}
	return groups
}

// findPartition returns the number of the first unused partition of type t
// that match accepts, and marks it used; 0 when there is none.
func findPartition(parts []Partition, used map[int]bool, t dps.Type, match func(*Partition) bool) int {
	for i := range parts {
		p := &parts[i]
		if used[p.Number] || p.typ.UUID != t.UUID || !match(p) {
			continue
		}
		used[p.Number] = true
		return p.Number
	}
	return 0
}

func readSignature(r io.ReaderAt, p *Partition) (*veritysig.Signature, error) {
	if p.Size > veritysig.MaxPartitionSize {
		return nil, fmt.Errorf("signature partition %d is %d bytes, more than the %d systemd reads", p.Number, p.Size, veritysig.MaxPartitionSize)
	}
	buf := make([]byte, p.Size)
	if _, err := r.ReadAt(buf, p.Offset); err != nil {
		return nil, fmt.Errorf("signature partition %d: %w", p.Number, err)
	}
	s, err := veritysig.Parse(buf)
	if err != nil {
		return nil, fmt.Errorf("signature partition %d: %w", p.Number, err)
	}
	return s, nil
}

func partitionByNumber(img *Image, n int) *Partition {
	for i := range img.Partitions {
		if img.Partitions[i].Number == n {
			return &img.Partitions[i]
		}
	}
	return nil
}

func checkGroup(r io.ReaderAt, img *Image, g *VerityGroup, opts Options) {
	if g.Empty {
		g.UUIDs, g.SignatureCheck, g.HashTree = skipped("free slot"), skipped("free slot"), skipped("free slot")
		return
	}
	data, hash := partitionByNumber(img, g.Data), partitionByNumber(img, g.Hash)
	var sig *veritysig.Signature
	if g.Signature != 0 {
		var err error
		sig, err = readSignature(r, partitionByNumber(img, g.Signature))
		if err != nil {
			g.SignatureCheck = failed(err.Error())
		}
	} else {
		g.SignatureCheck = skipped("no signature partition")
	}

	switch {
	case sig == nil:
		g.UUIDs = skipped("no signed root hash")
	case data == nil || hash == nil:
		g.UUIDs = failed(missingPartitions(data, hash))
	default:
		g.UUIDs = checkUUIDs(sig.RootHash, data, hash)
	}

	if sig != nil {
		switch {
		case len(opts.Trusted) == 0:
			g.SignatureCheck = skipped("no certificate given")
		default:
			signers, err := sig.Verify(opts.Trusted)
			if err != nil {
				g.SignatureCheck = failed(err.Error())
			} else {
				g.SignatureCheck = ok("")
				if len(signers) > 0 {
					g.SignedBy = signers[0].Subject.String()
				}
			}
		}
	}

	switch {
	case !opts.VerifyHashTree:
		g.HashTree = skipped("not requested")
	case sig == nil:
		g.HashTree = skipped("no root hash to verify against")
	case data == nil || hash == nil:
		g.HashTree = skipped(missingPartitions(data, hash))
	default:
		g.HashTree = checkHashTree(r, data, hash, sig.RootHash, func(done, total uint64) {
			if opts.Progress != nil {
				opts.Progress(g.Type, done, total)
			}
		})
	}
}

func missingPartitions(data, hash *Partition) string {
	switch {
	case data == nil && hash == nil:
		return "no data and no hash partition matches"
	case data == nil:
		return "no data partition matches"
	default:
		return "no hash partition matches"
	}
}

func checkUUIDs(rootHash []byte, data, hash *Partition) CheckResult {
	wantData, wantHash, err := verity.PartitionUUIDs(rootHash)
	if err != nil {
		return failed(err.Error())
	}
	var problems []string
	if got := verity.FormatUUID(wantData); data.UUID != got {
		problems = append(problems, fmt.Sprintf("data partition %d has UUID %s, the root hash says %s", data.Number, data.UUID, got))
	}
	if got := verity.FormatUUID(wantHash); hash.UUID != got {
		problems = append(problems, fmt.Sprintf("hash partition %d has UUID %s, the root hash says %s", hash.Number, hash.UUID, got))
	}
	if len(problems) > 0 {
		return failed(strings.Join(problems, "; "))
	}
	return ok("")
}

// checkHashTree verifies the whole data partition against the hash
// partition, whose superblock gives the parameters, as systemd's dissection
// (superblock at offset 0, the tree covering the whole partition) sets it up.
func checkHashTree(r io.ReaderAt, data, hash *Partition, rootHash []byte, progress func(done, total uint64)) CheckResult {
	hashDev := io.NewSectionReader(r, hash.Offset, hash.Size)
	params, err := verity.ReadSuperblock(hashDev, 0)
	if err != nil {
		return failed(fmt.Sprintf("hash partition %d: %v", hash.Number, err))
	}
	if covered := int64(params.DataBlocks) * int64(params.DataBlockSize); covered > data.Size {
		return failed(fmt.Sprintf("hash partition %d covers %d bytes, data partition %d has only %d", hash.Number, covered, data.Number, data.Size))
	}
	dataDev := io.NewSectionReader(r, data.Offset, data.Size)
	err = verity.VerifyWithOptions(dataDev, hashDev, params, rootHash, verity.Options{Progress: progress})
	var corrupt *verity.CorruptionError
	switch {
	case err == nil:
		return ok(fmt.Sprintf("%d blocks of %d bytes", params.DataBlocks, params.DataBlockSize))
	case errors.As(err, &corrupt):
		return failed(err.Error())
	default:
		return failed(fmt.Sprintf("partitions %d and %d: %v", data.Number, hash.Number, err))
	}
}
