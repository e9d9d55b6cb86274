// Package esp makes EFI System Partitions: a FAT32 file system holding
// systemd-boot, its loader.conf, unified kernel images and, optionally,
// Secure Boot keys for enrollment, laid out as systemd-boot 252 (Debian
// 12) and `bootctl install` of that version expect.
//
// An ESP is described by a Spec and written by Build (to a file) or
// BuildInto (into a byte range, such as a partition of a disk image). The
// file system is made by fsimage (mkfs.vfat and mcopy, no loop device, no
// mount). With Spec.SourceDateEpoch set, the result is reproducible: the
// same Spec gives the same bytes, because the volume ID is derived from the
// content and every time stamp is the epoch. docs/esp.md is the normative
// description of the layout.
package esp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/fsimage"
)

// Spec describes an ESP.
type Spec struct {
	// Architecture selects the names of the boot loader files:
	// EFI/BOOT/BOOTX64.EFI and EFI/systemd/systemd-bootx64.efi for x86-64.
	// Default x86-64.
	Architecture dps.Arch
	// BootLoader is the path of systemd-boot's EFI binary
	// (/usr/lib/systemd/boot/efi/systemd-bootx64.efi of the image's tree,
	// signed when Secure Boot is wanted). Required.
	BootLoader string
	// UKIs are copied to EFI/Linux/.
	UKIs []UKI
	// Loader is written to loader/loader.conf.
	Loader LoaderConf
	// SecureBootKeys, when set, are copied to loader/keys/<Name>/ for
	// systemd-boot to enroll.
	SecureBootKeys *SecureBootKeys
	// Label is the FAT volume label. Default "ESP".
	Label string
	// UUID, when set, gives the FAT volume ID (its first four bytes). By
	// default it is derived from the content, so different ESPs get
	// different IDs and the same ESP always the same one.
	UUID *[16]byte
	// Size is the size of the file system in bytes, a multiple of 512.
	// Zero means the size Plan computes.
	Size int64
	// Reserve is the free space, in bytes, the computed size keeps for
	// the UKIs that updates add. Zero means twice the size of the largest
	// UKI; a negative value means none.
	Reserve int64
	// SourceDateEpoch, when set, is the time of every file and directory
	// and makes the file system reproducible. FAT time stamps are clamped
	// to their range, 1980 to 2107.
	SourceDateEpoch *time.Time
	// TempDir holds the staging tree and the image while it is made;
	// default os.TempDir().
	TempDir string
}

// UKI is one unified kernel image to put into EFI/Linux/.
type UKI struct {
	// Source is the path of the UKI.
	Source string
	// Name is its file name in EFI/Linux/, usually from UKIName.
	Name string
}

// SecureBootKeys are authenticated EFI variable updates (.auth files, as
// sign-efi-sig-list writes them) for systemd-boot to enroll.
type SecureBootKeys struct {
	// Name is the directory below loader/keys/ and the name of the menu
	// entry; "auto" (the default) is what "secure-boot-enroll force"
	// enrolls without asking.
	Name string
	// PK, KEK and DB are the paths of PK.auth, KEK.auth and db.auth.
	PK, KEK, DB string
}

// LoaderConf is the content of loader/loader.conf (loader.conf(5) of
// systemd-boot 252).
type LoaderConf struct {
	// Timeout is "timeout": seconds, "menu-hidden" or "menu-force"; ""
	// leaves the line out (systemd-boot then shows no menu).
	Timeout string
	// Default is "default": a glob over entry IDs (UKI file names), ""
	// leaves it out (systemd-boot then boots the newest entry).
	Default string
	// Editor enables the kernel command line editor; it is written as
	// "editor no" unless set.
	Editor bool
	// ConsoleMode is "console-mode"; "" leaves it out.
	ConsoleMode string
	// SecureBootEnroll is "secure-boot-enroll": "off", "manual" or
	// "force"; "" leaves it out (systemd-boot's default is "manual").
	SecureBootEnroll string
}

