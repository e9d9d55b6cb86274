package initrd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imago-os/imago/format/unitfile"
)

// DefaultModules returns the dracut modules of the default initrd: a
// systemd initrd (systemd, systemd-initrd, dracut-systemd, udev-rules)
// that finds /usr through the veritysetup generator, runs systemd-repart,
// unlocks LUKS2 volumes (crypt, dm), and mounts btrfs.
func DefaultModules() []string {
	return []string{
		"systemd", "systemd-initrd", "systemd-veritysetup", "systemd-repart", "dracut-systemd",
		"base", "fs-lib", "kernel-modules", "rootfs-block", "udev-rules", "dm", "crypt", "btrfs",
		"usrmount", "shutdown",
	}
}

// DefaultDrivers returns the kernel modules of the default initrd besides
// the file systems: virtio disks (block and SCSI, with the SCSI disk
// driver), PCI and console; device mapper with verity and crypt; the TPM
// interfaces; loop, through which systemd-repart 252 formats the
// partitions it creates ("Failed to make loopback device of future
// partition" without it); efivarfs; the code pages vfat mounts with by
// default. Those the kernel has built in (the TPM drivers and efivarfs in
// Debian's amd64 kernel, for one) are satisfied by it.
func DefaultDrivers() []string {
	return []string{
		"virtio_blk", "virtio_pci", "virtio_scsi", "sd_mod", "virtio_console",
		"dm_mod", "dm_verity", "dm_crypt",
		"tpm_tis", "tpm_crb",
		"loop",
		"efivarfs", "nls_cp437", "nls_iso8859_1",
	}
}

// DefaultFilesystems returns the file-system modules of the default
// initrd: erofs and squashfs for /usr, btrfs and ext4 for the root file
// system, vfat for the ESP.
func DefaultFilesystems() []string {
	return []string{"erofs", "squashfs", "btrfs", "ext4", "vfat"}
}

// DefaultInstall returns the files the default initrd gets besides those
// of its dracut modules, as glob patterns of absolute paths in the tree:
// systemd-pcrphase with its initrd unit (which dracut's systemd-pcrphase
// module would only install together with tpm2-tools), the TPM2 libraries
// systemd 252 loads with dlopen (libtss2-esys, -rc, -mu and the device
// TCTI, with libtss2-sys, which libtss2-esys links), libcryptsetup (which systemd-repart loads with dlopen) and
// libcryptsetup's systemd-tpm2 token plugin.
func DefaultInstall() []string {
	return []string{
		"/usr/lib/systemd/systemd-pcrphase",
		"/usr/lib/systemd/system/systemd-pcrphase-initrd.service",
		"/usr/lib/systemd/system/initrd.target.wants/systemd-pcrphase-initrd.service",
		"/usr/lib/*/libcryptsetup.so.12",
		"/usr/lib/*/cryptsetup/libcryptsetup-token-systemd-tpm2.so",
		"/usr/lib/*/libtss2-esys.so.0",
		"/usr/lib/*/libtss2-sys.so.1",
		"/usr/lib/*/libtss2-rc.so.0",
		"/usr/lib/*/libtss2-mu.so.0",
		"/usr/lib/*/libtss2-tcti-device.so.0",
	}
}

// File is a file written into the initrd: a regular file of mode 0644,
// owned by root, in directories of mode 0755.
type File struct {
	// Path is absolute, clean, and not the root.
	Path string
	Data []byte
}

func (f File) check() error {
	if !strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path || f.Path == "/" {
		return fmt.Errorf("initrd: file %q: want a clean absolute path", f.Path)
	}
	return nil
}

// DefaultFiles returns the files the default initrd gets besides those of
// its dracut modules, for a first boot that binds new encrypted volumes
// to the UKI's signed PCR 11 policy (its .pcrpkey) and unlocks them with
// its .pcrsig. systemd-stub 252 hands both over as /.extra/ files, which
// systemd-tmpfiles-setup.service copies to /run/systemd/, where
// systemd-repart and systemd-cryptsetup 252 look for them; neither unit
// is ordered after that copy. Without it, repart silently binds to PCR 7
// alone, and the unlock of an existing root can miss the signature.
// The device timeout gives repart the time it needs to format the new
// partitions on a slow disk (or in an emulated machine) before the wait
// for the root device gives up.
func DefaultFiles() []File {
	const after = "[Unit]\nAfter=systemd-tmpfiles-setup.service\n"
	return []File{
		{Path: "/usr/lib/systemd/system/systemd-repart.service.d/50-imago-tpm2.conf", Data: []byte(after)},
		{Path: "/usr/lib/systemd/system/systemd-cryptsetup@.service.d/50-imago-tpm2.conf", Data: []byte(after)},
		{Path: "/usr/lib/systemd/system.conf.d/50-imago-device-timeout.conf", Data: []byte("[Manager]\nDefaultDeviceTimeoutSec=600\n")},
	}
}

