package repart

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/unitfile"
)

// SizeUnset marks a size setting (SizeMinBytes=, SizeMaxBytes=,
// PaddingMinBytes=, PaddingMaxBytes=) that was not given.
const SizeUnset = math.MaxUint64

// Constants of systemd-repart 252 (src/partition/repart.c).
const (
	// DefaultMinSize is the minimum size of a partition without
	// SizeMinBytes=.
	DefaultMinSize = 10 << 20
	// HardMinSize is the smallest partition repart creates.
	HardMinSize = 4096
	// VeritySigSize is the fixed size of a Verity=signature partition.
	VeritySigSize = 4 * HardMinSize
	// GPTMetadataSize is what --size=auto reserves for the partition
	// table (libfdisk takes slightly more than 1 MiB).
	GPTMetadataSize = 1044 << 10
	// LUKS2MetadataSize is what an encrypted partition needs on top of
	// its contents.
	LUKS2MetadataSize = 16 << 20
	// MaxWeight bounds Weight= and PaddingWeight=.
	MaxWeight = 1000 * 1000
	// DefaultWeight is Weight= when not given.
	DefaultWeight = 1000
	// LabelMax is the longest Label= in bytes after specifier expansion,
	// and in UTF-16 code units (systemd checks both).
	LabelMax = gpt.NameLength
	// pathMax is PATH_MAX, which bounds expanded paths (minus one).
	pathMax = 4096
)

// EncryptMode is the value of Encrypt=.
type EncryptMode int

// The values of Encrypt=.
const (
	EncryptOff EncryptMode = iota
	EncryptKeyFile
	EncryptTPM2
	EncryptKeyFileTPM2
)

var encryptNames = [...]string{"off", "key-file", "tpm2", "key-file+tpm2"}

// String returns the name systemd uses for m.
func (m EncryptMode) String() string {
	if m < 0 || int(m) >= len(encryptNames) {
		return fmt.Sprintf("EncryptMode(%d)", int(m))
	}
	return encryptNames[m]
}

// VerityMode is the value of Verity=.
type VerityMode int

// The values of Verity=.
const (
	VerityOff VerityMode = iota
	VerityData
	VerityHash
	VeritySignature
)

var verityNames = [...]string{"off", "data", "hash", "signature"}

// String returns the name systemd uses for m.
func (m VerityMode) String() string {
	if m < 0 || int(m) >= len(verityNames) {
		return fmt.Sprintf("VerityMode(%d)", int(m))
	}
	return verityNames[m]
}

// CopyFilesEntry is one CopyFiles= pair, both absolute paths with
// specifiers expanded: Source inside --root, Target inside the new file
// system.
type CopyFilesEntry struct {
	Source, Target string
}

// Definition is one repart.d file with its drop-ins, as systemd-repart 252
// reads it: every value checked, specifiers expanded, defaults applied.
type Definition struct {
	// Path is the file the definition was read from; DropIns are the
	// drop-ins applied after it, in order.
	Path    string
	DropIns []string

	// Type is the partition type. For a UUID that systemd does not know,
	// only Type.UUID is set.
	Type dps.Type
	// Label is the label for a new partition when HasLabel is set (it may
	// be empty); otherwise systemd's default label is used.
	Label    string
	HasLabel bool
	// UUID is the partition UUID for a new partition when HasUUID is set
	// ("UUID=null" sets HasUUID with the zero UUID).
	UUID    dps.UUID
	HasUUID bool

	Priority      int32
	Weight        uint32
	PaddingWeight uint32
	// Sizes in bytes, rounded to 4096 as systemd rounds them (minimums
	// down, maximums up), or SizeUnset.
	SizeMin, SizeMax       uint64
	PaddingMin, PaddingMax uint64

	FactoryReset bool

	// CopyBlocks is the source of CopyBlocks= (an absolute path inside
	// --root), "auto", or "" for none.
	CopyBlocks string
	// Format is the file system type; "ext4" is implied when CopyFiles=,
	// MakeDirectories= or Encrypt= (without CopyBlocks=) needs one.
	Format          string
	CopyFiles       []CopyFilesEntry
	MakeDirectories []string
	Encrypt         EncryptMode
	Verity          VerityMode
	VerityMatchKey  string

	// Flags is Flags=; NoAuto, ReadOnly and GrowFileSystem are the
	// tristates after systemd's defaults were applied (nil: leave the
	// bit as Flags= has it).
	Flags          uint64
	NoAuto         *bool
	ReadOnly       *bool
	GrowFileSystem *bool

	// SplitName is the SplitName= format ("%t" by default), "" when
	// disabled with "-".
	SplitName string

	// Siblings of a verity group (same VerityMatchKey=), set by
	// LinkDefinitions: indexed by VerityMode, nil where absent.
	Siblings [4]*Definition

	// positions remembers where each key was last assigned, for errors
	// about combinations of keys.
	positions map[string]unitfile.Entry
}