// File is one file of an ESP.
type File struct {
	// Path is relative to the root of the file system, '/'-separated.
	Path string
	// Size is its length in bytes.
	Size int64
	// SHA256 is the hex SHA-256 of its content.
	SHA256 string
}

// Layout is what Plan computes: the files an ESP holds and its size.
type Layout struct {
	// Files are sorted by path.
	Files []File
	// Dirs are every directory, sorted, including empty ones.
	Dirs []string
	// Content is the space the files and directories take, in bytes,
	// rounded up to 4096 each.
	Content int64
	// Size is the size Build uses: Spec.Size or the computed one.
	Size int64
	// UUID is the volume UUID Build uses; the FAT volume ID is its first
	// four bytes.
	UUID [16]byte
}

// Result describes a built ESP.
type Result struct {
	Layout
	// VolumeID is the FAT volume ID as blkid prints it ("ABCD-1234").
	VolumeID string
}

// MinSize is the smallest size Plan computes: enough for FAT32 (at least
// 65525 clusters) with room to spare.
const MinSize = 64 << 20

// loaderSpec is loader/entries.srel: it says that the Type #1 entries in
// loader/entries/ follow the Boot Loader Specification. bootctl 252 writes
// it on install.
const loaderSpec = "type1\n"

// bootDirs are the directories `bootctl install` of systemd 252 creates in
// an ESP that is also $BOOT. Empty ones are kept.
var bootDirs = []string{"EFI", "EFI/BOOT", "EFI/Linux", "EFI/systemd", "loader", "loader/entries"}

// efiArch maps an architecture to the suffix of the boot loader file
// names (BOOTX64.EFI, systemd-bootx64.efi).
var efiArch = map[dps.Arch]string{
	dps.ArchX86_64:      "x64",
	dps.ArchX86:         "ia32",
	dps.ArchARM64:       "aa64",
	dps.ArchARM:         "arm",
	dps.ArchRISCV64:     "riscv64",
	dps.ArchLoongArch64: "loongarch64",
}

// BootLoaderPaths returns where systemd-boot goes for an architecture: the
// removable-media path the firmware boots by default and systemd's own.
func BootLoaderPaths(a dps.Arch) (fallback, own string, err error) {
	if a == "" {
		a = dps.ArchX86_64
	}
	s, ok := efiArch[a]
	if !ok {
		return "", "", fmt.Errorf("esp: no UEFI boot loader name for architecture %q", a)
	}
	return "EFI/BOOT/BOOT" + strings.ToUpper(s) + ".EFI", "EFI/systemd/systemd-boot" + s + ".efi", nil
}

// BootCounter is the boot counting suffix systemd-boot understands in a
// UKI's name: "+LEFT" or "+LEFT-DONE".
type BootCounter struct {
	Left int
	Done int
	// WithDone writes "-DONE" also when Done is 0, as systemd-sysupdate
	// names new entries ("+3-0").
	WithDone bool
}

// UKIName returns the file name of a UKI in EFI/Linux/:
// "<imageID>_<version>.efi", or with a boot counter
// "<imageID>_<version>+<left>[-<done>].efi".
func UKIName(imageID, version string, counter *BootCounter) (string, error) {
	if imageID == "" || version == "" {
		return "", errors.New("esp: a UKI name needs an image ID and a version")
	}
	if strings.ContainsAny(imageID+version, "+/\\") {
		return "", fmt.Errorf("esp: %q, %q: '+', '/' and '\\' cannot be part of a UKI name", imageID, version)
	}
	name := imageID + "_" + version
	if counter != nil {
		if counter.Left < 0 || counter.Done < 0 {
			return "", fmt.Errorf("esp: negative boot counter %+v", *counter)
		}
		name += fmt.Sprintf("+%d", counter.Left)
		if counter.Done > 0 || counter.WithDone {
			name += fmt.Sprintf("-%d", counter.Done)
		}
	}
	name += ".efi"
	if err := checkFATName(name); err != nil {
		return "", err
	}
	return name, nil
}

