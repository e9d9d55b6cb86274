package unitfile

import (
	"errors"
	"strings"
	"testing"
)

// step is one call of Words.Next: the word expected, an error, or no word;
// and the remaining input afterwards ("<nil>" once it is used up, "*" for
// don't care).
type step struct {
	word string
	err  bool
	none bool
	rest string
}

const restNil = "<nil>"

func w(word, rest string) step { return step{word: word, rest: rest} }
func fail(rest string) step    { return step{err: true, rest: rest} }

var none = step{none: true, rest: restNil}

// The expected results follow systemd v252's extract_first_word() as its own
// test suite pins it down (test-extract-word.c).
func TestWords(t *testing.T) {
	cases := []struct {
		in    string
		seps  string
		flags ExtractFlags
		steps []step
	}{
		{"foobar waldo", "", 0, []step{w("foobar", "waldo"), w("waldo", restNil)}},
		{`"foobar" 'waldo'`, "", 0, []step{w(`"foobar"`, `'waldo'`), w(`'waldo'`, restNil)}},
		{`"foobar" 'waldo'`, "", ExtractUnquote, []step{w("foobar", `'waldo'`), w("waldo", restNil)}},
		{`"`, "", 0, []step{w(`"`, restNil)}},
		{`"`, "", ExtractUnquote, []step{fail("")}},
		{`'fooo`, "", ExtractUnquote, []step{fail("")}},
		{`'fooo`, "", ExtractUnquote | ExtractRelax, []step{w("fooo", restNil)}},
		{`KEY=val "KEY2=val with space" "KEY3=val with \"quotation\""`, "", ExtractUnquote,
			[]step{w("KEY=val", "*"), w("KEY2=val with space", "*"), w(`KEY3=val with "quotation"`, restNil)}},
		{`KEY=val "KEY2=val space" "KEY3"`, "", ExtractRetainEscape,
			[]step{w("KEY=val", "*"), w(`"KEY2=val`, "*"), w(`space"`, `"KEY3"`)}},
		{`yay'foo'bar`, "", 0, []step{w(`yay'foo'bar`, restNil)}},
		{`yay'foo'bar`, "", ExtractUnquote, []step{w("yayfoobar", restNil)}},
		{"   foobar   ", "", 0, []step{w("foobar", restNil), none}},
		{` foo\ba\x6ar `, "", ExtractCUnescape, []step{w("foo\ba\x6ar", restNil)}},
		{` foo\ba\x6ar `, "", 0, []step{w("foobax6ar", restNil)}},
		{`    f\u00f6o "pi\U0001F4A9le"   `, "", ExtractCUnescape, []step{w("föo", `"pi\U0001F4A9le"   `)}},
		{`"pi\U0001F4A9le"   `, "", ExtractUnquote | ExtractCUnescape, []step{w("pi\U0001F4A9le", restNil)}},
		{`fooo\`, "", ExtractRelax, []step{w("fooo", restNil)}},
		{`fooo\`, "", ExtractUnescapeRelax, []step{w(`fooo\`, restNil)}},
		{`fooo\`, "", ExtractCUnescape | ExtractUnescapeRelax, []step{w(`fooo\`, restNil)}},
		{`fooo\`, "", 0, []step{fail("")}},
		{`"foo\`, "", 0, []step{fail("")}},
		{`"foo\`, "", ExtractUnquote | ExtractRelax, []step{w("foo", restNil)}},
		{`"foo\`, "", ExtractUnquote | ExtractUnescapeRelax, []step{fail("")}},
		{`"foo\`, "", ExtractUnquote | ExtractUnescapeRelax | ExtractRelax, []step{w(`foo\`, restNil)}},
		{"foo::bar", ":", 0, []step{w("foo", "bar"), w("bar", restNil)}},
		{`foo\:bar::waldo`, ":", 0, []step{w("foo:bar", "waldo"), w("waldo", restNil)}},
		{`fooo\ bar quux`, "", ExtractRelax, []step{w("fooo bar", "quux")}},
		{`fooo\ bar quux`, "", ExtractUnescapeRelax, []step{w("fooo bar", "quux")}},
		{`fooo\ bar quux`, "", ExtractCUnescape, []step{fail(" bar quux")}},
		{`fooo\ bar quux`, "", ExtractCUnescape | ExtractUnescapeRelax, []step{w(`fooo\ bar`, "quux")}},
		{`\w+@\K[\d.]+`, "", ExtractCUnescape, []step{fail(`w+@\K[\d.]+`)}},
		{`\w+@\K[\d.]+`, "", ExtractCUnescape | ExtractUnescapeRelax, []step{w(`\w+@\K[\d.]+`, restNil)}},
		{`\w+\b`, "", ExtractCUnescape | ExtractUnescapeRelax, []step{w("\\w+\b", restNil)}},
		{"-N ''", "", ExtractUnquote, []step{w("-N", "''"), w("", restNil), none}},
		{`:foo\:bar::waldo:`, ":", ExtractDontCoalesceSeparators, []step{
			w("", `foo\:bar::waldo:`), w("foo:bar", ":waldo:"), w("", "waldo:"),
			w("waldo", ""), w("", restNil), none}},
		{`foo\xbar`, "", 0, []step{w("fooxbar", restNil)}},
		{`foo\xbar`, "", ExtractRetainEscape, []step{w(`foo\xbar`, restNil)}},
		{`\:`, ":", ExtractUnescapeSeparators, []step{w(":", restNil)}},
		{`a\ b:c`, whitespace + ":", ExtractUnescapeSeparators, []step{w("a b", "c"), w("c", restNil)}},
		{`a\ b:c\x`, ":", ExtractUnescapeSeparators, []step{fail("*")}},
		{`a\\ b:c\\x`, ":", ExtractUnescapeSeparators, []step{w(`a\ b`, `c\\x`), w(`c\x`, restNil)}},
		{`a\ b:c`, whitespace + ":", ExtractCUnescape | ExtractUnescapeSeparators, []step{w("a b", "c"), w("c", restNil)}},
		{`a\\ b:c\\x`, ":", ExtractCUnescape | ExtractUnescapeSeparators, []step{w(`a\ b`, "*"), w(`c\x`, restNil)}},
		{`\:`, ":", ExtractCUnescape, []step{fail(":")}},
		// After an error the input continues at the offending character.
		{`a\:b`, ":", ExtractCUnescape, []step{fail(":b"), w("b", restNil)}},
		{`a\ b:c`, whitespace + ":", ExtractCUnescape, []step{fail(" b:c"), w("b", "c"), w("c", restNil)}},
		{`foobar="waldo"maldo, baldo`, "=\", ", 0, []step{w("foobar", "*"), w("waldo", "*"), w("maldo", "*"), w("baldo", restNil)}},
		{`mode="1777",size="10%",nr_inodes="400"k,uid="496,,107"520,gi""'d=49610,'""7520,context="system_u:object_r:svirt_sandbox_file_t:s0:c0,c1"`,
			",", ExtractKeepQuote, []step{w(`mode="1777"`, "*"), w(`size="10%"`, "*"), w(`nr_inodes="400"k`, "*"),
				w(`uid="496,,107"520`, "*"), w(`gi""'d=49610,'""7520`, "*"),
				w(`context="system_u:object_r:svirt_sandbox_file_t:s0:c0,c1"`, restNil)}},
		{`mode="1777",size="10%",nr_inodes="400"k,uid="496,,107"520,gi""'d=49610,'""7520,context="system_u:object_r:svirt_sandbox_file_t:s0:c0,c1"`,
			",", ExtractUnquote, []step{w("mode=1777", "*"), w("size=10%", "*"), w("nr_inodes=400k", "*"),
				w("uid=496,,107520", "*"), w("gid=49610,7520", "*"),
				w("context=system_u:object_r:svirt_sandbox_file_t:s0:c0,c1", restNil)}},
		{"a:b", ":", ExtractRetainSeparators, []step{w("a", ":b"), w("b", restNil)}},
		{"a>:b", ">:", ExtractRetainSeparators, []step{w("a", ">:b"), w("b", restNil)}},
		{"a>:b", ">:", ExtractRetainSeparators | ExtractDontCoalesceSeparators, []step{w("a", ">:b"), w("", ">:b")}},
		{`a\:b`, ":", ExtractRetainSeparators | ExtractRetainEscape, []step{w(`a\`, ":b")}},
		{`a\:b`, ":", ExtractRetainSeparators, []step{w("a:b", restNil)}},
		{`a\:a:b`, ":", ExtractRetainSeparators | ExtractUnescapeSeparators, []step{w("a:a", ":b")}},
		// Empty input and input of separators only have no words, unless
		// separators do not coalesce.
		{"", "", 0, []step{none}},
		{"  \t ", "", 0, []step{none}},
		{"", ":", ExtractDontCoalesceSeparators, []step{w("", restNil), none}},
		// C escapes: NUL is refused, \u is not range checked, \U is.
		{`\x00`, "", ExtractCUnescape, []step{fail("*")}},
		{`\000`, "", ExtractCUnescape, []step{fail("*")}},
		{`\u0000`, "", ExtractCUnescape, []step{fail("*")}},
		{`\101\x42\s\t\n\'\"\\`, "", ExtractCUnescape, []step{w("AB \t\n'\"\\", restNil)}},
		{`\400`, "", ExtractCUnescape, []step{fail("*")}},
		{`\xff\377`, "", ExtractCUnescape, []step{w("\xff\xff", restNil)}},
		{`\ud800`, "", ExtractCUnescape, []step{w("\xed\xa0\x80", restNil)}},
		{`\UD800D800`, "", ExtractCUnescape, []step{fail("*")}},
		{`\U0000D800`, "", ExtractCUnescape, []step{fail("*")}},
		{`\U0010FFFD`, "", ExtractCUnescape, []step{w("\U0010FFFD", restNil)}},
		{`\x4`, "", ExtractCUnescape, []step{fail("*")}},
		{`\x4`, "", ExtractCUnescape | ExtractUnescapeRelax, []step{w(`\x4`, restNil)}},
		// A NUL byte ends the input, as in C.
		{"a b\x00c d", "", 0, []step{w("a", "b"), w("b", restNil), none}},
	}
	for _, c := range cases {
		w := NewWords(c.in, c.seps, c.flags)
		for i, s := range c.steps {
			word, ok, err := w.Next()
			switch {
			case s.err:
				if err == nil || !errors.Is(err, ErrBadWord) {
					t.Errorf("%q flags %#x step %d: got %q, %v; want error", c.in, c.flags, i, word, err)
				}
			case err != nil:
				t.Errorf("%q flags %#x step %d: %v", c.in, c.flags, i, err)
			case s.none && ok:
				t.Errorf("%q flags %#x step %d: got word %q, want none", c.in, c.flags, i, word)
			case !s.none && (!ok || word != s.word):
				t.Errorf("%q flags %#x step %d: got %q (%v), want %q", c.in, c.flags, i, word, ok, s.word)
			}
			if s.rest != "*" {
				rest, more := w.Rest()
				if (s.rest == restNil) == more || (more && rest != s.rest) {
					t.Errorf("%q flags %#x step %d: rest %q (%v), want %q", c.in, c.flags, i, rest, more, s.rest)
				}
			}
		}
	}
}

