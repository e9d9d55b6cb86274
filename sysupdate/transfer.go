package sysupdate

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/unitfile"
	"github.com/imago-os/imago/format/vercmp"
	"github.com/imago-os/imago/sysupdate/pattern"
)

// ResourceType is the kind of a transfer's source or target.
type ResourceType string

// Resource types. Partition and Subvolume are recognised; discovery of
// subvolumes is not implemented.
const (
	URLFile     ResourceType = "url-file"
	URLTar      ResourceType = "url-tar"
	Tar         ResourceType = "tar"
	RegularFile ResourceType = "regular-file"
	Directory   ResourceType = "directory"
	Subvolume   ResourceType = "subvolume"
	Partition   ResourceType = "partition"
)

// IsURL reports whether the resource is fetched over the network.
func (t ResourceType) IsURL() bool { return t == URLFile || t == URLTar }

var sourceTypes = []ResourceType{URLFile, URLTar, Tar, RegularFile, Directory, Subvolume}
var targetTypes = []ResourceType{Partition, RegularFile, Directory, Subvolume}

// compatible reports whether target may receive source (the table of
// allowed pairs in sysupdate.d(5)).
func compatible(source, target ResourceType) bool {
	switch source {
	case URLFile, RegularFile:
		return target == RegularFile || target == Partition
	case URLTar, Tar, Directory, Subvolume:
		return target == Directory || target == Subvolume
	}
	return false
}

// PathRelativeTo values (systemd 254).
const (
	RelativeToRoot     = "root"
	RelativeToESP      = "esp"
	RelativeToXBOOTLDR = "xbootldr"
	RelativeToBoot     = "boot"
	// RelativeToExplicit is the source-only value of newer releases:
	// relative to a directory given on the command line.
	RelativeToExplicit = "explicit"
)

// Resource is the [Source] or [Target] of a transfer.
type Resource struct {
	Type ResourceType
	// Path is as configured after specifier expansion: a URL, an absolute
	// directory, an image or device path, or "auto" (partition targets).
	Path string
	// PathRelativeTo is "root" unless configured otherwise.
	PathRelativeTo string
	// Patterns are the MatchPattern= patterns in order; for a target the
	// first one names new instances.
	Patterns []*pattern.Pattern
}

// Transfer is one transfer definition.
type Transfer struct {
	// ID is the file name without its .conf or .transfer suffix.
	ID string
	// File is the path the definition was read from.
	File string

	MinVersion        string
	MaxVersion        string
	ProtectVersions   []string
	Verify            bool
	ChangeLog         []string
	AppStream         []string
	Features          []string
	RequisiteFeatures []string

	Source Resource
	Target Resource

	// PartitionType is MatchPartitionType= (default linux-generic).
	PartitionType dps.Type
	// The per-target overrides; nil or unset when not configured.
	PartitionUUID   *gpt.GUID
	PartitionFlags  *uint64
	NoAuto          *bool
	GrowFileSystem  *bool
	ReadOnly        *bool
	Mode            *uint32
	TriesDone       *uint64
	TriesLeft       *uint64
	InstancesMax    uint64 // resolved: default applied, 1 raised to 2
	RemoveTemporary bool
	CurrentSymlink  string

	// Enabled is false when the transfer's Features= or
	// RequisiteFeatures= are not satisfied: its instances are then left
	// out of update sets and removed by a vacuum. ParseTransfer enables
	// exactly the transfers that name no feature.
	Enabled bool

	// Warnings are settings systemd ignores with a warning (for example
	// ProtectVersion=%A when the image has no IMAGE_VERSION=).
	Warnings []error
}

// Unlimited is the InstancesMax of partition targets by default.
const Unlimited = math.MaxUint64

