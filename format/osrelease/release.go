// Package osrelease reads and writes os-release(5) files and their siblings
// initrd-release and extension-release.NAME.
//
// Reading mirrors systemd 252's env-file parser (the one behind
// parse_os_release and load_env_file_pairs): KEY=value lines, "#" and ";"
// comments, single quotes taken literally, double quotes in which only \" \\
// \$ \` and backslash-newline are escapes, and unquoted backslash escapes.
// Writing quotes a value exactly when systemd's env-file writer would, and in
// addition when a POSIX shell would otherwise expand it, so that systemd and
// `. ./file` in sh read back the same string.
//
// The package owns the KEY=value syntax and the file lookup order
// (/etc/os-release, then /usr/lib/os-release; /etc/initrd-release;
// /usr/lib/extension-release.d/extension-release.NAME), all relative to a
// root directory. It does not interpret the values beyond splitting the
// documented space-separated list fields.
package osrelease

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Field is one KEY=value assignment.
type Field struct {
	Key   string
	Value string
}

// Release is the ordered set of assignments of one os-release style file.
// The zero value is an empty file ready for Set.
type Release struct {
	fields []Field
	// Warnings lists the lines Parse skipped or found ambiguous, in file
	// order. Format does not reproduce skipped lines.
	Warnings []Warning
}

// Well-known keys (os-release(5), systemd 252).
const (
	KeyName             = "NAME"
	KeyID               = "ID"
	KeyIDLike           = "ID_LIKE"
	KeyPrettyName       = "PRETTY_NAME"
	KeyVersion          = "VERSION"
	KeyVersionID        = "VERSION_ID"
	KeyVersionCodename  = "VERSION_CODENAME"
	KeyBuildID          = "BUILD_ID"
	KeyVariant          = "VARIANT"
	KeyVariantID        = "VARIANT_ID"
	KeyImageID          = "IMAGE_ID"
	KeyImageVersion     = "IMAGE_VERSION"
	KeySysextLevel      = "SYSEXT_LEVEL"
	KeySysextScope      = "SYSEXT_SCOPE"
	KeyConfextLevel     = "CONFEXT_LEVEL"
	KeyConfextScope     = "CONFEXT_SCOPE"
	KeyArchitecture     = "ARCHITECTURE"
	KeyPortablePrefixes = "PORTABLE_PREFIXES"
)

// ValidKey reports whether key is a valid environment variable name the way
// systemd checks it: non-empty, ASCII letters, digits and "_", not starting
// with a digit.
func ValidKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// ValidValue reports why value cannot be stored in an os-release file: systemd
// refuses a file with a NUL byte or with invalid UTF-8.
func ValidValue(value string) error {
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("osrelease: value contains a NUL byte")
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("osrelease: value is not valid UTF-8")
	}
	return nil
}

func (r *Release) index(key string) int {
	for i := range r.fields {
		if r.fields[i].Key == key {
			return i
		}
	}
	return -1
}

// Get returns the value of key and whether the file assigns it. An empty
// assignment (KEY= or KEY="") is reported as present with an empty value;
// note that systemd's own field lookups treat it like an absent key.
func (r *Release) Get(key string) (string, bool) {
	if i := r.index(key); i >= 0 {
		return r.fields[i].Value, true
	}
	return "", false
}

// Value returns the value of key, or "" when the file does not assign it.
func (r *Release) Value(key string) string {
	v, _ := r.Get(key)
	return v
}

// Set assigns value to key, keeping the key's position if it is already
// assigned and appending it otherwise.
func (r *Release) Set(key, value string) error {
	if !ValidKey(key) {
		return fmt.Errorf("osrelease: %q is not a valid variable name", key)
	}
	if err := ValidValue(value); err != nil {
		return fmt.Errorf("%w (key %s)", err, key)
	}
	if i := r.index(key); i >= 0 {
		r.fields[i].Value = value
		return nil
	}
	r.fields = append(r.fields, Field{Key: key, Value: value})
	return nil
}

// Delete removes key and reports whether it was assigned.
func (r *Release) Delete(key string) bool {
	i := r.index(key)
	if i < 0 {
		return false
	}
	r.fields = append(r.fields[:i], r.fields[i+1:]...)
	return true
}

