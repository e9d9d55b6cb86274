package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/internal/testutil"
)

const repartTestSeed = "--seed=0123456789abcdef0123456789abcdef"

func writeRepartDefs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRepartMatchesSystemdRepart runs imago repart and systemd-repart with
// the same arguments on two new images and compares the tables and the
// --json=short output field by field.
func TestRepartMatchesSystemdRepart(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	defs := writeRepartDefs(t, map[string]string{
		"10-esp.conf":  "[Partition]\nType=esp\nSizeMinBytes=16M\nSizeMaxBytes=16M\n",
		"20-root.conf": "[Partition]\nType=root\nLabel=root\nFactoryReset=yes\n",
		"30-swap.conf": "[Partition]\nType=swap\nWeight=250\n",
	})
	dir := t.TempDir()
	sysImg, imgImg := filepath.Join(dir, "sys.img"), filepath.Join(dir, "img.img")
	args := []string{"--empty=create", "--size=96M", repartTestSeed, "--definitions=" + defs, "--json=short"}
	sysOut := testutil.Run(t, repart, append(args, sysImg)...)
	code, out, errOut := run(t, append([]string{"repart"}, append(args, imgImg)...)...)
	if code != 0 {
		t.Fatalf("imago repart: exit %d: %s", code, errOut)
	}
	sysTable := strings.ReplaceAll(string(testutil.Run(t, sfdisk, "--json", sysImg)), sysImg, "IMG")
	imgTable := strings.ReplaceAll(string(testutil.Run(t, sfdisk, "--json", imgImg)), imgImg, "IMG")
	if sysTable != imgTable {
		t.Fatalf("tables differ:\nsystemd-repart: %s\nimago: %s", sysTable, imgTable)
	}
	var sys, img []map[string]any
	if err := json.Unmarshal(sysOut, &sys); err != nil {
		t.Fatalf("systemd-repart JSON: %v\n%s", err, sysOut)
	}
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		t.Fatalf("imago JSON: %v\n%s", err, out)
	}
	if len(sys) != len(img) {
		t.Fatalf("%d partitions from systemd-repart, %d from imago", len(sys), len(img))
	}
	for i := range sys {
		for k, v := range sys[i] {
			w := img[i][k]
			if k == "node" {
				v = strings.ReplaceAll(v.(string), sysImg, "IMG")
				w = strings.ReplaceAll(w.(string), imgImg, "IMG")
			}
			if v != w {
				t.Errorf("partition %d: %s: systemd-repart %v, imago %v", i, k, v, w)
			}
		}
	}
	if img[0]["action"] != "create" || img[0]["partno"] != float64(1) {
		t.Errorf("imago fields: %v", img[0])
	}

	// A second run has nothing to do; the text plan says so.
	code, out, errOut = run(t, "repart", repartTestSeed, "--definitions="+defs, imgImg)
	if code != 0 || !strings.Contains(errOut, "No changes.") || !strings.Contains(out, "keep") {
		t.Errorf("second run: exit %d\n%s\n%s", code, out, errOut)
	}
	// --can-factory-reset: root says FactoryReset=yes.
	if code, _, errOut := run(t, "repart", "--can-factory-reset", "--definitions="+defs, imgImg); code != 0 {
		t.Errorf("--can-factory-reset: exit %d: %s", code, errOut)
	}
	plain := writeRepartDefs(t, map[string]string{"10-esp.conf": "[Partition]\nType=esp\n"})
	if code, _, _ := run(t, "repart", "--can-factory-reset", "--definitions="+plain, imgImg); code != 1 {
		t.Errorf("--can-factory-reset without FactoryReset=yes: exit %d, want 1", code)
	}
	// A dry-run factory reset plans the removal and writes nothing.
	before, _ := os.ReadFile(imgImg)
	code, out, errOut = run(t, "repart", "--factory-reset=yes", repartTestSeed, "--definitions="+defs, imgImg)
	after, _ := os.ReadFile(imgImg)
	if code != 0 || !strings.Contains(out, "factory-reset") || string(before) != string(after) {
		t.Errorf("dry-run factory reset: exit %d, changed %v\n%s\n%s", code, string(before) != string(after), out, errOut)
	}
}

