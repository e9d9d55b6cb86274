package repart

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/osrelease"
)

// ErrUnknownSpecifier is wrapped by Expand's error for a '%' followed by a
// letter or digit that has no meaning.
var ErrUnknownSpecifier = errors.New("unknown specifier")

// ErrTooLong is wrapped by Expand's error when the expansion exceeds the
// length limit.
var ErrTooLong = errors.New("expanded value too long")

// Specifiers expands the %-specifiers that systemd-repart 252 accepts in
// Label=, CopyFiles=, CopyBlocks= and MakeDirectories= (systemd's
// system_and_tmp_specifier_table):
//
//	%a architecture of the running system    %A IMAGE_VERSION of os-release
//	%b boot ID of the running system         %B BUILD_ID of os-release
//	%H host name                             %l short host name
//	%q pretty host name                      %m machine ID
//	%M IMAGE_ID of os-release                %o ID of os-release
//	%v kernel release                        %w VERSION_ID of os-release
//	%W VARIANT_ID of os-release              %T temporary directory
//	%V directory for large temporary files   %% a literal '%'
//
// As in systemd, os-release (/etc/os-release, else /usr/lib/os-release) and
// the machine ID (/etc/machine-id) are read from Root when it is set, and
// from the running system otherwise; %a, %b, %H, %l, %q and %v always
// describe the running system, and %T and %V are /tmp and /var/tmp when
// Root is set and otherwise follow $TMPDIR, $TEMP and $TMP.
//
// The zero value describes the running system. A Specifiers must not be
// used by several goroutines at once.
type Specifiers struct {
	// Root is the directory tree --root= names, "" for none.
	Root string
	// Values supplies specifiers by letter instead of looking them up,
	// e.g. for reproducible builds and tests. An empty string expands to
	// nothing, as a missing os-release field does.
	Values map[byte]string

	release    *osrelease.Release
	releaseErr error
	loaded     bool
	// noTmp leaves out %T and %V (SplitName= has no temporary
	// directories; its %T is the type UUID, given in Values).
	noTmp bool
}

