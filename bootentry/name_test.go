package bootentry

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		file                 string
		id, loaderID, stable string
		counted              bool
		left, done           int
		assessment           Assessment
		version              string
	}{
		{"imago-ref_2.efi", "imago-ref_2", "imago-ref_2.efi", "imago-ref_2.efi", false, 0, 0, Good, "2"},
		{"imago-ref_2+3.efi", "imago-ref_2", "imago-ref_2+3.efi", "imago-ref_2.efi", true, 3, 0, Indeterminate, "2"},
		{"imago-ref_2+3-0.efi", "imago-ref_2", "imago-ref_2+3-0.efi", "imago-ref_2.efi", true, 3, 0, Indeterminate, "2"},
		{"imago-ref_2+1-2.efi", "imago-ref_2", "imago-ref_2+1-2.efi", "imago-ref_2.efi", true, 1, 2, Indeterminate, "2"},
		{"imago-ref_3+0-3.efi", "imago-ref_3", "imago-ref_3+0-3.efi", "imago-ref_3.efi", true, 0, 3, Bad, "3"},
		{"foo+0.efi", "foo", "foo+0.efi", "foo.efi", true, 0, 0, Bad, ""},
		{"Foo_1.2+2-1.EFI", "Foo_1.2", "foo_1.2+2-1.efi", "Foo_1.2.EFI", true, 2, 1, Indeterminate, "1.2"},
		{"entry+09-00.conf", "entry", "entry+09-00.conf", "entry.conf", true, 9, 0, Indeterminate, ""},
		{"a.conf", "a", "a.conf", "a.conf", false, 0, 0, Good, ""},
		// Not counters: the '+' is part of the name.
		{"+.efi", "+", "+.efi", "+.efi", false, 0, 0, Good, ""},
		{"foo+.efi", "foo+", "foo+.efi", "foo+.efi", false, 0, 0, Good, ""},
		{"foo+x.efi", "foo+x", "foo+x.efi", "foo+x.efi", false, 0, 0, Good, ""},
		{"foo+3-.efi", "foo+3-", "foo+3-.efi", "foo+3-.efi", false, 0, 0, Good, ""},
		{"foo+3x.efi", "foo+3x", "foo+3x.efi", "foo+3x.efi", false, 0, 0, Good, ""},
		{"foo+-3.efi", "foo+-3", "foo+-3.efi", "foo+-3.efi", false, 0, 0, Good, ""},
		{"foo+3-1-1.efi", "foo+3-1-1", "foo+3-1-1.efi", "foo+3-1-1.efi", false, 0, 0, Good, ""},
		{"foo+2147483648.efi", "foo+2147483648", "foo+2147483648.efi", "foo+2147483648.efi", false, 0, 0, Good, ""},
		{"foo+3+x.efi", "foo+3+x", "foo+3+x.efi", "foo+3+x.efi", false, 0, 0, Good, ""},
		// The last '+' counts, so an earlier one is part of the name.
		{"a+3-0+1.efi", "a+3-0", "a+3-0+1.efi", "a+3-0.efi", true, 1, 0, Indeterminate, ""},
		{"foo+2147483647-2147483647.efi", "foo", "foo+2147483647-2147483647.efi", "foo.efi", true, 2147483647, 2147483647, Indeterminate, ""},
		{"+3.efi", "", "+3.efi", ".efi", true, 3, 0, Indeterminate, ""},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.file)
		if err != nil {
			t.Errorf("ParseName(%q): %v", tt.file, err)
			continue
		}
		if n.FileName != tt.file || n.ID != tt.id || n.LoaderID != tt.loaderID || n.StableID != tt.stable ||
			n.Counted != tt.counted || n.TriesLeft != tt.left || n.TriesDone != tt.done {
			t.Errorf("ParseName(%q) = %+v", tt.file, n)
		}
		if a := n.Assessment(); a != tt.assessment {
			t.Errorf("ParseName(%q).Assessment() = %q, want %q", tt.file, a, tt.assessment)
		}
		if v := n.Version(); v != tt.version {
			t.Errorf("ParseName(%q).Version() = %q, want %q", tt.file, v, tt.version)
		}
	}
}

func TestParseNameInvalid(t *testing.T) {
	for _, name := range []string{"", ".efi", ".hidden+3.efi", "foo", "foo.EF", "foo.efi.bak", "dir/foo.efi", "foo\x00.efi", "foo+3", "+", "+x", "+3-", "efi", "conf"} {
		if n, err := ParseName(name); !errors.Is(err, ErrNotEntry) {
			t.Errorf("ParseName(%q) = %+v, %v; want ErrNotEntry", name, n, err)
		}
	}
}

func TestMatchesID(t *testing.T) {
	n, err := ParseName("imago-ref_2+2-1.efi")
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{
		"imago-ref_2+2-1.efi": true,
		"IMAGO-REF_2+2-1.EFI": true,
		"imago-ref_2+3.efi":   true, // the name before systemd-boot counted down
		"imago-ref_2.efi":     true, // blessed, or systemd-boot 258 and later
		"imago-ref_2+0-3.efi": true,
		"imago-ref_2":         true, // the Boot Loader Interface form
		"imago-ref_2.conf":    false,
		"imago-ref_3+3.efi":   false,
		"imago-ref_2+":        false,
		"":                    false,
	} {
		if got := n.MatchesID(id); got != want {
			t.Errorf("MatchesID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestParseNameRoundTrip checks that a counted name is exactly ID, counter
// and suffix, for every counter form systemd-boot writes.
func TestParseNameRoundTrip(t *testing.T) {
	for left := 0; left <= 3; left++ {
		for done := 0; done <= 4; done++ {
			file := fmt.Sprintf("os_1.0+%d-%d.efi", left, done)
			n, err := ParseName(file)
			if err != nil || !n.Counted || n.TriesLeft != left || n.TriesDone != done || !n.HasDone {
				t.Fatalf("ParseName(%q) = %+v, %v", file, n, err)
			}
			if got := fmt.Sprintf("%s+%d-%d%s", n.ID, n.TriesLeft, n.TriesDone, n.Suffix); got != file {
				t.Errorf("rebuilt %q, want %q", got, file)
			}
		}
	}
}