// ParseOptions holds what a definition depends on besides its text.
type ParseOptions struct {
	// Arch is the native architecture that Type=root, Type=usr and their
	// verity types mean; "" is the architecture imago runs on.
	Arch dps.Arch
	// Specifiers expands %-specifiers; nil means the running system.
	Specifiers *Specifiers
	// Signing tells whether a private key and a certificate were given,
	// which Verity=signature needs.
	Signing bool
}

// newerKeys are [Partition] keys of systemd releases after 252. They are
// refused by name so that a definition written for a newer systemd does not
// silently mean something else here.
var newerKeys = map[string]string{
	"Minimize":                 "253",
	"ExcludeFiles":             "254",
	"ExcludeFilesTarget":       "254",
	"Subvolumes":               "255",
	"VerityDataBlockSizeBytes": "255",
	"VerityHashBlockSizeBytes": "255",
	"DefaultSubvolume":         "256",
	"MountPoint":               "256",
	"EncryptedVolume":          "256",
	"VolumeLabel":              "257",
	"MakeSymlinks":             "257",
	"TPM2PCRs":                 "257",
	"KeyFile":                  "257",
	"Integrity":                "257",
	"IntegrityAlgorithm":       "257",
	"EncryptKDF":               "257",
	"Compression":              "257",
	"CompressionLevel":         "257",
	"SupplementFor":            "257",
	"AddValidateFS":            "257",
	"FileSystemSectorSize":     "257",
	"Discard":                  "257",
}

// ParseDefinitionFile parses one definition from text, with name used in
// errors and as Definition.Path.
func ParseDefinitionFile(name string, data []byte, opts ParseOptions) (*Definition, error) {
	f, err := unitfile.Parse(name, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("repart: %w", err)
	}
	return ParseDefinition(f, opts)
}

// ParseDefinition interprets a parsed repart.d file (with its drop-ins
// merged, as unitfile.LoadFileWithDropIns returns it). Assignments apply in
// order, so a drop-in overrides the main file.
//
// Where systemd 252 logs a warning and ignores an assignment (a key it does
// not know, a value it cannot parse, a label that is too long), imago
// refuses the definition: the error names the file, line and key. Keys of
// later systemd releases are refused by name. Sections and keys starting
// with "X-" are ignored, as in systemd.
func ParseDefinition(f *unitfile.File, opts ParseOptions) (*Definition, error) {
	if opts.Arch == "" {
		opts.Arch, _ = dps.ArchFromGOARCH(runtime.GOARCH)
	}
	if opts.Specifiers == nil {
		opts.Specifiers = &Specifiers{}
	}
	d := &Definition{
		Weight:     DefaultWeight,
		SizeMin:    SizeUnset,
		SizeMax:    SizeUnset,
		PaddingMin: SizeUnset,
		PaddingMax: SizeUnset,
		positions:  map[string]unitfile.Entry{},
	}
	if len(f.Sources) > 0 {
		d.Path = f.Sources[0]
		d.DropIns = append([]string(nil), f.Sources[1:]...)
	}
	if len(f.Warnings) > 0 {
		// systemd ignores such lines with a warning; imago refuses them.
		w := f.Warnings[0]
		what := w.Err.Error()
		switch {
		case errors.Is(w.Err, unitfile.ErrMissingEquals):
			what = "line has no '=' (not a Key=Value assignment)"
		case errors.Is(w.Err, unitfile.ErrMissingKey):
			what = "line has no key before '='"
		}
		return nil, fmt.Errorf("repart: %s:%d: %s", w.File, w.Line, what)
	}
	var noAuto, readOnly, growFS *bool
	for _, sec := range f.Sections {
		if sec.Name != "Partition" {
			if strings.HasPrefix(sec.Name, "X-") {
				continue
			}
			return nil, fmt.Errorf("repart: %s:%d: unknown section [%s], only [Partition] is allowed", sec.File, sec.Line, sec.Name)
		}
		for _, e := range sec.Entries {
			if strings.HasPrefix(e.Key, "X-") {
				continue
			}
			if err := d.apply(e, opts, &noAuto, &readOnly, &growFS); err != nil {
				return nil, fmt.Errorf("repart: %w", err)
			}
			d.positions[e.Key] = e
		}
	}
	d.NoAuto, d.ReadOnly, d.GrowFileSystem = noAuto, readOnly, growFS
	if err := d.check(opts); err != nil {
		return nil, fmt.Errorf("repart: %w", err)
	}
	return d, nil
}

