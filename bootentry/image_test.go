package bootentry

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/internal/testutil"
)

// makeFAT writes a FAT file system holding tree's contents to a new file
// and returns its path.
func makeFAT(t *testing.T, tree string) string {
	t.Helper()
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	testutil.RequireTool(t, "mcopy", "mtools")
	testutil.RequireTool(t, "mdir", "mtools")
	img := filepath.Join(t.TempDir(), "esp.img")
	if _, err := fsimage.MakeFile(context.Background(), img, 40<<20, fsimage.Options{Type: "vfat", Label: "ESP", SourceDir: tree}); err != nil {
		t.Fatal(err)
	}
	return img
}

// wrapInGPT returns a disk image with one partition, of type typ, holding
// the file system fsImg at 1 MiB.
func wrapInGPT(t *testing.T, fsImg string, typ dps.UUID) string {
	t.Helper()
	src, err := os.Open(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		t.Fatal(err)
	}
	const start = 1 << 20
	size := start + fi.Size() + 1<<20
	table, err := gpt.New(size, 512, gpt.GUID{1})
	if err != nil {
		t.Fatal(err)
	}
	table.Partitions = []gpt.Partition{{
		Number: 1, TypeGUID: gpt.GUID(typ), UniqueGUID: gpt.GUID{2},
		FirstLBA: start / 512, LastLBA: uint64(start+fi.Size())/512 - 1, Name: "esp",
	}}
	disk := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := gpt.Write(f, size, table); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.NewOffsetWriter(f, start), src); err != nil {
		t.Fatal(err)
	}
	return disk
}

func TestExtractESP(t *testing.T) {
	tree := t.TempDir()
	writeUKI(t, tree, "imago-ref_3+0-3.efi", "3")
	writeUKI(t, tree, "imago-ref_2.efi", "2")
	writeFile(t, tree, EntriesDir+"/rescue+1.conf", []byte("title Rescue\nlinux /vmlinuz\n"))
	writeFile(t, tree, LoaderConf, []byte("default imago-ref_3*\n"))
	writeFile(t, tree, "EFI/BOOT/BOOTX64.EFI", []byte("not copied"))
	writeFile(t, tree, "unrelated.txt", []byte("not copied"))
	fat := makeFAT(t, tree)
	esp, ok := dps.LookupName("esp", "")
	if !ok {
		t.Fatal("no esp type")
	}

	for name, image := range map[string]string{"bare FAT": fat, "GPT": wrapInGPT(t, fat, esp.UUID)} {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			if err := ExtractESP(context.Background(), image, dst); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dst, "EFI/BOOT")); !os.IsNotExist(err) {
				t.Errorf("EFI/BOOT was copied: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dst, "unrelated.txt")); !os.IsNotExist(err) {
				t.Errorf("unrelated.txt was copied: %v", err)
			}
			st, err := Status(dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(st.Entries); got != "imago-ref_2.efi rescue+1.conf imago-ref_3+0-3.efi" {
				t.Errorf("order = %s", got)
			}
			// loader.conf names the bad entry: systemd-boot still boots it.
			if st.Default == nil || st.Default.FileName != "imago-ref_3+0-3.efi" || st.Fallback != nil {
				t.Errorf("default %+v, fallback %+v", st.Default, st.Fallback)
			}
		})
	}

	// A disk without an ESP is an error that says so.
	root, _ := dps.LookupName("root-x86-64", "")
	err := ExtractESP(context.Background(), wrapInGPT(t, fat, root.UUID), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no ESP") {
		t.Errorf("disk without ESP: %v", err)
	}
	if err := ExtractESP(context.Background(), filepath.Join(t.TempDir(), "missing.img"), t.TempDir()); err == nil {
		t.Error("missing image: no error")
	}
}

func TestFindESP(t *testing.T) {
	old := ESPCandidates
	defer func() { ESPCandidates = old }()

	// "/" is a mount point; it holds no EFI/ or loader/ directory on a
	// normal system, so a temporary tree stands in for the content check.
	if !isMountPoint("/") {
		t.Error(`"/" is not a mount point`)
	}
	dir := t.TempDir()
	if isMountPoint(filepath.Join(dir, "missing")) {
		t.Error("a missing directory is a mount point")
	}
	if holdsBootFiles(dir) {
		t.Error("an empty directory holds boot files")
	}
	if err := os.MkdirAll(filepath.Join(dir, "efi"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !holdsBootFiles(dir) {
		t.Error("efi/ not seen as boot files")
	}
	// A directory on the same file system as its parent is no mount
	// point, whatever it holds.
	ESPCandidates = []string{filepath.Join(dir, "missing"), dir}
	if got, err := FindESP(); err == nil || !strings.Contains(err.Error(), "no ESP found") {
		t.Errorf("FindESP() = %q, %v; want no ESP found", got, err)
	}
	ESPCandidates = []string{dir, "/"}
	got, err := FindESP()
	if holdsBootFiles("/") != (err == nil) || (err == nil && got != "/") {
		t.Errorf("FindESP() with / = %q, %v", got, err)
	}
}