// moduleFiles are files each dracut module must have put into the
// initrd, as the Debian 12 tree lays them out: the check that a module
// did its part.
var moduleFiles = map[string][]string{
	"systemd":             {"usr/lib/systemd/systemd", "init"},
	"systemd-initrd":      {"usr/lib/systemd/system/initrd.target"},
	"systemd-veritysetup": {"usr/lib/systemd/system-generators/systemd-veritysetup-generator", "usr/lib/systemd/systemd-veritysetup"},
	"systemd-repart":      {"usr/bin/systemd-repart", "usr/lib/systemd/system/systemd-repart.service"},
	"systemd-pcrphase":    {"usr/lib/systemd/systemd-pcrphase"},
	"udev-rules":          {"usr/lib/systemd/systemd-udevd"},
	"crypt":               {"usr/lib/systemd/systemd-cryptsetup", "usr/lib/systemd/system-generators/systemd-cryptsetup-generator"},
	"dm":                  {"usr/sbin/dmsetup"},
}

// mkfsTools maps a repart.d Format= value to the program systemd-repart
// 252 runs for it.
var mkfsTools = map[string]string{
	"ext2": "mkfs.ext2", "ext3": "mkfs.ext3", "ext4": "mkfs.ext4", "btrfs": "mkfs.btrfs", "xfs": "mkfs.xfs",
	"vfat": "mkfs.vfat", "erofs": "mkfs.erofs", "squashfs": "mksquashfs", "swap": "mkswap",
}

// repartFile is one repart.d definition.
type repartFile struct {
	Name string
	Data []byte
}

// readRepartDir returns the *.conf files of dir sorted by name, and the
// programs their Format= lines need. An empty dir means none.
func readRepartDir(dir string) ([]repartFile, []string, error) {
	if dir == "" {
		return nil, nil, nil
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, nil, fmt.Errorf("initrd: repart.d: %w", err)
	}
	if len(matches) == 0 {
		return nil, nil, fmt.Errorf("initrd: repart.d %s: no *.conf files", dir)
	}
	sort.Strings(matches)
	var files []repartFile
	tools := map[string]bool{}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, nil, fmt.Errorf("initrd: repart.d: %w", err)
		}
		files = append(files, repartFile{Name: filepath.Base(m), Data: b})
		f, err := unitfile.Parse(m, bytes.NewReader(b))
		if err != nil {
			return nil, nil, fmt.Errorf("initrd: repart.d: %w", err)
		}
		for _, e := range f.Lookup("Partition", "Format") {
			if e.Value == "" {
				continue
			}
			tool, ok := mkfsTools[e.Value]
			if !ok {
				return nil, nil, e.Errorf("initrd: Format=%s: not a file system systemd-repart 252 makes", e.Value)
			}
			tools[tool] = true
		}
	}
	var list []string
	for t := range tools {
		list = append(list, t)
	}
	sort.Strings(list)
	return files, list, nil
}

// findProgram returns the path in the tree (absolute, "/usr/...") of the
// program name, looked up in /usr/sbin and /usr/bin (Debian 12 has merged
// /usr, so /sbin and /bin are the same directories).
func findProgram(tree, name string) (string, error) {
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := path.Join(dir, name)
		if fi, err := os.Stat(filepath.Join(tree, p)); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("initrd: the tree has no %s in /usr/sbin or /usr/bin", name)
}

