package sysupdate

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/osrelease"
)

// Specifiers are the values of the %-specifiers systemd expands in
// transfer definitions (the "system" and "tmp" specifier sets). Fields
// left empty expand to the empty string, as systemd does for os-release
// fields a file does not have.
type Specifiers struct {
	Arch          string // %a: architecture in systemd's naming
	ImageVersion  string // %A: IMAGE_VERSION= of os-release
	BootID        string // %b
	BuildID       string // %B: BUILD_ID=
	Hostname      string // %H
	MachineID     string // %m
	ImageID       string // %M: IMAGE_ID=
	OSID          string // %o: ID=
	KernelRelease string // %v
	VersionID     string // %w: VERSION_ID=
	VariantID     string // %W: VARIANT_ID=
	TmpDir        string // %T, "/tmp" if empty
	VarTmpDir     string // %V, "/var/tmp" if empty
}

// HostSpecifiers fills Specifiers for the OS tree at root ("" or "/" for
// the running system): os-release fields and machine ID from the tree,
// host name, boot ID and kernel release from the running kernel (as systemd
// does with --root=). Missing files leave their fields empty.
func HostSpecifiers(root string) Specifiers {
	var s Specifiers
	if a, ok := dps.ArchFromGOARCH(runtime.GOARCH); ok {
		s.Arch = string(a)
	}
	if rel, _, err := osrelease.Load(root); err == nil {
		s.ImageVersion = rel.ImageVersion()
		s.BuildID = rel.BuildID()
		s.ImageID = rel.ImageID()
		s.OSID = rel.ID()
		s.VersionID = rel.VersionID()
		s.VariantID = rel.VariantID()
	}
	if root == "" {
		root = "/"
	}
	if b, err := os.ReadFile(joinRoot(root, "/etc/machine-id")); err == nil {
		s.MachineID = strings.TrimSpace(string(b))
	}
	if h, err := os.Hostname(); err == nil {
		s.Hostname = h
	}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		s.BootID = strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		s.KernelRelease = strings.TrimSpace(string(b))
	}
	return s
}

// Expand replaces the specifiers in v. An unknown specifier or a trailing
// '%' is an error, as in systemd's specifier_printf().
func (s Specifiers) Expand(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		i++
		if i >= len(v) {
			return "", fmt.Errorf("trailing '%%' in %q", v)
		}
		var r string
		switch v[i] {
		case '%':
			r = "%"
		case 'a':
			r = s.Arch
		case 'A':
			r = s.ImageVersion
		case 'b':
			r = s.BootID
		case 'B':
			r = s.BuildID
		case 'H':
			r = s.Hostname
		case 'l':
			r, _, _ = strings.Cut(s.Hostname, ".")
		case 'm':
			r = s.MachineID
		case 'M':
			r = s.ImageID
		case 'o':
			r = s.OSID
		case 'v':
			r = s.KernelRelease
		case 'w':
			r = s.VersionID
		case 'W':
			r = s.VariantID
		case 'T':
			r = s.TmpDir
			if r == "" {
				r = "/tmp"
			}
		case 'V':
			r = s.VarTmpDir
			if r == "" {
				r = "/var/tmp"
			}
		default:
			return "", fmt.Errorf("unknown specifier '%%%c' in %q", v[i], v)
		}
		b.WriteString(r)
	}
	return b.String(), nil
}
