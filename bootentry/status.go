package bootentry

import (
	"fmt"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/vercmp"
)

// StatusReport is the boot assessment state of a system: which entry booted,
// whether it is still being assessed, and whether it booted only because a
// newer version failed.
type StatusReport struct {
	// Variables are the Boot Loader Interface variables read.
	Variables Variables `json:"variables"`
	// Booted is the entry LoaderEntrySelected names, nil when it is unset
	// or names no entry on the ESP.
	Booted *Entry `json:"booted,omitempty"`
	// Default is the entry systemd-boot boots next unless told otherwise.
	Default *Entry `json:"default,omitempty"`
	// Assessment is the booted entry's state as its file is named now: good
	// (never counted, or blessed), indeterminate (still being assessed;
	// TriesLeft more boots before it turns bad) or bad. Empty when the
	// booted entry is unknown.
	Assessment Assessment `json:"assessment,omitempty"`
	TriesLeft  int        `json:"triesLeft,omitempty"`
	// Fallback is set when a newer version than the booted entry (or, with
	// no booted entry known, the default one) is marked bad.
	Fallback *Fallback `json:"fallback,omitempty"`
	// Entries is the whole list, as List returns it.
	Entries []Entry `json:"entries"`
}

// Fallback explains why an older version runs: a newer one used up its
// tries without reaching boot-complete.target, so systemd-boot sorted it
// last and started the older one.
type Fallback struct {
	// FailedID and FailedVersion name the newest bad entry; Tries is its
	// done counter, how often it was started.
	FailedID      string `json:"failedId"`
	FailedVersion string `json:"failedVersion"`
	Tries         int    `json:"tries"`
	// BootedID and BootedVersion name the entry that ran instead (or, with
	// Booted false, the one that boots by default).
	BootedID      string `json:"bootedId"`
	BootedVersion string `json:"bootedVersion"`
	Booted        bool   `json:"booted"`
	// Message says the above in one sentence.
	Message string `json:"message"`
}

// StatusWith is Status with the variables given.
func StatusWith(espDir string, v Variables) (*StatusReport, error) {
	entries, err := ListWith(espDir, v)
	if err != nil {
		return nil, err
	}
	st := &StatusReport{Variables: v, Entries: entries}
	for i := range entries {
		e := &entries[i]
		if e.Selected {
			st.Booted = e
		}
		if e.Default {
			st.Default = e
		}
	}
	ref := st.Default
	if st.Booted != nil {
		ref = st.Booted
		st.Assessment = st.Booted.Assessment
		if st.Booted.Counted {
			st.TriesLeft = st.Booted.TriesLeft
		}
	}
	if ref != nil {
		st.Fallback = fallback(entries, ref, st.Booted != nil)
	}
	return st, nil
}

// Status reads the ESP at espDir and the variables in vars (nil for none)
// and reports the boot assessment state.
func Status(espDir string, vars *efistore.Store) (*StatusReport, error) {
	v, err := ReadVariables(vars)
	if err != nil {
		return nil, err
	}
	return StatusWith(espDir, v)
}

// fallback returns the newest bad entry of the same OS (sort key) that is
// newer than ref, as a Fallback, or nil.
func fallback(entries []Entry, ref *Entry, booted bool) *Fallback {
	refVersion := ref.DisplayVersion()
	if refVersion == "" {
		return nil
	}
	var failed *Entry
	for i := range entries {
		e := &entries[i]
		if e.Assessment != Bad || e.SortKey != ref.SortKey || e == ref {
			continue
		}
		v := e.DisplayVersion()
		if vercmp.Compare(v, refVersion) <= 0 {
			continue
		}
		if failed == nil || vercmp.Compare(v, failed.DisplayVersion()) > 0 {
			failed = e
		}
	}
	if failed == nil {
		return nil
	}
	f := &Fallback{
		FailedID:      failed.FileName,
		FailedVersion: failed.DisplayVersion(),
		Tries:         failed.TriesDone,
		BootedID:      ref.FileName,
		BootedVersion: refVersion,
		Booted:        booted,
	}
	how := "booted instead"
	if !booted {
		how = "boots by default instead"
	}
	f.Message = fmt.Sprintf("version %s (%s) failed: started %s without reaching boot-complete.target; version %s (%s) %s",
		f.FailedVersion, f.FailedID, times(f.Tries), f.BootedVersion, f.BootedID, how)
	return f
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}
