package repart_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/dissect"
	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/repart"
	"github.com/imago-os/imago/repart/internal/fscheck"
)

// TestReferenceLayout is the layout of the product brief, with contents.
//
// The shipped image (testdata/reference/shipped: an ESP with files, /usr A
// as squashfs from a tree, its verity hash partition and signature) is
// built by imago alone, twice, reproducibly (ReproducibleVerity and
// SOURCE_DATE_EPOCH), and must pass the checks a booting system makes:
// the dissect package verifies signature, partition UUIDs and hash tree;
// veritysetup and openssl agree.
//
// Then the first-boot definitions (testdata/reference/firstboot: B slot
// `_empty` usr, verity and signature, root btrfs with Encrypt=key-file,
// home ext4, swap; the last three FactoryReset=yes) are run on copies of
// the shipped image grown to 8 GiB. systemd-repart 252 cannot finish
// Encrypt= without device-mapper, so its plan (--dry-run=yes, which still
// grows the image and moves the backup table) is the reference for
// imago's written table: every partition's place, size, UUID, label and
// type. The LUKS2 header of the root partition must match the one
// systemd-repart 252 wrote for the same run (testdata/reference/
// systemd252-root-luks*, recorded with `cryptsetup luksDump` of its
// partition after it stopped at device-mapper), salts, digests and KDF
// costs aside, and open with the key file. With IMAGO_TEST_SLOW=1 that
// header is made anew by the installed systemd-repart (about 20 seconds).
func TestReferenceLayout(t *testing.T) {
	// Mostly waiting for tools: it may overlap with the conformance cases.
	t.Parallel()
	env := &conformanceEnv{
		repart: testutil.RequireTool(t, "systemd-repart", "systemd"),
		sfdisk: testutil.RequireTool(t, "sfdisk", "fdisk"),
		tmp:    t.TempDir(),
	}
	for _, tool := range [][2]string{{"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}, {"mksquashfs", "squashfs-tools"},
		{"mkfs.btrfs", "btrfs-progs"}, {"mkfs.ext4", "e2fsprogs"}, {"mkswap", "util-linux"}, {"cryptsetup", "cryptsetup-bin"}} {
		testutil.RequireTool(t, tool[0], tool[1])
	}
	env.signingKey(t)
	signer, cert := loadSigner(env.key, env.cert)
	if signer == nil {
		t.Fatal("cannot read the signing key")
	}
	ref, err := filepath.Abs("testdata/reference")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(ref, "root")
	seed, err := dps.ParseUUID(conformanceSeed)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(conformanceEpoch, 0)
	ctx := context.Background()

	load := func(dir string, signing bool) []*repart.Definition {
		t.Helper()
		defs, err := repart.LoadDefinitions(repart.LoadOptions{
			ParseOptions: repart.ParseOptions{Specifiers: &repart.Specifiers{Root: root}, Signing: signing},
			Root:         root,
			Dirs:         []string{filepath.Join(ref, dir)},
		})
		if err != nil {
			t.Fatal(err)
		}
		return defs
	}
	build := func(s *conformanceSide) *repart.Plan {
		t.Helper()
		disk, err := repart.CreateImage(s.image())
		if err != nil {
			t.Fatal(err)
		}
		defer disk.Close()
		plan, err := repart.Run(ctx, disk, repart.Options{
			Definitions: load("shipped", true),
			Seed:        seed,
			Empty:       repart.EmptyCreate,
			Write:       true,
			SizeAuto:    true,
			Content: repart.NewContent(repart.ContentOptions{Signer: signer, Certificate: cert,
				ReproducibleVerity: true, SourceDateEpoch: &epoch, TempDir: env.tmp}),
			Root:   root,
			Device: s.image(),
			Logf:   t.Logf,
		})
		if err != nil {
			t.Fatal(err)
		}
		return plan
	}

	// The shipped image, built twice.
	shipped := &conformanceSide{dir: t.TempDir(), dev: "disk.img"}
	plan := build(shipped)
	rebuilt := &conformanceSide{dir: t.TempDir(), dev: "disk.img"}
	build(rebuilt)
	compareImages(t, "rebuilt shipped image", shipped, rebuilt)
	wantLabels := []string{"esp", "fooOS_1.0", "fooOS_1.0_verity", "fooOS_1.0_verity_sig"}
	for i, p := range plan.Partitions {
		if i >= len(wantLabels) || p.Label != wantLabels[i] || p.Action != repart.ActionCreate || !p.UUIDKnown {
			t.Errorf("shipped partition %d: %+v", i+1, p)
		}
	}
	if len(plan.Partitions) != 4 || len(plan.Partitions[2].RootHash) != 32 {
		t.Fatalf("shipped plan: %+v", plan.Partitions)
	}
	// systemd 255's salt and superblock UUID for this seed (disk-format
	// spec §2.6).
	_, hashOff, _ := partitionOf(t, "shipped", shipped, 3)
	f, err := os.Open(shipped.image())
	if err != nil {
		t.Fatal(err)
	}
	sb, err := verity.ReadSuperblock(f, hashOff)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(sb.Salt) != "c65b6ab68edf421fcc0cb48ba60f7f14f5186b4d003d21ab3b334b91de16759c" ||
		verity.FormatUUID(sb.UUID) != "898929e6-7747-423e-8593-3659ba461e7c" || sb.DataBlockSize != 512 {
		t.Errorf("verity superblock: salt %x, UUID %s, block size %d", sb.Salt, verity.FormatUUID(sb.UUID), sb.DataBlockSize)
	}
	checkDissect(t, "shipped", shipped, cert, 1)
	checkVerityGroup(t, "shipped", env, shipped, 2, 3, 4)
	checkTree(t, "shipped ESP", env, shipped, 1, "vfat", filepath.Join(root, "efi"))
	checkTree(t, "shipped /usr", env, shipped, 2, "squashfs", filepath.Join(root, "usr"))

	// First boot, on copies grown to 8 GiB.
	sys := &conformanceSide{dir: t.TempDir(), dev: "disk.img"}
	img := &conformanceSide{dir: t.TempDir(), dev: "disk.img"}
	copyDisk(t, shipped, sys)
	copyDisk(t, shipped, img)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--definitions=" + filepath.Join(ref, "firstboot"), "--root=" + root, "--seed=" + conformanceSeed,
		"--size=8G", "--key-file=" + keyFile}
	out, code := runSystemdRepart(env, sys, append([]string{"--dry-run=yes", "--json=short"}, args...))
	if code != 0 {
		t.Fatalf("systemd-repart --dry-run=yes: exit %d\n%s", code, out)
	}
	var want []map[string]any
	start := strings.Index(out, "[{")
	end := strings.Index(out, "}]")
	if start < 0 || end < start {
		t.Fatalf("no JSON from systemd-repart:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out[start:end+2]), &want); err != nil {
		t.Fatalf("systemd-repart JSON: %v\n%s", err, out)
	}

	disk, err := repart.OpenDevice(img.image(), true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := repart.Run(ctx, disk, repart.Options{
		Definitions: load("firstboot", false),
		Seed:        seed,
		Write:       true,
		Size:        8 << 30,
		Content:     repart.NewContent(repart.ContentOptions{Key: []byte("secret"), PBKDF: cheapPBKDF, SourceDateEpoch: &epoch, TempDir: env.tmp}),
		Root:        root,
		Device:      img.image(),
		Logf:        t.Logf,
	})
	disk.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Partitions) != len(want) || len(want) != 10 {
		t.Fatalf("imago planned %d partitions, systemd-repart %d", len(got.Partitions), len(want))
	}
	table := sfdiskTable(t, env, img)
	shippedTable := sfdiskTable(t, env, shipped)
	if table.ID != shippedTable.ID || len(table.Partitions) != len(want) {
		t.Fatalf("first-boot table: disk GUID %s (shipped %s), %d partitions", table.ID, shippedTable.ID, len(table.Partitions))
	}
	for i, w := range want {
		g := got.Partitions[i]
		imagoView := map[string]any{"type": g.TypeName(), "label": g.Label, "uuid": g.UUID.String(), "offset": float64(g.Offset),
			"old_size": float64(g.OldSize), "raw_size": float64(g.Size), "raw_padding": float64(g.Padding), "activity": g.Activity}
		for k, v := range imagoView {
			if w[k] != v {
				t.Errorf("partition %d: %s: systemd-repart %v, imago %v", i+1, k, w[k], v)
			}
		}
		p := table.Partitions[i]
		if !strings.HasSuffix(p.Node, fmt.Sprintf("img%d", i+1)) || float64(p.Start*512) != w["offset"] || float64(p.Size*512) != w["raw_size"] ||
			!strings.EqualFold(p.UUID, w["uuid"].(string)) || p.Name != w["label"] {
			t.Errorf("partition %d in imago's table: %+v, systemd-repart planned %v", i+1, p, w)
		}
		if i < 4 && p != shippedTable.Partitions[i] {
			t.Errorf("shipped partition %d changed: %+v, was %+v", i+1, p, shippedTable.Partitions[i])
		}
	}

	// Contents of the new partitions.
	checkLUKS(t, env, img, got.Partitions[7], keyFile, func() (string, string) {
		j, err := os.ReadFile(filepath.Join(ref, "systemd252-root-luks2.json"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := os.ReadFile(filepath.Join(ref, "systemd252-root-luksdump.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("IMAGO_TEST_SLOW") != "1" {
			return string(j), string(d)
		}
		// Without device-mapper systemd-repart stops after writing the
		// LUKS2 header of the root partition.
		out, code := runSystemdRepart(env, sys, append([]string{"--dry-run=no"}, args...))
		if code == 0 || !strings.Contains(out, "Encrypting future partition 7") {
			t.Fatalf("systemd-repart --dry-run=no: exit %d\n%s", code, out)
		}
		part := fscheck.Extract(t, sys.image(), int64(got.Partitions[7].Offset), int64(got.Partitions[7].Size))
		return string(testutil.Run(t, "cryptsetup", "luksDump", "--dump-json-metadata", part)), string(testutil.Run(t, "cryptsetup", "luksDump", part))
	})
	for _, n := range []int{9, 10} {
		p := got.Partitions[n-1]
		b := fscheck.Blkid(t, img.image(), int64(p.Offset))
		wantType := map[int]string{9: "ext4", 10: "swap"}[n]
		if b["TYPE"] != wantType || b["LABEL"] != p.Label || b["UUID"] != repart.FileSystemUUID(p.UUID).String() {
			t.Errorf("partition %d: blkid %v, want %s labelled %s with UUID %s", n, b, wantType, p.Label, repart.FileSystemUUID(p.UUID))
		}
	}
	checkDissect(t, "first boot", img, cert, 2)
}

type sfdiskPartition struct {
	Node, Type, UUID, Name, Attrs string
	Start, Size                   int64
}

type sfdiskTableJSON struct {
	Label, ID, Device, Unit string
	FirstLBA                int64 `json:"firstlba"`
	LastLBA                 int64 `json:"lastlba"`
	SectorSize              int   `json:"sectorsize"`
	Partitions              []sfdiskPartition
}

func sfdiskTable(t *testing.T, env *conformanceEnv, s *conformanceSide) sfdiskTableJSON {
	t.Helper()
	out, err := runIn(s.dir, nil, env.sfdisk, "--json", s.dev)
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v\n%s", s.image(), err, out)
	}
	var v struct {
		PartitionTable sfdiskTableJSON `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v.PartitionTable
}

// checkDissect opens the image with the dissect package, as imago dissect
// --verify --certificate= does, and requires the /usr A group (partitions
// 2, 3, 4) to pass every check. groups is how many groups dissect reports.
func checkDissect(t *testing.T, where string, s *conformanceSide, cert *x509.Certificate, groups int) {
	t.Helper()
	f, err := os.Open(s.image())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	img, err := dissect.Open(f, fi.Size(), dissect.Options{Trusted: []*x509.Certificate{cert}, VerifyHashTree: true})
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if len(img.VerityGroups) != groups {
		t.Errorf("%s: dissect found %d verity groups, want %d: %+v", where, len(img.VerityGroups), groups, img.VerityGroups)
	}
	for _, g := range img.VerityGroups {
		if g.Data != 2 {
			// The B slot: all its partitions are "_empty", one free group.
			if !g.Empty || g.Data != 5 || g.Hash != 6 || g.Signature != 7 || g.Failed() {
				t.Errorf("%s: dissect: B slot %+v", where, g)
			}
			continue
		}
		if g.Hash != 3 || g.Signature != 4 || g.UUIDs.Status != dissect.StatusOK || g.SignatureCheck.Status != dissect.StatusOK ||
			g.HashTree.Status != dissect.StatusOK {
			t.Errorf("%s: dissect: %+v", where, g)
		}
		return
	}
	t.Errorf("%s: dissect found no group for /usr A: %+v", where, img.VerityGroups)
}

// checkLUKS compares the LUKS2 header of partition p with systemd-repart's
// (from reference) and opens it with the key file.
func checkLUKS(t *testing.T, _ *conformanceEnv, s *conformanceSide, p repart.PlannedPartition, keyFile string, reference func() (jsonMeta, dump string)) {
	t.Helper()
	cs := testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	part := fscheck.Extract(t, s.image(), int64(p.Offset), int64(p.Size))
	gotJSON := testutil.Run(t, cs, "luksDump", "--dump-json-metadata", part)
	gotDump := testutil.Run(t, cs, "luksDump", part)
	wantJSON, wantDump := reference()
	if g, w := normalizeLUKSJSON(t, gotJSON), normalizeLUKSJSON(t, []byte(wantJSON)); g != w {
		t.Errorf("LUKS2 metadata differs:\nimago:\n%s\nsystemd-repart:\n%s", g, w)
	}
	if g, w := normalizeLUKSDump(gotDump), normalizeLUKSDump([]byte(wantDump)); g != w {
		t.Errorf("luksDump differs:\nimago:\n%s\nsystemd-repart:\n%s", g, w)
	}
	if u := repart.LUKSUUID(p.UUID).String(); !strings.Contains(string(gotDump), "UUID:          \t"+u) || !strings.Contains(string(gotDump), "Label:         \t"+p.Label+"\n") {
		t.Errorf("LUKS2 header lacks UUID %s or label %s:\n%s", u, p.Label, gotDump)
	}
	testutil.Run(t, cs, "open", "--test-passphrase", "--key-file", keyFile, part)
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := testutil.RunErr(cs, "open", "--test-passphrase", "--key-file", wrong, part); err == nil {
		t.Error("cryptsetup accepted a wrong key")
	}
}

// normalizeLUKSJSON drops what differs between two headers made with the
// same parameters: salts, digests and the KDF costs.
func normalizeLUKSJSON(t *testing.T, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("LUKS2 JSON: %v", err)
	}
	for _, ks := range m["keyslots"].(map[string]any) {
		kdf := ks.(map[string]any)["kdf"].(map[string]any)
		for _, k := range []string{"salt", "time", "memory", "cpus", "iterations"} {
			delete(kdf, k)
		}
	}
	for _, d := range m["digests"].(map[string]any) {
		for _, k := range []string{"salt", "digest", "iterations"} {
			delete(d.(map[string]any), k)
		}
	}
	out, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

var luksDumpVolatile = regexp.MustCompile(`^\s*(Salt|Digest|Iterations|Time cost|Memory|Threads):|^\t\s+([0-9a-f]{2} )+\s*$`)

func normalizeLUKSDump(b []byte) string {
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !luksDumpVolatile.MatchString(l) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
