package esp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/internal/testutil"
)

// systemdBoot is where Debian's systemd-boot-efi package puts systemd-boot.
const systemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// requireSystemdBoot returns systemd-boot's path; like testutil.RequireTool
// it fails under CI and skips otherwise when the file is missing.
func requireSystemdBoot(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(systemdBoot); err != nil {
		msg := systemdBoot + " not found (install the Debian package systemd-boot-efi)"
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return systemdBoot
}

// fixture writes a fake UKI and key files and returns a Spec using them.
func fixture(t *testing.T, bootLoader string) Spec {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	uki := bytes.Repeat([]byte("MZ uki "), 300000) // about 2 MiB
	epoch := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return Spec{
		BootLoader: bootLoader,
		UKIs: []UKI{
			{Source: write("a.efi", uki), Name: "imago-ref_1.efi"},
			{Source: write("b.efi", append(uki, 'x')), Name: "imago-ref_2+3-0.efi"},
		},
		Loader: LoaderConf{Timeout: "0", SecureBootEnroll: "force"},
		SecureBootKeys: &SecureBootKeys{
			PK: write("PK.auth", []byte("pk")), KEK: write("KEK.auth", []byte("kek")), DB: write("db.auth", []byte("db")),
		},
		SourceDateEpoch: &epoch,
		TempDir:         t.TempDir(),
	}
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// TestBuild builds an ESP with the real systemd-boot and checks it with
// dosfstools and mtools: a clean file system, exactly the expected files
// and directories, each with the expected bytes.
func TestBuild(t *testing.T) {
	fsck := testutil.RequireTool(t, "fsck.vfat", "dosfstools")
	mdir := testutil.RequireTool(t, "mdir", "mtools")
	mtype := testutil.RequireTool(t, "mtype", "mtools")
	blkid := testutil.RequireTool(t, "blkid", "util-linux")
	spec := fixture(t, requireSystemdBoot(t))
	img := filepath.Join(t.TempDir(), "esp.img")
	r, err := Build(context.Background(), spec, img)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, fsck, "-n", img)

	fi, err := os.Stat(img)
	if err != nil || fi.Size() != r.Size || r.Size != MinSize {
		t.Errorf("image size %v, result %d, want %d", fi, r.Size, MinSize)
	}
	out := testutil.Run(t, blkid, "-p", "-o", "export", img)
	for _, want := range []string{"TYPE=vfat", "VERSION=FAT32", "LABEL=ESP", "UUID=" + r.VolumeID} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("blkid lacks %s:\n%s", want, out)
		}
	}

	// mdir -/ -b lists every file and directory, recursively, as paths.
	env := []string{"MTOOLS_SKIP_CHECK=1"}
	listing := runEnv(t, env, mdir, "-/", "-b", "-i", img, "::/")
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(listing)), "\n") {
		got = append(got, strings.TrimSuffix(strings.TrimPrefix(l, "::/"), "/"))
	}
	sort.Strings(got)
	want := []string{
		"EFI", "EFI/BOOT", "EFI/BOOT/BOOTX64.EFI", "EFI/Linux", "EFI/Linux/imago-ref_1.efi", "EFI/Linux/imago-ref_2+3-0.efi",
		"EFI/systemd", "EFI/systemd/systemd-bootx64.efi",
		"loader", "loader/entries", "loader/entries.srel", "loader/keys", "loader/keys/auto",
		"loader/keys/auto/KEK.auth", "loader/keys/auto/PK.auth", "loader/keys/auto/db.auth", "loader/loader.conf",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files in the ESP:\n got %q\nwant %q", got, want)
	}

	boot, err := os.ReadFile(spec.BootLoader)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte { return runEnv(t, env, mtype, "-i", img, "::/"+p) }
	source := map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI":            boot,
		"EFI/systemd/systemd-bootx64.efi": boot,
		"loader/loader.conf":              []byte("timeout 0\neditor no\nsecure-boot-enroll force\n"),
		"loader/entries.srel":             []byte("type1\n"),
		"loader/keys/auto/PK.auth":        []byte("pk"),
		"loader/keys/auto/KEK.auth":       []byte("kek"),
		"loader/keys/auto/db.auth":        []byte("db"),
	}
	for _, u := range spec.UKIs {
		source["EFI/Linux/"+u.Name], _ = os.ReadFile(u.Source)
	}
	var files []string
	for _, f := range r.Files {
		files = append(files, f.Path)
		data := read(f.Path)
		if !bytes.Equal(data, source[f.Path]) {
			t.Errorf("%s: %d bytes in the ESP differ from the %d expected", f.Path, len(data), len(source[f.Path]))
		}
		if f.SHA256 != sha(data) || f.Size != int64(len(data)) {
			t.Errorf("%s: result says %d bytes %s, the ESP holds %d bytes %s", f.Path, f.Size, f.SHA256, len(data), sha(data))
		}
	}
	if len(files) != len(source) || !sort.StringsAreSorted(files) {
		t.Errorf("result files %q", files)
	}
	if !reflect.DeepEqual(r.Dirs, []string{"EFI", "EFI/BOOT", "EFI/Linux", "EFI/systemd", "loader", "loader/entries", "loader/keys", "loader/keys/auto"}) {
		t.Errorf("result dirs %q", r.Dirs)
	}
	// Every time stamp is the epoch (FAT's local time, which is UTC here).
	dates := runEnv(t, append(env, "TZ=UTC"), mdir, "-/", "-i", img, "::/")
	checked := 0
	for _, l := range strings.Split(string(dates), "\n") {
		if strings.Contains(l, "<DIR>") || strings.Contains(l, " EFI ") || strings.Contains(l, " AUT ") ||
			strings.Contains(l, " CON ") || strings.Contains(l, " SRE ") {
			checked++
			if !strings.Contains(l, "2024-05-01  12:00") {
				t.Errorf("time stamp other than the epoch: %q", l)
			}
		}
	}
	// 8 directories, the . and .. entries in each, and 9 files.
	if checked != 8+16+9 {
		t.Errorf("checked %d time stamps:\n%s", checked, dates)
	}
}

