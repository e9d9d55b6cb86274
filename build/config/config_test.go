package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/imago-os/imago/format/dps"
)

// testDir is where the in-memory definitions of these tests claim to live.
const testDir = "/srv/defs/myos"

// load reads a definition made of the given files.
func load(t *testing.T, files map[string]string, opts Options) (*Definition, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, text := range files {
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		fsys[name] = &fstest.MapFile{Data: []byte(text), Mode: mode}
	}
	return LoadFS(fsys, testDir, opts)
}

func mustLoad(t *testing.T, files map[string]string) *Definition {
	t.Helper()
	d, err := load(t, files, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func conf(text string) map[string]string { return map[string]string{"imago.conf": text} }

func TestDefaults(t *testing.T) {
	d := mustLoad(t, conf("[Output]\n"))
	want := Definition{
		Dir:   testDir,
		Files: []string{testDir + "/imago.conf"},
		Distribution: Distribution{
			Distribution:   "debian",
			Release:        "bookworm",
			Architecture:   hostArch(),
			Mirror:         "http://deb.debian.org/debian",
			SecurityMirror: "http://deb.debian.org/debian-security",
			Repositories:   []string{"main"},
		},
		Output: Output{
			Format:          "disk",
			ImageID:         "myos", // the directory's name
			OutputDirectory: testDir + "/imago.output",
			UsrFileSystem:   "erofs",
		},
		Validation: Validation{
			SecureBoot: true, SecureBootAutoEnroll: true, Verity: "signed",
			SignExpectedPcr: true, Checksum: true, Sign: true,
		},
	}
	d.fsys = nil
	if !reflect.DeepEqual(*d, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *d, want)
	}
	if d.Distribution.DebianArchitecture() == "" {
		t.Errorf("no Debian architecture for %q", d.Distribution.Architecture)
	}
}

// TestEveryKey sets each key to a value other than its default and checks
// the field it lands in.
func TestEveryKey(t *testing.T) {
	files := map[string]string{
		"keys/sb.key": "k", "keys/sb.crt": "c", "keys/v.key": "k", "keys/v.crt": "c",
		"keys/pcr.key": "k", "keys/pcr.crt": "c", "keys/pgp.asc": "k",
		"extra/usr/x": "x", "other/y": "y", "scripts/post.sh": "#!/bin/sh", "scripts/fin.sh": "#!/bin/sh",
		"imago.conf": `
[Distribution]
Distribution=debian
Release=trixie
Architecture=arm64
Mirror=https://mirror.example/debian
SecurityMirror=file:///srv/security
Snapshot=20250101T000000Z
Repositories=main contrib
Repositories=non-free-firmware

[Output]
Format=disk
ImageId=my.os-1
ImageVersion=2.5-rc1
OutputDirectory=out
UsrFileSystem=squashfs

[Content]
Packages=systemd, udev
Packages=linux-image-arm64=6.1.0 "foo:arm64"
RemovePackages=apt
RemoveFiles=/usr/share/doc/* "/var/lib/a b"
ExtraTrees=extra other:/opt/other
PostInstallationScripts=scripts/post.sh
FinalizeScripts=scripts/fin.sh
KernelCommandLine=console=ttyS0 quiet
KernelCommandLine=dyndbg="file x +p"
RootPassword=hunter2
Hostname=box.example
Bootable=yes
WithRecommends=yes
SourceDateEpoch=1700000000

[Validation]
SecureBoot=no
SecureBootAutoEnroll=no
SecureBootKey=keys/sb.key
SecureBootCertificate=keys/sb.crt
Verity=signed
VerityKey=keys/v.key
VerityCertificate=keys/v.crt
SignExpectedPcr=no
SignExpectedPcrKey=keys/pcr.key
SignExpectedPcrCertificate=keys/pcr.crt
Checksum=yes
Sign=no
Key=keys/pgp.asc

[Build]
CacheDirectory=/var/tmp/imago-cache
`}
	d := mustLoad(t, files)
	epoch := time.Unix(1700000000, 0).UTC()
	j := func(p string) string { return filepath.Join(testDir, p) }
	want := Definition{
		Dir:   testDir,
		Files: []string{j("imago.conf")},
		Distribution: Distribution{
			Distribution: "debian", Release: "trixie", Architecture: dps.ArchARM64,
			Mirror: "https://mirror.example/debian", SecurityMirror: "file:///srv/security",
			Snapshot: "20250101T000000Z", Repositories: []string{"main", "contrib", "non-free-firmware"},
		},
		Output: Output{Format: "disk", ImageID: "my.os-1", ImageVersion: "2.5-rc1",
			OutputDirectory: j("out"), UsrFileSystem: "squashfs"},
		Content: Content{
			Packages:                []string{"systemd", "udev", "linux-image-arm64=6.1.0", "foo:arm64"},
			RemovePackages:          []string{"apt"},
			RemoveFiles:             []string{"/usr/share/doc/*", "/var/lib/a b"},
			ExtraTrees:              []Tree{{j("extra"), "/"}, {j("other"), "/opt/other"}},
			PostInstallationScripts: []string{j("scripts/post.sh")},
			FinalizeScripts:         []string{j("scripts/fin.sh")},
			KernelCommandLine:       []string{"console=ttyS0", "quiet", `dyndbg="file x +p"`},
			RootPassword:            &Password{Value: "hunter2"},
			Hostname:                "box.example",
			WithRecommends:          true,
			SourceDateEpoch:         &epoch,
		},
		Validation: Validation{
			SecureBoot: false, SecureBootAutoEnroll: false,
			SecureBootKey: j("keys/sb.key"), SecureBootCertificate: j("keys/sb.crt"),
			Verity: "signed", VerityKey: j("keys/v.key"), VerityCertificate: j("keys/v.crt"),
			SignExpectedPcr: false, SignExpectedPcrKey: j("keys/pcr.key"), SignExpectedPcrCertificate: j("keys/pcr.crt"),
			Checksum: true, Sign: false, Key: j("keys/pgp.asc"),
		},
		Build: Build{CacheDirectory: "/var/tmp/imago-cache"},
	}
	d.fsys = nil
	if !reflect.DeepEqual(*d, want) {
		t.Errorf("got  %+v\nwant %+v", *d, want)
	}
	if got := d.Output.Label(); got != "my.os-1_2.5-rc1" {
		t.Errorf("Label() = %q", got)
	}
	if got := d.Distribution.DebianArchitecture(); got != "arm64" {
		t.Errorf("DebianArchitecture() = %q", got)
	}
}

func TestHashedPasswordAndSnapshotMirrors(t *testing.T) {
	d := mustLoad(t, conf("[Distribution]\nSnapshot=20240601T120000Z\n[Content]\nRootPassword=hashed:$6$salt$abc\n"))
	if d.Distribution.Mirror != "https://snapshot.debian.org/archive/debian/20240601T120000Z" ||
		d.Distribution.SecurityMirror != "https://snapshot.debian.org/archive/debian-security/20240601T120000Z" {
		t.Errorf("snapshot mirrors: %q %q", d.Distribution.Mirror, d.Distribution.SecurityMirror)
	}
	if pw := d.Content.RootPassword; pw == nil || !pw.Hashed || pw.Value != "$6$salt$abc" {
		t.Errorf("RootPassword = %+v", pw)
	}
	d = mustLoad(t, conf("[Content]\nRootPassword=hashed:\n"))
	if pw := d.Content.RootPassword; pw == nil || !pw.Hashed || pw.Value != "" {
		t.Errorf("empty hash: RootPassword = %+v", pw)
	}
}

// TestDropIns checks the order of imago.conf and imago.conf.d/*.conf: a
// later single value wins, lists add up, an empty assignment resets.
func TestDropIns(t *testing.T) {
	d := mustLoad(t, map[string]string{
		"imago.conf": "[Output]\nImageId=first\nImageVersion=1\n[Content]\nPackages=a b\nKernelCommandLine=quiet\n" +
			"[Validation]\nSecureBoot=no\n",
		"imago.conf.d/20-second.conf": "[Output]\nImageId=second\n[Content]\nPackages=c\n",
		"imago.conf.d/10-first.conf":  "[Output]\nImageVersion=\n[Content]\nPackages=\nPackages=x\nKernelCommandLine=\n",
		"imago.conf.d/30-third.conf":  "[Validation]\nSecureBoot=\n",
		"imago.conf.d/ignored.txt":    "[Nonsense]\n",
	})
	if got := d.Output.ImageID; got != "second" {
		t.Errorf("ImageId = %q, want the last drop-in's", got)
	}
	if got := d.Output.ImageVersion; got != "" {
		t.Errorf("ImageVersion = %q, want it reset by the empty assignment", got)
	}
	if got := d.Content.Packages; !reflect.DeepEqual(got, []string{"x", "c"}) {
		t.Errorf("Packages = %q, want [x c] (reset in 10-first, added to in 20-second)", got)
	}
	if d.Content.KernelCommandLine != nil {
		t.Errorf("KernelCommandLine = %q, want reset", d.Content.KernelCommandLine)
	}
	if !d.Validation.SecureBoot {
		t.Error("SecureBoot= did not reset to its default (yes)")
	}
	wantFiles := []string{testDir + "/imago.conf", testDir + "/imago.conf.d/10-first.conf",
		testDir + "/imago.conf.d/20-second.conf", testDir + "/imago.conf.d/30-third.conf"}
	if !reflect.DeepEqual(d.Files, wantFiles) {
		t.Errorf("Files = %q", d.Files)
	}
	// Drop-ins alone make a definition too.
	d = mustLoad(t, map[string]string{"imago.conf.d/a.conf": "[Output]\nImageId=only\n"})
	if d.Output.ImageID != "only" {
		t.Errorf("drop-in only: ImageId = %q", d.Output.ImageID)
	}
}

func TestOptions(t *testing.T) {
	d, err := load(t, conf("[Output]\nImageVersion=1\nOutputDirectory=/abs/out\n"), Options{ImageVersion: "7", OutputDirectory: "rel"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Output.ImageVersion != "7" || d.Output.OutputDirectory != testDir+"/rel" {
		t.Errorf("options not applied: %+v", d.Output)
	}
	_, err = load(t, conf("[Output]\n"), Options{ImageVersion: "1_2"})
	if err == nil || !strings.Contains(err.Error(), `image version "1_2"`) {
		t.Errorf("bad version option: %v", err)
	}
	long := strings.Repeat("v", 30)
	_, err = load(t, conf("[Output]\nImageId=abcdef\n"), Options{ImageVersion: long})
	if err == nil || !strings.Contains(err.Error(), "GPT label") {
		t.Errorf("too long a label: %v", err)
	}
}

// TestErrors checks that every refusal names file, line and key.
func TestErrors(t *testing.T) {
	f := testDir + "/imago.conf"
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown section", conf("[Output]\n[Stuff]\nA=b\n"), f + ":2: unknown section [Stuff]"},
		{"mkosi section", conf("[Match]\nDistribution=debian\n"), f + ":1: [Match] is a mkosi section imago does not support"},
		{"unknown key", conf("[Content]\nPackagez=a\n"), f + ":2: Packagez=: unknown key in [Content]"},
		{"mkosi key", conf("[Content]\n\nWithDocs=no\n"), f + ":3: WithDocs=: a mkosi setting imago does not support"},
		{"wrong section", conf("[Output]\nPackages=a\n"), f + ":2: Packages=: belongs in [Content], not [Output]"},
		{"missing equals", conf("[Content]\nPackages=a\n   b\n"), f + ":3: missing '='"},
		{"before section", conf("Packages=a\n"), f + ":1: assignment outside"},
		{"distribution", conf("[Distribution]\nDistribution=fedora\n"), f + `:2: Distribution=: "fedora" is not supported`},
		{"release", conf("[Distribution]\nRelease=Book Worm\n"), f + `:2: Release=: "Book Worm" is not a release name`},
		{"architecture", conf("[Distribution]\nArchitecture=amd64\n"), f + `:2: Architecture=: "amd64" is not supported`},
		{"mirror scheme", conf("[Distribution]\nMirror=ftp://x/y\n"), f + `:2: Mirror=: "ftp://x/y": the scheme`},
		{"mirror host", conf("[Distribution]\nSecurityMirror=http:///x\n"), f + `:2: SecurityMirror=: "http:///x" has no host`},
		{"snapshot", conf("[Distribution]\nSnapshot=yesterday\n"), f + ":2: Snapshot=: "},
		{"component", conf("[Distribution]\nRepositories=Main\n"), f + `:2: Repositories=: "Main" is not`},
		{"format", conf("[Output]\nFormat=tar\n"), f + `:2: Format=: "tar" is not supported`},
		{"image id", conf("[Output]\nImageId=My_OS\n"), f + `:2: ImageId=: "My_OS": an image ID`},
		{"image id length", conf("[Output]\nImageId=" + strings.Repeat("a", 35) + "\n"), f + ":2: ImageId=: "},
		{"version", conf("[Output]\nImageVersion=1+2\n"), f + `:2: ImageVersion=: "1+2": a version`},
		{"usr fs", conf("[Output]\nUsrFileSystem=ext4\n"), f + `:2: UsrFileSystem=: "ext4"`},
		{"two output dirs", conf("[Output]\nOutputDirectory=a b\n"), f + ":2: OutputDirectory=: want one path, got 2 words"},
		{"package", conf("[Content]\nPackages=-rf\n"), f + `:2: Packages=: "-rf" is not a package name`},
		{"quote", conf("[Content]\nPackages=\"a\n"), f + ":2: Packages=: "},
		{"remove files", conf("[Content]\nRemoveFiles=usr/share\n"), f + `:2: RemoveFiles=: "usr/share" is not an absolute path`},
		{"glob", conf("[Content]\nRemoveFiles=/a[\n"), f + ":2: RemoveFiles=: \"/a[\": bad glob pattern"},
		{"tree missing", conf("[Content]\nExtraTrees=nope\n"), f + ":2: ExtraTrees=: " + testDir + "/nope: file does not exist"},
		{"tree file", map[string]string{"imago.conf": "[Content]\nExtraTrees=x\n", "x": "file"}, f + ":2: ExtraTrees=: " + testDir + "/x: not a directory"},
		{"tree target", map[string]string{"imago.conf": "[Content]\nExtraTrees=d:opt\n", "d/f": ""}, f + `:2: ExtraTrees=: "d:opt": the target "opt" is not an absolute path`},
		{"script missing", conf("[Content]\nPostInstallationScripts=a.sh\n"), f + ":2: PostInstallationScripts=: " + testDir + "/a.sh: file does not exist"},
		{"script not executable", map[string]string{"imago.conf": "[Content]\nFinalizeScripts=fin\n", "fin": "x"}, f + ":2: FinalizeScripts=: " + testDir + "/fin: not an executable file"},
		{"cmdline usrhash", conf("[Content]\nKernelCommandLine=quiet usrhash=00\n"), f + `:2: KernelCommandLine=: "usrhash=00": imago sets usrhash= itself`},
		{"cmdline quote", conf("[Content]\nKernelCommandLine=a=\"b\n"), f + ":2: KernelCommandLine=: "},
		{"hash colon", conf("[Content]\nRootPassword=hashed:a:b\n"), f + ":2: RootPassword=: a password hash cannot contain ':'"},
		{"hostname", conf("[Content]\nHostname=-bad\n"), f + `:2: Hostname=: "-bad" is not a valid host name`},
		{"bootable", conf("[Content]\nBootable=no\n"), f + ":2: Bootable=: imago builds bootable disk images only"},
		{"bootable word", conf("[Content]\nBootable=maybe\n"), f + `:2: Bootable=: "maybe" is not a boolean`},
		{"recommends", conf("[Content]\nWithRecommends=perhaps\n"), f + `:2: WithRecommends=: "perhaps" is not a boolean`},
		{"epoch", conf("[Content]\nSourceDateEpoch=-1\n"), f + `:2: SourceDateEpoch=: "-1"`},
		{"secure boot", conf("[Validation]\nSecureBoot=maybe\n"), f + `:2: SecureBoot=: "maybe" is not a boolean`},
		{"verity", conf("[Validation]\nVerity=hash\n"), f + `:2: Verity=: "hash" is not supported`},
		{"key missing", conf("[Validation]\nVerityKey=k.pem\n"), f + ":2: VerityKey=: " + testDir + "/k.pem: file does not exist"},
		{"key dir", map[string]string{"imago.conf": "[Validation]\nKey=d\n", "d/x": ""}, f + ":2: Key=: " + testDir + "/d: not a regular file"},
		{"pcr", conf("[Validation]\nSignExpectedPcr=often\n"), f + `:2: SignExpectedPcr=: "often"`},
		{"key pair", map[string]string{"imago.conf": "[Validation]\nSecureBootKey=k\n", "k": "k"}, testDir + ": a signing key and its certificate go together"},
		{"pcr cert alone", map[string]string{"imago.conf": "[Validation]\nSignExpectedPcrCertificate=c\n", "c": "c"}, testDir + ": SignExpectedPcrCertificate= needs SignExpectedPcrKey="},
		{"sign without checksum", conf("[Validation]\nChecksum=no\n"), testDir + ": Sign=yes needs Checksum=yes"},
		{"no definition", map[string]string{"other.conf": ""}, testDir + ": not an image definition"},
		{"drop-in error", map[string]string{"imago.conf": "[Output]\n", "imago.conf.d/5.conf": "[Output]\n\nFormat=iso\n"},
			testDir + `/imago.conf.d/5.conf:3: Format=: "iso"`},
		{"bad utf-8", conf("[Output]\nImageId=\xff\n"), f + ":2: "},
		{"transfer section", map[string]string{"imago.conf": "[Output]\n", "sysupdate.d/a.conf": "[Transfer]\n[Sauce]\n"},
			testDir + "/sysupdate.d/a.conf:2: unknown section [Sauce] in a transfer file"},
		{"transfer syntax", map[string]string{"imago.conf": "[Output]\n", "sysupdate.d/a.transfer": "[Source]\nPath\n"},
			testDir + "/sysupdate.d/a.transfer:2: missing '='"},
		{"repart not dir", map[string]string{"imago.conf": "[Output]\n", "repart.d": "x"}, testDir + "/repart.d: not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, c.files, Options{})
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\n does not contain %q", err, c.want)
			}
		})
	}
}