// Expand replaces the specifiers in text. maxLen bounds the result in
// bytes, as systemd bounds it while expanding (36 for Label=, PATH_MAX-1
// for paths); 0 means no bound. A '%' followed by a character that is not
// a letter, digit or '%' is kept as it is, and so is a '%' at the end.
func (s *Specifiers) Expand(text string, maxLen int) (string, error) {
	var out strings.Builder
	check := func() error {
		if maxLen > 0 && out.Len() > maxLen {
			return fmt.Errorf("%w (more than %d bytes)", ErrTooLong, maxLen)
		}
		return nil
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '%' {
			out.WriteByte(c)
			if err := check(); err != nil {
				return "", err
			}
			continue
		}
		if i+1 == len(text) {
			out.WriteByte('%')
			return out.String(), check()
		}
		i++
		c = text[i]
		switch {
		case c == '%':
			out.WriteByte('%')
		case isAlnum(c):
			v, err := s.lookup(c)
			if err != nil {
				return "", err
			}
			out.WriteString(v)
		default:
			out.WriteByte('%')
			out.WriteByte(c)
		}
		if err := check(); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// lookup returns the value of one specifier letter.
func (s *Specifiers) lookup(c byte) (string, error) {
	if v, ok := s.Values[c]; ok {
		return v, nil
	}
	switch c {
	case 'a':
		a, ok := dps.ArchFromGOARCH(runtime.GOARCH)
		if !ok {
			return "", fmt.Errorf("%%a: no systemd architecture name for %s", runtime.GOARCH)
		}
		return string(a), nil
	case 'A':
		return s.osRelease("IMAGE_VERSION")
	case 'B':
		return s.osRelease("BUILD_ID")
	case 'M':
		return s.osRelease("IMAGE_ID")
	case 'o':
		return s.osRelease("ID")
	case 'w':
		return s.osRelease("VERSION_ID")
	case 'W':
		return s.osRelease("VARIANT_ID")
	case 'b':
		id, err := readID128File("/proc/sys/kernel/random/boot_id")
		if err != nil {
			return "", fmt.Errorf("%%b: boot ID: %w", err)
		}
		return id, nil
	case 'm':
		b, err := readFileInRoot(s.Root, "/etc/machine-id")
		if err != nil {
			return "", fmt.Errorf("%%m: machine ID: %w", err)
		}
		id, err := parseID128(b)
		if err != nil {
			return "", fmt.Errorf("%%m: machine ID of %s: %w", rootOrSlash(s.Root), err)
		}
		return hex.EncodeToString(id[:]), nil
	case 'H':
		return hostname()
	case 'l':
		h, err := hostname()
		return shortHostname(h), err
	case 'q':
		if v, err := machineInfoPrettyHostname(); err == nil && v != "" {
			return v, nil
		}
		h, err := hostname()
		return shortHostname(h), err
	case 'v':
		b, err := os.ReadFile("/proc/sys/kernel/osrelease")
		if err != nil {
			return "", fmt.Errorf("%%v: kernel release: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case 'T':
		if s.noTmp {
			break
		}
		if s.Root != "" {
			return "/tmp", nil
		}
		return tmpDir("/tmp"), nil
	case 'V':
		if s.noTmp {
			break
		}
		if s.Root != "" {
			return "/var/tmp", nil
		}
		return tmpDir("/var/tmp"), nil
	}
	return "", fmt.Errorf("%w %%%c", ErrUnknownSpecifier, c)
}

// osRelease returns a field of the root's os-release; a missing field is
// empty, a missing file an error (systemd's EUNATCH).
func (s *Specifiers) osRelease(key string) (string, error) {
	if !s.loaded {
		s.loaded = true
		s.release, _, s.releaseErr = osrelease.Load(s.Root)
	}
	if s.releaseErr != nil {
		return "", fmt.Errorf("os-release of %s: %w", rootOrSlash(s.Root), s.releaseErr)
	}
	return s.release.Value(key), nil
}

func rootOrSlash(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

// readID128File reads a 128-bit ID the way systemd's id128_read() accepts
// it for machine-id and boot_id (32 hex digits or the 36-character UUID
// form, optionally followed by a newline) and returns it as 32 lower-case
// hex digits, the form the specifiers expand to.
func readID128File(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	id, err := parseID128(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return hex.EncodeToString(id[:]), nil
}

// errNoID is returned by parseID128 for an empty or "uninitialized"
// machine-id, which systemd reads as "not set".
var errNoID = errors.New("not initialized")

func parseID128(b []byte) (dps.UUID, error) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	if len(b) == 0 || string(b) == "uninitialized" {
		return dps.UUID{}, errNoID
	}
	u, err := dps.ParseUUID(string(b))
	if err != nil {
		return dps.UUID{}, fmt.Errorf("not a 128-bit ID")
	}
	return u, nil
}

func hostname() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	return h, nil
}

func shortHostname(h string) string {
	if i := strings.IndexByte(h, '.'); i >= 0 {
		return h[:i]
	}
	return h
}

// machineInfoPrettyHostname reads PRETTY_HOSTNAME= of /etc/machine-info.
func machineInfoPrettyHostname() (string, error) {
	rel, err := osrelease.ReadFile("/", "/etc/machine-info")
	if err != nil {
		return "", err
	}
	return rel.Value("PRETTY_HOSTNAME"), nil
}

// tmpDir follows systemd's tmp_dir()/var_tmp_dir(): the first of $TMPDIR,
// $TEMP and $TMP that is set to an absolute, normalized path of an existing
// directory, else fallback.
func tmpDir(fallback string) string {
	for _, name := range []string{"TMPDIR", "TEMP", "TMP"} {
		v := os.Getenv(name)
		if v == "" || !strings.HasPrefix(v, "/") || path.Clean(v) != v && path.Clean(v)+"/" != v {
			continue
		}
		if fi, err := os.Stat(v); err == nil && fi.IsDir() {
			return v
		}
	}
	return fallback
}

// readFileInRoot reads a file inside root, following symbolic links inside
// root (an absolute link target is taken relative to root).
func readFileInRoot(root, name string) ([]byte, error) {
	root = rootOrSlash(root)
	resolved := "/"
	todo := strings.Split(strings.Trim(name, "/"), "/")
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, c)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > 32 {
			return nil, fmt.Errorf("%s: too many levels of symbolic links", name)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(target, "/") {
			resolved = "/"
		}
		todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
	}
	return os.ReadFile(filepath.Join(root, resolved))
}
