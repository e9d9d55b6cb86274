package content

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/repart/internal/fscheck"
)

// The golden LUKS2 header comes from systemd-repart 252 (Debian 12,
// 252.39) run as
//
//	systemd-repart --empty=create --size=64M --seed=0123456789abcdef0123456789abcdef \
//	    --definitions=DIR --dry-run=no --key-file=KEY disk.img
//
// with testdata/repart252-luks.conf as the only definition and KEY holding
// "secret". It placed the partition, UUID 3ed50935-b785-4a2a-879d-dd4c00395d47,
// at 1 MiB. Without device-mapper systemd-repart stops when it opens the
// new LUKS2 volume, after the header is complete; testdata holds
// `cryptsetup luksDump` and `luksDump --dump-json-metadata` of it.
const (
	goldenPartUUID = "3ed50935-b785-4a2a-879d-dd4c00395d47"
	goldenLabel    = "secret-data"
	goldenKey      = "secret"
)

// cheapPBKDF keeps the tests fast; the type is systemd's (the default).
var cheapPBKDF = &PBKDF{Type: "argon2id", Iterations: 4, MemoryKiB: 32, Parallel: 1}

// normalizeLUKSJSON drops what differs between any two headers made with
// the same parameters: salts, digests, and the benchmarked KDF costs.
func normalizeLUKSJSON(t *testing.T, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
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

func writeSecret(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// encryptedDisk fills the golden partition range of a 64 MiB image.
func encryptedDisk(t *testing.T, s Spec) (img string, r Range) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 * mib); err != nil {
		t.Fatal(err)
	}
	r = Range{1 * mib, 40 * mib}
	if err := Fill(context.Background(), f, r.Offset, r.Size, s); err != nil {
		t.Fatal(err)
	}
	return img, r
}

func goldenSpec(t *testing.T) Spec {
	partUUID, err := gpt.ParseGUID(goldenPartUUID)
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Format: "ext4", Encrypt: EncryptKeyFile, Key: []byte(goldenKey), Label: goldenLabel,
		FSUUID: FileSystemUUID(partUUID), LUKSUUID: LUKSUUID(partUUID), PBKDF: cheapPBKDF, TempDir: t.TempDir()}
}

// TestEncryptMatchesSystemdRepart compares our LUKS2 header with systemd-
// repart 252's for the same definition, checks the passphrase, and has
// cryptsetup itself decrypt the content to a file system that e2fsck
// accepts.
func TestEncryptMatchesSystemdRepart(t *testing.T) {
	cs := testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	s := goldenSpec(t)
	img, r := encryptedDisk(t, s)
	part := fscheck.Extract(t, img, r.Offset, r.Size)

	wantJSON, err := os.ReadFile("testdata/repart252-luks2.json")
	if err != nil {
		t.Fatal(err)
	}
	gotJSON := testutil.Run(t, cs, "luksDump", "--dump-json-metadata", part)
	if g, w := normalizeLUKSJSON(t, gotJSON), normalizeLUKSJSON(t, wantJSON); g != w {
		t.Errorf("LUKS2 metadata differs:\nours:\n%s\nsystemd-repart's:\n%s", g, w)
	}
	if !strings.Contains(string(gotJSON), `"type":"argon2id"`) && !strings.Contains(string(gotJSON), `"type": "argon2id"`) {
		t.Errorf("key slot KDF is not argon2id: %s", gotJSON)
	}
	wantDump, err := os.ReadFile("testdata/repart252-luksdump.txt")
	if err != nil {
		t.Fatal(err)
	}
	gotDump := testutil.Run(t, cs, "luksDump", part)
	if g, w := normalizeLUKSDump(gotDump), normalizeLUKSDump(wantDump); g != w {
		t.Errorf("luksDump differs:\nours:\n%s\nsystemd-repart's:\n%s", g, w)
	}
	if !strings.Contains(string(gotDump), "UUID:          \t21ff6eff-9dc6-4557-b8a9-2ffc4182df12") {
		t.Errorf("LUKS UUID is not the one systemd-repart derived:\n%s", gotDump)
	}

	testutil.Run(t, cs, "open", "--test-passphrase", "--key-file", writeSecret(t, []byte(goldenKey)), part)
	if _, err := testutil.RunErr(cs, "open", "--test-passphrase", "--key-file", writeSecret(t, []byte(goldenKey+"\n")), part); err == nil {
		t.Error("cryptsetup accepted a wrong passphrase")
	}

	plain := decryptWithCryptsetup(t, part, []byte(goldenKey))
	if fi, err := os.Stat(plain); err != nil || fi.Size() != r.Size-LUKS2MetadataSize {
		t.Fatalf("decrypted %v bytes, want %d (%v)", fi.Size(), r.Size-LUKS2MetadataSize, err)
	}
	e2fsck := testutil.RequireTool(t, "e2fsck", "e2fsprogs")
	testutil.Run(t, e2fsck, "-fn", plain)
	got := fscheck.Blkid(t, plain, 0)
	if got["TYPE"] != "ext4" || got["UUID"] != s.FSUUID.String() || got["LABEL"] != goldenLabel {
		t.Errorf("decrypted file system: %v", got)
	}
}

