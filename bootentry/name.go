// Package bootentry owns imago's view of systemd-boot's menu: it reads the
// boot loader entries of an ESP (unified kernel images in EFI/Linux/ and
// Type #1 entries in loader/entries/), parses their boot counters, orders
// them and picks the default as systemd-boot 252 does, and, with the Boot
// Loader Interface EFI variables, tells which entry was booted and how its
// automatic boot assessment stands (good, still being assessed, bad), and
// why an older version booted when a newer one failed.
//
// It only reads. Renaming entries is systemd-boot's job (it counts a try
// down before starting an entry) and systemd-bless-boot's (it drops the
// counter once boot-complete.target is reached); docs/boot-assessment.md
// explains the cycle.
package bootentry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Assessment is the boot assessment state an entry's file name encodes.
type Assessment string

// The assessment states, named as systemd-bless-boot names them.
const (
	// Good: the name has no boot counter, either because the entry never
	// had one or because systemd-bless-boot blessed it.
	Good Assessment = "good"
	// Indeterminate: the name has a counter with tries left; the entry is
	// still being assessed.
	Indeterminate Assessment = "indeterminate"
	// Bad: the counter has no tries left. systemd-boot lists the entry
	// last but still lets it be chosen by hand.
	Bad Assessment = "bad"
)

// Suffixes of entry files: Type #2 (UKI) and Type #1 entries.
const (
	SuffixEFI  = ".efi"
	SuffixConf = ".conf"
)

// maxTries is the largest counter value systemd-boot accepts (INT_MAX);
// a larger one disables counting for the entry.
const maxTries = 1<<31 - 1

// ErrNotEntry is matched (with errors.Is) by the error ParseName returns for
// a file name systemd-boot would not take as an entry.
var ErrNotEntry = errors.New("not a boot loader entry name")

// Name is a boot loader entry file name taken apart as systemd-boot 252
// does (config_entry_parse_tries): `NAME+LEFT[-DONE].efi` or `.conf`.
type Name struct {
	// FileName is the name as given, e.g. "imago-ref_2+3-0.efi".
	FileName string `json:"fileName"`
	// ID is the name without counter and suffix, e.g. "imago-ref_2".
	ID string `json:"name"`
	// Suffix is ".efi" or ".conf", spelt as in the file name.
	Suffix string `json:"suffix"`
	// LoaderID is the ID systemd-boot 252 gives the entry and writes to
	// LoaderEntrySelected and LoaderEntries: the whole file name,
	// lowercased, counter and suffix kept ("imago-ref_2+3-0.efi").
	LoaderID string `json:"id"`
	// StableID is the ID that survives renames: the file name without the
	// counter ("imago-ref_2.efi"). bootctl 252 and systemd-boot 258 and
	// later use this form.
	StableID string `json:"stableId"`
	// Counted says whether the name carries a boot counter systemd-boot
	// honours; TriesLeft and TriesDone are meaningful only then.
	Counted   bool `json:"counted"`
	TriesLeft int  `json:"triesLeft"`
	TriesDone int  `json:"triesDone"`
	// HasDone says whether the "-DONE" part is written (a missing one
	// counts as 0).
	HasDone bool `json:"hasDone,omitempty"`
}

// ParseName takes an entry file name apart. The counter is the part after
// the last '+': one or more decimal digits (tries left), optionally '-'
// and more digits (tries done), then the suffix, compared without regard
// to case as systemd-boot 252.39 does. Anything else after the '+' (no
// digits, "+3-", "+3x"), or a value above 2^31-1, means the entry is not
// counted and the '+' is part of its name, which is not an error.
//
// ParseName fails, with an error matching ErrNotEntry, for names
// systemd-boot skips or cannot have found in a directory: empty, hidden
// (leading '.'), holding '/' or NUL, or not ending in .efi or .conf.
func ParseName(filename string) (Name, error) {
	if filename == "" || strings.HasPrefix(filename, ".") || strings.ContainsAny(filename, "/\x00") {
		return Name{}, fmt.Errorf("bootentry: %q: %w", filename, ErrNotEntry)
	}
	var suffix string
	for _, s := range []string{SuffixEFI, SuffixConf} {
		if len(filename) > len(s) && strings.EqualFold(filename[len(filename)-len(s):], s) {
			suffix = filename[len(filename)-len(s):]
		}
	}
	if suffix == "" {
		return Name{}, fmt.Errorf("bootentry: %q: %w (want a .efi or .conf suffix)", filename, ErrNotEntry)
	}
	n := Name{
		FileName: filename,
		ID:       filename[:len(filename)-len(suffix)],
		Suffix:   suffix,
		LoaderID: asciiLower(filename),
	}
	if plus := strings.LastIndexByte(filename, '+'); plus >= 0 {
		if left, done, hasDone, ok := parseCounter(filename[plus+1 : len(filename)-len(suffix)]); ok {
			n.ID = filename[:plus]
			n.Counted, n.TriesLeft, n.TriesDone, n.HasDone = true, left, done, hasDone
		}
	}
	n.StableID = n.ID + suffix
	return n, nil
}

// parseCounter reads "LEFT" or "LEFT-DONE" (the text between the '+' and
// the suffix). ok is false when it is anything else.
func parseCounter(s string) (left, done int, hasDone, ok bool) {
	leftText, doneText, hasDone := strings.Cut(s, "-")
	left, ok = parseTries(leftText)
	if !ok {
		return 0, 0, false, false
	}
	if hasDone {
		if done, ok = parseTries(doneText); !ok {
			return 0, 0, false, false
		}
	}
	return left, done, hasDone, true
}

// parseTries reads one or more decimal digits not above maxTries.
func parseTries(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > maxTries {
		return 0, false
	}
	return int(v), true
}

// Assessment returns the state the name encodes: Good without a counter,
// Bad with no tries left, Indeterminate otherwise.
func (n Name) Assessment() Assessment {
	switch {
	case !n.Counted:
		return Good
	case n.TriesLeft == 0:
		return Bad
	default:
		return Indeterminate
	}
}

// Version returns the version imago writes into UKI names
// ("IMAGEID_VERSION"): the part of ID after the last '_', or "" when there
// is none. It is a fallback for when the entry itself names no version.
func (n Name) Version() string {
	if i := strings.LastIndexByte(n.ID, '_'); i >= 0 {
		return n.ID[i+1:]
	}
	return ""
}

// MatchesID reports whether id, as found in LoaderEntrySelected or a
// similar variable, names this entry. It accepts the exact ID of
// systemd-boot 252 and, because systemd-boot renames a counted entry right
// after writing the variable and systemd-bless-boot renames it again,
// every form that differs only in the counter; also the counter-free form
// of later versions and the suffix-less form of the Boot Loader Interface.
// Case is ignored, as systemd-boot folds IDs to lower case.
func (n Name) MatchesID(id string) bool {
	id = asciiLower(id)
	if id == "" {
		return false
	}
	if id == n.LoaderID {
		return true
	}
	stable := asciiLower(n.StableID)
	if other, err := ParseName(id); err == nil {
		return asciiLower(other.StableID) == stable
	}
	return id == asciiLower(n.ID)
}

// asciiLower folds A-Z only, as systemd-boot's strtolower16 does.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