// apply interprets one assignment.
func (d *Definition) apply(e unitfile.Entry, opts ParseOptions, noAuto, readOnly, growFS **bool) error {
	v := e.Value
	switch e.Key {
	case "Type":
		t, err := parseType(v, opts.Arch)
		if err != nil {
			return e.Errorf("%v", err)
		}
		d.Type = t
	case "Label":
		// An empty Label= is a valid (empty) label, not a reset.
		l, err := opts.Specifiers.Expand(v, LabelMax)
		if err != nil {
			return e.Errorf("%v", err)
		}
		if !utf8.ValidString(l) {
			return e.Errorf("label %q is not valid UTF-8", l)
		}
		if err := gpt.CheckName(l); err != nil {
			return e.Errorf("label %q does not fit a GPT entry: %v", l, err)
		}
		d.Label, d.HasLabel = l, true
	case "UUID":
		switch v {
		case "":
			d.UUID, d.HasUUID = dps.UUID{}, false
		case "null":
			d.UUID, d.HasUUID = dps.UUID{}, true
		default:
			u, err := dps.ParseUUID(v)
			if err != nil {
				return e.Errorf("%q is not a UUID", v)
			}
			d.UUID, d.HasUUID = u, true
		}
	case "Priority":
		p, err := parseInt32(v)
		if err != nil {
			return e.Errorf("%q: %v (want a 32-bit integer)", v, err)
		}
		d.Priority = p
	case "Weight", "PaddingWeight":
		w, err := parseUnsigned(v, 32)
		if err != nil {
			return e.Errorf("%q: %v", v, err)
		}
		if w > MaxWeight {
			return e.Errorf("%d is out of range 0…%d", w, MaxWeight)
		}
		if e.Key == "Weight" {
			d.Weight = uint32(w)
		} else {
			d.PaddingWeight = uint32(w)
		}
	case "SizeMinBytes", "SizeMaxBytes", "PaddingMinBytes", "PaddingMaxBytes":
		n, err := unitfile.ParseSize(v, 1024)
		if err != nil {
			return e.Errorf("%q: %v", v, err)
		}
		// The 252 stable series rounds minimums down and maximums up,
		// so that equal minimum and maximum stay equal.
		switch e.Key {
		case "SizeMinBytes":
			d.SizeMin = roundDown(n, 4096)
		case "SizeMaxBytes":
			d.SizeMax = roundUp(n, 4096)
		case "PaddingMinBytes":
			d.PaddingMin = roundDown(n, 4096)
		case "PaddingMaxBytes":
			d.PaddingMax = roundUp(n, 4096)
		}
	case "FactoryReset":
		b, err := unitfile.ParseBool(v)
		if err != nil {
			return e.Errorf("%q is not a boolean", v)
		}
		d.FactoryReset = b
	case "CopyBlocks":
		switch v {
		case "", "auto":
			d.CopyBlocks = v
		default:
			p, err := expandPath(opts.Specifiers, v)
			if err != nil {
				return e.Errorf("%v", err)
			}
			d.CopyBlocks = p
		}
	case "Format":
		if v == "empty" {
			return e.Errorf("Format=empty is not supported (it needs systemd 257 or newer; use Label=_empty without Format=)")
		}
		if !filenameValid(v) {
			return e.Errorf("%q is not a valid file system type", v)
		}
		d.Format = v
	case "CopyFiles":
		if v == "" {
			return e.Errorf("no source path given")
		}
		words, err := unitfile.SplitWords(v, ":", unitfile.ExtractCUnescape|unitfile.ExtractDontCoalesceSeparators)
		if err != nil {
			return e.Errorf("%q: %v", v, err)
		}
		if len(words) == 0 {
			return e.Errorf("no source path given")
		}
		if len(words) > 2 {
			return e.Errorf("%q: too many arguments, want SOURCE[:TARGET]", v)
		}
		target := words[0]
		if len(words) == 2 {
			target = words[1]
		}
		src, err := expandPath(opts.Specifiers, words[0])
		if err != nil {
			return e.Errorf("source: %v", err)
		}
		dst, err := expandPath(opts.Specifiers, target)
		if err != nil {
			return e.Errorf("target: %v", err)
		}
		d.CopyFiles = append(d.CopyFiles, CopyFilesEntry{Source: src, Target: dst})
	case "MakeDirectories":
		words, err := unitfile.SplitWords(v, "", unitfile.ExtractUnquote)
		if err != nil {
			return e.Errorf("%q: %v", v, err)
		}
		// An empty MakeDirectories= adds nothing (and clears nothing).
		for _, w := range words {
			p, err := expandPath(opts.Specifiers, w)
			if err != nil {
				return e.Errorf("%v", err)
			}
			d.MakeDirectories = append(d.MakeDirectories, p)
		}
	case "Encrypt":
		m, err := parseEncrypt(v)
		if err != nil {
			return e.Errorf("%v", err)
		}
		d.Encrypt = m
	case "Verity":
		m, err := parseVerity(v)
		if err != nil {
			return e.Errorf("%v", err)
		}
		d.Verity = m
	case "VerityMatchKey":
		d.VerityMatchKey = v
	case "Flags":
		f, err := parseUnsigned(v, 64)
		if err != nil {
			return e.Errorf("%q: %v (want a 64-bit number, e.g. 0x1000000000000000)", v, err)
		}
		d.Flags = f
	case "ReadOnly", "NoAuto", "GrowFileSystem":
		var t *bool
		if v != "" {
			b, err := unitfile.ParseBool(v)
			if err != nil {
				return e.Errorf("%q is not a boolean", v)
			}
			t = &b
		}
		switch e.Key {
		case "ReadOnly":
			*readOnly = t
		case "NoAuto":
			*noAuto = t
		default:
			*growFS = t
		}
	case "SplitName":
		d.SplitName = v
	default:
		if since, ok := newerKeys[e.Key]; ok {
			return e.Errorf("not supported (the key comes with systemd %s; imago matches systemd-repart 252)", since)
		}
		return e.Errorf("unknown key in [Partition]")
	}
	return nil
}

