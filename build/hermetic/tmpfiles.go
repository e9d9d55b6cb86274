package hermetic

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/imago-os/imago/format/unitfile"
)

// usrTmpfilesDirs are the tmpfiles.d directories of /usr, in systemd-tmpfiles
// 252's priority order; /etc and /run are empty on first boot, and /lib is
// /usr/lib on a merged-/usr tree.
var usrTmpfilesDirs = []string{"/usr/local/lib/tmpfiles.d", "/usr/lib/tmpfiles.d"}

// TmpfilesLine is one line of a tmpfiles.d(5) file.
type TmpfilesLine struct {
	Type     string // "C", "L", "d", "z", "L+", ...
	Path     string // absolute, unescaped
	Mode     string // "-" for none
	User     string // "-" for none
	Group    string // "-" for none
	Age      string // "-" for none
	Argument string // unescaped; "" for none
}

// Format returns the line as systemd-tmpfiles 252 reads it back to the same
// fields. It fails for a path that cannot be written in that syntax (one
// containing a newline or NUL).
func (l TmpfilesLine) Format() (string, error) {
	p, err := quoteTmpfilesPath(l.Path)
	if err != nil {
		return "", err
	}
	if strings.IndexByte(l.Argument, 0) >= 0 {
		return "", fmt.Errorf("%s: argument contains a NUL byte, which tmpfiles.d cannot express", l.Path)
	}
	s := strings.Join([]string{l.Type, p, dash(l.Mode), dash(l.User), dash(l.Group), dash(l.Age)}, " ")
	if l.Argument != "" {
		s += " " + escapeTmpfilesArgument(l.Argument)
	}
	return s, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quoteTmpfilesPath writes a path for the second column. systemd reads the
// file line by line (a line ends at "\n", "\r" or NUL), splits the columns
// with extract_first_word(EXTRACT_UNQUOTE), where a backslash takes the next
// byte literally, and then expands '%' specifiers; paths are never
// C-unescaped, so those three bytes cannot be expressed at all.
func quoteTmpfilesPath(p string) (string, error) {
	if strings.ContainsAny(p, "\n\r\x00") {
		return "", fmt.Errorf("%q: contains a line break or NUL byte, which tmpfiles.d cannot express", p)
	}
	p = strings.ReplaceAll(p, "%", "%%")
	plain := true
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c == '"' || c == '\'' || c == '\\' || c == 0x7f {
			plain = false
			break
		}
	}
	if plain {
		return p, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String(), nil
}

// escapeTmpfilesArgument writes the last column. systemd takes the rest of
// the line (stripped of surrounding whitespace, "-" meaning none), C-unescapes
// it and expands '%' specifiers, for the C, L, f, F and w types. Every byte
// that could be lost or misread is written as \xNN.
func escapeTmpfilesArgument(a string) string {
	var b strings.Builder
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '%':
			b.WriteString("%%")
		case c < ' ' || c == 0x7f || c == ' ' && (i == 0 || i == len(a)-1):
			fmt.Fprintf(&b, `\x%02x`, c)
		case c == '-' && len(a) == 1:
			b.WriteString(`\x2d`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// cunescape decodes systemd's C escapes the way cunescape() without flags
// does: \a \b \f \n \r \t \v \\ \" \' \s, \xHH, \ooo, \uHHHH and \UHHHHHHHH.
// NUL and unknown escapes are errors.
func cunescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		n, err := unescapeOne(&b, s[i+1:])
		if err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		i += n
	}
	return b.String(), nil
}

// simpleEscapes pairs each one-letter escape with the byte it stands for.
var simpleEscapes = map[byte]byte{
	'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v',
	'\\': '\\', '"': '"', '\'': '\'', 's': ' ',
}

// unescapeOne decodes the escape at the start of s (the text after a
// backslash) into b and returns how many bytes of s it used.
func unescapeOne(b *strings.Builder, s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("trailing backslash")
	}
	if c, ok := simpleEscapes[s[0]]; ok {
		b.WriteByte(c)
		return 1, nil
	}
	number := func(digits string, base int) (uint64, bool) {
		for i := 0; i < len(digits); i++ {
			c := digits[i] | 0x20
			if !(c >= '0' && c <= '9') && !(base == 16 && c >= 'a' && c <= 'f') || base == 8 && c > '7' {
				return 0, false
			}
		}
		v, err := strconv.ParseUint(digits, base, 32)
		return v, err == nil
	}
	switch s[0] {
	case 'x':
		if len(s) < 3 {
			return 0, fmt.Errorf("short \\x escape")
		}
		v, ok := number(s[1:3], 16)
		if !ok || v == 0 {
			return 0, fmt.Errorf("invalid \\x escape")
		}
		b.WriteByte(byte(v))
		return 3, nil
	case 'u', 'U':
		n := 4
		if s[0] == 'U' {
			n = 8
		}
		if len(s) < n+1 {
			return 0, fmt.Errorf("short \\%c escape", s[0])
		}
		v, ok := number(s[1:n+1], 16)
		if !ok || v == 0 || v > 0x10FFFF || v >= 0xD800 && v <= 0xDFFF {
			return 0, fmt.Errorf("invalid \\%c escape", s[0])
		}
		b.WriteRune(rune(v))
		return n + 1, nil
	case '0', '1', '2', '3', '4', '5', '6', '7':
		if len(s) < 3 {
			return 0, fmt.Errorf("short octal escape")
		}
		v, ok := number(s[:3], 8)
		if !ok || v == 0 || v > 255 {
			return 0, fmt.Errorf("invalid octal escape")
		}
		b.WriteByte(byte(v))
		return 3, nil
	}
	return 0, fmt.Errorf("unknown escape \\%c", s[0])
}

