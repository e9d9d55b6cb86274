package bootentry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/format/pe"
	"github.com/imago-os/imago/format/uki"
	"github.com/imago-os/imago/format/vercmp"
	"github.com/imago-os/imago/internal/fsutil"
)

// Where systemd-boot looks for entries, relative to the ESP root.
const (
	UKIDir     = "EFI/Linux"
	EntriesDir = "loader/entries"
	LoaderConf = "loader/loader.conf"
)

// Entry types.
const (
	// TypeUKI is a Boot Loader Specification Type #2 entry: a unified
	// kernel image in EFI/Linux/.
	TypeUKI = "type2"
	// TypeConf is a Type #1 entry: a text file in loader/entries/.
	TypeConf = "type1"
)

// maxUKISize bounds how much of a UKI is read to find its .osrel section.
const maxUKISize = 1 << 30

// maxConfSize bounds a Type #1 entry or loader.conf.
const maxConfSize = 1 << 20

// Entry is one boot loader entry as systemd-boot 252 would list it.
type Entry struct {
	Name
	// Type is TypeUKI or TypeConf.
	Type string `json:"type"`
	// Path is the file, relative to the ESP root, with slashes.
	Path string `json:"path"`
	// Title is what the menu shows: for a UKI its os-release PRETTY_NAME,
	// IMAGE_ID, NAME or ID, the first one set; for a Type #1 entry its
	// "title", else its ID.
	Title string `json:"title"`
	// Version is what systemd-boot sorts by: for a UKI IMAGE_VERSION,
	// VERSION, VERSION_ID or BUILD_ID; for a Type #1 entry its "version".
	// It may be empty; see DisplayVersion.
	Version string `json:"version,omitempty"`
	// SortKey is IMAGE_ID or ID for a UKI, "sort-key" for a Type #1 entry.
	SortKey string `json:"sortKey,omitempty"`
	// MachineID is a Type #1 entry's "machine-id".
	MachineID string `json:"machineId,omitempty"`
	// Linux and EFI are a Type #1 entry's "linux" and "efi" paths.
	Linux string `json:"linux,omitempty"`
	EFI   string `json:"efi,omitempty"`
	// Options is the kernel command line: a UKI's .cmdline, a Type #1
	// entry's "options" lines joined by spaces.
	Options string `json:"options,omitempty"`
	// Assessment is Name.Assessment(), stored for JSON.
	Assessment Assessment `json:"assessment"`
	// Selected says the entry is the one LoaderEntrySelected names: the
	// entry that was booted.
	Selected bool `json:"selected"`
	// Default says systemd-boot boots this entry when nobody picks one in
	// the menu (LoaderEntryDefault, loader.conf "default", or the first
	// entry in menu order).
	Default bool `json:"default"`
	// OneShot says LoaderEntryOneShot names this entry, so the next boot
	// starts it once, whatever the default.
	OneShot bool `json:"oneShot,omitempty"`
}

// DisplayVersion returns Version or, when the entry names none, the
// version in its file name.
func (e *Entry) DisplayVersion() string {
	if e.Version != "" {
		return e.Version
	}
	return e.Name.Version()
}

// Variables are the Boot Loader Interface variables List reads. Empty
// strings mean "not set".
type Variables struct {
	EntrySelected   string `json:"loaderEntrySelected,omitempty"`
	EntryDefault    string `json:"loaderEntryDefault,omitempty"`
	EntryOneShot    string `json:"loaderEntryOneShot,omitempty"`
	EntryLastBooted string `json:"loaderEntryLastBooted,omitempty"`
	BootCountPath   string `json:"loaderBootCountPath,omitempty"`
}