// check applies the checks and defaults systemd 252 applies after reading
// a whole definition (partition_read_definition).
func (d *Definition) check(opts ParseOptions) error {
	at := func(key string) string {
		if e, ok := d.positions[key]; ok {
			return fmt.Sprintf("%s:%d: %s=", e.File, e.Line, key)
		}
		return d.Path + ":1:"
	}
	if d.SizeMin != SizeUnset && d.SizeMax != SizeUnset && d.SizeMin > d.SizeMax {
		return fmt.Errorf("%s SizeMinBytes= (%d) larger than SizeMaxBytes= (%d), refusing", at("SizeMinBytes"), d.SizeMin, d.SizeMax)
	}
	if d.PaddingMin != SizeUnset && d.PaddingMax != SizeUnset && d.PaddingMin > d.PaddingMax {
		return fmt.Errorf("%s PaddingMinBytes= (%d) larger than PaddingMaxBytes= (%d), refusing", at("PaddingMinBytes"), d.PaddingMin, d.PaddingMax)
	}
	if d.Type.UUID.IsZero() {
		return fmt.Errorf("%s Type= not defined, refusing", at("Type"))
	}
	if d.CopyBlocks != "" && (d.Format != "" || len(d.CopyFiles) > 0 || len(d.MakeDirectories) > 0) {
		return fmt.Errorf("%s Format=/CopyFiles=/MakeDirectories= and CopyBlocks= cannot be combined, refusing", at("CopyBlocks"))
	}
	if (len(d.CopyFiles) > 0 || len(d.MakeDirectories) > 0) && d.Format == "swap" {
		return fmt.Errorf("%s Format=swap and CopyFiles=/MakeDirectories= cannot be combined, refusing", at("Format"))
	}
	if d.Format == "" && (len(d.CopyFiles) > 0 || len(d.MakeDirectories) > 0 || (d.Encrypt != EncryptOff && d.CopyBlocks == "")) {
		d.Format = "ext4"
	}
	if d.Verity != VerityOff && d.VerityMatchKey == "" {
		return fmt.Errorf("%s VerityMatchKey= must be set if Verity=%s", at("Verity"), d.Verity)
	}
	if d.Verity == VerityOff && d.VerityMatchKey != "" {
		return fmt.Errorf("%s VerityMatchKey= can only be set if Verity= is not \"off\"", at("VerityMatchKey"))
	}
	if (d.Verity == VerityHash || d.Verity == VeritySignature) &&
		(len(d.CopyFiles) > 0 || d.CopyBlocks != "" || d.Format != "" || len(d.MakeDirectories) > 0) {
		return fmt.Errorf("%s CopyBlocks=/CopyFiles=/Format=/MakeDirectories= cannot be used with Verity=%s", at("Verity"), d.Verity)
	}
	if d.Verity != VerityOff && d.Encrypt != EncryptOff {
		return fmt.Errorf("%s encrypting verity hash/data partitions is not supported", at("Encrypt"))
	}
	if d.Verity == VeritySignature && !opts.Signing {
		return fmt.Errorf("%s verity signature partition requested but no private key and certificate provided (--private-key=, --certificate=)", at("Verity"))
	}
	if d.Verity == VeritySignature && (d.SizeMin != SizeUnset || d.SizeMax != SizeUnset) {
		key := "SizeMinBytes"
		if d.SizeMin == SizeUnset {
			key = "SizeMaxBytes"
		}
		return fmt.Errorf("%s SizeMinBytes=/SizeMaxBytes= cannot be used with Verity=signature", at(key))
	}

	// Verity hash partitions are read-only unless configured otherwise.
	if (d.Type.Designator == dps.DesignatorRootVerity || d.Type.Designator == dps.DesignatorUsrVerity) && d.ReadOnly == nil {
		d.ReadOnly = boolPtr(true)
	}
	// systemd 252 turns GrowFileSystem= on for every type that knows it
	// unless the partition is read-only, overriding even an explicit
	// GrowFileSystem=no. The partition table must match, so this is
	// mirrored; Warnings reports it.
	if d.Type.Designator.KnowsGrowFS() && (d.ReadOnly == nil || !*d.ReadOnly) {
		d.GrowFileSystem = boolPtr(true)
	}
	switch d.SplitName {
	case "":
		d.SplitName = "%t"
	case "-":
		d.SplitName = ""
	}
	return nil
}

