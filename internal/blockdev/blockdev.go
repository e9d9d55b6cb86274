// Package blockdev reads what the kernel says about block devices and
// mounts: device numbers ("major:minor", as sysfs and the mount table
// write them) and the mount table of proc(5) (/proc/self/mountinfo). It
// serves the engines that must find the disk behind a mounted file
// system, such as CopyBlocks=auto and an update target with Path=auto.
package blockdev

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dev is a block device number.
type Dev struct{ Major, Minor uint32 }

// String writes d as the kernel does: "major:minor".
func (d Dev) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ParseDev parses "major:minor" (surrounding white space allowed, as in a
// sysfs dev file).
func ParseDev(s string) (Dev, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), ":")
	ma, err1 := strconv.ParseUint(a, 10, 32)
	mi, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return Dev{}, fmt.Errorf("bad device number %q", s)
	}
	return Dev{uint32(ma), uint32(mi)}, nil
}

// DevFromStat splits a Linux dev_t (st_dev or st_rdev).
func DevFromStat(dev uint64) Dev {
	return Dev{uint32((dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)), uint32(dev&0xff | (dev>>12)&^uint64(0xff))}
}

// Mount is one line of the mount table.
type Mount struct {
	// Dev is the st_dev of the mounted file system; major 0 means an
	// anonymous device (tmpfs, proc, but also btrfs).
	Dev Dev
	// Point is the mount point, unescaped.
	Point string
	// Source is the mount source (a device node for disk file systems),
	// unescaped.
	Source string
}

// ReadMountinfo reads and parses a mount table file such as
// /proc/self/mountinfo.
func ReadMountinfo(path string) ([]Mount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseMountinfo(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ParseMountinfo parses the mount table format of proc(5), in file order
// (later mounts hide earlier ones at the same place). A malformed line is
// an error: the kernel never writes one.
func ParseMountinfo(b []byte) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		// Optional fields run from the 7th to a lone "-"; the file system
		// type and the source follow it.
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: malformed", line)
		}
		d, err := ParseDev(f[2])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", line, err)
		}
		out = append(out, Mount{Dev: d, Point: unescape(f[4]), Source: unescape(f[sep+2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return out, nil
}

// MountAt returns the topmost mount at exactly path, or nil when path is
// not a mount point.
func MountAt(mounts []Mount, path string) *Mount {
	path = filepath.Clean(path)
	for i := len(mounts) - 1; i >= 0; i-- {
		if filepath.Clean(mounts[i].Point) == path {
			return &mounts[i]
		}
	}
	return nil
}

// MountHolding returns the mount that holds the absolute path dir: the
// longest mount point that is dir or one of its parents, the last such
// line winning as later mounts hide earlier ones. It returns nil when no
// mount holds dir.
func MountHolding(mounts []Mount, dir string) *Mount {
	var best *Mount
	for i := range mounts {
		mp := mounts[i].Point
		if mp != dir && !strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/") {
			continue
		}
		if best == nil || len(mp) >= len(best.Point) {
			best = &mounts[i]
		}
	}
	return best
}

// unescape undoes the kernel's octal escapes (\040 for a space, ...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