func TestImageIDFromDirectory(t *testing.T) {
	_, err := LoadFS(fstest.MapFS{"imago.conf": {Data: []byte("[Output]\n")}}, "/srv/My Image", Options{})
	if err == nil || !strings.Contains(err.Error(), `ImageId= is not set in [Output] and the directory name "My Image" cannot stand in for it`) {
		t.Errorf("err = %v", err)
	}
	if _, err := LoadFS(fstest.MapFS{}, "relative/dir", Options{}); err == nil {
		t.Error("a relative directory was accepted")
	}
}

// repartFiles is a definition with an A/B layout of /usr.
func repartFiles(extra map[string]string) map[string]string {
	files := map[string]string{
		"imago.conf":                 "[Distribution]\nArchitecture=x86-64\n[Output]\nImageId=os\n",
		"repart.d/10-usr.conf":       "[Partition]\nType=usr\n",
		"repart.d/11-verity.conf":    "[Partition]\nType=usr-verity\n",
		"repart.d/12-sig.conf":       "[Partition]\nType=usr-x86-64-verity-sig\n",
		"repart.d/20-usr-b.conf":     "[Partition]\nType=usr\nLabel=_empty\nSizeMinBytes=512M\nSizeMaxBytes=512M\n",
		"repart.d/21-verity-b.conf":  "[Partition]\nType=usr-verity\nLabel=_empty\nSizeMinBytes=8M\nSizeMaxBytes=8M\n",
		"repart.d/22-sig-b.conf":     "[Partition]\nType=8484680c-9521-48c6-9c11-b0720656f69e\nType=usr-verity-sig\nLabel=_empty\nSizeMinBytes=16K\nSizeMaxBytes=16384\n",
		"repart.d/30-root.conf":      "[Partition]\nType=root\nFormat=btrfs\n",
		"repart.d/40-arm64-usr.conf": "[Partition]\nType=usr-arm64\nLabel=_empty\n",
	}
	for k, v := range extra {
		if v == "" {
			delete(files, k)
		} else {
			files[k] = v
		}
	}
	return files
}

