package blockdev

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	m, err := ParseMountinfo([]byte("36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\n27 1 0:5 / / rw - btrfs /dev/sda2 rw\n"))
	if err != nil || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	if m[0] != (Mount{Dev: Dev{98, 0}, Point: "/mnt 2", Source: "/dev/root"}) || m[1].Dev != (Dev{0, 5}) || m[1].Source != "/dev/sda2" {
		t.Errorf("%+v", m)
	}
	for _, bad := range []string{"1 2 3\n", "1 2 x:y / / rw - ext4 /dev/a rw\n", "1 2 8:0 / / rw ext4 /dev/a rw\n", "1 2 8:0 / / rw - ext4\n"} {
		if _, err := ParseMountinfo([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := unescape(`a\040b\011c\\d\0`); got != "a b\tc\\\\d\\0" {
		t.Errorf("unescape: %q", got)
	}
}

func TestReadMountinfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	if _, err := ReadMountinfo(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte("1 2 8:0 / / rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMountinfo(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("malformed file: %v", err)
	}
	// The running system's table parses, and / is in it.
	m, err := ReadMountinfo("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no mount table here: %v", err)
	}
	if MountHolding(m, "/") == nil {
		t.Errorf("no mount holds / in %+v", m)
	}
}

func TestMountLookup(t *testing.T) {
	m, err := ParseMountinfo([]byte("22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n" +
		"30 22 253:0 / /usr ro - erofs /dev/mapper/usr ro\n" +
		"31 22 0:25 / /usr/local rw - tmpfs tmpfs rw\n" +
		"32 22 259:5 / /mnt/with\\040space rw - ext4 /dev/sdb1 rw\n" +
		"33 30 0:26 / /usr ro - tmpfs tmpfs ro\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir  string
		want string // Source of the mount holding dir
	}{
		{"/", "/dev/nvme0n1p2"},
		{"/etc", "/dev/nvme0n1p2"},
		{"/usr", "tmpfs"}, // the later mount on /usr hides the earlier
		{"/usr/bin", "tmpfs"},
		{"/usrx", "/dev/nvme0n1p2"},
		{"/mnt/with space/a", "/dev/sdb1"},
		{"/mnt/with", "/dev/nvme0n1p2"},
	} {
		if got := MountHolding(m, c.dir); got == nil || got.Source != c.want {
			t.Errorf("MountHolding(%q) = %+v, want source %s", c.dir, got, c.want)
		}
	}
	if got := MountHolding(m[1:2], "/etc"); got != nil {
		t.Errorf("MountHolding outside every mount = %+v", got)
	}
	if got := MountAt(m, "/usr/"); got == nil || got.Dev != (Dev{0, 26}) {
		t.Errorf("MountAt(/usr/) = %+v", got)
	}
	if got := MountAt(m, "/usr/bin"); got != nil {
		t.Errorf("MountAt(/usr/bin) = %+v, not a mount point", got)
	}
}

func TestDev(t *testing.T) {
	for _, s := range []string{"8:0", " 259:3\n", "4095:1048575"} {
		d, err := ParseDev(s)
		if err != nil || d.String() != strings.TrimSpace(s) {
			t.Errorf("ParseDev(%q) = %v %v", s, d, err)
		}
	}
	for _, s := range []string{"", "8", "8:", ":0", "-1:0", "8:0:1", "4294967296:0"} {
		if d, err := ParseDev(s); err == nil {
			t.Errorf("ParseDev(%q) = %v, want an error", s, d)
		}
	}
	// The dev_t encoding glibc's makedev uses, with numbers beyond the old
	// 8-bit minor and 12-bit major.
	for _, d := range []Dev{{8, 1}, {259, 300}, {4097, 1 << 20}} {
		raw := uint64(d.Major&0xfff)<<8 | uint64(d.Major&^0xfff)<<32 | uint64(d.Minor&0xff) | uint64(d.Minor&^0xff)<<12
		if got := DevFromStat(raw); got != d {
			t.Errorf("DevFromStat(%#x) = %v, want %v", raw, got, d)
		}
	}
	// A real device node: /dev/null is 1:3 on Linux.
	var st syscall.Stat_t
	if err := syscall.Stat("/dev/null", &st); err == nil {
		if got := DevFromStat(uint64(st.Rdev)); got != (Dev{1, 3}) {
			t.Errorf("/dev/null is %v", got)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"))
	f.Add([]byte("27 1 0:5 / / rw - btrfs /dev/sda2 rw\n30 27 253:0 / /usr ro shared:5 - erofs /dev/mapper/usr ro\n"))
	f.Add([]byte("1 2 8:0 / / rw - x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMountinfo(data)
		if err != nil {
			return
		}
		if len(m) > strings.Count(string(data), "\n")+1 {
			t.Fatalf("%d entries from %d lines", len(m), strings.Count(string(data), "\n")+1)
		}
		for _, e := range m {
			if e.Point == "" || e.Source == "" {
				t.Fatalf("empty field in %+v", e)
			}
			if d, err := ParseDev(e.Dev.String()); err != nil || d != e.Dev {
				t.Fatalf("device number %v does not round-trip", e.Dev)
			}
		}
	})
}
