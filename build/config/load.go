package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/imago-os/imago/build/reference"
	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/unitfile"
)

// MainFile is the name of a definition's main configuration file; its
// drop-ins are MainFile+".d/*.conf".
const MainFile = "imago.conf"

// Options change a definition as it is loaded, the way command-line flags
// of `imago build` do.
type Options struct {
	// ImageVersion, when not empty, replaces ImageVersion=.
	ImageVersion string
	// OutputDirectory, when not empty, replaces OutputDirectory=; a
	// relative path is relative to the definition directory.
	OutputDirectory string
}

// Load reads and validates the definition in the directory dir.
func Load(dir string, opts Options) (*Definition, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("config: %s: not a directory", abs)
	}
	return LoadFS(os.DirFS(abs), abs, opts)
}

// LoadReference reads the reference definition embedded in imago as if it
// had been written to dir (as `imago init dir` does): its relative paths
// resolve against dir.
func LoadReference(dir string, opts Options) (*Definition, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return LoadFS(reference.FS(), abs, opts)
}

// LoadFS reads the definition whose directory is the root of fsys. dir is
// the absolute path of that directory on the host: relative paths resolve
// against it, and messages name files by it. Paths inside the definition
// directory are checked in fsys, others on the host.
func LoadFS(fsys fs.FS, dir string, opts Options) (*Definition, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("config: %q is not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	merged, err := unitfile.LoadWithDropIns(fsys, []string{"."}, MainFile)
	if err != nil {
		return nil, rebaseError(dir, err)
	}
	if len(merged.Sources) == 0 {
		return nil, fmt.Errorf("config: %s: not an image definition (no %s or %s.d/*.conf)", dir, MainFile, MainFile)
	}
	rebase(dir, merged)
	if len(merged.Warnings) > 0 {
		w := merged.Warnings[0]
		return nil, fmt.Errorf("config: %w (continue a value on the next line with a trailing backslash)", w)
	}

	p := &parser{fsys: fsys, dir: dir, d: newDefinition(dir)}
	p.d.Files = append(p.d.Files, merged.Sources...)
	p.d.fsys = fsys
	for _, s := range merged.Sections {
		keys, ok := sections[s.Name]
		if !ok {
			return nil, fmt.Errorf("config: %s:%d: %s", s.File, s.Line, unknownSection(s.Name))
		}
		for _, e := range s.Entries {
			k, ok := keys[e.Key]
			if !ok {
				return nil, fmt.Errorf("config: %w", e.Errorf("%s", unknownKey(s.Name, e.Key)))
			}
			if e.Value == "" {
				k.reset(p)
				continue
			}
			if err := k.apply(p, e); err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
		}
	}
	if err := p.finish(opts); err != nil {
		return nil, err
	}
	if err := p.readDirectories(); err != nil {
		return nil, err
	}
	return p.d, nil
}

// newDefinition returns the defaults of every setting that has one; the
// defaults that depend on other settings are filled in by finish.
func newDefinition(dir string) *Definition {
	return &Definition{
		Dir: dir,
		Distribution: Distribution{
			Distribution: DefaultDistribution,
			Release:      DefaultRelease,
			Architecture: hostArch(),
		},
		Output: Output{
			Format:        DefaultFormat,
			UsrFileSystem: DefaultUsrFileSystem,
		},
		Validation: defaultValidation(),
	}
}

func defaultValidation() Validation {
	return Validation{
		SecureBoot:           true,
		SecureBootAutoEnroll: true,
		Verity:               "signed",
		SignExpectedPcr:      true,
		Checksum:             true,
		Sign:                 true,
	}
}

// hostArch is the architecture imago runs on, the default Architecture=.
func hostArch() dps.Arch {
	a, _ := dps.ArchFromGOARCH(runtime.GOARCH)
	return a
}

// rebase makes every file name in f absolute, so that messages name the
// files as the user knows them.
func rebase(dir string, f *unitfile.File) {
	for i := range f.Sources {
		f.Sources[i] = filepath.Join(dir, f.Sources[i])
	}
	for i := range f.Sections {
		s := &f.Sections[i]
		s.File = filepath.Join(dir, s.File)
		for j := range s.Entries {
			s.Entries[j].File = filepath.Join(dir, s.Entries[j].File)
		}
	}
	for _, w := range f.Warnings {
		w.File = filepath.Join(dir, w.File)
	}
}

// rebaseError does what rebase does for the file named in a syntax error.
func rebaseError(dir string, err error) error {
	var se *unitfile.SyntaxError
	if errors.As(err, &se) && !filepath.IsAbs(se.File) {
		se.File = filepath.Join(dir, se.File)
	}
	return fmt.Errorf("config: %w", err)
}

// parser carries the state of one LoadFS.
type parser struct {
	fsys fs.FS
	dir  string
	d    *Definition
	// repositoriesSet records an assignment of Repositories=, which
	// replaces the default rather than adding to it.
	repositoriesSet bool
}

// finish applies Options and the defaults that depend on other settings,
// then checks what only makes sense for the whole definition.
func (p *parser) finish(opts Options) error {
	d := p.d
	if !p.repositoriesSet {
		d.Distribution.Repositories = []string{"main"}
	}
	if d.Distribution.Mirror == "" {
		d.Distribution.Mirror = DefaultMirror
		if d.Distribution.Snapshot != "" {
			d.Distribution.Mirror = SnapshotMirror + d.Distribution.Snapshot
		}
	}
	if d.Distribution.SecurityMirror == "" {
		d.Distribution.SecurityMirror = DefaultSecurityMirror
		if d.Distribution.Snapshot != "" {
			d.Distribution.SecurityMirror = SnapshotSecurityMirror + d.Distribution.Snapshot
		}
	}
	if d.Distribution.Architecture == "" {
		return fmt.Errorf("config: %s: imago does not build for this machine's architecture (%s); set Architecture= in [Distribution]", p.dir, runtime.GOARCH)
	}
	if d.Output.ImageID == "" {
		base := filepath.Base(p.dir)
		if err := checkImageID(base); err != nil {
			return fmt.Errorf("config: %s: ImageId= is not set in [Output] and the directory name %q cannot stand in for it: %v", p.dir, base, err)
		}
		d.Output.ImageID = base
	}
	if opts.ImageVersion != "" {
		if err := checkImageVersion(opts.ImageVersion); err != nil {
			return fmt.Errorf("config: image version %q: %v", opts.ImageVersion, err)
		}
		d.Output.ImageVersion = opts.ImageVersion
	}
	if d.Output.ImageVersion != "" {
		if err := checkLabel(d.Output.ImageID, d.Output.ImageVersion); err != nil {
			return fmt.Errorf("config: %s: %v", p.dir, err)
		}
	}
	if opts.OutputDirectory != "" {
		d.Output.OutputDirectory = p.abs(opts.OutputDirectory)
	}
	if d.Output.OutputDirectory == "" {
		d.Output.OutputDirectory = filepath.Join(p.dir, DefaultOutputDir)
	}
	v := &d.Validation
	if v.Sign && !v.Checksum {
		return fmt.Errorf("config: %s: Sign=yes needs Checksum=yes: the signature is over SHA256SUMS", p.dir)
	}
	for _, pair := range [][2]string{{v.SecureBootKey, v.SecureBootCertificate}, {v.VerityKey, v.VerityCertificate}} {
		if (pair[0] == "") != (pair[1] == "") {
			return fmt.Errorf("config: %s: a signing key and its certificate go together: set both of SecureBootKey=/SecureBootCertificate= and of VerityKey=/VerityCertificate=, or neither", p.dir)
		}
	}
	if v.SignExpectedPcrCertificate != "" && v.SignExpectedPcrKey == "" {
		return fmt.Errorf("config: %s: SignExpectedPcrCertificate= needs SignExpectedPcrKey=", p.dir)
	}
	return nil
}

// abs resolves a path of the definition against its directory.
func (p *parser) abs(v string) string {
	if filepath.IsAbs(v) {
		return filepath.Clean(v)
	}
	return filepath.Join(p.dir, v)
}

// stat looks a path of the definition up: in fsys when it is inside the
// definition directory, on the host otherwise.
func (p *parser) stat(abs string) (fs.FileInfo, error) {
	if rel, err := filepath.Rel(p.dir, abs); err == nil && fs.ValidPath(filepath.ToSlash(rel)) {
		return fs.Stat(p.fsys, filepath.ToSlash(rel))
	}
	return os.Stat(abs)
}

// unknownSection explains a section imago does not know.
func unknownSection(name string) string {
	switch name {
	case "Match", "Include", "Config", "Runtime", "Host", "UKIProfile":
		return fmt.Sprintf("[%s] is a mkosi section imago does not support", name)
	}
	return fmt.Sprintf("unknown section [%s] (known: [Distribution] [Output] [Content] [Validation] [Build])", name)
}

// unknownKey explains a key imago does not know in a known section.
func unknownKey(section, key string) string {
	if mkosiOnly[key] {
		return fmt.Sprintf("a mkosi setting imago does not support in [%s]", section)
	}
	for s, keys := range sections {
		if _, ok := keys[key]; ok && s != section {
			return fmt.Sprintf("belongs in [%s], not [%s]", s, section)
		}
	}
	return fmt.Sprintf("unknown key in [%s]", section)
}

// mkosiOnly are mkosi settings that imago recognises but does not support,
// so that a definition carried over from mkosi gets a clear message.
var mkosiOnly = map[string]bool{
	"LocalMirror": true, "RepositoryKeyCheck": true, "RepositoryKeyFetch": true,
	"ManifestFormat": true, "Output": true, "OutputExtension": true, "OutputSize": true,
	"CompressOutput": true, "CompressLevel": true, "OutputMode": true, "SplitArtifacts": true,
	"RepartDirectories": true, "SectorSize": true, "Overlay": true, "Seed": true,
	"CleanScripts": true, "BuildPackages": true, "VolatilePackages": true,
	"PackageDirectories": true, "VolatilePackageDirectories": true, "WithDocs": true,
	"BaseTrees": true, "SkeletonTrees": true, "CleanPackageMetadata": true,
	"SyncScripts": true, "PrepareScripts": true, "BuildScripts": true,
	"PostOutputScripts": true, "Bootloader": true, "BiosBootloader": true,
	"ShimBootloader": true, "UnifiedKernelImages": true, "UnifiedKernelImageFormat": true,
	"Initrds": true, "InitrdPackages": true, "Devicetrees": true, "Splash": true,
	"KernelModules": true, "KernelModulesInitrd": true, "FirmwareFiles": true,
	"Locale": true, "LocaleMessages": true, "Keymap": true, "Timezone": true,
	"RootShell": true, "Autologin": true, "MakeInitrd": true, "Ssh": true,
	"SELinuxRelabel": true, "MachineId": true, "SecureBootSignTool": true,
	"SecureBootKeySource": true, "SecureBootCertificateSource": true,
	"VerityKeySource": true, "VerityCertificateSource": true,
	"SignExpectedPcrKeySource": true, "SignExpectedPcrCertificateSource": true,
	"Passphrase": true, "OpenPGPTool": true, "ToolsTree": true, "Incremental": true,
	"CacheOnly": true, "WorkspaceDirectory": true, "PackageCacheDirectory": true,
	"BuildDirectory": true, "Environment": true, "EnvironmentFiles": true,
	"WithNetwork": true, "ProxyUrl": true,
}

// readDirectories finds repart.d and sysupdate.d and reads what the build
// needs from them.
func (p *parser) readDirectories() error {
	for _, c := range []struct {
		name string
		dst  *string
	}{{"repart.d", &p.d.RepartDir}, {"sysupdate.d", &p.d.SysupdateDir}} {
		fi, err := fs.Stat(p.fsys, c.name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return fmt.Errorf("config: %s: %w", filepath.Join(p.dir, c.name), err)
		case !fi.IsDir():
			return fmt.Errorf("config: %s: not a directory", filepath.Join(p.dir, c.name))
		}
		*c.dst = filepath.Join(p.dir, c.name)
	}
	if p.d.SysupdateDir != "" {
		if err := p.checkSysupdate(); err != nil {
			return err
		}
	}
	if p.d.RepartDir != "" {
		slots, err := p.readSlots()
		if err != nil {
			return err
		}
		p.d.Slots = slots
	}
	return nil
}

// checkSysupdate parses every transfer file, so that a syntax error shows
// at build time rather than on the first update. Their keys are checked by
// the update engine that reads them.
func (p *parser) checkSysupdate() error {
	for _, suffix := range []string{".conf", ".transfer"} {
		files, err := unitfile.LoadAll(p.fsys, []string{"sysupdate.d"}, suffix)
		if err != nil {
			return rebaseError(p.dir, err)
		}
		for _, f := range files {
			rebase(p.dir, f)
			if len(f.Warnings) > 0 {
				return fmt.Errorf("config: %w", f.Warnings[0])
			}
			for _, s := range f.Sections {
				if s.Name != "Transfer" && s.Name != "Source" && s.Name != "Target" {
					return fmt.Errorf("config: %s:%d: unknown section [%s] in a transfer file", s.File, s.Line, s.Name)
				}
			}
		}
	}
	return nil
}