// Fields returns a copy of the assignments in file order.
func (r *Release) Fields() []Field {
	return append([]Field(nil), r.fields...)
}

// Len returns the number of assigned keys.
func (r *Release) Len() int { return len(r.fields) }

// Format returns the file contents: one KEY=value line per field in order,
// values quoted by FormatValue, each line ending in "\n".
func (r *Release) Format() []byte {
	var b bytes.Buffer
	for _, f := range r.fields {
		b.WriteString(f.Key)
		b.WriteByte('=')
		b.WriteString(FormatValue(f.Value))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// WriteTo writes Format's output to w.
func (r *Release) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.Format())
	return int64(n), err
}

// shellNeedQuotes are the characters for which systemd's writer quotes a
// value, plus "~": a POSIX shell expands a tilde after "=" or ":" in an
// assignment, which systemd does not.
const shellNeedQuotes = shellNeedEscape + "*?[" + "'()<>|&;!" + "~"

// FormatValue returns value as it appears after "KEY=": unchanged when it
// needs no quoting, otherwise in double quotes with ", \, ` and $ escaped by
// a backslash. Control characters and whitespace force quoting; inside double
// quotes they are kept literally, which both systemd and sh read back as is.
func FormatValue(value string) string {
	needQuotes := false
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c < 0x20 || c == 0x7f || in(c, whitespace) || in(c, shellNeedQuotes) {
			needQuotes = true
			break
		}
	}
	if !needQuotes {
		return value
	}
	var b strings.Builder
	b.Grow(len(value) + 8)
	b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		if in(value[i], shellNeedEscape) {
			b.WriteByte('\\')
		}
		b.WriteByte(value[i])
	}
	b.WriteByte('"')
	return b.String()
}

// words splits a space-separated list field the way systemd's strv_split
// does (on blanks and line breaks), dropping empty words. An absent or blank field gives nil.
func (r *Release) words(key string) []string {
	w := strings.FieldsFunc(r.Value(key), func(c rune) bool { return c < 0x80 && in(byte(c), whitespace) })
	if len(w) == 0 {
		return nil
	}
	return w
}

// ID returns ID=, the lower-case operating system identifier.
func (r *Release) ID() string { return r.Value(KeyID) }

// IDLike returns the words of ID_LIKE=, closest relative first.
func (r *Release) IDLike() []string { return r.words(KeyIDLike) }

// Name returns NAME=.
func (r *Release) Name() string { return r.Value(KeyName) }

// PrettyName returns PRETTY_NAME=.
func (r *Release) PrettyName() string { return r.Value(KeyPrettyName) }

// Version returns VERSION=.
func (r *Release) Version() string { return r.Value(KeyVersion) }

// VersionID returns VERSION_ID=.
func (r *Release) VersionID() string { return r.Value(KeyVersionID) }

// BuildID returns BUILD_ID=.
func (r *Release) BuildID() string { return r.Value(KeyBuildID) }

// VariantID returns VARIANT_ID=.
func (r *Release) VariantID() string { return r.Value(KeyVariantID) }

// ImageID returns IMAGE_ID=, the identifier of the OS image.
func (r *Release) ImageID() string { return r.Value(KeyImageID) }

// ImageVersion returns IMAGE_VERSION=, the version of the OS image.
func (r *Release) ImageVersion() string { return r.Value(KeyImageVersion) }

// SysextLevel returns SYSEXT_LEVEL=, the API level system extensions are
// checked against.
func (r *Release) SysextLevel() string { return r.Value(KeySysextLevel) }

// SysextScope returns the words of SYSEXT_SCOPE= (extension-release only).
// An empty result means the field is absent, which systemd reads as
// "system portable".
func (r *Release) SysextScope() []string { return r.words(KeySysextScope) }

// ConfextLevel returns CONFEXT_LEVEL= (read by systemd 254 and later).
func (r *Release) ConfextLevel() string { return r.Value(KeyConfextLevel) }

// Architecture returns ARCHITECTURE= (extension-release only), a systemd
// architecture name such as "x86-64" or "_any".
func (r *Release) Architecture() string { return r.Value(KeyArchitecture) }

// PortablePrefixes returns the words of PORTABLE_PREFIXES=.
func (r *Release) PortablePrefixes() []string { return r.words(KeyPortablePrefixes) }
