package config

import (
	"io/fs"
	"time"

	"github.com/imago-os/imago/format/dps"
)

// Definition is a parsed, validated image definition with every default
// filled in. Paths are absolute.
type Definition struct {
	// Dir is the definition directory, absolute. Relative paths in the
	// definition are resolved against it.
	Dir string
	// Files lists the configuration files that were read, in the order
	// they were applied.
	Files []string

	Distribution Distribution
	Output       Output
	Content      Content
	Validation   Validation
	Build        Build

	// RepartDir is Dir/repart.d when it exists, else "": the first-boot
	// partition definitions installed as /usr/lib/repart.d.
	RepartDir string
	// SysupdateDir is Dir/sysupdate.d when it exists, else "": the update
	// transfers installed as /usr/lib/sysupdate.d.
	SysupdateDir string
	// Slots are the sizes of the /usr slots, read from repart.d.
	Slots Slots

	// fsys is what the definition was read from, for Hash.
	fsys fs.FS
}

// Distribution is the [Distribution] section: what the root tree is
// installed from.
type Distribution struct {
	// Distribution is the distribution: "debian".
	Distribution string
	// Release is the release (suite) name: "bookworm".
	Release string
	// Architecture is the CPU architecture the image is built for, in
	// systemd's naming ("x86-64", "arm64").
	Architecture dps.Arch
	// Mirror is the URL of the distribution archive, from which the
	// suites RELEASE and RELEASE-updates are installed.
	Mirror string
	// SecurityMirror is the URL of the security archive, from which the
	// suite RELEASE-security is installed.
	SecurityMirror string
	// Snapshot is a snapshot.debian.org time stamp such as
	// "20250101T000000Z", or "". When set, the default mirrors are the
	// snapshot's.
	Snapshot string
	// Repositories are the archive components: "main" by default.
	Repositories []string
}

// DebianArchitecture returns the Debian name of the architecture ("amd64"
// for x86-64), or "" for an architecture imago does not build for.
func (d Distribution) DebianArchitecture() string { return debianArches[d.Architecture] }

// Output is the [Output] section: what is built and where it goes.
type Output struct {
	// Format is the kind of output: "disk", a GPT disk image.
	Format string
	// ImageID is IMAGE_ID= of os-release and the first half of partition
	// labels and artifact names.
	ImageID string
	// ImageVersion is IMAGE_VERSION= of os-release and the second half of
	// partition labels and artifact names. It may be empty after loading
	// when neither the definition nor Options give one; Build refuses that.
	ImageVersion string
	// OutputDirectory receives the disk image and the update artifacts.
	OutputDirectory string
	// UsrFileSystem is the file system of the /usr image: "erofs" or
	// "squashfs".
	UsrFileSystem string
}

// Label returns "<ImageID>_<ImageVersion>": the GPT label of the usr,
// usr-verity and usr-verity-sig partitions of a version, and the stem of
// its artifact names.
func (o Output) Label() string { return o.ImageID + "_" + o.ImageVersion }

// Content is the [Content] section: what the image holds.
type Content struct {
	// Packages are installed, with their dependencies.
	Packages []string
	// RemovePackages are purged at the end of the installation.
	RemovePackages []string
	// RemoveFiles are glob patterns of absolute paths removed from the
	// tree at the end.
	RemoveFiles []string
	// ExtraTrees are copied over the tree after the packages are
	// installed.
	ExtraTrees []Tree
	// PostInstallationScripts run after the packages are installed and the
	// extra trees copied.
	PostInstallationScripts []string
	// FinalizeScripts run last, on the complete tree.
	FinalizeScripts []string
	// KernelCommandLine are the parameters the UKI's .cmdline carries,
	// besides those imago adds (usrhash=).
	KernelCommandLine []string
	// RootPassword is root's password, nil when not set (root then has no
	// password and cannot log in with one).
	RootPassword *Password
	// Hostname is the static host name, "" for the default.
	Hostname string
	// WithRecommends installs the packages' recommended packages too.
	WithRecommends bool
	// InstallImago puts the imago binary that runs the build into the
	// image as /usr/bin/imago, so that the image can update itself (Debian
	// 12 has no systemd-sysupdate).
	InstallImago bool
	// SourceDateEpoch, when set, is the time every timestamp of the build
	// is clamped to; it takes precedence over $SOURCE_DATE_EPOCH.
	SourceDateEpoch *time.Time
}