// Options control Load.
type Options struct {
	// Root is the OS tree whose sysupdate.d directories are read and
	// relative to which local paths are resolved; "" means "/".
	Root string
	// Definitions, if set, is the only directory read (as
	// systemd-sysupdate --definitions=).
	Definitions string
	// Component selects sysupdate.<Component>.d instead of sysupdate.d.
	Component string
	// Specifiers expands %-specifiers; nil means HostSpecifiers(Root).
	Specifiers *Specifiers
	// Arch resolves architecture-less partition type names such as "root";
	// empty means the architecture imago runs on.
	Arch dps.Arch
}

// Definition file suffixes: ".conf" is systemd 252's, ".transfer" v257's.
const (
	suffixConf     = ".conf"
	suffixTransfer = ".transfer"
)

// SearchDirs returns the directories read for a component ("" for the
// default), highest priority first.
func SearchDirs(component string) []string {
	name := "sysupdate.d"
	if component != "" {
		name = "sysupdate." + component + ".d"
	}
	return unitfile.ConfPaths(name)
}

// definitionDirs returns the file system and directories Load and
// LoadFeatures read: Definitions alone, or the component's search
// directories below Root.
func definitionDirs(opts Options) (fs.FS, []string, error) {
	if opts.Definitions != "" {
		abs, err := filepath.Abs(opts.Definitions)
		if err != nil {
			return nil, nil, fmt.Errorf("sysupdate: %w", err)
		}
		return os.DirFS("/"), []string{abs}, nil
	}
	if opts.Component != "" && strings.ContainsAny(opts.Component, "/.") {
		return nil, nil, fmt.Errorf("sysupdate: invalid component name %q", opts.Component)
	}
	root := opts.Root
	if root == "" {
		root = "/"
	}
	return os.DirFS(root), SearchDirs(opts.Component), nil
}

// Load reads and validates all transfer definitions, each with its
// <name>.d/*.conf drop-ins, sorted by file name. It is an error if there
// are none. Each transfer's Enabled is decided by the *.feature files of
// the same directories (see LoadFeatures).
func Load(opts Options) ([]*Transfer, error) {
	fsys, dirs, err := definitionDirs(opts)
	if err != nil {
		return nil, err
	}
	names, err := unitfile.ListConfFiles(fsys, dirs, "")
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %w", err)
	}
	spec := opts.Specifiers
	if spec == nil {
		s := HostSpecifiers(opts.Root)
		spec = &s
	}
	var transfers []*Transfer
	for _, name := range names {
		if !strings.HasSuffix(name, suffixConf) && !strings.HasSuffix(name, suffixTransfer) {
			continue
		}
		f, err := unitfile.LoadFileWithDropIns(fsys, name, dirs)
		if err != nil {
			return nil, fmt.Errorf("sysupdate: %w", err)
		}
		t, err := parseTransfer(f, name, *spec, opts.Arch)
		if err != nil {
			return nil, fmt.Errorf("sysupdate: %w", err)
		}
		transfers = append(transfers, t)
	}
	if len(transfers) == 0 {
		return nil, fmt.Errorf("sysupdate: no transfer definitions found in %s", strings.Join(dirs, ", "))
	}
	features, err := loadFeatures(fsys, dirs)
	if err != nil {
		return nil, err
	}
	enabled := map[string]bool{}
	for _, f := range features {
		enabled[f.Name] = f.Enabled
	}
	for _, t := range transfers {
		t.Enabled = t.decideEnabled(enabled)
	}
	return transfers, nil
}

// decideEnabled applies Features= (any listed feature enabled) and
// RequisiteFeatures= (all enabled); an unknown feature counts as disabled.
func (t *Transfer) decideEnabled(enabled map[string]bool) bool {
	if len(t.Features) > 0 && !slices.ContainsFunc(t.Features, func(n string) bool { return enabled[n] }) {
		return false
	}
	for _, n := range t.RequisiteFeatures {
		if !enabled[n] {
			return false
		}
	}
	return true
}