func TestSlots(t *testing.T) {
	d := mustLoad(t, repartFiles(nil))
	want := Slots{Usr: 512 << 20, UsrVerity: 8 << 20, UsrVeritySig: 16 << 10}
	if d.Slots != want {
		t.Errorf("Slots = %+v, want %+v", d.Slots, want)
	}
	if d.RepartDir != testDir+"/repart.d" {
		t.Errorf("RepartDir = %q", d.RepartDir)
	}
	// No B slot: no sizes.
	d = mustLoad(t, map[string]string{"imago.conf": "[Output]\nImageId=os\n", "repart.d/10-root.conf": "[Partition]\nType=root\n"})
	if d.Slots != (Slots{}) {
		t.Errorf("no B slot: Slots = %+v", d.Slots)
	}

	r := testDir + "/repart.d/"
	for _, c := range []struct {
		name  string
		patch map[string]string
		want  string
	}{
		{"B before A", map[string]string{"repart.d/05-usr-b.conf": "[Partition]\nType=usr\nLabel=_empty\nSizeMinBytes=1G\nSizeMaxBytes=1G\n"},
			r + "05-usr-b.conf:3: Label=: the first usr definition is matched to the partition the image is shipped with (slot A)"},
		{"not fixed", map[string]string{"repart.d/20-usr-b.conf": "[Partition]\nType=usr\nLabel=_empty\nSizeMinBytes=512M\n"},
			r + "20-usr-b.conf:3: Label=: a _empty slot needs a fixed size"},
		{"min max differ", map[string]string{"repart.d/20-usr-b.conf": "[Partition]\nType=usr\nLabel=_empty\nSizeMinBytes=512M\nSizeMaxBytes=1G\n"},
			r + "20-usr-b.conf:3: Label=: a _empty slot needs a fixed size: SizeMinBytes= (536870912) differs from SizeMaxBytes= (1073741824)"},
		{"grain", map[string]string{"repart.d/21-verity-b.conf": "[Partition]\nType=usr-verity\nLabel=_empty\nSizeMinBytes=1000\nSizeMaxBytes=1000\n"},
			r + `21-verity-b.conf:4: SizeMinBytes=: "1000": a slot size must be a non-zero multiple of 4096`},
		{"bad size", map[string]string{"repart.d/21-verity-b.conf": "[Partition]\nType=usr-verity\nLabel=_empty\nSizeMinBytes=lots\nSizeMaxBytes=1M\n"},
			r + `21-verity-b.conf:4: SizeMinBytes=: "lots"`},
		{"incomplete", map[string]string{"repart.d/22-sig-b.conf": ""},
			"a B slot needs three _empty partitions, of types usr, usr-verity and usr-verity-sig (found sizes 536870912, 8388608, 0)"},
		{"second slot differs", map[string]string{"repart.d/25-usr-c.conf": "[Partition]\nType=usr\nLabel=_empty\nSizeMinBytes=1G\nSizeMaxBytes=1G\n"},
			r + "25-usr-c.conf:3: every usr slot must have the same size"},
		{"bad type", map[string]string{"repart.d/50-x.conf": "[Partition]\nType=usr-vax\n"},
			r + `50-x.conf:2: Type=: dps: "usr-vax" is neither`},
		{"syntax", map[string]string{"repart.d/50-x.conf": "[Partition]\nType\n"}, r + "50-x.conf:2: missing '='"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, repartFiles(c.patch), Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestCanonical checks that the canonical form loads back to the same
// definition and that Hash follows the settings and repart.d/sysupdate.d.
func TestCanonical(t *testing.T) {
	files := repartFiles(map[string]string{
		"imago.conf": "[Output]\nImageId=os\nImageVersion=3\n[Content]\nPackages=a 'b'\nRemoveFiles=\"/x y/*\" '/d\\\\e' /q\\\"\n" +
			"ExtraTrees=\"tree dir:/o p\"\nKernelCommandLine=a=\"b c\" x\\y\nRootPassword=hashed:$1$x$y\nSourceDateEpoch=0\n" +
			"[Distribution]\nArchitecture=x86-64\nRepositories=\n[Validation]\nSign=no\nChecksum=no\n[Build]\nCacheDirectory=cache\n",
		"tree dir/f":                 "x",
		"sysupdate.d/10-usr.conf":    "[Transfer]\nProtectVersion=%A\n",
		"sysupdate.d/90-uki.conf":    "[Target]\nTriesLeft=3\n",
		"repart.d/40-arm64-usr.conf": "",
	})
	d := mustLoad(t, files)
	text, err := d.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	again := map[string]string{}
	for k, v := range files {
		again[k] = v
	}
	again["imago.conf"] = string(text)
	d2 := mustLoad(t, again)
	text2, err := d2.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if string(text) != string(text2) {
		t.Errorf("canonical form is not stable:\n%s\n---\n%s", text, text2)
	}
	d.fsys, d2.fsys = nil, nil
	if !reflect.DeepEqual(d, d2) {
		t.Errorf("reloaded canonical form differs:\n%+v\n%+v\n%s", d, d2, text)
	}
	for _, want := range []string{"Packages=b\n", "RemoveFiles=\"/x y/*\"\n", "RemoveFiles=\"/d\\\\e\"\n", "RemoveFiles=\"/q\\\"\"\n", "ExtraTrees=\"tree dir:/o p\"\n",
		"KernelCommandLine=a=\"b c\"\n", "KernelCommandLine=x\\y\n", "Repositories=\n", "CacheDirectory=cache\n", "SourceDateEpoch=0\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("canonical form lacks %q:\n%s", want, text)
		}
	}

	h1, err := mustLoad(t, files).Hash()
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := mustLoad(t, again).Hash()
	if h1 != h2 || len(h1) != 64 {
		t.Errorf("equal definitions hash differently: %s %s", h1, h2)
	}
	for name, change := range map[string]map[string]string{
		"setting":   {"imago.conf": files["imago.conf"] + "[Content]\nPackages=z\n"},
		"repart.d":  {"repart.d/30-root.conf": "[Partition]\nType=root\nFormat=ext4\n"},
		"sysupdate": {"sysupdate.d/90-uki.conf": "[Target]\nTriesLeft=2\n"},
		"new file":  {"sysupdate.d/95-x.conf": "[Transfer]\n"},
	} {
		changed := map[string]string{}
		for k, v := range files {
			changed[k] = v
		}
		for k, v := range change {
			changed[k] = v
		}
		h, err := mustLoad(t, changed).Hash()
		if err != nil {
			t.Fatal(err)
		}
		if h == h1 {
			t.Errorf("changing the %s left the hash as it was", name)
		}
	}
}

func TestLoadFromDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "disk-os")
	if err := os.MkdirAll(filepath.Join(dir, "imago.conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("imago.conf", "[Output]\nImageVersion=1\n[Validation]\nVerityKey=../outside.key\nVerityCertificate=/dev/null\n")
	write("../outside.key", "k")
	// A drop-in linked to /dev/null is masked: read as empty.
	if err := os.Symlink("/dev/null", filepath.Join(dir, "imago.conf.d", "masked.conf")); err != nil {
		t.Fatal(err)
	}
	d, err := Load(dir, Options{})
	if err == nil {
		t.Fatalf("a character device was accepted as a certificate: %+v", d.Validation)
	}
	if !strings.Contains(err.Error(), "VerityCertificate=: /dev/null: not a regular file") {
		t.Errorf("err = %v", err)
	}
	write("cert.pem", "c")
	write("imago.conf", "[Output]\nImageVersion=1\n[Validation]\nVerityKey=../outside.key\nVerityCertificate=cert.pem\n")
	d, err = Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Output.ImageID != "disk-os" || d.Validation.VerityKey != filepath.Join(filepath.Dir(dir), "outside.key") {
		t.Errorf("loaded %+v %+v", d.Output, d.Validation)
	}
	if _, err := Load(filepath.Join(dir, "imago.conf"), Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as the directory: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "nope"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing directory: %v", err)
	}
}