// ReadVariables reads the variables from vars; a nil store gives none. A
// variable that does not exist is left empty; one that cannot be read is
// an error.
func ReadVariables(vars *efistore.Store) (Variables, error) {
	var v Variables
	if vars == nil {
		return v, nil
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{efivar.LoaderEntrySelected, &v.EntrySelected},
		{efivar.LoaderEntryDefault, &v.EntryDefault},
		{efivar.LoaderEntryOneShot, &v.EntryOneShot},
		{efivar.LoaderEntryLastBooted, &v.EntryLastBooted},
		{efivar.LoaderBootCountPath, &v.BootCountPath},
	} {
		val, err := vars.Get(efivar.LoaderVar(f.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return v, fmt.Errorf("bootentry: %w", err)
		}
		*f.dst = efivar.DecodeString(val.Data)
	}
	return v, nil
}

// List returns the entries of the ESP mounted or unpacked at espDir, in
// systemd-boot 252's menu order, with Selected and Default set from vars.
// vars may be nil (a disk image, or a system not booted through UEFI); then
// nothing is Selected and the default comes from loader.conf or the order.
func List(espDir string, vars *efistore.Store) ([]Entry, error) {
	v, err := ReadVariables(vars)
	if err != nil {
		return nil, err
	}
	return ListWith(espDir, v)
}

// ListWith is List with the variables given.
func ListWith(espDir string, v Variables) ([]Entry, error) {
	fi, err := os.Stat(espDir)
	if err != nil {
		return nil, fmt.Errorf("bootentry: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("bootentry: %s: not a directory", espDir)
	}
	ukis, err := readUKIs(espDir)
	if err != nil {
		return nil, err
	}
	confs, err := readConfs(espDir)
	if err != nil {
		return nil, err
	}
	entries := append(ukis, confs...)
	Sort(entries)
	for i := range entries {
		entries[i].Assessment = entries[i].Name.Assessment()
	}
	if i := selectedEntry(entries, v); i >= 0 {
		entries[i].Selected = true
	}
	loaderDefault, err := readLoaderDefault(espDir)
	if err != nil {
		return nil, err
	}
	if i := defaultEntry(entries, v, loaderDefault); i >= 0 {
		entries[i].Default = true
	}
	if i := find(entries, v.EntryOneShot); i >= 0 {
		entries[i].OneShot = true
	}
	return entries, nil
}

// entryFile is a file systemd-boot may make an entry of.
type entryFile struct {
	name  Name
	fname string // file name as found
	path  string // file system path
}

// entryFiles lists the files in espDir/dir, sorted, that systemd-boot
// reads as entries: no directories, nothing starting with "auto-", and
// only names that parse with the given suffix. A missing directory has
// none. FAT is case-insensitive, so a directory spelt differently
// (efi/linux) is found too when the exact spelling is missing.
func entryFiles(espDir, dir, suffix string) ([]entryFile, error) {
	p, err := lookupFold(espDir, dir)
	if err != nil || p == "" {
		return nil, err
	}
	list, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("bootentry: %w", err)
	}
	var out []entryFile
	for _, de := range list {
		fname := de.Name()
		if strings.HasPrefix(fname, "auto-") || de.IsDir() {
			continue
		}
		n, err := ParseName(fname)
		if err != nil || !strings.EqualFold(n.Suffix, suffix) {
			continue
		}
		out = append(out, entryFile{name: n, fname: fname, path: filepath.Join(p, fname)})
	}
	return out, nil
}

// lookupFold finds rel under root, matching each component without regard
// to case when the exact one is absent. It returns "" when there is none.
func lookupFold(root, rel string) (string, error) {
	p := root
	for _, comp := range strings.Split(rel, "/") {
		next := filepath.Join(p, comp)
		if _, err := os.Lstat(next); err == nil {
			p = next
			continue
		}
		list, err := os.ReadDir(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("bootentry: %w", err)
		}
		found := ""
		for _, e := range list {
			if strings.EqualFold(e.Name(), comp) {
				found = filepath.Join(p, e.Name())
				break
			}
		}
		if found == "" {
			return "", nil
		}
		p = found
	}
	return p, nil
}

// readUKIs reads EFI/Linux/ with systemd-boot 252's filters
// (config_entry_add_unified): no hidden files, no directories, .efi only,
// nothing starting with "auto-", and only images with a non-empty .osrel
// that names a title.
func readUKIs(espDir string) ([]Entry, error) {
	files, err := entryFiles(espDir, UKIDir, SuffixEFI)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, ef := range files {
		osrel, cmdline, err := readUKISections(ef.path)
		if err != nil {
			return nil, err
		}
		if len(osrel) == 0 {
			continue
		}
		kv := parseLoaderOSRelease(osrel)
		title := first(kv, "PRETTY_NAME", "IMAGE_ID", "NAME", "ID")
		if title == "" {
			continue
		}
		out = append(out, Entry{
			Name:    ef.name,
			Type:    TypeUKI,
			Path:    UKIDir + "/" + ef.fname,
			Title:   title,
			Version: first(kv, "IMAGE_VERSION", "VERSION", "VERSION_ID", "BUILD_ID"),
			SortKey: first(kv, "IMAGE_ID", "ID"),
			Options: mangleCmdline(cmdline),
		})
	}
	return out, nil
}

// readUKISections returns the .osrel and .cmdline contents of the PE image
// at p, or nothing when it is no PE image or too large to be one
// (systemd-boot skips such files too).
func readUKISections(p string) (osrel, cmdline []byte, err error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, nil, fmt.Errorf("bootentry: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxUKISize {
		return nil, nil, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("bootentry: %w", err)
	}
	f, err := pe.Parse(data)
	if err != nil {
		return nil, nil, nil
	}
	get := func(name string) []byte {
		if i := f.Section(name); i >= 0 {
			return bytes.Clone(f.Contents(i))
		}
		return nil
	}
	return get(uki.SectionOSRelease), get(uki.SectionCmdline), nil
}

// parseLoaderOSRelease reads os-release text the simple way systemd-boot
// does (line_get_key_value): lines split at CR or LF, blanks trimmed, '#'
// lines skipped, key and value split at the first '=', a value enclosed in
// double quotes unquoted, no escapes; the last value of a key wins.
func parseLoaderOSRelease(text []byte) map[string]string {
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	kv := map[string]string{}
	for _, line := range strings.FieldsFunc(string(text), func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.Trim(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key = strings.Trim(key, " \t")
		value = strings.Trim(value, " \t")
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		kv[key] = value
	}
	return kv
}

// first returns the first non-empty value of keys.
func first(kv map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := kv[k]; v != "" {
			return v
		}
	}
	return ""
}

// mangleCmdline turns a .cmdline section into the options systemd-boot
// passes: up to the first NUL, control characters as spaces, trailing
// spaces removed.
func mangleCmdline(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	out := []byte(string(b))
	for i, c := range out {
		if c <= 0x1f {
			out[i] = ' '
		}
	}
	return strings.TrimRight(string(out), " ")
}

// readConfs reads loader/entries/*.conf.
func readConfs(espDir string) ([]Entry, error) {
	files, err := entryFiles(espDir, EntriesDir, SuffixConf)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, ef := range files {
		data, err := readSmall(ef.path)
		if err != nil {
			return nil, err
		}
		e := Entry{Name: ef.name, Type: TypeConf, Path: EntriesDir + "/" + ef.fname}
		var options []string
		for _, f := range configLines(data) {
			switch f[0] {
			case "title":
				e.Title = f[1]
			case "version":
				e.Version = f[1]
			case "sort-key":
				e.SortKey = f[1]
			case "machine-id":
				e.MachineID = f[1]
			case "linux":
				e.Linux = f[1]
			case "efi":
				e.EFI = f[1]
			case "options":
				options = append(options, f[1])
			}
		}
		// systemd-boot skips an entry that starts nothing.
		if e.Linux == "" && e.EFI == "" {
			continue
		}
		if e.Title == "" {
			e.Title = ef.name.LoaderID
		}
		e.Options = strings.Join(options, " ")
		out = append(out, e)
	}
	return out, nil
}

// readSmall reads a configuration file of at most maxConfSize bytes.
func readSmall(p string) ([]byte, error) {
	data, err := fsutil.ReadFileMax(p, maxConfSize)
	if err != nil {
		return nil, fmt.Errorf("bootentry: %w", err)
	}
	return data, nil
}

// configLines splits loader.conf or Type #1 text into key/value pairs as
// systemd-boot does: key, blanks, value; '#' lines skipped; a value in
// double quotes unquoted.
func configLines(data []byte) [][2]string {
	var out [][2]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxConfSize+1)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		line := strings.Trim(sc.Text(), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			continue
		}
		value := strings.Trim(line[i+1:], " \t")
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		out = append(out, [2]string{line[:i], value})
	}
	return out
}