// ParseTransfer parses one definition file's content. name is the file's
// path, used for the transfer ID and in error messages.
func ParseTransfer(name string, data []byte, spec Specifiers, arch dps.Arch) (*Transfer, error) {
	f, err := unitfile.Parse(name, strings.NewReader(string(data)))
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %w", err)
	}
	t, err := parseTransfer(f, name, spec, arch)
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %w", err)
	}
	return t, nil
}

// fileError is an error about a whole definition file.
func fileError(file, format string, args ...any) error {
	return fmt.Errorf("%s: %s", file, fmt.Sprintf(format, args...))
}

func parseTransfer(f *unitfile.File, name string, spec Specifiers, arch dps.Arch) (*Transfer, error) {
	base := path.Base(name)
	id := strings.TrimSuffix(strings.TrimSuffix(base, suffixTransfer), suffixConf)
	t := &Transfer{
		ID:              id,
		File:            name,
		Verify:          true,
		RemoveTemporary: true,
		Source:          Resource{PathRelativeTo: RelativeToRoot},
		Target:          Resource{PathRelativeTo: RelativeToRoot},
	}
	if arch == "" {
		arch, _ = dps.ArchFromGOARCH(runtime.GOARCH)
	}
	generic, _ := dps.LookupName("linux-generic", arch)
	t.PartitionType = generic
	var instancesMax uint64
	for _, w := range f.Warnings {
		return nil, w
	}
	for _, sec := range f.Sections {
		switch sec.Name {
		case "Transfer", "Source", "Target":
		default:
			if strings.HasPrefix(sec.Name, "X-") {
				continue
			}
			return nil, fmt.Errorf("%s:%d: unknown section [%s]", sec.File, sec.Line, sec.Name)
		}
		for _, e := range sec.Entries {
			var err error
			switch sec.Name {
			case "Transfer":
				err = t.parseTransferKey(e, spec)
			case "Source":
				err = parseResourceKey(&t.Source, e, spec, true)
			case "Target":
				if err = parseResourceKey(&t.Target, e, spec, false); errors.Is(err, errUnknownKey) {
					err = t.parseTargetKey(e, &instancesMax, arch, spec)
				}
			}
			if errors.Is(err, errUnknownKey) {
				return nil, e.Errorf("unknown key in section [%s]", sec.Name)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	t.Enabled = t.decideEnabled(nil)
	return t, t.finalize(instancesMax)
}

var errUnknownKey = errors.New("unknown key")

// words splits a list value as systemd's config parsers do.
func words(e unitfile.Entry) ([]string, error) {
	w, err := unitfile.SplitWords(e.Value, " \t\n\r", unitfile.ExtractUnquote|unitfile.ExtractCUnescape)
	if err != nil {
		return nil, e.Errorf("%v", err)
	}
	return w, nil
}

// eachWord splits a list value into words and calls fn with each word as
// written and with its specifiers expanded, stopping at the first error.
func eachWord(e unitfile.Entry, spec Specifiers, fn func(word, expanded string) error) error {
	ws, err := words(e)
	if err != nil {
		return err
	}
	for _, w := range ws {
		v, err := expand(e, spec, w)
		if err != nil {
			return err
		}
		if err := fn(w, v); err != nil {
			return err
		}
	}
	return nil
}

func expand(e unitfile.Entry, spec Specifiers, v string) (string, error) {
	r, err := spec.Expand(v)
	if err != nil {
		return "", e.Errorf("%v", err)
	}
	return r, nil
}

func (t *Transfer) parseTransferKey(e unitfile.Entry, spec Specifiers) error {
	switch e.Key {
	case "MinVersion", "MaxVersion":
		v, err := expand(e, spec, e.Value)
		if err != nil {
			return err
		}
		if e.Value != "" && v == "" {
			t.Warnings = append(t.Warnings, e.Errorf("expands to the empty string, ignoring"))
			return nil
		}
		if v != "" && !vercmp.IsValid(v) {
			return e.Errorf("invalid version %q", v)
		}
		if e.Key == "MinVersion" {
			t.MinVersion = v
		} else {
			t.MaxVersion = v
		}
	case "ProtectVersion":
		if e.Value == "" {
			t.ProtectVersions = nil
			return nil
		}
		return eachWord(e, spec, func(w, v string) error {
			if v == "" {
				// %A on a system without IMAGE_VERSION=: systemd
				// ignores it with a warning.
				t.Warnings = append(t.Warnings, e.Errorf("%q expands to the empty string, ignoring", w))
				return nil
			}
			if !vercmp.IsValid(v) {
				return e.Errorf("invalid version %q", v)
			}
			if !slices.Contains(t.ProtectVersions, v) {
				t.ProtectVersions = append(t.ProtectVersions, v)
			}
			return nil
		})
	case "Verify":
		b, err := unitfile.ParseBool(e.Value)
		if err != nil {
			return e.Errorf("invalid boolean %q", e.Value)
		}
		t.Verify = b
	case "ChangeLog", "AppStream":
		var urls []string
		err := eachWord(e, spec, func(_, v string) error {
			if !isHTTPURL(v) {
				return e.Errorf("not an http:// or https:// URL: %q", v)
			}
			urls = append(urls, v)
			return nil
		})
		if err != nil {
			return err
		}
		if e.Key == "ChangeLog" {
			t.ChangeLog = appendOrReset(t.ChangeLog, urls, e.Value)
		} else {
			t.AppStream = appendOrReset(t.AppStream, urls, e.Value)
		}
	case "Features", "RequisiteFeatures":
		var names []string
		if e.Value != "" {
			ws, err := words(e)
			if err != nil {
				return err
			}
			for _, w := range ws {
				if !validFeatureName(w) {
					return e.Errorf("invalid feature name %q", w)
				}
				names = append(names, w)
			}
		}
		if e.Key == "Features" {
			t.Features = appendOrReset(t.Features, names, e.Value)
		} else {
			t.RequisiteFeatures = appendOrReset(t.RequisiteFeatures, names, e.Value)
		}
	default:
		return errUnknownKey
	}
	return nil
}

func appendOrReset(list, add []string, value string) []string {
	if value == "" {
		return nil
	}
	return append(list, add...)
}

func validFeatureName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	return !strings.ContainsAny(s, "/\x00")
}

func isHTTPURL(s string) bool {
	for _, p := range []string{"http://", "https://"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest != "" && !strings.ContainsAny(s, " \t\n\r\x00")
		}
	}
	return false
}

func isFileURL(s string) bool {
	rest, ok := strings.CutPrefix(s, "file://")
	return ok && strings.HasPrefix(rest, "/") && !strings.ContainsAny(s, " \t\n\r\x00")
}

// isNormalizedAbs reports whether p is absolute and has no "." or ".."
// components and no repeated or trailing slashes.
func isNormalizedAbs(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return false
	}
	return p == "/" || path.Clean(p) == p
}

