package hermetic

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Kind classifies a Finding.
type Kind string

// The kinds of findings, from harmless to needing attention.
const (
	// Fixed: Apply changed /usr so that it no longer depends on /etc or /var
	// (for example a link into /etc/alternatives resolved to its target).
	Fixed Kind = "fixed"
	// Dropped: left out on purpose (build state, caches, logs, per-machine
	// secrets, the build machine's own settings); Reason says why.
	Dropped Kind = "dropped"
	// Changed: recreated on first boot, but not identical to the tree (for
	// example another package's tmpfiles.d line creates it differently).
	Changed Kind = "changed"
	// Late: recreated by systemd-tmpfiles, but only after the first boot has
	// already read it, so it takes effect from the second boot on.
	Late Kind = "late"
	// NotRecreated: the tree has it, nothing in /usr brings it back.
	NotRecreated Kind = "not-recreated"
)

// Finding is one path the transformation could not carry over unchanged, or
// changed on purpose.
type Finding struct {
	Path   string `json:"path"` // absolute inside the image
	Kind   Kind   `json:"kind"`
	Reason string `json:"reason"`
	// Entries counts the paths a finding about a directory covers (itself
	// and everything beneath it), when it covers more than one.
	Entries int `json:"entries,omitempty"`
}

// Covers reports whether the finding is about p or a directory above it.
func (f Finding) Covers(p string) bool {
	return p == f.Path || strings.HasPrefix(p, strings.TrimSuffix(f.Path, "/")+"/")
}

// Report is the outcome of Apply: what was generated and what could not be
// made hermetic.
type Report struct {
	// Findings, sorted by path then kind.
	Findings []Finding `json:"findings"`
	// FactoryEntries counts the files, directories and other nodes copied
	// under /usr/share/factory.
	FactoryEntries int `json:"factory_entries"`
	// TmpfilesLines counts the lines of the generated tmpfiles.d file.
	TmpfilesLines int `json:"tmpfiles_lines"`
	// Users and Groups count the sysusers.d lines generated for them.
	Users  int `json:"users"`
	Groups int `json:"groups"`
	// EnabledUnits lists the preset lines that re-enable units on first
	// boot ("unit" or "template@.service instance...").
	EnabledUnits []string `json:"enabled_units"`
	// Generated lists the files Apply wrote into /usr, sorted.
	Generated []string `json:"generated"`
}

func (r *Report) add(kind Kind, p, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Path: p, Kind: kind, Reason: fmt.Sprintf(format, args...)})
}

func (r *Report) sort() {
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Kind < b.Kind
	})
	sort.Strings(r.Generated)
}

// Problems returns the findings that leave the first boot short of the tree:
// Late and NotRecreated.
func (r *Report) Problems() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Kind == Late || f.Kind == NotRecreated {
			out = append(out, f)
		}
	}
	return out
}

// Covering returns the first finding that covers p, if any.
func (r *Report) Covering(p string) (Finding, bool) {
	for _, f := range r.Findings {
		if f.Covers(p) {
			return f, true
		}
	}
	return Finding{}, false
}

// WriteText writes the report for people: a summary, then the findings
// grouped by kind, the ones needing attention first.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "hermetic /usr: %d factory entries, %d tmpfiles.d lines, %d users and %d groups in sysusers.d, %d units enabled by preset\n",
		r.FactoryEntries, r.TmpfilesLines, r.Users, r.Groups, len(r.EnabledUnits))
	titles := []struct {
		kind  Kind
		title string
	}{
		{NotRecreated, "not recreated on first boot"},
		{Late, "recreated only after first boot has read them (effective from the second boot)"},
		{Changed, "recreated differently"},
		{Dropped, "left out on purpose"},
		{Fixed, "fixed in /usr"},
	}
	for _, t := range titles {
		var lines []string
		for _, f := range r.Findings {
			if f.Kind != t.kind {
				continue
			}
			l := "  " + f.Path
			if f.Entries > 1 {
				l += fmt.Sprintf(" (%d entries)", f.Entries)
			}
			lines = append(lines, l+": "+f.Reason)
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s (%d):\n%s\n", t.title, len(lines), strings.Join(lines, "\n"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