func TestSplitWords(t *testing.T) {
	got, err := SplitWords(`/usr/share "/var/lib/my dir" 'x y' a\x20b`, "", ExtractUnquote|ExtractCUnescape)
	if err != nil || strings.Join(got, "|") != "/usr/share|/var/lib/my dir|x y|a b" {
		t.Fatalf("got %q, %v", got, err)
	}
	// repart's CopyFiles= source:target split.
	got, err = SplitWords(`/src\x3a:/dst`, ":", ExtractCUnescape|ExtractDontCoalesceSeparators)
	if err != nil || strings.Join(got, "|") != "/src:|/dst" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := SplitWords(`"open`, "", ExtractUnquote); !errors.Is(err, ErrBadWord) {
		t.Fatalf("unbalanced quote: %v", err)
	}
	if _, err := SplitWords("x", "", ExtractUnquote|ExtractKeepQuote); err == nil {
		t.Fatal("exclusive flags accepted")
	}
}

func FuzzSplitWords(f *testing.F) {
	f.Add(`a "b c" 'd' e\x20f \u00f6 \U0001F4A9`, uint(ExtractUnquote|ExtractCUnescape))
	f.Add(`:a\:b::c:`, uint(ExtractDontCoalesceSeparators|ExtractUnescapeSeparators))
	f.Add(`"x\`, uint(ExtractUnquote|ExtractRelax|ExtractUnescapeRelax))
	f.Add(`a>:b`, uint(ExtractRetainSeparators|ExtractKeepQuote))
	f.Fuzz(func(t *testing.T, s string, flags uint) {
		fl := ExtractFlags(flags) & (ExtractRetainSeparators<<1 - 1)
		// Retaining a separator without coalescing returns the same empty
		// word forever, in systemd too; its callers never loop like that.
		loops := fl&ExtractRetainSeparators != 0 && fl&ExtractDontCoalesceSeparators != 0
		w := NewWords(s, " :", fl)
		for i := 0; i <= len(s)+2; i++ {
			before, _ := w.Rest()
			_, ok, err := w.Next()
			if err != nil || !ok {
				return
			}
			after, more := w.Rest()
			if more && len(after) >= len(before) && !loops {
				t.Fatalf("no progress splitting %q with %#x at %q", s, fl, before)
			}
		}
		if !loops {
			t.Fatalf("splitting %q with %#x does not end", s, fl)
		}
	})
}