func parseResourceKey(r *Resource, e unitfile.Entry, spec Specifiers, source bool) error {
	switch e.Key {
	case "Type":
		allowed := targetTypes
		if source {
			allowed = sourceTypes
		}
		if !slices.Contains(allowed, ResourceType(e.Value)) {
			return e.Errorf("invalid resource type %q", e.Value)
		}
		r.Type = ResourceType(e.Value)
	case "Path":
		if e.Value == "auto" && !source {
			r.Path = "auto"
			return nil
		}
		v, err := expand(e, spec, e.Value)
		if err != nil {
			return err
		}
		if v == "" {
			return e.Errorf("empty path")
		}
		r.Path = v // checked against the type in finalize
	case "PathRelativeTo":
		ok := e.Value == RelativeToRoot
		if source {
			ok = ok || e.Value == RelativeToExplicit
		} else {
			ok = ok || e.Value == RelativeToESP || e.Value == RelativeToXBOOTLDR || e.Value == RelativeToBoot
		}
		if !ok {
			return e.Errorf("invalid PathRelativeTo= value %q", e.Value)
		}
		r.PathRelativeTo = e.Value
	case "MatchPattern":
		if e.Value == "" {
			r.Patterns = nil
			return nil
		}
		return eachWord(e, spec, func(_, v string) error {
			p, err := pattern.Compile(v)
			if err != nil {
				return e.Errorf("%v", err)
			}
			if !slices.ContainsFunc(r.Patterns, func(q *pattern.Pattern) bool { return q.String() == v }) {
				r.Patterns = append(r.Patterns, p)
			}
			return nil
		})
	default:
		return errUnknownKey
	}
	return nil
}