// Warnings lists what systemd 252 would silently do differently from what
// the definition says, one sentence each, for the user to notice: bits of
// Flags= that libfdisk drops, flags the type does not know, and an explicit
// GrowFileSystem=no that is overridden.
func (d *Definition) Warnings() []string {
	var w []string
	name := d.TypeName()
	if e, ok := d.positions["GrowFileSystem"]; ok && e.Value != "" {
		if b, err := unitfile.ParseBool(e.Value); err == nil && !b && d.GrowFileSystem != nil && *d.GrowFileSystem {
			w = append(w, fmt.Sprintf("%s:%d: GrowFileSystem=no is overridden: systemd-repart 252 sets the grow-file-system flag on %s partitions unless ReadOnly=yes", e.File, e.Line, name))
		}
	}
	for _, f := range []struct {
		key   string
		v     *bool
		knows bool
	}{
		{"NoAuto", d.NoAuto, d.Type.Designator.KnowsNoAuto()},
		{"ReadOnly", d.ReadOnly, d.Type.Designator.KnowsReadOnly()},
		{"GrowFileSystem", d.GrowFileSystem, d.Type.Designator.KnowsGrowFS()},
	} {
		if f.v != nil && !f.knows {
			if e, ok := d.positions[f.key]; ok && e.Value != "" {
				w = append(w, fmt.Sprintf("%s:%d: %s= is ignored for partition type %s, which does not support it", e.File, e.Line, f.key, name))
			}
		}
	}
	if lowFlagBits(d.MergedFlags()) {
		pos := d.Path + ":1"
		if e, ok := d.positions["Flags"]; ok {
			pos = fmt.Sprintf("%s:%d", e.File, e.Line)
		}
		w = append(w, fmt.Sprintf("%s: Flags= sets bits below 48, which libfdisk cannot take by number: systemd-repart 252 then creates the partition with no attribute flags at all", pos))
	}
	return w
}

