package sysupdate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/sha256sums"
)

var (
	typeRoot, _       = dps.LookupName("root-x86-64", dps.ArchX86_64)
	typeRootVerity, _ = dps.LookupName("root-x86-64-verity", dps.ArchX86_64)
)

// makeDisk writes TEST-72's disk: four partitions of 2048 sectors from
// 1 MiB on, two root-x86-64 and two root-x86-64-verity, with the given
// labels.
func makeDisk(t *testing.T, path string, sectorSize int, labels [4]string) {
	t.Helper()
	size := int64(sectorSize)*2048*4 + 2<<20
	tab, err := gpt.New(size, sectorSize, gpt.GUID{1})
	if err != nil {
		t.Fatal(err)
	}
	first := uint64(1<<20) / uint64(sectorSize)
	for k := 0; k < 4; k++ {
		typ := typeRoot
		if k >= 2 {
			typ = typeRootVerity
		}
		start := first + uint64(k)*2048
		tab.Partitions = append(tab.Partitions, gpt.Partition{
			Number: k + 1, TypeGUID: gpt.GUID(typ.UUID), UniqueGUID: gpt.GUID{0xa0, byte(k + 1)},
			FirstLBA: start, LastLBA: start + 2047, Name: labels[k],
		})
	}
	testutil.WriteGPTImage(t, path, size, tab)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirectoryDiscovery(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"foo_1.raw", "foo_10.raw", "foo_2.raw", "foo_x~y.raw", ".foo_3.raw", "foo_4.raw~", "bar_5.raw", "foo_6.raw.gz"} {
		writeFile(t, filepath.Join(dir, n), n)
	}
	os.Mkdir(filepath.Join(dir, "foo_7.raw"), 0o755) // a directory is not a regular-file instance
	os.Chmod(filepath.Join(dir, "foo_2.raw"), 0o4777)
	tr := mustParse(t, "[Source]\nType=regular-file\nPath="+dir+"\nMatchPattern=foo_@v.raw\n[Target]\nPath=/nonexistent\n")
	d, err := tr.SourceInstances(context.Background(), Env{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range d.Instances {
		got = append(got, in.Version())
	}
	if strings.Join(got, " ") != "10 2 1" {
		t.Errorf("versions = %v", got)
	}
	if in := d.Find("2"); in == nil || in.Fields.Mode != 0o775 || !in.Fields.HasMTime || in.Path != filepath.Join(dir, "foo_2.raw") {
		t.Errorf("foo_2: %+v", in)
	}
	// A target directory that does not exist holds nothing.
	if d, err := tr.TargetInstances(context.Background(), Env{}); err != nil || len(d.Instances) != 0 {
		t.Errorf("missing target dir: %v %v", d, err)
	}
	// Directory sources list directories only; --root prefixes paths.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "src/dir-1"), 0o755)
	os.MkdirAll(filepath.Join(root, "src/dir-2"), 0o755)
	writeFile(t, filepath.Join(root, "src/dir-3"), "file")
	tr = mustParse(t, "[Source]\nType=directory\nPath=/src\nMatchPattern=dir-@v\n[Target]\nPath=/dst\n")
	d, err = tr.SourceInstances(context.Background(), Env{Root: root})
	if err != nil || len(d.Instances) != 2 || d.Instances[0].Version() != "2" {
		t.Errorf("directory source: %v %+v", err, d)
	}
}

func TestPartitionDiscovery(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.img")
			makeDisk(t, img, ss, [4]string{"part1-v3", "_empty", "a-very-long-partition-name-v3", "other"})
			tr := mustParse(t, "[Source]\nType=regular-file\nPath=/s\nMatchPattern=part1-@v.raw\n[Target]\nType=partition\nPath=auto\nMatchPattern=part1-@v\nMatchPartitionType=root-x86-64\n")
			d, err := tr.TargetInstances(context.Background(), Env{Image: img})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Instances) != 1 || len(d.EmptySlots) != 1 {
				t.Fatalf("instances %d, empty %d", len(d.Instances), len(d.EmptySlots))
			}
			in := d.Instances[0]
			wantOff := int64(1 << 20)
			if in.Version() != "v3" || in.Partition.Number != 1 || in.Partition.Offset != wantOff || in.Partition.Size != int64(ss)*2048 ||
				in.Fields.PartitionUUID != [16]byte(gpt.GUID{0xa0, 1}) || *in.Fields.ReadOnly {
				t.Errorf("instance %+v %+v", in, in.Partition)
			}
			if e := d.EmptySlots[0]; e.Number != 2 || e.Offset != wantOff+int64(ss)*2048 {
				t.Errorf("empty slot %+v", e)
			}
			// Only partitions of the configured type count.
			tr2 := mustParse(t, "[Source]\nType=regular-file\nPath=/s\nMatchPattern=x-@v.raw\n[Target]\nType=partition\nPath="+img+"\nMatchPattern=a-very-long-partition-name-@v\nMatchPartitionType=root-x86-64-verity\n")
			d, err = tr2.TargetInstances(context.Background(), Env{})
			if err != nil || len(d.Instances) != 1 || len(d.EmptySlots) != 0 || d.Instances[0].Partition.Number != 3 {
				t.Errorf("verity: %v %+v", err, d)
			}
		})
	}
	noGPT := filepath.Join(t.TempDir(), "blank.img")
	os.WriteFile(noGPT, make([]byte, 1<<20), 0o644)
	tr := mustParse(t, "[Source]\nType=regular-file\nPath=/s\nMatchPattern=x-@v\n[Target]\nType=partition\nPath="+noGPT+"\n")
	if _, err := tr.TargetInstances(context.Background(), Env{}); err == nil || !strings.Contains(err.Error(), "has no GPT disk label") {
		t.Errorf("no GPT: %v", err)
	}
	tr = mustParse(t, "[Source]\nType=regular-file\nPath=/s\nMatchPattern=x-@v\n[Target]\nType=partition\nPath=auto\n")
	if _, err := tr.TargetInstances(context.Background(), Env{}); err == nil || !strings.Contains(err.Error(), "Path=auto") {
		t.Errorf("auto without image: %v", err)
	}
}