// volumeKey asks cryptsetup for the volume key a passphrase unlocks.
func volumeKey(t *testing.T, part string, key []byte) []byte {
	t.Helper()
	cs := testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	out := string(testutil.Run(t, cs, "luksDump", "--dump-volume-key", "--batch-mode", "--key-file", writeSecret(t, key), part))
	i := strings.Index(out, "MK dump:")
	if i < 0 {
		t.Fatalf("no volume key in:\n%s", out)
	}
	var vk []byte
	for _, f := range strings.Fields(out[i+len("MK dump:"):]) {
		b, err := hex.DecodeString(f)
		if err != nil || len(b) != 1 {
			break
		}
		vk = append(vk, b[0])
	}
	return vk
}

// decryptWithCryptsetup returns the plaintext of an encrypted partition as
// cryptsetup's own (userspace) decryption sees it: with the volume key the
// passphrase unlocks, a detached header describing the data area alone
// (LUKS2 decryption requires one) decrypts a copy in place.
func decryptWithCryptsetup(t *testing.T, part string, key []byte) string {
	t.Helper()
	cs := testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	vk := volumeKey(t, part, key)
	if len(vk) != luksVolumeKeyLen {
		t.Fatalf("volume key of %d bytes", len(vk))
	}
	dump := string(testutil.Run(t, cs, "luksDump", part))
	m := regexp.MustCompile(`sector: (\d+) \[bytes\]`).FindStringSubmatch(dump)
	if m == nil {
		t.Fatalf("no sector size in:\n%s", dump)
	}
	fi, err := os.Stat(part)
	if err != nil {
		t.Fatal(err)
	}
	data := fscheck.Extract(t, part, LUKS2MetadataSize, fi.Size()-LUKS2MetadataSize)
	hdr := filepath.Join(t.TempDir(), "header")
	testutil.Run(t, cs, "luksFormat", "--batch-mode", "--type", "luks2", "--header", hdr, "--offset", "0",
		"--cipher", luksCipher, "--key-size", "256", "--sector-size", m[1],
		"--volume-key-file", writeSecret(t, vk), "--key-file", writeSecret(t, key),
		"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32", "--pbkdf-parallel", "1", data)
	testutil.Run(t, cs, "reencrypt", "--decrypt", "--batch-mode", "--force-offline-reencrypt", "--header", hdr, "--key-file", writeSecret(t, key), data)
	return data
}

// TestEncryptCopyBlocksAnd4096Sectors encrypts a CopyBlocks= source on a
// disk of 4096-byte sectors: cryptsetup's decryption gives the source back,
// followed by what systemd-repart leaves there too (the rest of the
// partition is not written).
func TestEncryptCopyBlocksAnd4096Sectors(t *testing.T) {
	cs := testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	root := t.TempDir()
	blob := pattern(3*mib, 9)
	if err := os.WriteFile(filepath.Join(root, "blob.img"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	s := Spec{CopyBlocks: "/blob.img", Root: root, Encrypt: EncryptKeyFileTPM2, SectorSize: 4096,
		Label: "blocks", LUKSUUID: gpt.GUID{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89}, PBKDF: cheapPBKDF, TempDir: t.TempDir()}
	img, r := encryptedDisk(t, s)
	part := fscheck.Extract(t, img, r.Offset, r.Size)
	dump := string(testutil.Run(t, cs, "luksDump", part))
	for _, want := range []string{"sector: 4096 [bytes]", "Label:         \tblocks", "UUID:          \t01020304-0506-4708-8900-000000000000", "cipher: aes-xts-plain64"} {
		if !strings.Contains(dump, want) {
			t.Errorf("luksDump lacks %q:\n%s", want, dump)
		}
	}
	// key-file+tpm2 made offline: the key-file slot only, no token.
	if strings.Count(dump, ": luks2\n") != 1 || !strings.Contains(dump, "Tokens:\nDigests:") {
		t.Errorf("want exactly one key slot and no token:\n%s", dump)
	}
	plain := decryptWithCryptsetup(t, part, nil)
	got, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(blob)], blob) {
		t.Error("decrypted content differs from the CopyBlocks= source")
	}
	// Beyond the source nothing was written: the disk reads as zeros.
	raw := fscheck.ReadRange(t, img, r.Offset+LUKS2MetadataSize+int64(len(blob)), r.Size-LUKS2MetadataSize-int64(len(blob)))
	if !bytes.Equal(raw, make([]byte, len(raw))) {
		t.Error("the area after the copied blocks was written")
	}
}