func runEnv(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	return testutil.Run(t, "env", append(append(env, name), args...)...)
}

// TestReproducible: two builds of the same Spec, from separately staged
// trees, give the same bytes; another epoch or other content gives others.
func TestReproducible(t *testing.T) {
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	testutil.RequireTool(t, "mcopy", "mtools")
	dir := t.TempDir()
	loader := filepath.Join(dir, "boot.efi")
	if err := os.WriteFile(loader, []byte("MZ not really a boot loader"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fixture(t, loader)
	buildOne := func(s Spec, name string) ([]byte, *Result) {
		img := filepath.Join(dir, name)
		r, err := Build(context.Background(), s, img)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return data, r
	}
	a, ra := buildOne(spec, "a.img")
	// Make the clock move on, so that any time stamp taken from it shows.
	time.Sleep(2100 * time.Millisecond)
	b, rb := buildOne(spec, "b.img")
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same ESP differ")
	}
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("results differ: %+v %+v", ra, rb)
	}

	other := *spec.SourceDateEpoch
	other = other.Add(time.Hour)
	spec2 := spec
	spec2.SourceDateEpoch = &other
	if c, _ := buildOne(spec2, "c.img"); bytes.Equal(a, c) {
		t.Error("another SOURCE_DATE_EPOCH gave the same bytes")
	}

	if err := os.WriteFile(spec.SecureBootKeys.DB, []byte("DB"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, rd := buildOne(spec, "d.img")
	if rd.VolumeID == ra.VolumeID {
		t.Error("other content, same volume ID")
	}
}

// TestBuildInto writes an ESP into the middle of a larger file: the range
// holds the same bytes as Build's file, the rest is untouched.
func TestBuildInto(t *testing.T) {
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	dir := t.TempDir()
	loader := filepath.Join(dir, "boot.efi")
	if err := os.WriteFile(loader, []byte("MZ loader"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fixture(t, loader)
	spec.Size = 80 << 20
	img := filepath.Join(dir, "esp.img")
	if _, err := Build(context.Background(), spec, img); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(img)

	disk, err := os.Create(filepath.Join(dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	const offset = 1 << 20
	fill := bytes.Repeat([]byte{0xa5}, offset)
	disk.WriteAt(fill, 0)
	disk.WriteAt(fill, offset+spec.Size)
	r, err := BuildInto(context.Background(), spec, disk, offset, spec.Size)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != spec.Size {
		t.Errorf("size %d", r.Size)
	}
	got := make([]byte, len(want))
	disk.ReadAt(got, offset)
	if !bytes.Equal(got, want) {
		t.Error("the range differs from Build's image")
	}
	for _, at := range []int64{0, offset - 1, offset + spec.Size, offset + spec.Size + offset - 1} {
		var b [1]byte
		disk.ReadAt(b[:], at)
		if b[0] != 0xa5 {
			t.Errorf("byte %d outside the range was changed", at)
		}
	}
}

func TestPlanSize(t *testing.T) {
	dir := t.TempDir()
	loader := filepath.Join(dir, "boot.efi")
	uki := filepath.Join(dir, "uki.efi")
	os.WriteFile(loader, make([]byte, 100000), 0o644)
	f, _ := os.Create(uki)
	f.Truncate(40 << 20) // a UKI of 40 MiB
	f.Close()
	spec := Spec{BootLoader: loader, UKIs: []UKI{{Source: uki, Name: "os_1.efi"}}}
	l, err := Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	// 40 MiB + 2 × 100000 bytes rounded to 4096 + 2 small files + 6
	// directories; twice the UKI reserved; 64/63 for the FATs; 1 MiB.
	content := int64(40<<20 + 2*102400 + 2*4096 + 6*4096)
	if l.Content != content {
		t.Errorf("content %d, want %d", l.Content, content)
	}
	want := roundUp((content+80<<20)*64/63+mib, mib)
	if l.Size != want || l.Size != 124<<20 {
		t.Errorf("size %d, want %d", l.Size, want)
	}
	spec.Reserve = -1
	if l, _ := Plan(spec); l.Size != 64<<20 {
		t.Errorf("no reserve: size %d, want the minimum", l.Size)
	}
	spec.Reserve = 200 << 20
	if l, _ := Plan(spec); l.Size != roundUp((content+200<<20)*64/63+mib, mib) {
		t.Errorf("reserve 200 MiB: size %d", l.Size)
	}
	spec.Size = 40 << 20
	if _, err := Plan(spec); err == nil || !strings.Contains(err.Error(), "do not fit in 41943040 bytes") {
		t.Errorf("too small: %v", err)
	}
	spec.Size = 100<<20 + 1
	if _, err := Plan(spec); err == nil {
		t.Error("a size that is not a multiple of 512 was accepted")
	}
	u := [16]byte{0xde, 0xad, 0xbe, 0xef}
	spec.Size, spec.UUID = 0, &u
	if l, _ := Plan(spec); l.UUID != u {
		t.Errorf("UUID %x", l.UUID)
	}
}

func TestSpecErrors(t *testing.T) {
	dir := t.TempDir()
	loader := filepath.Join(dir, "boot.efi")
	os.WriteFile(loader, []byte("MZ"), 0o644)
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no loader", Spec{}, "no boot loader given"},
		{"missing loader", Spec{BootLoader: filepath.Join(dir, "nope")}, "no such file"},
		{"loader is a directory", Spec{BootLoader: dir}, "not a regular file"},
		{"arch", Spec{BootLoader: loader, Architecture: dps.ArchS390X}, `no UEFI boot loader name for architecture "s390x"`},
		{"uki name", Spec{BootLoader: loader, UKIs: []UKI{{Source: loader, Name: "a/b.efi"}}}, `"a/b.efi" cannot be a file name on FAT`},
		{"uki suffix", Spec{BootLoader: loader, UKIs: []UKI{{Source: loader, Name: "a.img"}}}, "does not end in .efi"},
		{"uki source", Spec{BootLoader: loader, UKIs: []UKI{{Name: "a.efi"}}}, `UKI "a.efi" has no source`},
		{"duplicate", Spec{BootLoader: loader, UKIs: []UKI{{Source: loader, Name: "a.efi"}, {Source: loader, Name: "A.EFI"}}}, "EFI/Linux/A.EFI is given twice"},
		{"keys", Spec{BootLoader: loader, SecureBootKeys: &SecureBootKeys{PK: loader, KEK: loader}}, `Secure Boot key set "auto" lacks db.auth`},
		{"timeout", Spec{BootLoader: loader, Loader: LoaderConf{Timeout: "5s"}}, `timeout "5s"`},
		{"enroll", Spec{BootLoader: loader, Loader: LoaderConf{SecureBootEnroll: "if-safe"}}, `secure-boot-enroll "if-safe"`},
		{"default", Spec{BootLoader: loader, Loader: LoaderConf{Default: "a b"}}, `loader.conf default "a b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Plan(c.spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestLoaderConf(t *testing.T) {
	for _, c := range []struct {
		conf LoaderConf
		want string
	}{
		{LoaderConf{}, "editor no\n"},
		{LoaderConf{Timeout: "menu-force", Editor: true}, "timeout menu-force\neditor yes\n"},
		{LoaderConf{Timeout: "3", Default: "imago-ref_*", ConsoleMode: "keep", SecureBootEnroll: "manual"},
			"timeout 3\ndefault imago-ref_*\neditor no\nconsole-mode keep\nsecure-boot-enroll manual\n"},
	} {
		got, err := c.conf.Format()
		if err != nil || string(got) != c.want {
			t.Errorf("%+v: %q, %v; want %q", c.conf, got, err, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		arch           dps.Arch
		fallback, own  string
		errorSubstring string
	}{
		{"", "EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi", ""},
		{dps.ArchX86_64, "EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi", ""},
		{dps.ArchARM64, "EFI/BOOT/BOOTAA64.EFI", "EFI/systemd/systemd-bootaa64.efi", ""},
		{dps.ArchX86, "EFI/BOOT/BOOTIA32.EFI", "EFI/systemd/systemd-bootia32.efi", ""},
		{dps.ArchRISCV64, "EFI/BOOT/BOOTRISCV64.EFI", "EFI/systemd/systemd-bootriscv64.efi", ""},
		{dps.ArchPPC64LE, "", "", "ppc64-le"},
	} {
		f, o, err := BootLoaderPaths(c.arch)
		if f != c.fallback || o != c.own || (err != nil) != (c.errorSubstring != "") {
			t.Errorf("%q: %q %q %v", c.arch, f, o, err)
		}
	}
	for _, c := range []struct {
		id, version string
		counter     *BootCounter
		want        string
	}{
		{"imago-ref", "1", nil, "imago-ref_1.efi"},
		{"imago-ref", "2.0", &BootCounter{Left: 3}, "imago-ref_2.0+3.efi"},
		{"imago-ref", "2.0", &BootCounter{Left: 3, WithDone: true}, "imago-ref_2.0+3-0.efi"},
		{"imago-ref", "2.0", &BootCounter{Left: 1, Done: 2}, "imago-ref_2.0+1-2.efi"},
		{"a", "1+2", nil, ""},
		{"", "1", nil, ""},
		{"a", "1", &BootCounter{Left: -1}, ""},
		{"a", "1:2", nil, ""},
	} {
		got, err := UKIName(c.id, c.version, c.counter)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("UKIName(%q, %q, %+v) = %q, %v; want %q", c.id, c.version, c.counter, got, err, c.want)
		}
	}
}

func TestClampFAT(t *testing.T) {
	for _, c := range []struct{ in, want time.Time }{
		{time.Unix(0, 0), fatMin},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), fatMax},
		{time.Date(2024, 5, 1, 12, 0, 3, 500, time.UTC), time.Date(2024, 5, 1, 12, 0, 2, 0, time.UTC)},
	} {
		if got := clampFAT(c.in); !got.Equal(c.want) {
			t.Errorf("clampFAT(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