// entry is one file to stage: from a host file or from bytes.
type entry struct {
	path   string
	source string
	data   []byte
}

// entries lists the files of spec, validated.
func (spec *Spec) entries() ([]entry, error) {
	if spec.BootLoader == "" {
		return nil, errors.New("esp: no boot loader given")
	}
	fallback, own, err := BootLoaderPaths(spec.Architecture)
	if err != nil {
		return nil, err
	}
	conf, err := spec.Loader.Format()
	if err != nil {
		return nil, err
	}
	es := []entry{
		{path: fallback, source: spec.BootLoader},
		{path: own, source: spec.BootLoader},
		{path: "loader/loader.conf", data: conf},
		{path: "loader/entries.srel", data: []byte(loaderSpec)},
	}
	for _, u := range spec.UKIs {
		if err := checkFATName(u.Name); err != nil {
			return nil, err
		}
		if !strings.HasSuffix(strings.ToLower(u.Name), ".efi") {
			return nil, fmt.Errorf("esp: UKI name %q does not end in .efi: systemd-boot would not list it", u.Name)
		}
		if u.Source == "" {
			return nil, fmt.Errorf("esp: UKI %q has no source", u.Name)
		}
		es = append(es, entry{path: "EFI/Linux/" + u.Name, source: u.Source})
	}
	if k := spec.SecureBootKeys; k != nil {
		name := k.Name
		if name == "" {
			name = "auto"
		}
		if err := checkFATName(name); err != nil {
			return nil, err
		}
		for _, f := range []struct{ name, source string }{{"PK.auth", k.PK}, {"KEK.auth", k.KEK}, {"db.auth", k.DB}} {
			if f.source == "" {
				return nil, fmt.Errorf("esp: Secure Boot key set %q lacks %s", name, f.name)
			}
			es = append(es, entry{path: "loader/keys/" + name + "/" + f.name, source: f.source})
		}
	}
	seen := map[string]bool{}
	for _, e := range es {
		// FAT compares names without regard to case.
		k := strings.ToUpper(e.path)
		if seen[k] {
			return nil, fmt.Errorf("esp: %s is given twice", e.path)
		}
		seen[k] = true
	}
	sort.Slice(es, func(i, j int) bool { return es[i].path < es[j].path })
	return es, nil
}

// checkFATName refuses names a FAT long file name cannot hold.
func checkFATName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 ||
		strings.ContainsAny(name, "/\\:*?\"<>|") || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) ||
		strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return fmt.Errorf("esp: %q cannot be a file name on FAT", name)
	}
	return nil
}

