package hermetic

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// treeTime is the timestamp of every entry of the synthetic tree.
var treeTime = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)

const aliceHash = "$6$alicesalt$n8JpVnQBtsjyZBwLJUowDfQ31vzRlytdx8LKyr8LKaU0BTItB.HsRwFUYCmGP3aPD2GdSVjzftvux8TxD3GWO."

// item is one entry of a synthetic tree: kind 'd' directory, 'f' file, 'l'
// link, 'h' hard link to target, 'p' FIFO, 'c' character device (target is
// "major:minor").
type item struct {
	kind     byte
	path     string
	mode     uint32
	uid, gid int
	data     string // file content, or link target
	xattr    string // "name=value"
}

// synthetic is a small Debian-like tree with every case Apply handles.
var synthetic = []item{
	{'d', "/usr", 0o755, 0, 0, "", ""},
	{'f', "/usr/bin/mawk", 0o755, 0, 0, "mawk\n", ""},
	{'f', "/usr/bin/more", 0o755, 0, 0, "more\n", ""},
	{'f', "/usr/bin/bash", 0o755, 0, 0, "bash\n", ""},
	{'l', "/usr/bin/awk", 0, 0, 0, "/etc/alternatives/awk", ""},
	{'l', "/usr/bin/pager", 0, 0, 0, "../../etc/alternatives/pager", ""},
	{'f', "/usr/lib64/ld-linux-x86-64.so.2", 0o755, 0, 0, "ld.so\n", ""},
	{'f', "/usr/lib/os-release", 0o644, 0, 0, "NAME=\"Test OS\"\nID=test\n", ""},
	{'f', "/usr/lib/tmpfiles.d/var.conf", 0o644, 0, 0,
		"# as systemd's var.conf and legacy.conf\nq /var 0755 - - -\nL /var/run - - - - ../run\nd /var/log 0755 - - -\nf /var/log/wtmp 0664 root utmp -\nd /var/lib/private 0700 root root -\nd /var/cache/%m 0755 - - -\n", ""},
	{'f', "/usr/lib/sysusers.d/basic.conf", 0o644, 0, 0,
		"g adm 4 -\ng shadow 42 -\ng utmp 43 -\nu root 0 - /root /bin/bash\nu daemon 1 - /usr/sbin /usr/sbin/nologin\n", ""},
	{'f', "/usr/lib/sysusers.d/dbus.conf", 0o644, 0, 0, "u messagebus - \"System Message Bus\"\n", ""},
	{'f', "/usr/lib/systemd/system/foo.service", 0o644, 0, 0, "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=bar.service\n", ""},
	{'f', "/usr/lib/systemd/system/getty@.service", 0o644, 0, 0, "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n", ""},
	{'f', "/usr/lib/systemd/system/idle.service", 0o644, 0, 0, "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n", ""},
	{'f', "/usr/lib/systemd/system/systemd-sysusers.service", 0o644, 0, 0, "[Service]\nExecStart=systemd-sysusers\n", ""},
	{'f', "/usr/lib/systemd/system/systemd-firstboot.service", 0o644, 0, 0, "[Service]\nExecStart=systemd-firstboot --prompt-locale\n", ""},
	{'f', "/usr/lib/dbus-helper", 0o4754, 0, 105, "helper\n", ""},
	{'l', "/bin", 0, 0, 0, "usr/bin", ""},
	{'l', "/sbin", 0, 0, 0, "usr/sbin", ""},
	{'l', "/lib", 0, 0, 0, "usr/lib", ""},
	{'l', "/lib64", 0, 0, 0, "usr/lib64", ""},

	{'d', "/etc", 0o755, 0, 0, "", ""},
	{'f', "/etc/passwd", 0o644, 0, 0, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\nmessagebus:x:100:105::/nonexistent:/usr/sbin/nologin\nalice:x:1000:1000:Alice Liddell,,,:/home/alice:/bin/bash\n", ""},
	{'f', "/etc/group", 0o644, 0, 0, "root:x:0:\ndaemon:x:1:\nadm:x:4:alice\nshadow:x:42:\nutmp:x:43:\nmessagebus:x:105:\nalice:x:1000:\n", ""},
	{'f', "/etc/shadow", 0o640, 0, 42, "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nmessagebus:!:19000::::::\nalice:" + aliceHash + ":19000:0:99999:7:::\n", ""},
	{'f', "/etc/gshadow", 0o640, 0, 42, "root:*::\ndaemon:*::\nadm:*::alice\nshadow:*::\nutmp:*::\nmessagebus:!::\nalice:!::\n", ""},
	{'f', "/etc/passwd-", 0o644, 0, 0, "root:x:0:0:root:/root:/bin/bash\n", ""},
	{'f', "/etc/machine-id", 0o444, 0, 0, "0123456789abcdef0123456789abcdef\n", ""},
	{'f', "/etc/hostname", 0o644, 0, 0, "buildhost\n", ""},
	{'f', "/etc/fstab", 0o644, 0, 0, "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n", ""},
	{'l', "/etc/os-release", 0, 0, 0, "../usr/lib/os-release", ""},
	{'d', "/etc/alternatives", 0o755, 0, 0, "", ""},
	{'l', "/etc/alternatives/awk", 0, 0, 0, "/usr/bin/mawk", ""},
	{'l', "/etc/alternatives/pager", 0, 0, 0, "/bin/more", ""},
	{'f', "/etc/we ird%name\"x", 0o644, 0, 0, "odd name\n", ""},
	{'l', "/etc/odd link", 0, 0, 0, " lead\\%-", ""},
	{'f', "/etc/tab\there\\back'q%%\u00e9", 0o644, 0, 0, "odd\n", ""},
	{'l', "/etc/\u00fctf", 0, 0, 0, "trail\t\x7f ", ""},
	{'l', "/etc/dash", 0, 0, 0, "-", ""},
	{'f', "/etc/secret", 0o600, 0, 0, "s3cr3t\n", ""},
	{'f', "/etc/dbus.conf", 0o640, 100, 105, "<busconfig/>\n", ""},
	{'d', "/etc/private", 0o750, 0, 4, "", ""},
	{'f', "/etc/private/key", 0o640, 0, 4, "key\n", ""},
	{'f', "/etc/tagged", 0o644, 0, 0, "tagged\n", "user.imago=yes"},
	{'f', "/etc/link-a", 0o644, 0, 0, "shared\n", ""},
	{'h', "/etc/link-b", 0, 0, 0, "/etc/link-a", ""},
	{'p', "/etc/fifo", 0o620, 0, 0, "", ""},
	{'f', "/etc/sysctl.d/10-test.conf", 0o644, 0, 0, "net.ipv4.ip_forward = 1\n", ""},
	{'f', "/etc/sysctl.d/99-comments.conf", 0o644, 0, 0, "# nothing set here\n\n; nor here\n", ""},
	{'l', "/etc/systemd/system/multi-user.target.wants/foo.service", 0, 0, 0, "/lib/systemd/system/foo.service", ""},
	{'l', "/etc/systemd/system/bar.service", 0, 0, 0, "/lib/systemd/system/foo.service", ""},
	{'l', "/etc/systemd/system/getty.target.wants/getty@tty1.service", 0, 0, 0, "/lib/systemd/system/getty@.service", ""},
	{'l', "/etc/systemd/system/masked.service", 0, 0, 0, "/dev/null", ""},

	{'d', "/var", 0o755, 0, 0, "", ""},
	{'f', "/var/lib/dpkg/status", 0o644, 0, 0, "Package: base-files\n", ""},
	{'f', "/var/log/dpkg.log", 0o644, 0, 0, "installed\n", ""},
	{'f', "/var/log/empty.log", 0o640, 0, 4, "", ""},
	{'f', "/var/log/wtmp", 0o664, 0, 43, "", ""},
	{'d', "/var/log/journal", 0o2755, 0, 4, "", ""},
	{'f', "/var/cache/thing/data", 0o644, 0, 0, "cached\n", ""},
	{'d', "/var/lib/thing", 0o700, 100, 105, "", ""},
	{'f', "/var/lib/thing/state", 0o600, 100, 105, "state\n", ""},
	{'l', "/var/run", 0, 0, 0, "/run", ""},
	{'d', "/var/mail", 0o2775, 0, 4, "", ""},
	{'d', "/var/tmp", 0o1777, 0, 0, "", ""},
	{'f', "/var/tmp/junk", 0o644, 0, 0, "junk\n", ""},

	{'d', "/root", 0o700, 0, 0, "", ""},
	{'f', "/root/.bashrc", 0o644, 0, 0, "PS1='# '\n", ""},
	{'d', "/home", 0o755, 0, 0, "", ""},
	{'f', "/boot/vmlinuz", 0o644, 0, 0, "kernel\n", ""},
	{'c', "/dev/null", 0o666, 0, 0, "1:3", ""},
	{'d', "/tmp", 0o1777, 0, 0, "", ""},
	{'l', "/vmlinuz", 0, 0, 0, "boot/vmlinuz", ""},
	{'f', "/opt/thing/run.sh", 0o755, 0, 0, "#!/bin/sh\n", ""},
}

// requireRoot skips tests that create files of other owners and device
// nodes.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has files of several owners")
	}
}