// Tree is one ExtraTrees= entry: the directory Source is copied onto Target,
// an absolute path in the image.
type Tree struct {
	Source string
	Target string
}

// Password is a RootPassword= value.
type Password struct {
	// Value is the password itself or, when Hashed, its crypt(3) hash. An
	// empty hash means root has no password at all.
	Value string
	// Hashed is set when the value was given with the "hashed:" prefix.
	Hashed bool
}

// Validation is the [Validation] section: signing and checksums. An empty
// key or certificate path means the key set imago generates and keeps for
// the user (see `imago keys`).
type Validation struct {
	// SecureBoot signs systemd-boot and the UKI for UEFI Secure Boot.
	SecureBoot bool
	// SecureBootAutoEnroll ships the Secure Boot keys in
	// loader/keys/auto/ with "secure-boot-enroll force" in loader.conf, so
	// systemd-boot enrolls them when the firmware is in setup mode.
	SecureBootAutoEnroll bool
	// SecureBootKey and SecureBootCertificate sign for Secure Boot (PEM).
	SecureBootKey         string
	SecureBootCertificate string
	// Verity is how /usr is protected: "signed" (a hash partition and a
	// signature partition), the only mode imago builds.
	Verity string
	// VerityKey and VerityCertificate sign the verity root hash (PEM).
	VerityKey         string
	VerityCertificate string
	// SignExpectedPcr embeds the signed PCR 11 predictions (.pcrsig) and
	// the public key (.pcrpkey) in the UKI.
	SignExpectedPcr bool
	// SignExpectedPcrKey signs the PCR predictions (PEM); the public key
	// comes from SignExpectedPcrCertificate when given, else from the key.
	SignExpectedPcrKey         string
	SignExpectedPcrCertificate string
	// Checksum writes SHA256SUMS over the update artifacts.
	Checksum bool
	// Sign signs SHA256SUMS (SHA256SUMS.gpg) with the OpenPGP key Key.
	Sign bool
	// Key is the OpenPGP secret key file that signs SHA256SUMS.
	Key string
}

// Build is the [Build] section: how the build runs.
type Build struct {
	// CacheDirectory holds the build cache; "" means the default
	// ($IMAGO_CACHE_DIR, else /var/cache/imago for root, else
	// $XDG_CACHE_HOME/imago or ~/.cache/imago).
	CacheDirectory string
}

// Slots are the sizes of the A/B slots of /usr, in bytes, taken from the
// repart.d definitions of the B slot (the usr, usr-verity and
// usr-verity-sig partitions labelled "_empty"). The build gives the
// partitions of slot A the same sizes, so that every version fits either
// slot. All zero when the definition declares no B slot; slot A is then as
// small as its content.
type Slots struct {
	Usr          int64
	UsrVerity    int64
	UsrVeritySig int64
}

// The defaults that docs/definition.md documents.
const (
	DefaultDistribution   = "debian"
	DefaultRelease        = "bookworm"
	DefaultMirror         = "http://deb.debian.org/debian"
	DefaultSecurityMirror = "http://deb.debian.org/debian-security"
	DefaultFormat         = "disk"
	DefaultUsrFileSystem  = "erofs"
	DefaultOutputDir      = "imago.output"
	// SnapshotMirror and SnapshotSecurityMirror are followed by the
	// Snapshot= time stamp.
	SnapshotMirror         = "https://snapshot.debian.org/archive/debian/"
	SnapshotSecurityMirror = "https://snapshot.debian.org/archive/debian-security/"
)

// debianArches maps the architectures imago builds for to Debian's names.
var debianArches = map[dps.Arch]string{
	dps.ArchX86_64: "amd64",
	dps.ArchARM64:  "arm64",
}