func TestEncryptModes(t *testing.T) {
	s := goldenSpec(t)
	s.Encrypt = EncryptTPM2
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Fill(context.Background(), f, 0, 32*mib, s); !errors.Is(err, ErrTPM2Offline) {
		t.Errorf("Encrypt=tpm2: %v", err)
	}
	s.Encrypt = EncryptKeyFile
	if err := Fill(context.Background(), f, 0, 16*mib, s); err == nil || !strings.Contains(err.Error(), "LUKS2 header") {
		t.Errorf("16 MiB encrypted partition: %v", err)
	}
	if err := Fill(context.Background(), f, 512, 32*mib, Spec{Encrypt: EncryptKeyFile, SectorSize: 4096}); err == nil {
		t.Error("accepted an encrypted range not aligned to the sector size")
	}
	s.PBKDF = &PBKDF{Type: "argon2id", Iterations: 1, MemoryKiB: 32, Parallel: 1}
	if err := Fill(context.Background(), f, 0, 32*mib, s); err == nil {
		t.Error("accepted argon2 with 1 iteration")
	}
	for in, want := range map[string]EncryptMode{"off": EncryptOff, "key-file": EncryptKeyFile, "tpm2": EncryptTPM2,
		"key-file+tpm2": EncryptKeyFileTPM2, "yes": EncryptKeyFile, "TRUE": EncryptKeyFile, "0": EncryptOff, "no": EncryptOff} {
		if got, err := ParseEncryptMode(in); err != nil || got != want {
			t.Errorf("ParseEncryptMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseEncryptMode("luks"); err == nil {
		t.Error("ParseEncryptMode accepted luks")
	}
}

// TestEncryptEmptyKey: without --key-file systemd-repart enrolls an empty
// passphrase.
func TestEncryptEmptyKey(t *testing.T) {
	cs := testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	s := goldenSpec(t)
	s.Key = nil
	s.Format = "swap"
	img, r := encryptedDisk(t, s)
	part := fscheck.Extract(t, img, r.Offset, r.Size)
	testutil.Run(t, cs, "open", "--test-passphrase", "--key-file", writeSecret(t, nil), part)
	if _, err := testutil.RunErr(cs, "open", "--test-passphrase", "--key-file", writeSecret(t, []byte(goldenKey)), part); err == nil {
		t.Error("cryptsetup accepted a non-empty passphrase")
	}
}

// TestEncryptLiveSystemdRepart repeats the golden run with the installed
// systemd-repart and compares with a header made with the default PBKDF.
// Both benchmark the KDF, which takes about half a minute here, so it runs
// only with IMAGO_TEST_SLOW=1.
func TestEncryptLiveSystemdRepart(t *testing.T) {
	if os.Getenv("IMAGO_TEST_SLOW") != "1" {
		t.Skip("set IMAGO_TEST_SLOW=1 to run")
	}
	repart := testutil.RequireTool(t, "systemd-repart", "systemd")
	cs := testutil.RequireTool(t, "cryptsetup", "cryptsetup-bin")
	defs := t.TempDir()
	conf, err := os.ReadFile("testdata/repart252-luks.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(defs, "10-enc.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(t.TempDir(), "theirs.img")
	// Without device-mapper this fails after writing the header.
	testutil.RunErr(repart, "--empty=create", "--size=64M", "--seed="+testSeed, "--definitions="+defs,
		"--dry-run=no", "--key-file="+writeSecret(t, []byte(goldenKey)), theirs)
	s := goldenSpec(t)
	s.PBKDF = nil
	img, r := encryptedDisk(t, s)
	a := testutil.Run(t, cs, "luksDump", "--dump-json-metadata", fscheck.Extract(t, img, r.Offset, r.Size))
	b := testutil.Run(t, cs, "luksDump", "--dump-json-metadata", fscheck.Extract(t, theirs, r.Offset, r.Size))
	if g, w := normalizeLUKSJSON(t, a), normalizeLUKSJSON(t, b); g != w {
		t.Errorf("LUKS2 metadata differs:\nours:\n%s\nsystemd-repart's:\n%s", g, w)
	}
}

func TestParseLUKS2Header(t *testing.T) {
	hdr := func(hdrSize uint64, js string) []byte {
		b := make([]byte, hdrSize)
		copy(b, luksMagic)
		b[7] = 2
		for i := 0; i < 8; i++ {
			b[8+i] = byte(hdrSize >> (56 - 8*i))
		}
		copy(b[luksBinaryHeaderSize:], js)
		return b
	}
	good := `{"keyslots":{"0":{"key_size":32}},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}}}`
	seg, err := parseLUKS2Header(hdr(16384, good))
	if err != nil || seg != (luksSegment{offset: 16 << 20, sectorSize: 512, encryption: "aes-xts-plain64", keySize: 32}) {
		t.Fatalf("%+v %v", seg, err)
	}
	for name, b := range map[string][]byte{
		"short":         hdr(16384, good)[:100],
		"magic":         append([]byte("SKUL"), hdr(16384, good)[4:]...),
		"hdr size":      hdr(8192, good),
		"no NUL":        bytes.Repeat([]byte("{"), 20000),
		"two segments":  hdr(16384, strings.Replace(good, `"segments":{`, `"segments":{"1":{},`, 1)),
		"offset":        hdr(16384, strings.Replace(good, `"16777216"`, `"16777217"`, 1)),
		"small offset":  hdr(16384, strings.Replace(good, `"16777216"`, `"4096"`, 1)),
		"sector":        hdr(16384, strings.Replace(good, `512}`, `384}`, 1)),
		"fixed size":    hdr(16384, strings.Replace(good, `"dynamic"`, `"4096"`, 1)),
		"no keyslot":    hdr(16384, strings.Replace(good, `"0":{"key_size":32}`, ``, 1)),
		"mixed keys":    hdr(16384, strings.Replace(good, `"0":{"key_size":32}`, `"0":{"key_size":32},"1":{"key_size":64}`, 1)),
		"iv tweak":      hdr(16384, strings.Replace(good, `"iv_tweak":"0"`, `"iv_tweak":"8"`, 1)),
		"bad json":      hdr(16384, `{"segments":`),
		"version three": func() []byte { b := hdr(16384, good); b[7] = 3; return b }(),
	} {
		if _, err := parseLUKS2Header(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseLUKS2Header fuzzes the binary header fields and the JSON text
// separately, building the 16 KiB header around them, so that inputs stay
// small.
func FuzzParseLUKS2Header(f *testing.F) {
	head := append(append([]byte(nil), luksMagic...), 0, 2, 0, 0, 0, 0, 0, 0, 0x40, 0)
	f.Add(head, []byte(`{"keyslots":{"0":{"key_size":32}},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}}}`))
	f.Add(head, []byte(`{"keyslots":{"0":{"key_size":64},"1":{"key_size":64}},"segments":{"0":{"type":"crypt","offset":"32768","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096}}}`))
	f.Add(head[:8], []byte(`{}`))
	f.Add([]byte("LUKS\xba\xbe\x00\x02\x00\x00\x00\x00\x00\x01\x00\x00"), []byte(`{"segments":{"0":{}}}`))
	f.Fuzz(func(t *testing.T, head, js []byte) {
		if len(head) > luksBinaryHeaderSize || len(js) > 12<<10 {
			return
		}
		data := make([]byte, 16<<10)
		copy(data, head)
		copy(data[luksBinaryHeaderSize:], js)
		seg, err := parseLUKS2Header(data)
		if err != nil {
			return
		}
		switch seg.sectorSize {
		case 512, 1024, 2048, 4096:
		default:
			t.Fatalf("sector size %d", seg.sectorSize)
		}
		if seg.offset < 2*luksMinHeaderSize || seg.offset%int64(seg.sectorSize) != 0 || seg.keySize <= 0 {
			t.Fatalf("accepted %+v", seg)
		}
		// Bytes after hdr_size play no part.
		seg2, err := parseLUKS2Header(append(data, 0xff))
		if err != nil || seg2 != seg {
			t.Fatalf("appending a byte changed the result: %+v %v", seg2, err)
		}
	})
}