// ParseTmpfilesLine splits one non-comment line into its fields the way
// systemd-tmpfiles 252 does (columns unquoted, the argument C-unescaped for
// the types that take a text argument). Specifiers are left unexpanded,
// except that "%%" becomes "%".
func ParseTmpfilesLine(line string) (TmpfilesLine, error) {
	l, _, err := parseTmpfilesLine(line)
	return l, err
}

// hasSpecifier reports whether s uses a '%' specifier other than "%%".
func hasSpecifier(s string) bool {
	return strings.Contains(strings.ReplaceAll(s, "%%", ""), "%")
}

// parseTmpfilesLine is ParseTmpfilesLine that also reports whether the path
// or argument uses a specifier, whose value only the running system knows.
func parseTmpfilesLine(line string) (TmpfilesLine, bool, error) {
	w := unitfile.NewWords(line, "", unitfile.ExtractUnquote)
	var cols []string
	for len(cols) < 6 {
		word, ok, err := w.Next()
		if err != nil {
			return TmpfilesLine{}, false, err
		}
		if !ok {
			break
		}
		cols = append(cols, word)
	}
	if len(cols) < 2 {
		return TmpfilesLine{}, false, fmt.Errorf("tmpfiles line %q: syntax error", line)
	}
	if cols[0] == "" {
		// A quoted empty word: systemd-tmpfiles knows no such type.
		return TmpfilesLine{}, false, fmt.Errorf("tmpfiles line %q: empty type", line)
	}
	for len(cols) < 6 {
		cols = append(cols, "-")
	}
	l := TmpfilesLine{Type: cols[0], Path: cols[1], Mode: cols[2], User: cols[3], Group: cols[4], Age: cols[5]}
	if rest, ok := w.Rest(); ok {
		rest = strings.Trim(rest, " \t\n\r")
		if rest != "" && rest != "-" {
			l.Argument = rest
			if strings.ContainsAny(l.Type[:1], "CLfFw") {
				a, err := cunescape(rest)
				if err != nil {
					return TmpfilesLine{}, false, fmt.Errorf("tmpfiles line %q: %w", line, err)
				}
				l.Argument = a
			}
		}
	}
	spec := hasSpecifier(l.Path) || hasSpecifier(l.Argument)
	l.Path = strings.ReplaceAll(l.Path, "%%", "%")
	l.Argument = strings.ReplaceAll(l.Argument, "%%", "%")
	return l, spec, nil
}

// creates reports whether a tmpfiles.d type makes the path exist (as opposed
// to adjusting, cleaning or removing it).
func creates(t string) bool {
	if t == "" {
		return false
	}
	switch t[0] {
	case 'f', 'F', 'w', 'd', 'D', 'v', 'q', 'Q', 'p', 'L', 'c', 'b', 'C':
		return true
	}
	return false
}

// declaration is an existing tmpfiles.d line that creates a path.
type declaration struct {
	Line   TmpfilesLine
	Source string // "file:line"
}

// existingTmpfiles reads the tmpfiles.d files of /usr in the tree, the way
// systemd picks them (a file name in an earlier directory hides the same name
// in a later one), skipping ours. It returns the creating lines by path
// (first one wins, as in systemd) and paths containing specifiers are left
// out: they cannot be resolved at build time.
func existingTmpfiles(root string, skipName string) (decl map[string]declaration, acls map[string]bool, err error) {
	files, err := confFiles(root, usrTmpfilesDirs, ".conf")
	if err != nil {
		return nil, nil, err
	}
	decl, acls = map[string]declaration{}, map[string]bool{}
	for _, f := range files {
		if path.Base(f) == skipName {
			continue
		}
		data, err := readInRoot(root, f)
		if err != nil {
			return nil, nil, fmt.Errorf("hermetic: %s: %w", f, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] == '#' {
				continue
			}
			l, spec, err := parseTmpfilesLine(line)
			if err != nil || spec {
				continue
			}
			p := path.Clean(l.Path)
			if !path.IsAbs(p) {
				continue
			}
			if l.Type[0] == 'a' || l.Type[0] == 'A' {
				acls[p] = true
			}
			if !creates(l.Type) {
				continue
			}
			if _, dup := decl[p]; !dup {
				l.Path = p
				decl[p] = declaration{Line: l, Source: f + ":" + strconv.Itoa(n)}
			}
		}
	}
	return decl, acls, nil
}

// confFiles lists NAME.conf style files across dirs inside root with
// systemd's overriding by file name, sorted by file name.
func confFiles(root string, dirs []string, suffix string) ([]string, error) {
	return unitfile.ListConfFiles(os.DirFS(root), dirs, suffix)
}

// readInRoot reads a file by its path inside root, following symbolic links
// inside root.
func readInRoot(root, p string) ([]byte, error) {
	host, err := resolveInRoot(root, p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(host)
}

// resolveInRoot maps an absolute path inside root to a host path, resolving
// symbolic links as if root were "/".
func resolveInRoot(root, p string) (string, error) {
	done := ""
	todo := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			done = path.Dir(done)
			if done == "." || done == "/" {
				done = ""
			}
			continue
		}
		next := done + "/" + c
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if len(todo) == 0 {
				return filepath.Join(root, next), nil // let the caller see ENOENT
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		links++
		if links > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = ""
		}
		rest := strings.Split(strings.Trim(target, "/"), "/")
		todo = append(rest, todo...)
	}
	return filepath.Join(root, done), nil
}

// sortTmpfiles orders lines by path, then type, for a deterministic file.
func sortTmpfiles(lines []TmpfilesLine) {
	sort.SliceStable(lines, func(i, j int) bool {
		if lines[i].Path != lines[j].Path {
			return lines[i].Path < lines[j].Path
		}
		return lines[i].Type < lines[j].Type
	})
}
