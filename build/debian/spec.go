package debian

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Source is one apt source: a "deb URI SUITE COMPONENTS" line.
type Source struct {
	// URI is the archive's base URL, e.g. "http://deb.debian.org/debian".
	URI string
	// Suite is the suite (distribution) name, e.g. "bookworm-updates".
	Suite string
	// Components are the archive areas; empty means "main".
	Components []string
}

// Line returns the source as a one-line sources.list entry.
func (s Source) Line() string {
	comps := s.Components
	if len(comps) == 0 {
		comps = []string{"main"}
	}
	return "deb " + s.URI + " " + s.Suite + " " + strings.Join(comps, " ")
}

// releaseURL returns the URL of the suite's InRelease file, or of its
// Release file when name is "Release".
func (s Source) releaseURL(name string) string {
	return strings.TrimRight(s.URI, "/") + "/dists/" + s.Suite + "/" + name
}

// Sources returns the sources of a Debian stable release as Debian's
// installer configures them: RELEASE and RELEASE-updates from mirror, and
// RELEASE-security from securityMirror, each with components (empty means
// "main").
func Sources(mirror, securityMirror, release string, components []string) []Source {
	return []Source{
		{URI: mirror, Suite: release, Components: components},
		{URI: mirror, Suite: release + "-updates", Components: components},
		{URI: securityMirror, Suite: release + "-security", Components: components},
	}
}

// DefaultPackages returns the packages an imago image needs besides those
// of the minbase variant, for the Debian architecture arch ("amd64",
// "arm64"): systemd as init with udev and D-Bus, cryptsetup with the TPM2
// libraries systemd loads at run time (for systemd-cryptsetup, -repart and
// -pcrphase), the kernel, systemd-boot's EFI binaries and stub, btrfs-progs
// for the file systems made on first boot, and dracut for build/initrd.
// dracut (rather than dracut-core alone) also keeps initramfs-tools out of
// the tree, which the kernel package would otherwise pull in.
func DefaultPackages(arch string) []string {
	return []string{
		"systemd", "systemd-sysv", "udev", "dbus",
		"cryptsetup", "libtss2-esys-3.0.2-0", "libtss2-rc0", "libtss2-mu0", "libtss2-tcti-device0",
		"linux-image-" + arch, "systemd-boot-efi",
		"btrfs-progs",
		"dracut",
	}
}

// Spec says what to install.
type Spec struct {
	// Release is the suite whose Essential and Priority sets make up the
	// variant, normally the first source's suite: "bookworm".
	Release string
	// Sources are the apt sources, in sources.list order.
	Sources []Source
	// Architecture is the Debian architecture of the tree: "amd64",
	// "arm64". A foreign architecture needs qemu-user-static and binfmt
	// support on the host, as mmdebstrap documents.
	Architecture string
	// Variant is mmdebstrap's package-set variant; "" means "minbase".
	Variant string
	// Packages are installed with their dependencies, in addition to the
	// variant's set. apt's syntax is accepted: "pkg", "pkg=version",
	// "pkg/suite", "pkg:arch", and "pkg-" to remove a package.
	Packages []string
	// WithRecommends installs recommended packages too.
	WithRecommends bool
	// IgnoreValidUntil accepts Release files past their Valid-Until date,
	// which snapshot.debian.org archives are.
	IgnoreValidUntil bool
	// SourceDateEpoch, when set, is the time every timestamp in the tree is
	// clamped to (SOURCE_DATE_EPOCH); the tarball is then reproducible.
	// When nil, the SOURCE_DATE_EPOCH of imago's own environment is not
	// passed on.
	SourceDateEpoch *time.Time
}

// variants are mmdebstrap's --variant values that install a working
// system; extract and custom install nothing by themselves.
var variants = map[string]bool{
	"essential": true, "apt": true, "required": true, "minbase": true, "buildd": true,
	"important": true, "debootstrap": true, "-": true, "standard": true,
}