// TypeName returns systemd's name for the partition type, or its UUID.
func (d *Definition) TypeName() string {
	if d.Type.Name != "" {
		return d.Type.Name
	}
	return d.Type.UUID.String()
}

// MergedFlags returns the attribute bits requested for a new partition:
// Flags= with NoAuto=, ReadOnly= and GrowFileSystem= applied where the type
// knows them (systemd's partition_merge_flags). WriteFlags says what
// actually reaches the disk.
func (d *Definition) MergedFlags() uint64 {
	f := d.Flags
	set := func(bit uint64, v *bool, knows bool) {
		if v == nil || !knows {
			return
		}
		if *v {
			f |= bit
		} else {
			f &^= bit
		}
	}
	set(dps.FlagNoAuto, d.NoAuto, d.Type.Designator.KnowsNoAuto())
	set(dps.FlagReadOnly, d.ReadOnly, d.Type.Designator.KnowsReadOnly())
	set(dps.FlagGrowFS, d.GrowFileSystem, d.Type.Designator.KnowsGrowFS())
	return f
}

// WriteFlags returns the attribute bits a new partition gets on disk.
// systemd 252 passes the bits to libfdisk as a list of bit numbers, and
// libfdisk accepts numbers only for bits 48-63: any lower bit makes it
// reject the whole list, and the partition is created with no attributes.
// imago writes the same table, and Warnings says so.
func (d *Definition) WriteFlags() uint64 {
	f := d.MergedFlags()
	if lowFlagBits(f) {
		return 0
	}
	return f
}

func lowFlagBits(f uint64) bool { return f&(1<<48-1) != 0 }

func boolPtr(b bool) *bool { return &b }

// parseType resolves Type= as systemd 252 does: a name from its table
// (case-sensitive), the native aliases root, usr, root-verity, ... and the
// "-secondary" names, or a UUID.
func parseType(s string, native dps.Arch) (dps.Type, error) {
	if t, ok := dps.LookupName(s, native); ok {
		if t.Name == s || nativeAlias(s) || secondaryAlias(s) {
			return t, nil
		}
		return dps.Type{}, fmt.Errorf("%q: architecture aliases need systemd 254; use %q", s, t.Name)
	}
	if u, err := dps.ParseUUID(s); err == nil {
		if t, ok := dps.LookupUUID(u); ok {
			return t, nil
		}
		return dps.Type{UUID: u}, nil
	}
	return dps.Type{}, fmt.Errorf("%q is neither a partition type identifier nor a UUID", s)
}

func nativeAlias(s string) bool {
	switch s {
	case "root", "root-verity", "root-verity-sig", "usr", "usr-verity", "usr-verity-sig":
		return true
	}
	return false
}

func secondaryAlias(s string) bool {
	switch s {
	case "root-secondary", "root-secondary-verity", "root-secondary-verity-sig",
		"usr-secondary", "usr-secondary-verity", "usr-secondary-verity-sig":
		return true
	}
	return false
}

func parseEncrypt(s string) (EncryptMode, error) {
	if s == "" {
		return EncryptOff, nil
	}
	for i, n := range encryptNames {
		if s == n {
			return EncryptMode(i), nil
		}
	}
	if b, err := unitfile.ParseBool(s); err == nil {
		if b {
			return EncryptKeyFile, nil
		}
		return EncryptOff, nil
	}
	return 0, fmt.Errorf("invalid encryption mode %q (want off, key-file, tpm2, key-file+tpm2 or a boolean)", s)
}

func parseVerity(s string) (VerityMode, error) {
	if s == "" {
		return VerityOff, nil
	}
	for i, n := range verityNames {
		if s == n {
			return VerityMode(i), nil
		}
	}
	return 0, fmt.Errorf("invalid verity mode %q (want off, data, hash or signature)", s)
}

// filenameValid is systemd's filename_is_valid().
func filenameValid(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 255 && !strings.ContainsRune(s, '/')
}