// readLoaderDefault returns loader.conf's "default" (the last one).
func readLoaderDefault(espDir string) (string, error) {
	p, err := lookupFold(espDir, LoaderConf)
	if err != nil || p == "" {
		return "", err
	}
	data, err := readSmall(p)
	if err != nil {
		return "", err
	}
	def := ""
	for _, f := range configLines(data) {
		if f[0] == "default" {
			def = f[1]
		}
	}
	return def, nil
}

// Sort orders entries as systemd-boot 252's menu (config_entry_compare):
// bad entries last; entries with a sort key before those without; by sort
// key, then machine ID, ascending; by version, newest first; by ID,
// highest first; by tries left, most first; by tries done, fewest first.
func Sort(entries []Entry) {
	sort.SliceStable(entries, func(i, j int) bool { return compare(&entries[i], &entries[j]) < 0 })
}

func compare(a, b *Entry) int {
	aBad, bBad := a.Counted && a.TriesLeft == 0, b.Counted && b.TriesLeft == 0
	if aBad != bBad {
		if aBad {
			return 1
		}
		return -1
	}
	if (a.SortKey == "") != (b.SortKey == "") {
		if a.SortKey != "" {
			return -1
		}
		return 1
	}
	if a.SortKey != "" {
		if c := strings.Compare(a.SortKey, b.SortKey); c != 0 {
			return c
		}
		if c := strings.Compare(a.MachineID, b.MachineID); c != 0 {
			return c
		}
		if c := vercmp.Compare(a.Version, b.Version); c != 0 {
			return -c
		}
	}
	if c := vercmp.Compare(a.LoaderID, b.LoaderID); c != 0 {
		return -c
	}
	if a.Counted && b.Counted {
		if a.TriesLeft != b.TriesLeft {
			if a.TriesLeft > b.TriesLeft {
				return -1
			}
			return 1
		}
		if a.TriesDone != b.TriesDone {
			if a.TriesDone < b.TriesDone {
				return -1
			}
			return 1
		}
	}
	return 0
}

