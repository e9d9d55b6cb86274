package bootentry

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseName checks that ParseName never panics, fails only with
// ErrNotEntry, and that what it returns puts the name back together.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"imago-ref_2+3-0.efi", "a+3-0+1.efi", "foo+3-.efi", "+", "x.conf", "FOO+1.EFI", "+99999999999.efi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrNotEntry) {
				t.Fatalf("ParseName(%q): unexpected error %v", s, err)
			}
			return
		}
		if n.FileName != s || !strings.HasSuffix(s, n.Suffix) || n.LoaderID != asciiLower(s) || n.StableID != n.ID+n.Suffix {
			t.Fatalf("ParseName(%q) = %+v", s, n)
		}
		rebuilt := n.ID + n.Suffix
		if n.Counted {
			if n.TriesLeft < 0 || n.TriesDone < 0 || n.TriesLeft > maxTries || n.TriesDone > maxTries {
				t.Fatalf("ParseName(%q): counter out of range: %+v", s, n)
			}
			if !strings.HasPrefix(s, n.ID+"+") {
				t.Fatalf("ParseName(%q): ID %q is not the part before the counter", s, n.ID)
			}
			rebuilt = s // digits may have leading zeros; check the parts instead
			counter := strings.TrimSuffix(strings.TrimPrefix(s, n.ID+"+"), n.Suffix)
			left, done, hasDone, ok := parseCounter(counter)
			if !ok || left != n.TriesLeft || done != n.TriesDone || hasDone != n.HasDone {
				t.Fatalf("ParseName(%q): counter %q does not read back", s, counter)
			}
			if strings.Contains(counter, "+") {
				t.Fatalf("ParseName(%q): counter %q holds a '+'", s, counter)
			}
		}
		if rebuilt != s {
			t.Fatalf("ParseName(%q): %q does not rebuild the name", s, rebuilt)
		}
		if !n.MatchesID(s) {
			t.Fatalf("ParseName(%q): the entry does not match its own name", s)
		}
		if a := n.Assessment(); a != Good && a != Bad && a != Indeterminate {
			t.Fatalf("ParseName(%q): assessment %q", s, a)
		}
	})
}