// packagePattern is a Debian package name (Policy §5.6.1) with apt's
// optional ":arch", "=version" or "/suite" and a trailing "-" or "+".
var packagePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?([=/][A-Za-z0-9.+~:_-]+)?[-+]?$`)

// namePattern is a suite, component or architecture name.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// normalized returns a copy of s with defaults filled in and the package
// list sorted and without duplicates, after checking every field, so that
// equal inputs give equal keys and nothing reaches mmdebstrap's command line
// that it would read as an option.
func (s Spec) normalized() (Spec, error) {
	n := s
	if n.Variant == "" {
		n.Variant = "minbase"
	}
	if !variants[n.Variant] {
		return n, fmt.Errorf("debian: variant %q: not one of essential, apt, required, minbase, buildd, important, debootstrap, standard", n.Variant)
	}
	if !namePattern.MatchString(n.Release) {
		return n, fmt.Errorf("debian: release %q: not a suite name", n.Release)
	}
	if !namePattern.MatchString(n.Architecture) {
		return n, fmt.Errorf("debian: architecture %q: not a Debian architecture name", n.Architecture)
	}
	if len(n.Sources) == 0 {
		return n, fmt.Errorf("debian: no sources")
	}
	n.Sources = make([]Source, len(s.Sources))
	for i, src := range s.Sources {
		if !strings.HasPrefix(src.URI, "http://") && !strings.HasPrefix(src.URI, "https://") {
			return n, fmt.Errorf("debian: source %d: URI %q: only http and https archives are supported", i+1, src.URI)
		}
		if strings.ContainsAny(src.URI, " \t\n\"'") {
			return n, fmt.Errorf("debian: source %d: URI %q contains white space or quotes", i+1, src.URI)
		}
		if !namePattern.MatchString(src.Suite) {
			return n, fmt.Errorf("debian: source %d: suite %q: not a suite name (flat repositories are not supported)", i+1, src.Suite)
		}
		comps := append([]string(nil), src.Components...)
		if len(comps) == 0 {
			comps = []string{"main"}
		}
		for _, c := range comps {
			if !namePattern.MatchString(c) {
				return n, fmt.Errorf("debian: source %d: component %q: not a component name", i+1, c)
			}
		}
		n.Sources[i] = Source{URI: strings.TrimRight(src.URI, "/"), Suite: src.Suite, Components: comps}
	}
	seen := map[string]bool{}
	n.Packages = nil
	for _, p := range s.Packages {
		if !packagePattern.MatchString(p) {
			return n, fmt.Errorf("debian: package %q: not a package name", p)
		}
		if !seen[p] {
			seen[p] = true
			n.Packages = append(n.Packages, p)
		}
	}
	sort.Strings(n.Packages)
	return n, nil
}

// recipeVersion changes whenever Bootstrap would make a different tree from
// the same Spec (other mmdebstrap options or hooks), so that old cache
// entries are not reused.
const recipeVersion = "imago-debian-1"

// key returns the cache key of a normalized spec: the SHA-256 of
// recipeVersion and every field, one quoted value per line.
func (s Spec) key() string {
	var b strings.Builder
	field := func(name string, values ...string) {
		b.WriteString(name)
		for _, v := range values {
			b.WriteByte(' ')
			b.WriteString(strconv.Quote(v))
		}
		b.WriteByte('\n')
	}
	field("recipe", recipeVersion)
	field("release", s.Release)
	for _, src := range s.Sources {
		field("source", src.Line())
	}
	field("architecture", s.Architecture)
	field("variant", s.Variant)
	field("packages", s.Packages...)
	field("with-recommends", strconv.FormatBool(s.WithRecommends))
	field("ignore-valid-until", strconv.FormatBool(s.IgnoreValidUntil))
	field("source-date-epoch", epochString(s.SourceDateEpoch))
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// epochString is SOURCE_DATE_EPOCH's value for t, "" for nil.
func epochString(t *time.Time) string {
	if t == nil {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// Hook commands. mmdebstrap runs each under sh with the chroot as $1 and
// imago's environment, which carries the output directory.
const (
	// hookOutEnv names the directory the customize hook copies the
	// archive state and the dpkg status to.
	hookOutEnv = "IMAGO_BOOTSTRAP_OUT"
	// stubInitrdTools diverts dracut and update-initramfs to the side and
	// puts no-op scripts in their place before the packages are installed,
	// so that the kernel's postinst hooks (and dracut's trigger, which
	// calls them) build no initrd: it would be thrown away, and takes
	// about a minute.
	stubInitrdTools = `for f in /usr/bin/dracut /usr/sbin/update-initramfs; do ` +
		`chroot "$1" dpkg-divert --quiet --local --rename --divert "$f.imago-stub" --add "$f" && ` +
		`printf '#!/bin/sh\nexit 0\n' > "$1$f" && chmod 0755 "$1$f" || exit 1; done`
	// restoreInitrdTools removes the stand-ins and the diversions, which
	// moves the real programs back when their packages were installed.
	restoreInitrdTools = `for f in /usr/bin/dracut /usr/sbin/update-initramfs; do ` +
		`rm -f "$1$f" && chroot "$1" dpkg-divert --quiet --local --rename --remove "$f" || exit 1; done`
	// copyOutState copies apt's Release files (the archive state the
	// packages came from) and the dpkg status out of the chroot, before
	// mmdebstrap's cleanup removes the lists.
	copyOutState = `mkdir -p "$` + hookOutEnv + `/lists" && ` +
		`for f in "$1"/var/lib/apt/lists/*Release; do [ -e "$f" ] && cp "$f" "$` + hookOutEnv + `/lists/"; done; ` +
		`cp "$1/var/lib/dpkg/status" "$` + hookOutEnv + `/status"`
	// dropHostFiles removes the files mmdebstrap copies from the host, so
	// that the tree does not depend on the machine that built it.
	dropHostFiles = `rm -f "$1/etc/resolv.conf" "$1/etc/hostname"`
)

// mmdebstrapArgs returns mmdebstrap's arguments to write the tree of the
// normalized spec s as an uncompressed tarball to target.
func (s Spec) mmdebstrapArgs(target string) []string {
	args := []string{
		"--mode=unshare",
		"--format=tar",
		"--variant=" + s.Variant,
		"--architectures=" + s.Architecture,
	}
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	if s.WithRecommends {
		args = append(args, `--aptopt=Apt::Install-Recommends "true"`)
	}
	if s.IgnoreValidUntil {
		args = append(args, `--aptopt=Acquire::Check-Valid-Until "false"`)
	}
	args = append(args,
		"--essential-hook="+stubInitrdTools,
		"--customize-hook="+restoreInitrdTools,
		"--customize-hook="+copyOutState,
		"--customize-hook="+dropHostFiles,
		"--", s.Release, target)
	for _, src := range s.Sources {
		args = append(args, src.Line())
	}
	return args
}
