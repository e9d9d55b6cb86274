package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

func writeTestFile(t *testing.T, path string, size int, seed int64) []byte {
	t.Helper()
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	testSalt = "9c1e5bd4a1c0d6b7e86f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
	testUUID = "0b9a6c5e-58e1-4d7f-9a53-2b2c1c1de0c4"
)

// TestVerityFormatLikeVeritysetup runs veritysetup format and imago verity
// format with the same arguments and compares the printed table and the
// hash file byte for byte, including its length.
func TestVerityFormatLikeVeritysetup(t *testing.T) {
	veritysetup := testutil.RequireTool(t, "veritysetup", "cryptsetup-bin")
	for i, c := range []struct {
		size     int
		args     []string
		sameFile bool
	}{
		{size: 1000000, args: []string{"--salt=" + testSalt, "--uuid=" + testUUID}},
		{size: 4096, args: []string{"--salt=" + testSalt, "--uuid=" + testUUID}},
		{size: 4096, args: []string{"--salt=-", "--uuid=" + testUUID, "--hash-block-size=512"}},
		{size: 4096, args: []string{"--salt=ab", "--uuid=" + testUUID, "--hash-offset=1536", "--hash-block-size=512"}},
		{size: 300 * 512, args: []string{"--salt=-", "--data-block-size=512", "--hash-block-size=1024", "--no-superblock"}},
		{size: 100 * 4096, args: []string{"--salt=" + testSalt, "--uuid=" + testUUID, "--data-blocks=100", "--hash-offset=409600"}, sameFile: true},
		{size: 129*4096 + 17, args: []string{"--salt=00", "--uuid=" + testUUID, "--hash=sha1", "--format=0"}},
		// Without a superblock veritysetup rounds the offset down to a hash block.
		{size: 24 * 4096, args: []string{"--salt=-", "--no-superblock", "--hash-offset=1536"}},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			hash := filepath.Join(dir, "hash")
			writeTestFile(t, data, c.size, int64(i))
			if c.sameFile {
				hash = data
			}
			want := string(testutil.Run(t, veritysetup, append(append([]string{"format"}, c.args...), data, hash)...))
			wantHash, _ := os.ReadFile(hash)
			if c.sameFile {
				writeTestFile(t, data, c.size, int64(i))
			} else {
				os.Remove(hash)
			}
			code, out, errOut := run(t, append(append([]string{"verity", "format"}, c.args...), data, hash)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if out != want {
				t.Fatalf("output\n%s\nveritysetup printed\n%s", out, want)
			}
			if got, _ := os.ReadFile(hash); !bytes.Equal(got, wantHash) {
				t.Fatalf("hash file of %d bytes differs from veritysetup's %d bytes", len(got), len(wantHash))
			}
		})
	}
}

func TestVerityFormatVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	hash := filepath.Join(dir, "sub.hash")
	content := writeTestFile(t, data, 300*4096+5, 1)

	code, out, errOut := run(t, "verity", "format", "--json", "--salt="+testSalt, "--uuid="+testUUID, data, hash)
	if code != 0 {
		t.Fatalf("format: exit %d: %s", code, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	root, _ := res["rootHash"].(string)
	if len(root) != 64 || res["salt"] != testSalt || res["uuid"] != testUUID || res["dataBlocks"] != 300.0 ||
		res["dataBlockSize"] != 4096.0 || res["hashBlockSize"] != 4096.0 || res["hashType"] != 1.0 ||
		res["hashAlgorithm"] != "sha256" || res["hashOffset"] != 0.0 || res["superblock"] != true || res["hashBlocks"] != 4.0 {
		t.Fatalf("json %v", res)
	}
	if fi, err := os.Stat(hash); err != nil || fi.Size() != 20480 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hash file: %v %v", fi, err)
	}

	code, out, errOut = run(t, "verity", "verify", data, hash, root)
	if code != 0 || !strings.Contains(out, "Verified 300 data blocks and 4 hash blocks") {
		t.Fatalf("verify: exit %d, %q %q", code, out, errOut)
	}
	rootFile := filepath.Join(dir, "root")
	os.WriteFile(rootFile, []byte(root+"\n"), 0o600)
	if code, out, _ = run(t, "verity", "verify", "--json", "--root-hash-file="+rootFile, data, hash); code != 0 || !strings.Contains(out, `"verified": true`) {
		t.Fatalf("verify --root-hash-file: exit %d %q", code, out)
	}

	// A flipped byte in data block 123.
	bad := bytes.Clone(content)
	bad[123*4096+77] ^= 1
	os.WriteFile(data, bad, 0o600)
	code, out, errOut = run(t, "verity", "verify", data, hash, root)
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "data block 123 ") {
		t.Fatalf("corrupt data: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	os.WriteFile(data, content, 0o600)

	// A flipped byte in the second leaf hash block (block 3 of the file).
	h, _ := os.ReadFile(hash)
	h[3*4096+9] ^= 1
	os.WriteFile(hash, h, 0o600)
	code, _, errOut = run(t, "verity", "verify", data, hash, root)
	if code != 1 || !strings.Contains(errOut, "hash block 1 of level 0 (hash device offset 12288)") {
		t.Fatalf("corrupt hash: exit %d, stderr %q", code, errOut)
	}

	if code, _, errOut = run(t, "verity", "verify", data, hash, root[:10]); code != 1 || !strings.Contains(errOut, "invalid root hash") {
		t.Fatalf("short root: exit %d %q", code, errOut)
	}
}

func TestVerityNoSuperblockVerify(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	hash := filepath.Join(dir, "hash")
	writeTestFile(t, data, 64*1024, 2)
	args := []string{"--no-superblock", "--salt=-", "--data-block-size=1024", "--hash-block-size=512", "--hash-offset=4096"}
	code, out, errOut := run(t, append(append([]string{"verity", "format"}, args...), data, hash)...)
	if code != 0 {
		t.Fatal(errOut)
	}
	if strings.Contains(out, "Hash device size") || !strings.Contains(out, "UUID:            \t\n") || !strings.Contains(out, "Salt:            \t-\n") {
		t.Fatalf("table:\n%s", out)
	}
	root := regexp.MustCompile(`Root hash:\s+(\S+)`).FindStringSubmatch(out)[1]
	if code, _, errOut = run(t, append(append([]string{"verity", "verify"}, args...), data, hash, root)...); code != 0 {
		t.Fatalf("verify: %s", errOut)
	}
	if code, _, errOut = run(t, "verity", "verify", "--no-superblock", data, hash, root); code == 0 || !strings.Contains(errOut, "--salt") {
		t.Fatalf("verify without salt: exit %d %q", code, errOut)
	}
	if code, _, _ = run(t, append(append([]string{"verity", "verify"}, args[:4]...), data, hash, root)...); code != 1 {
		t.Fatal("verify with the wrong hash offset succeeded")
	}
}

func TestVerityFormatRandomDefaults(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeTestFile(t, data, 8192, 3)
	var salts, uuids []string
	for i := 0; i < 2; i++ {
		code, out, errOut := run(t, "verity", "format", "--json", data, filepath.Join(dir, fmt.Sprint("h", i)))
		if code != 0 {
			t.Fatal(errOut)
		}
		var res struct{ Salt, UUID string }
		json.Unmarshal([]byte(out), &res)
		salts, uuids = append(salts, res.Salt), append(uuids, res.UUID)
	}
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if len(salts[0]) != 64 || salts[0] == salts[1] || !v4.MatchString(uuids[0]) || uuids[0] == uuids[1] {
		t.Fatalf("salts %v uuids %v", salts, uuids)
	}
}

func TestVerityFormatErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeTestFile(t, data, 4096*10, 4)
	small := filepath.Join(dir, "small")
	writeTestFile(t, small, 100, 5)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{small, filepath.Join(dir, "h1")}, "less than one"},
		{[]string{"--data-blocks=11", data, filepath.Join(dir, "h2")}, "holds only 10"},
		{[]string{"--salt=xyz", data, filepath.Join(dir, "h3")}, "invalid salt"},
		{[]string{"--uuid=nope", data, filepath.Join(dir, "h4")}, "invalid UUID"},
		{[]string{"--hash-block-size=1000", data, filepath.Join(dir, "h5")}, "hash block size"},
		{[]string{"--hash-offset=4096", data, data}, "overlaps"},
		{[]string{"--hash=md5", data, filepath.Join(dir, "h6")}, "md5"},
	} {
		code, _, errOut := run(t, append([]string{"verity", "format"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errOut, c.want)
		}
	}
	code, _, errOut := run(t, "verity", "verify", data, data, strings.Repeat("0", 64))
	if code != 1 || !strings.Contains(errOut, "signature") {
		t.Errorf("verify without superblock: exit %d %q", code, errOut)
	}
}

func TestVeritySubcommandHelp(t *testing.T) {
	for _, sub := range []string{"format", "verify"} {
		if code, out, _ := run(t, "verity", sub, "--help"); code != 0 || !strings.Contains(out, "--no-superblock") {
			t.Errorf("verity %s --help: exit %d", sub, code)
		}
	}
}