// Format returns loader.conf's text.
func (c LoaderConf) Format() ([]byte, error) {
	var b strings.Builder
	word := func(key, v string) error {
		if v == "" {
			return nil
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fmt.Errorf("esp: loader.conf %s %q: no whitespace or control characters allowed", key, v)
		}
		fmt.Fprintf(&b, "%s %s\n", key, v)
		return nil
	}
	if c.Timeout != "" && c.Timeout != "menu-hidden" && c.Timeout != "menu-force" && !allDigits(c.Timeout) {
		return nil, fmt.Errorf("esp: loader.conf timeout %q: want seconds, menu-hidden or menu-force", c.Timeout)
	}
	switch c.SecureBootEnroll {
	case "", "off", "manual", "force":
	default:
		return nil, fmt.Errorf("esp: loader.conf secure-boot-enroll %q: want off, manual or force", c.SecureBootEnroll)
	}
	editor := "no"
	if c.Editor {
		editor = "yes"
	}
	for _, kv := range [][2]string{{"timeout", c.Timeout}, {"default", c.Default}, {"editor", editor},
		{"console-mode", c.ConsoleMode}, {"secure-boot-enroll", c.SecureBootEnroll}} {
		if err := word(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return []byte(b.String()), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != "" && len(s) < 10
}

// Plan validates spec and computes the layout Build would write, reading
// (and hashing) every source file.
func Plan(spec Spec) (*Layout, error) {
	es, err := spec.entries()
	if err != nil {
		return nil, err
	}
	return plan(spec, es)
}

const (
	cluster = 4096
	mib     = 1 << 20
)

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// plan hashes the entries and sizes the file system.
func plan(spec Spec, es []entry) (*Layout, error) {
	l := &Layout{}
	dirs := map[string]bool{}
	for _, d := range bootDirs {
		dirs[d] = true
	}
	var largestUKI int64
	for _, e := range es {
		for d := path.Dir(e.path); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		f := File{Path: e.path}
		if e.data != nil {
			sum := sha256.Sum256(e.data)
			f.Size, f.SHA256 = int64(len(e.data)), hex.EncodeToString(sum[:])
		} else {
			n, sum, err := hashFile(e.source)
			if err != nil {
				return nil, err
			}
			f.Size, f.SHA256 = n, sum
		}
		if strings.HasPrefix(e.path, "EFI/Linux/") && f.Size > largestUKI {
			largestUKI = f.Size
		}
		l.Files = append(l.Files, f)
		l.Content += roundUp(f.Size, cluster)
	}
	for d := range dirs {
		l.Dirs = append(l.Dirs, d)
	}
	sort.Strings(l.Dirs)
	l.Content += int64(len(l.Dirs)) * cluster

	reserve := spec.Reserve
	if reserve == 0 {
		reserve = 2 * largestUKI
	}
	if reserve < 0 {
		reserve = 0
	}
	// FAT32 spends about 1/64 of the volume on its two tables with 512-byte
	// clusters (mkfs.fat's choice below 260 MiB), plus reserved sectors.
	need := (l.Content+reserve)*64/63 + mib
	computed := max(roundUp(need, mib), MinSize)
	l.Size = computed
	if spec.Size != 0 {
		if spec.Size < 0 || spec.Size%512 != 0 {
			return nil, fmt.Errorf("esp: size %d is not a positive multiple of 512", spec.Size)
		}
		if spec.Size < l.Content*64/63+mib {
			return nil, fmt.Errorf("esp: %d bytes of content do not fit in %d bytes", l.Content, spec.Size)
		}
		l.Size = spec.Size
	}
	if spec.UUID != nil {
		l.UUID = *spec.UUID
	} else {
		l.UUID = deriveUUID(spec.label(), l.Files)
	}
	return l, nil
}

func (spec *Spec) label() string {
	if spec.Label == "" {
		return "ESP"
	}
	return spec.Label
}

// deriveUUID makes the volume UUID from the content: a hash over the
// label and every file's path and SHA-256.
func deriveUUID(label string, files []File) [16]byte {
	h := sha256.New()
	fmt.Fprintf(h, "imago-esp\x00%s\x00", label)
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00", f.Path, f.SHA256)
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	return u
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", fmt.Errorf("esp: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("esp: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, "", fmt.Errorf("esp: %s: not a regular file", p)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("esp: %s: %w", p, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Build writes the ESP described by spec as a file system image to output
// (created or replaced) and returns what it wrote.
func Build(ctx context.Context, spec Spec, output string) (*Result, error) {
	return build(ctx, spec, output)
}

// BuildInto writes the ESP into dst at [offset, offset+size), for example
// a partition of a disk image; spec.Size is ignored in favour of size. The
// image is made in spec.TempDir first and then copied, every byte of the
// range.
func BuildInto(ctx context.Context, spec Spec, dst io.WriterAt, offset, size int64) (*Result, error) {
	if offset < 0 || size <= 0 {
		return nil, fmt.Errorf("esp: bad range offset %d size %d", offset, size)
	}
	spec.Size = size
	tmp, err := os.CreateTemp(spec.TempDir, "imago-esp-*.img")
	if err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	r, err := build(ctx, spec, tmp.Name())
	if err != nil {
		return nil, err
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(io.NewOffsetWriter(dst, offset), io.LimitReader(f, size)); err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	return r, nil
}

func build(ctx context.Context, spec Spec, output string) (*Result, error) {
	es, err := spec.entries()
	if err != nil {
		return nil, err
	}
	l, err := plan(spec, es)
	if err != nil {
		return nil, err
	}
	tree, err := os.MkdirTemp(spec.TempDir, "imago-esp-*")
	if err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	defer os.RemoveAll(tree)
	if err := stage(tree, es, l, spec.SourceDateEpoch); err != nil {
		return nil, err
	}
	var epoch *time.Time
	if spec.SourceDateEpoch != nil {
		t := clampFAT(*spec.SourceDateEpoch)
		epoch = &t
	}
	opts := fsimage.Options{
		Type:            "vfat",
		Label:           spec.label(),
		UUID:            l.UUID,
		SourceDir:       tree,
		SourceDateEpoch: epoch,
		TempDir:         spec.TempDir,
	}
	if _, err := fsimage.MakeFile(ctx, output, l.Size, opts); err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	id := l.UUID[:4]
	return &Result{Layout: *l, VolumeID: fmt.Sprintf("%02X%02X-%02X%02X", id[0], id[1], id[2], id[3])}, nil
}

// stage writes the tree to copy into the file system, checks that the
// copies match the plan (a source changing meanwhile would make the
// result differ from the plan), and sets every time stamp.
func stage(tree string, es []entry, l *Layout, epoch *time.Time) error {
	for _, d := range l.Dirs {
		if err := os.MkdirAll(filepath.Join(tree, filepath.FromSlash(d)), 0o755); err != nil {
			return fmt.Errorf("esp: %w", err)
		}
	}
	want := map[string]File{}
	for _, f := range l.Files {
		want[f.Path] = f
	}
	for _, e := range es {
		dst := filepath.Join(tree, filepath.FromSlash(e.path))
		var err error
		if e.data != nil {
			err = os.WriteFile(dst, e.data, 0o644)
		} else {
			err = copyFile(e.source, dst)
		}
		if err != nil {
			return fmt.Errorf("esp: %w", err)
		}
		n, sum, err := hashFile(dst)
		if err != nil {
			return err
		}
		if f := want[e.path]; n != f.Size || sum != f.SHA256 {
			return fmt.Errorf("esp: %s changed while the ESP was made", e.source)
		}
	}
	if epoch == nil {
		return nil
	}
	t := clampFAT(*epoch)
	// Deepest first, so that setting a file's time cannot touch its
	// directory's afterwards.
	paths := []string{}
	for _, f := range l.Files {
		paths = append(paths, f.Path)
	}
	paths = append(paths, l.Dirs...)
	sort.Slice(paths, func(i, j int) bool {
		di, dj := strings.Count(paths[i], "/"), strings.Count(paths[j], "/")
		if di != dj {
			return di > dj
		}
		return paths[i] < paths[j]
	})
	paths = append(paths, ".")
	for _, p := range paths {
		if err := os.Chtimes(filepath.Join(tree, filepath.FromSlash(p)), t, t); err != nil {
			return fmt.Errorf("esp: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// The range of FAT time stamps (local time, which imago's tools treat as
// UTC): 1980-01-01 to 2107-12-31, in steps of two seconds.
var (
	fatMin = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	fatMax = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
)

// clampFAT brings t into FAT's range and rounds it down to two seconds.
func clampFAT(t time.Time) time.Time {
	t = t.UTC()
	if t.Before(fatMin) {
		return fatMin
	}
	if t.After(fatMax) {
		return fatMax
	}
	return t.Truncate(2 * time.Second)
}