// expandPath expands specifiers in a path setting and checks it the way
// path_simplify_and_warn(PATH_CHECK_ABSOLUTE) does: absolute, valid UTF-8,
// no ".." component; "//", "/./" and a trailing slash are simplified away.
func expandPath(s *Specifiers, v string) (string, error) {
	p, err := s.Expand(v, pathMax-1)
	if err != nil {
		return "", err
	}
	if !utf8.ValidString(p) {
		return "", fmt.Errorf("path %q is not valid UTF-8", p)
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q is not normalized (has \"..\")", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q contains NUL", p)
	}
	return path.Clean(p), nil
}

// LoadOptions says where definitions are read from.
type LoadOptions struct {
	ParseOptions
	// Root is --root: definitions, os-release and machine-id are read
	// relative to it. "" is the running system.
	Root string
	// Dirs are --definitions= directories (host paths); when empty the
	// standard repart.d directories under Root are searched.
	Dirs []string
}

// SearchDirs returns the directories systemd-repart 252 reads: /etc,
// /run, /usr/local/lib and /usr/lib repart.d, and /lib/repart.d as Debian's
// build adds.
func SearchDirs() []string {
	return append(unitfile.ConfPaths("repart.d"), "/lib/repart.d")
}

// LoadDefinitions reads every *.conf file (with drop-ins) from the
// definition directories in file-name order, parses each, and links verity
// groups. Relative directories in Dirs are taken relative to the current
// directory.
//
// Drop-ins are read from the same tree as the files. (systemd 252 looks for
// the drop-ins of --root's definitions on the host; imago reads them from
// the root.)
func LoadDefinitions(opts LoadOptions) ([]*Definition, error) {
	if opts.Specifiers == nil {
		opts.Specifiers = &Specifiers{Root: opts.Root}
	}
	var fsys fs.FS
	dirs := opts.Dirs
	if len(dirs) > 0 {
		fsys = rootFS("/")
		seen := map[string]bool{}
		var abs []string
		for _, d := range dirs {
			a, err := absPath(d)
			if err != nil {
				return nil, fmt.Errorf("repart: definitions directory %q: %w", d, err)
			}
			if !seen[a] {
				seen[a] = true
				abs = append(abs, a)
			}
		}
		dirs = abs
	} else {
		fsys = rootFS(rootOrSlash(opts.Root))
		dirs = SearchDirs()
	}
	files, err := unitfile.LoadAll(fsys, dirs, ".conf")
	if err != nil {
		return nil, fmt.Errorf("repart: reading definitions: %w", err)
	}
	var defs []*Definition
	for _, f := range files {
		d, err := ParseDefinition(f, opts.ParseOptions)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	if err := LinkDefinitions(defs); err != nil {
		return nil, err
	}
	return defs, nil
}

// LinkDefinitions checks verity groups across definitions and fills their
// Siblings: every Verity=data or hash definition needs exactly one partner
// of the other kind with the same VerityMatchKey=, at most one signature
// partition may join them, and all must have the same Priority=.
func LinkDefinitions(defs []*Definition) error {
	for _, d := range defs {
		d.Siblings = [4]*Definition{}
	}
	for _, d := range defs {
		if d.Verity == VerityOff {
			continue
		}
		for mode := VerityData; mode <= VeritySignature; mode++ {
			if mode == d.Verity {
				continue
			}
			var found *Definition
			n := 0
			for _, q := range defs {
				if q != d && q.Verity == mode && q.VerityMatchKey == d.VerityMatchKey {
					found = q
					n++
				}
			}
			switch {
			case n == 0 && mode != VeritySignature:
				return fmt.Errorf("repart: %s:1: missing verity %s partition for verity %s partition with VerityMatchKey=%s", d.Path, mode, d.Verity, d.VerityMatchKey)
			case n > 1:
				return fmt.Errorf("repart: %s:1: multiple verity %s partitions found for verity %s partition with VerityMatchKey=%s", d.Path, mode, d.Verity, d.VerityMatchKey)
			}
			if found != nil {
				if found.Priority != d.Priority {
					return fmt.Errorf("repart: %s:1: priority mismatch (%d != %d) for verity sibling partitions with VerityMatchKey=%s", d.Path, d.Priority, found.Priority, d.VerityMatchKey)
				}
				d.Siblings[mode] = found
			}
		}
	}
	return nil
}