func TestURLDiscovery(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"imago_1_4f68bce3e8cd4db196e7fbcaf984b709.usr.raw": "one", "imago_2_4f68bce3e8cd4db196e7fbcaf984b70a.usr.raw.gz": "two", "unrelated.txt": "x"}
	var names []string
	for n, c := range files {
		writeFile(t, filepath.Join(dir, n), c)
		names = append(names, n)
	}
	entries, err := sha256sums.SumDir(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(dir, "SHA256SUMS"))
	if err := sha256sums.WriteSysupdate(f, entries); err != nil {
		t.Fatal(err)
	}
	f.Close()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()

	def := "[Transfer]\nVerify=no\n[Source]\nType=url-file\nPath=%s\nMatchPattern=%%M_@v_@u.usr.raw %%M_@v_@u.usr.raw.gz\n[Target]\nType=partition\nPath=auto\nMatchPattern=%%M_@v\nMatchPartitionType=usr\n"
	tr := mustParse(t, fmt.Sprintf(def, srv.URL))
	d, err := tr.SourceInstances(context.Background(), Env{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Instances) != 2 || d.Instances[0].Version() != "2" || d.Instances[0].Path != srv.URL+"/imago_2_4f68bce3e8cd4db196e7fbcaf984b70a.usr.raw.gz" ||
		d.Instances[0].Fields.SHA256 != sha256.Sum256([]byte("two")) || d.Instances[1].Fields.PartitionUUID[15] != 0x09 {
		t.Errorf("instances %+v", d.Instances)
	}
	// file:// works the same way (as TEST-72 uses it).
	tr = mustParse(t, fmt.Sprintf(def, "file://"+dir+"/"))
	if d, err := tr.SourceInstances(context.Background(), Env{}); err != nil || len(d.Instances) != 2 {
		t.Errorf("file://: %v %+v", err, d)
	}
	// Missing manifest, broken manifest, hash in name disagreeing.
	tr = mustParse(t, fmt.Sprintf(def, srv.URL+"/missing"))
	if _, err := tr.SourceInstances(context.Background(), Env{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("not a manifest\n"), 0o644)
	tr = mustParse(t, fmt.Sprintf(def, srv.URL))
	if _, err := tr.SourceInstances(context.Background(), Env{}); err == nil || !strings.Contains(err.Error(), "SHA256SUMS") {
		t.Errorf("bad manifest: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Repeat("ab", 32)+"  x_1_"+strings.Repeat("cd", 32)+"\n"), 0o644)
	tr = mustParse(t, fmt.Sprintf("[Transfer]\nVerify=no\n[Source]\nType=url-file\nPath=%s\nMatchPattern=x_@v_@h\n[Target]\nPath=/t\n", srv.URL))
	if _, err := tr.SourceInstances(context.Background(), Env{}); err == nil || !strings.Contains(err.Error(), "don't match") {
		t.Errorf("hash mismatch: %v", err)
	}
}

func TestPartitionMetadata(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	size := int64(8 << 20)
	tab, err := gpt.New(size, 512, gpt.GUID{2})
	if err != nil {
		t.Fatal(err)
	}
	for k, label := range []string{"os-v9", "os-v8-ro0", "os-v10-ro1"} {
		start := uint64(2048 + k*2048)
		tab.Partitions = append(tab.Partitions, gpt.Partition{Number: k + 1, TypeGUID: gpt.GUID(typeRoot.UUID), UniqueGUID: gpt.GUID{0xb0, byte(k)},
			FirstLBA: start, LastLBA: start + 2047, Name: label, Attributes: dps.FlagReadOnly | dps.FlagNoAuto})
	}
	testutil.WriteGPTImage(t, img, size, tab)
	tr := mustParse(t, "[Source]\nType=regular-file\nPath=/s\nMatchPattern=os-@v.raw\n[Target]\nType=partition\nPath="+img+"\nMatchPattern=os-@v-ro@r os-@v\nMatchPartitionType=root-x86-64\n")
	d, err := tr.TargetInstances(context.Background(), Env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Instances) != 3 {
		t.Fatalf("%d instances", len(d.Instances))
	}
	got := map[string]bool{}
	for _, in := range d.Instances {
		got[in.Version()] = *in.Fields.ReadOnly
		if in.Fields.PartitionFlags != dps.FlagReadOnly|dps.FlagNoAuto || in.Fields.PartitionUUID[0] != 0xb0 {
			t.Errorf("%s: flags %#x uuid %x", in.Name, in.Fields.PartitionFlags, in.Fields.PartitionUUID)
		}
	}
	// The label's @r wins over the attribute bit.
	if !got["v9"] || got["v8"] || !got["v10"] || d.Instances[0].Version() != "v10" {
		t.Errorf("read-only: %v, order %s", got, d.Instances[0].Version())
	}
}