func parseOptBool(e unitfile.Entry) (*bool, error) {
	if e.Value == "" {
		return nil, nil
	}
	b, err := unitfile.ParseBool(e.Value)
	if err != nil {
		return nil, e.Errorf("invalid boolean %q", e.Value)
	}
	return &b, nil
}

func parseOptUint(e unitfile.Entry, base int) (*uint64, error) {
	if e.Value == "" {
		return nil, nil
	}
	n, ok := parseUintStrict(e.Value, base)
	if !ok {
		return nil, e.Errorf("invalid number %q", e.Value)
	}
	return &n, nil
}

func (t *Transfer) parseTargetKey(e unitfile.Entry, instancesMax *uint64, arch dps.Arch, spec Specifiers) error {
	var err error
	switch e.Key {
	case "MatchPartitionType":
		typ, perr := dps.ParseType(e.Value, arch)
		if perr != nil {
			return e.Errorf("unknown partition type %q", e.Value)
		}
		t.PartitionType = typ
	case "PartitionUUID":
		if e.Value == "" {
			t.PartitionUUID = nil
			return nil
		}
		id, ok := pattern.ParseID128(e.Value)
		if !ok {
			return e.Errorf("invalid UUID %q", e.Value)
		}
		g := gpt.GUID(id)
		t.PartitionUUID = &g
	case "PartitionFlags":
		t.PartitionFlags, err = parseOptUint(e, 16)
	case "PartitionNoAuto":
		t.NoAuto, err = parseOptBool(e)
	case "PartitionGrowFileSystem":
		t.GrowFileSystem, err = parseOptBool(e)
	case "ReadOnly":
		t.ReadOnly, err = parseOptBool(e)
	case "Mode":
		if e.Value == "" {
			t.Mode = nil
			return nil
		}
		n, ok := parseUintStrict(e.Value, 8)
		if !ok || n > 0o7777 {
			return e.Errorf("invalid mode %q", e.Value)
		}
		m := uint32(n)
		t.Mode = &m
	case "TriesDone":
		t.TriesDone, err = parseOptUint(e, 10)
	case "TriesLeft":
		t.TriesLeft, err = parseOptUint(e, 10)
	case "InstancesMax":
		if e.Value == "" {
			*instancesMax = 0
			return nil
		}
		n, ok := parseUintStrict(e.Value, 10)
		if !ok {
			return e.Errorf("invalid number %q", e.Value)
		}
		if n == 1 {
			t.Warnings = append(t.Warnings, e.Errorf("InstancesMax=1 is not supported, using 2"))
			n = 2
		}
		*instancesMax = n
	case "RemoveTemporary":
		b, perr := unitfile.ParseBool(e.Value)
		if perr != nil {
			return e.Errorf("invalid boolean %q", e.Value)
		}
		t.RemoveTemporary = b
	case "CurrentSymlink":
		if e.Value == "" {
			t.CurrentSymlink = ""
			return nil
		}
		v, xerr := expand(e, spec, e.Value)
		if xerr != nil {
			return xerr
		}
		if strings.ContainsRune(v, 0) || path.Clean(v) != v || v == "." {
			return e.Errorf("invalid path %q", v)
		}
		t.CurrentSymlink = v
	default:
		return errUnknownKey
	}
	return err
}