// makeTree writes items under a new directory and returns it. Parent
// directories not listed are 0755 root.
func makeTree(t *testing.T, items []item) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, it := range items {
		p := filepath.Join(root, it.path)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		switch it.kind {
		case 'd':
			must(os.Mkdir(p, 0o700))
		case 'f':
			must(os.WriteFile(p, []byte(it.data), 0o600))
		case 'l':
			must(os.Symlink(it.data, p))
		case 'h':
			must(os.Link(filepath.Join(root, it.data), p))
			continue
		case 'p':
			must(syscall.Mkfifo(p, 0o600))
		case 'c':
			var major, minor int
			for i, s := range strings.SplitN(it.data, ":", 2) {
				v := 0
				for _, c := range s {
					v = v*10 + int(c-'0')
				}
				if i == 0 {
					major = v
				} else {
					minor = v
				}
			}
			must(syscall.Mknod(p, syscall.S_IFCHR|0o600, major<<8|minor))
		}
		must(os.Lchown(p, it.uid, it.gid))
		if it.kind != 'l' {
			must(syscall.Chmod(p, it.mode))
		}
		if it.xattr != "" {
			k, v, _ := strings.Cut(it.xattr, "=")
			must(syscall.Setxattr(p, k, []byte(v), 0))
		}
	}
	// Timestamps last, deepest first, so that creating entries does not
	// change a directory's.
	var paths []string
	must(filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode()&os.ModeSymlink == 0 {
			paths = append(paths, p)
		}
		return err
	}))
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for _, p := range paths {
		must(os.Chtimes(p, treeTime, treeTime))
	}
	return root
}