// defaultEntry picks the default entry as systemd-boot 252 does
// (config_default_entry_select, without the one-shot): LoaderEntryDefault,
// "@saved" meaning LoaderEntryLastBooted; then loader.conf "default", the
// same way; then the first entry. A pattern that matches nothing falls
// through to the next rule.
func defaultEntry(entries []Entry, v Variables, loaderDefault string) int {
	resolve := func(p string) string {
		if p == "@saved" {
			return v.EntryLastBooted
		}
		return p
	}
	if i := find(entries, resolve(v.EntryDefault)); i >= 0 {
		return i
	}
	if !strings.HasPrefix(loaderDefault, "@") || loaderDefault == "@saved" {
		if i := find(entries, resolve(loaderDefault)); i >= 0 {
			return i
		}
	}
	if len(entries) > 0 {
		return 0
	}
	return -1
}

// selectedEntry finds the entry LoaderEntrySelected names. systemd-boot
// 252 writes the file name the entry had when it was chosen, then renames
// a counted entry, and systemd-bless-boot may rename it again; so an exact
// match comes first, then the file LoaderBootCountPath names, then any
// entry whose name differs only in the counter.
func selectedEntry(entries []Entry, v Variables) int {
	if v.EntrySelected == "" {
		return -1
	}
	sel := asciiLower(v.EntrySelected)
	for i := range entries {
		if entries[i].LoaderID == sel {
			return i
		}
	}
	if v.BootCountPath != "" {
		base := v.BootCountPath[strings.LastIndexAny(v.BootCountPath, `\/`)+1:]
		for i := range entries {
			if entries[i].MatchesID(sel) && strings.EqualFold(entries[i].FileName, base) {
				return i
			}
		}
	}
	for i := range entries {
		if entries[i].MatchesID(sel) {
			return i
		}
	}
	return -1
}

// find returns the first entry, in order, whose systemd-boot 252 ID the
// glob pattern matches, ignoring case; -1 when none does.
func find(entries []Entry, pattern string) int {
	if pattern == "" {
		return -1
	}
	pattern = asciiLower(pattern)
	for i := range entries {
		if ok, err := path.Match(pattern, entries[i].LoaderID); err == nil && ok {
			return i
		}
	}
	return -1
}