// parseUintStrict parses digits only, as configuration values must be
// written; base 16 also accepts a "0x" prefix as safe_atoux64 does.
func parseUintStrict(s string, base int) (uint64, bool) {
	if base == 16 && len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
}

// finalize checks the settings against each other, as
// transfer_read_definition() does after parsing, and applies defaults.
func (t *Transfer) finalize(instancesMax uint64) error {
	file := t.File
	if t.Source.Type == "" {
		return fileError(file, "[Source] Type= must be specified")
	}
	if t.Target.Type == "" {
		switch t.Source.Type {
		case URLFile, RegularFile:
			if strings.HasPrefix(t.Target.Path, "/dev/") {
				t.Target.Type = Partition
			} else {
				t.Target.Type = RegularFile
			}
		case URLTar, Tar, Directory:
			t.Target.Type = Directory
		case Subvolume:
			t.Target.Type = Subvolume
		}
	}
	if !compatible(t.Source.Type, t.Target.Type) {
		return fileError(file, "target type %q is incompatible with source type %q", t.Target.Type, t.Source.Type)
	}
	if t.Source.Path == "" {
		return fileError(file, "[Source] lacks Path=")
	}
	if t.Target.Path == "" {
		return fileError(file, "[Target] lacks Path=")
	}
	if t.Source.Type.IsURL() {
		if !isHTTPURL(t.Source.Path) && !isFileURL(t.Source.Path) {
			return fileError(file, "[Source] Path=%s is not a valid http://, https:// or file:// URL", t.Source.Path)
		}
	} else if t.Source.PathRelativeTo == RelativeToExplicit {
		if strings.HasPrefix(t.Source.Path, "/") || path.Clean(t.Source.Path) != t.Source.Path || strings.HasPrefix(t.Source.Path, "../") || t.Source.Path == ".." {
			return fileError(file, "[Source] Path=%s must be a normalized relative path with PathRelativeTo=explicit", t.Source.Path)
		}
	} else if !isNormalizedAbs(t.Source.Path) {
		return fileError(file, "[Source] Path=%s is not a normalized absolute path", t.Source.Path)
	}
	if t.Target.Path == "auto" {
		if t.Target.Type != Partition {
			return fileError(file, "[Target] Path=auto is only valid for partition targets")
		}
	} else if !isNormalizedAbs(t.Target.Path) {
		return fileError(file, "[Target] Path=%s is not a normalized absolute path", t.Target.Path)
	}
	if t.Target.PathRelativeTo != RelativeToRoot && t.Target.Type != RegularFile && t.Target.Type != Directory {
		return fileError(file, "[Target] PathRelativeTo=%s is only valid for regular-file and directory targets", t.Target.PathRelativeTo)
	}
	if len(t.Source.Patterns) == 0 {
		return fileError(file, "[Source] lacks MatchPattern=")
	}
	if len(t.Target.Patterns) == 0 {
		t.Target.Patterns = slices.Clone(t.Source.Patterns)
	}
	if t.Target.Type == Partition {
		for _, p := range t.Target.Patterns {
			if p.HasSlash() {
				return fileError(file, "[Target] MatchPattern=%s: partition labels cannot contain '/'", p)
			}
		}
		if t.CurrentSymlink != "" && !strings.HasPrefix(t.CurrentSymlink, "/") {
			return fileError(file, "[Target] CurrentSymlink=%s must be absolute for partition targets", t.CurrentSymlink)
		}
	}
	switch {
	case instancesMax != 0:
		t.InstancesMax = instancesMax
	case t.Target.Type == Partition:
		t.InstancesMax = Unlimited
	default:
		t.InstancesMax = 3
	}
	return nil
}
