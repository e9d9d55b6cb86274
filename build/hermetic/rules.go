package hermetic

import (
	"path"
	"strings"
)

// Rule leaves paths out of the image on purpose.
type Rule struct {
	// Pattern is an absolute path or a path.Match pattern; a pattern ending
	// in "/**" matches everything beneath the directory before it. A rule
	// matching a directory also covers everything beneath it.
	Pattern string
	// Types limits the rule to some file types: any of 'f' (regular file),
	// 'l' (symbolic link), 'd' (directory), 'o' (anything else). Empty means
	// all.
	Types string
	// NonEmpty limits the rule to regular files with content.
	NonEmpty bool
	// Reason is reported for every path the rule drops.
	Reason string
}

// Reasons shared by several rules.
const (
	reasonPackageState = "package manager state: the image has no package manager at run time (the build's package manifest lists what is installed); dpkg, apt and dpkg-db-backup find no database"
	reasonSecret       = "per-machine secret made when the package was installed: shipping it would give every machine the same one"
	reasonBuildHost    = "copied from the build machine by the bootstrap tool"
	reasonStamp        = "ConditionNeedsUpdate= stamp: it must be missing so that first boot runs the update units"
)

// DefaultDrop is what Apply leaves out unless Options.Drop says otherwise.
// /etc/passwd, group, shadow and gshadow are not listed: sysusers.d
// recreates them.
var DefaultDrop = []Rule{
	{Pattern: "/etc/machine-id", Reason: "generated on first boot"},
	{Pattern: "/etc/passwd-", Reason: "backup written by the shadow tools"},
	{Pattern: "/etc/group-", Reason: "backup written by the shadow tools"},
	{Pattern: "/etc/shadow-", Reason: "backup written by the shadow tools"},
	{Pattern: "/etc/gshadow-", Reason: "backup written by the shadow tools"},
	{Pattern: "/etc/subuid-", Reason: "backup written by the shadow tools"},
	{Pattern: "/etc/subgid-", Reason: "backup written by the shadow tools"},
	{Pattern: "/etc/.pwd.lock", Reason: "lock file"},
	{Pattern: "/etc/*.lock", Types: "f", Reason: "lock file"},
	{Pattern: "/etc/.updated", Reason: reasonStamp},
	{Pattern: "/var/.updated", Reason: reasonStamp},
	{Pattern: "/etc/hostname", Types: "f", Reason: reasonBuildHost + "; systemd uses its fallback host name, or the system.hostname credential"},
	{Pattern: "/etc/resolv.conf", Types: "f", Reason: reasonBuildHost + "; install systemd-resolved for a resolv.conf that follows the network"},
	{Pattern: "/etc/ssh/ssh_host_*", Reason: reasonSecret},
	{Pattern: "/etc/ssl/private/ssl-cert-snakeoil.key", Reason: reasonSecret},
	{Pattern: "/etc/ssl/certs/ssl-cert-snakeoil.pem", Reason: reasonSecret},
	{Pattern: "/var/lib/dpkg", Reason: reasonPackageState},
	{Pattern: "/var/lib/apt", Reason: reasonPackageState},
	{Pattern: "/var/cache/apt", Reason: reasonPackageState},
	{Pattern: "/var/cache/debconf", Reason: "answers to package configuration questions, used only by package scripts"},
	{Pattern: "/var/lib/systemd/deb-systemd-helper-enabled", Reason: "state of Debian's package-script helper for units"},
	{Pattern: "/var/lib/systemd/deb-systemd-user-helper-enabled", Reason: "state of Debian's package-script helper for units"},
	{Pattern: "/var/lib/ucf", Reason: "state of a package-script tool"},
	{Pattern: "/var/lib/pam", Reason: "state of a package-script tool (pam-auth-update)"},
	{Pattern: "/var/lib/shells.state", Reason: "state of a package-script tool (add-shell)"},
	{Pattern: "/var/lib/systemd/random-seed", Reason: reasonSecret},
	{Pattern: "/var/lib/systemd/credential.secret", Reason: reasonSecret},
	{Pattern: "/var/lib/dbus/machine-id", Types: "f", Reason: "machine identity, generated on first boot"},
	{Pattern: "/var/lib/systemd/timers", Reason: "timer state of the build machine"},
	{Pattern: "/var/log/**", Types: "f", NonEmpty: true, Reason: "log written during the build"},
	{Pattern: "/var/cache/**", Types: "fl", Reason: "cache: regenerated when needed"},
	{Pattern: "/var/backups/**", Reason: "backup made by a package script"},
	{Pattern: "/var/tmp/**", Reason: "temporary file"},
}

// match reports whether the rule applies to path p of file type t.
func (r Rule) match(p string, t byte, size int64) bool {
	if r.Types != "" && !strings.ContainsRune(r.Types, rune(t)) {
		return false
	}
	if r.NonEmpty && (t != 'f' || size == 0) {
		return false
	}
	if prefix, ok := strings.CutSuffix(r.Pattern, "/**"); ok {
		return strings.HasPrefix(p, prefix+"/")
	}
	ok, err := path.Match(r.Pattern, p)
	return err == nil && ok
}

// earlyConfig lists configuration that first boot reads before
// systemd-tmpfiles-setup.service has restored /etc: by PID 1 itself, its
// generators, and the services ordered before it (journald, udev, sysctl,
// modules-load, binfmt, tmpfiles and sysusers themselves). A pattern ending
// in "/**" matches everything beneath.
var earlyConfig = []string{
	"/etc/systemd/system.conf", "/etc/systemd/system.conf.d/**",
	"/etc/systemd/journald.conf", "/etc/systemd/journald.conf.d/**",
	"/etc/systemd/system/**", "/etc/systemd/system-generators/**",
	"/etc/systemd/system-preset/**", "/etc/systemd/system-environment-generators/**",
	"/etc/udev/**", "/etc/sysctl.conf", "/etc/sysctl.d/**",
	"/etc/modules", "/etc/modules-load.d/**", "/etc/modprobe.d/**",
	"/etc/binfmt.d/**", "/etc/tmpfiles.d/**", "/etc/sysusers.d/**",
	"/etc/fstab", "/etc/crypttab", "/etc/veritytab", "/etc/integritytab",
	"/etc/hostname", "/etc/machine-info", "/etc/vconsole.conf", "/etc/locale.conf",
	"/etc/localtime", "/etc/adjtime", "/etc/apparmor.d/**", "/etc/selinux/config",
}

func isEarlyConfig(p string) bool {
	for _, pat := range earlyConfig {
		if prefix, ok := strings.CutSuffix(pat, "/**"); ok {
			if strings.HasPrefix(p, prefix+"/") {
				return true
			}
		} else if p == pat {
			return true
		}
	}
	return false
}

// effective reports whether configuration text changes anything: a line
// that is neither blank, a comment ('#' or ';') nor a [Section] header.
func effective(data []byte) bool {
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' && l[len(l)-1] == ']' {
			continue
		}
		return true
	}
	return false
}

// utcZones are the /etc/localtime targets that mean what a missing
// /etc/localtime means.
var utcZones = map[string]bool{"UTC": true, "Etc/UTC": true, "UCT": true, "Etc/UCT": true, "Universal": true, "Etc/Universal": true, "Zulu": true, "Etc/Zulu": true}