// resolveInstall expands the glob patterns in the tree; every pattern must
// match. The result is sorted and without duplicates.
func resolveInstall(tree string, patterns []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, p := range patterns {
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") || strings.ContainsAny(p, " \t\n\"'") {
			return nil, fmt.Errorf("initrd: install pattern %q: want an absolute path without .., white space or quotes", p)
		}
		matches, err := filepath.Glob(filepath.Join(tree, p))
		if err != nil {
			return nil, fmt.Errorf("initrd: install pattern %q: %w", p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("initrd: install pattern %q matches nothing in the tree", p)
		}
		for _, m := range matches {
			rel, err := filepath.Rel(tree, m)
			if err != nil {
				return nil, fmt.Errorf("initrd: %w", err)
			}
			abs := "/" + filepath.ToSlash(rel)
			if !seen[abs] {
				seen[abs] = true
				out = append(out, abs)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// readBuiltin returns the modules built into the kernel, from the tree's
// modules.builtin, by normalized name.
func readBuiltin(modulesDir string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(modulesDir, "modules.builtin"))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	defer f.Close()
	builtin := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if name, ok := moduleName(s.Text()); ok {
			builtin[name] = true
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("initrd: modules.builtin: %w", err)
	}
	return builtin, nil
}

// moduleName returns the normalized module name of a module file path
// ("kernel/drivers/md/dm-verity.ko.xz" → "dm_verity").
func moduleName(p string) (string, bool) {
	base := path.Base(p)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if n, ok := strings.CutSuffix(base, ext); ok && n != "" {
			return normalizeModule(n), true
		}
	}
	return "", false
}

// normalizeModule makes '-' and '_' the same, as modprobe does.
func normalizeModule(name string) string { return strings.ReplaceAll(name, "-", "_") }

// contents indexes an initrd's members.
type contents struct {
	entries []cpioEntry
	byName  map[string]int
}

func newContents(entries []cpioEntry) *contents {
	c := &contents{entries: entries, byName: make(map[string]int, len(entries))}
	for i, e := range entries {
		c.byName[e.Name] = i
	}
	return c
}

func (c *contents) has(name string) bool {
	_, ok := c.byName[name]
	return ok
}

// data returns a kept member's content. A hard link's data is stored with
// one of its names only (the last, by cpio's convention), so an empty
// member with more than one link takes the data of its twin.
func (c *contents) data(name string) ([]byte, bool) {
	i, ok := c.byName[name]
	if !ok {
		return nil, false
	}
	e := c.entries[i]
	if e.Size == 0 && e.NLink > 1 {
		for _, o := range c.entries {
			if o.Ino == e.Ino && o.Major == e.Major && o.Minor == e.Minor && o.Size > 0 {
				return o.Data, o.Data != nil
			}
		}
	}
	return e.Data, e.Data != nil || e.Size == 0
}

// requirements are what an initrd must hold.
type requirements struct {
	files   []string // member names
	repart  []repartFile
	drivers []string
	kernel  string
	builtin map[string]bool
}

// driverCheck says where each required driver is.
type driverCheck struct {
	modules []string // as .ko files in the initrd
	builtin []string // built into the kernel
}

// check returns every requirement the initrd misses, as one error.
func (c *contents) check(req requirements) (driverCheck, error) {
	var problems []string
	for _, f := range req.files {
		if !c.has(f) {
			problems = append(problems, "no /"+f)
		}
	}
	for _, r := range req.repart {
		name := "usr/lib/repart.d/" + r.Name
		got, ok := c.data(name)
		switch {
		case !c.has(name):
			problems = append(problems, "no /"+name)
		case !ok || !bytes.Equal(got, r.Data):
			problems = append(problems, "/"+name+" differs from the definition's")
		}
	}
	ko := map[string]bool{}
	prefix := "usr/lib/modules/" + req.kernel + "/"
	for _, e := range c.entries {
		if strings.HasPrefix(e.Name, prefix) {
			if n, ok := moduleName(e.Name); ok {
				ko[n] = true
			}
		}
	}
	var dc driverCheck
	for _, d := range req.drivers {
		n := normalizeModule(d)
		switch {
		case ko[n]:
			dc.modules = append(dc.modules, d)
		case req.builtin[n]:
			dc.builtin = append(dc.builtin, d)
		default:
			problems = append(problems, "kernel module "+d+" neither in the initrd nor built into "+req.kernel)
		}
	}
	if len(problems) > 0 {
		return dc, fmt.Errorf("initrd: the built initrd lacks what first boot needs: %s", strings.Join(problems, "; "))
	}
	return dc, nil
}

// listArchive reads an uncompressed initrd, keeping the data of the
// repart.d members.
func listArchive(r io.Reader) (*contents, error) {
	entries, err := readNewc(r, func(name string) bool { return strings.HasPrefix(name, "usr/lib/repart.d/") })
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	return newContents(entries), nil
}