func TestRepartExitStatus(t *testing.T) {
	defs := writeRepartDefs(t, map[string]string{"10-root.conf": "[Partition]\nType=root\n"})
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// No partition table and --empty=refuse: 77, like systemd-repart.
	code, _, errOut := run(t, "repart", "--definitions="+defs, img)
	if code != 77 || !strings.Contains(errOut, "no GPT disk label") {
		t.Errorf("exit %d, %q", code, errOut)
	}
	bad := writeRepartDefs(t, map[string]string{"10-root.conf": "[Partition]\nType=root\nWeight=lots\n"})
	code, _, errOut = run(t, "repart", "--definitions="+bad, img)
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "10-root.conf:3: Weight=:") {
		t.Errorf("bad definition: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "repart", "--empty=sometimes", "--definitions="+defs, img)
	if code != 1 || !strings.Contains(errOut, "--empty=") {
		t.Errorf("bad --empty: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "repart", "--empty=create", "--definitions="+defs, img)
	if code != 1 || !strings.Contains(errOut, "--size=") {
		t.Errorf("--empty=create without --size: exit %d, %q", code, errOut)
	}
}

// TestRepartSplit compares --split=yes with systemd-repart's: the same
// files with the same contents.
func TestRepartSplit(t *testing.T) {
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	defs := writeRepartDefs(t, map[string]string{
		"10-esp.conf":  "[Partition]\nType=esp\nSizeMinBytes=1M\nSizeMaxBytes=1M\n",
		"20-root.conf": "[Partition]\nType=root\nSizeMinBytes=1M\nSizeMaxBytes=1M\nSplitName=%t-%n-%U\n",
		"30-home.conf": "[Partition]\nType=home\nSizeMinBytes=1M\nSizeMaxBytes=1M\nSplitName=-\n",
	})
	sysDir, imgDir := t.TempDir(), t.TempDir()
	args := []string{"--empty=create", "--size=8M", repartTestSeed, "--definitions=" + defs, "--split=yes"}
	testutil.Run(t, repart, append(args, filepath.Join(sysDir, "disk.raw"))...)
	if code, _, errOut := run(t, append([]string{"repart"}, append(args, filepath.Join(imgDir, "disk.raw"))...)...); code != 0 {
		t.Fatalf("imago repart --split: exit %d: %s", code, errOut)
	}
	names := func(dir string) []string {
		ents, _ := os.ReadDir(dir)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	a, b := names(sysDir), names(imgDir)
	if strings.Join(a, " ") != strings.Join(b, " ") || len(a) != 3 {
		t.Fatalf("systemd-repart wrote %v, imago %v", a, b)
	}
	for _, n := range a {
		x, _ := os.ReadFile(filepath.Join(sysDir, n))
		y, _ := os.ReadFile(filepath.Join(imgDir, n))
		if string(x) != string(y) {
			t.Errorf("%s differs", n)
		}
	}
}

// repartSigningKey makes an RSA key and a self-signed certificate with
// openssl, as an image builder would.
func repartSigningKey(t *testing.T) (key, cert string) {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	key, cert = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	testutil.Run(t, openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
		"-days", "30", "-subj", "/CN=imago repart cli")
	return key, cert
}

// repartContentDefs is an image with contents: a /usr verity group made
// from a tree under --root, signed, an ext4 partition populated from it,
// and swap.
func repartContentDefs(t *testing.T) (defs, root string) {
	t.Helper()
	root = t.TempDir()
	for name, data := range map[string]string{"usr/bin/hello": "#!/bin/sh\necho hello\n", "usr/lib/os-release": "ID=fooos\nIMAGE_ID=fooOS\nIMAGE_VERSION=2\n",
		"srv/www/index.html": "<p>hi</p>\n"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Enough data that the run takes a moment (for TestRepartInterrupted).
	if err := os.WriteFile(filepath.Join(root, "usr/lib/blob"), repartPattern(3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	defs = writeRepartDefs(t, map[string]string{
		"10-esp.conf":    "[Partition]\nType=esp\nSizeMinBytes=16M\nSizeMaxBytes=16M\n",
		"20-usr.conf":    "[Partition]\nType=usr\nLabel=%M_%A\nFormat=squashfs\nCopyFiles=/usr:/\nVerity=data\nVerityMatchKey=usr\nSizeMinBytes=32M\nSizeMaxBytes=32M\n",
		"21-verity.conf": "[Partition]\nType=usr-verity\nLabel=%M_%A_verity\nVerity=hash\nVerityMatchKey=usr\nSizeMinBytes=3M\nSizeMaxBytes=3M\n",
		"22-sig.conf":    "[Partition]\nType=usr-verity-sig\nLabel=%M_%A_verity_sig\nVerity=signature\nVerityMatchKey=usr\n",
		"30-srv.conf":    "[Partition]\nType=srv\nFormat=ext4\nCopyFiles=/srv:/\nCopyFiles=/usr/lib/blob:/blob\nMakeDirectories=/tmp\nSizeMinBytes=32M\nSizeMaxBytes=32M\n",
		"40-swap.conf":   "[Partition]\nType=swap\nFormat=swap\nSizeMinBytes=8M\nSizeMaxBytes=8M\n",
	})
	return defs, root
}

// repartPattern returns n bytes that do not compress well.
func repartPattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(12345)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// TestRepartContent checks the content flags of imago repart: --root for
// CopyFiles=, --private-key= and --certificate= for the signature, the
// root hash in --json, and --reproducible-verity=yes (two runs, one image).
// The result passes imago dissect --verify --certificate=.
func TestRepartContent(t *testing.T) {
	for _, tool := range [][2]string{{"mksquashfs", "squashfs-tools"}, {"mkfs.ext4", "e2fsprogs"}, {"mkswap", "util-linux"}} {
		testutil.RequireTool(t, tool[0], tool[1])
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1640995200")
	defs, root := repartContentDefs(t)
	key, cert := repartSigningKey(t)
	dir := t.TempDir()
	args := []string{"repart", "--empty=create", "--size=auto", repartTestSeed, "--definitions=" + defs, "--root=" + root,
		"--private-key=" + key, "--certificate=" + cert, "--reproducible-verity=yes", "--json=short"}
	var images, plans [2]string
	for i := range images {
		images[i] = filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		code, out, errOut := run(t, append(args, images[i])...)
		if code != 0 {
			t.Fatalf("imago repart: exit %d: %s", code, errOut)
		}
		plans[i] = strings.ReplaceAll(out, images[i], "IMG")
	}
	var parts []map[string]any
	if err := json.Unmarshal([]byte(plans[0]), &parts); err != nil {
		t.Fatalf("%v: %s", err, plans[0])
	}
	if len(parts) != 6 {
		t.Fatalf("%d partitions: %s", len(parts), plans[0])
	}
	rh, _ := parts[2]["roothash"].(string)
	data, hash := strings.ReplaceAll(parts[1]["uuid"].(string), "-", ""), strings.ReplaceAll(parts[2]["uuid"].(string), "-", "")
	if rh != data+hash || parts[1]["label"] != "fooOS_2" {
		t.Errorf("root hash %q, usr UUIDs %s %s, label %v", rh, data, hash, parts[1]["label"])
	}
	// The tables and the verity group are reproducible. (An ext4 file
	// system with staged CopyFiles= is not: mke2fs takes each file's
	// change time from the staging tree.)
	if plans[0] != plans[1] {
		t.Errorf("two runs with --reproducible-verity=yes planned differently:\n%s\n%s", plans[0], plans[1])
	}
	a, _ := os.ReadFile(images[0])
	b, _ := os.ReadFile(images[1])
	for _, p := range parts[1:4] {
		off, size := int(p["offset"].(float64)), int(p["raw_size"].(float64))
		if len(a) < off+size || len(b) < off+size || !bytes.Equal(a[off:off+size], b[off:off+size]) {
			t.Errorf("partition %s differs between two runs", p["label"])
		}
	}
	if code, out, errOut := run(t, "dissect", "--verify", "--certificate="+cert, images[0]); code != 0 || !strings.Contains(out, "verified") {
		t.Errorf("imago dissect: exit %d\n%s\n%s", code, out, errOut)
	}
	// Without the key the definitions are refused, as by systemd-repart.
	code, _, errOut := run(t, "repart", "--empty=create", "--size=auto", repartTestSeed, "--definitions="+defs, "--root="+root, filepath.Join(dir, "nokey.img"))
	if code != 1 || !strings.Contains(errOut, "--private-key=") {
		t.Errorf("without --private-key: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "repart", "--dry-run=yes", "--key-file="+filepath.Join(dir, "missing"), "--private-key="+key, "--certificate="+cert, "--definitions="+defs, images[0])
	if code != 1 || !strings.Contains(errOut, "--key-file=") {
		t.Errorf("missing key file: exit %d, %q", code, errOut)
	}
}

// TestRepartTPM2 checks that Encrypt=tpm2 is planned but never written:
// the key must be sealed on the machine that boots the image.
func TestRepartTPM2(t *testing.T) {
	defs := writeRepartDefs(t, map[string]string{
		"05-esp.conf":  "[Partition]\nType=esp\nSizeMaxBytes=16M\n",
		"10-root.conf": "[Partition]\nType=root\nEncrypt=tpm2\nFactoryReset=yes\n",
	})
	img := filepath.Join(t.TempDir(), "disk.img")
	plain := writeRepartDefs(t, map[string]string{"05-esp.conf": "[Partition]\nType=esp\nSizeMaxBytes=16M\n"})
	if code, _, errOut := run(t, "repart", "--empty=create", "--size=64M", repartTestSeed, "--definitions="+plain, img); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	before, _ := os.ReadFile(img)
	code, out, errOut := run(t, "repart", repartTestSeed, "--tpm2-device=auto", "--tpm2-pcrs=7+11", "--definitions="+defs, img)
	if code != 0 || !strings.Contains(out, "root-x86-64") || !strings.Contains(errOut, "Encrypt=tpm2 cannot be done offline") {
		t.Errorf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = run(t, "repart", repartTestSeed, "--dry-run=no", "--tpm2-device=auto", "--definitions="+defs, img)
	if code != 1 || !strings.Contains(errOut, "imago: repart: "+defs+"/10-root.conf: Encrypt=tpm2 needs the TPM2") || strings.Count(errOut, "imago:") != 1 {
		t.Errorf("Encrypt=tpm2: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Error("a refused Encrypt=tpm2 run changed the disk")
	}
	// An existing root partition is kept as it is; a factory reset would
	// have to make it anew, and is refused before anything is removed.
	withRoot := writeRepartDefs(t, map[string]string{
		"05-esp.conf":  "[Partition]\nType=esp\nSizeMaxBytes=16M\n",
		"10-root.conf": "[Partition]\nType=root\nFactoryReset=yes\n",
	})
	if code, _, errOut := run(t, "repart", repartTestSeed, "--dry-run=no", "--definitions="+withRoot, img); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "repart", repartTestSeed, "--dry-run=no", "--definitions="+defs, img); code != 0 || !strings.Contains(errOut, "No changes.") {
		t.Errorf("existing Encrypt=tpm2 partition: exit %d, %q", code, errOut)
	}
	before, _ = os.ReadFile(img)
	code, _, errOut = run(t, "repart", repartTestSeed, "--dry-run=no", "--factory-reset=yes", "--definitions="+defs, img)
	if code != 1 || !strings.Contains(errOut, "Encrypt=tpm2 needs the TPM2") {
		t.Errorf("factory reset of an Encrypt=tpm2 partition: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Error("a refused factory reset changed the disk")
	}
	if code, _, errOut := run(t, "repart", "--tpm2-pcrs=7+boot", "--definitions="+defs, img); code != 1 || !strings.Contains(errOut, "--tpm2-pcrs=") {
		t.Errorf("bad --tpm2-pcrs: exit %d, %q", code, errOut)
	}
}

// TestRepartHelperProcess is imago as a separate process for
// TestRepartInterrupted, which runs the test binary with
// IMAGO_REPART_HELPER set to the arguments (a JSON array). Without it, it
// does nothing.
func TestRepartHelperProcess(t *testing.T) {
	env := os.Getenv("IMAGO_REPART_HELPER")
	if env == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(env), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(Main(args, strings.NewReader(""), os.Stdout, os.Stderr))
}

// TestRepartInterrupted kills an imago repart process that adds
// partitions with contents (mkfs, verity, signature) to a disk at random
// moments, 20 times, and requires the partition table to read back, with
// format/gpt and sfdisk --verify, as either the old table or the new one,
// never anything else; a rerun then completes it to the new one.
func TestRepartInterrupted(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	for _, tool := range [][2]string{{"mksquashfs", "squashfs-tools"}, {"mkfs.ext4", "e2fsprogs"}, {"mkswap", "util-linux"}, {"cp", "coreutils"}} {
		testutil.RequireTool(t, tool[0], tool[1])
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1640995200")
	defs, root := repartContentDefs(t)
	key, cert := repartSigningKey(t)
	dir := t.TempDir()

	// The old disk: a GPT with the ESP only.
	base := filepath.Join(dir, "base.img")
	esp := writeRepartDefs(t, map[string]string{"10-esp.conf": "[Partition]\nType=esp\nSizeMinBytes=16M\nSizeMaxBytes=16M\n"})
	if code, _, errOut := run(t, "repart", "--empty=create", "--size=128M", repartTestSeed, "--definitions="+esp, base); code != 0 {
		t.Fatalf("base image: exit %d: %s", code, errOut)
	}
	args := []string{"repart", "--dry-run=no", repartTestSeed, "--definitions=" + defs, "--root=" + root,
		"--private-key=" + key, "--certificate=" + cert, "--reproducible-verity=yes", "--pretty=no"}
	readTable := func(path string) (*gpt.Table, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		return gpt.Read(f, fi.Size(), 0)
	}
	clone := func(to string) {
		t.Helper()
		testutil.Run(t, "cp", "--sparse=always", base, to)
	}
	oldTable, err := readTable(base)
	if err != nil {
		t.Fatal(err)
	}
	// Scratch files of killed runs (mkfs runs in its own process group
	// and may outlive imago for a moment) go to a directory of their own.
	scratch, err := os.MkdirTemp("", "imago-interrupted-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20 && os.RemoveAll(scratch) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	// imago repart as a process of its own, in a process group of its own.
	start := func(img string, out *bytes.Buffer) *exec.Cmd {
		t.Helper()
		helperArgs, err := json.Marshal(append(args[:len(args):len(args)], img))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestRepartHelperProcess$")
		cmd.Env = append(os.Environ(), "IMAGO_REPART_HELPER="+string(helperArgs), "TMPDIR="+scratch)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// The new table, from a run that is not interrupted, which also
	// tells how long a run takes.
	ref := filepath.Join(dir, "ref.img")
	clone(ref)
	var refOut bytes.Buffer
	began := time.Now()
	if err := start(ref, &refOut).Wait(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, refOut.String())
	}
	took := time.Since(began)
	t.Logf("an uninterrupted run takes %v", took)
	newTable, err := readTable(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(newTable.Partitions) != 6 || len(oldTable.Partitions) != 1 {
		t.Fatalf("old table %d partitions, new %d", len(oldTable.Partitions), len(newTable.Partitions))
	}
	same := func(a, b *gpt.Table) bool {
		return a.DiskGUID == b.DiskGUID && a.FirstUsableLBA == b.FirstUsableLBA && a.LastUsableLBA == b.LastUsableLBA &&
			fmt.Sprint(a.Partitions) == fmt.Sprint(b.Partitions)
	}

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	counts := map[string]int{}
	for i := 0; i < 20; i++ {
		img := filepath.Join(dir, fmt.Sprintf("run%d.img", i))
		clone(img)
		var out bytes.Buffer
		cmd := start(img, &out)
		// Anywhere from the start to a little after the end of a run.
		delay := time.Duration(rnd.Int64N(int64(took) * 11 / 10))
		time.Sleep(delay)
		// A power cut: imago and whatever it runs in its group stop at once.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err := cmd.Wait()
		tbl, rerr := readTable(img)
		state := "other"
		switch {
		case rerr != nil:
			t.Errorf("run %d killed after %v: the table does not read back: %v", i, delay, rerr)
		case same(tbl, oldTable):
			state = "old"
		case same(tbl, newTable):
			state = "new"
		default:
			t.Errorf("run %d killed after %v: the table is neither the old nor the new one: %+v", i, delay, tbl.Partitions)
		}
		if err == nil {
			state += " (run completed)"
		}
		counts[state]++
		if vout, verr := testutil.RunErr(sfdisk, "--verify", img); verr != nil || !strings.Contains(string(vout), "No errors detected") {
			t.Errorf("run %d killed after %v: sfdisk --verify: %v\n%s", i, delay, verr, vout)
		}
		// A rerun completes the work.
		if code, _, errOut := run(t, append(args, img)...); code != 0 {
			t.Fatalf("run %d: rerun: exit %d: %s\nkilled run:\n%s", i, code, errOut, out.String())
		}
		if tbl, err := readTable(img); err != nil || !same(tbl, newTable) {
			t.Errorf("run %d: the rerun did not make the new table (%v)", i, err)
		}
		os.Remove(img)
	}
	t.Logf("tables found after the kills: %v", counts)
}
