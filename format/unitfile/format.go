package unitfile

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Format returns the file as canonical text: each section as "[Name]"
// followed by one "Key=Value" line per entry, sections separated by an empty
// line, no comments. Parsing the result gives the same sections and entries.
//
// Format refuses what no file can express: an empty key, a key or value with
// surrounding whitespace or a line break, a key containing '=' or starting
// with '[', text that is not valid UTF-8 by systemd's rules, a section name
// with control characters, quotes or a backslash, and lines of LongLineMax
// bytes or more.
//
// Three corner cases of systemd's syntax are written faithfully: a value whose
// line would end in an unescaped backslash gets a trailing space (otherwise it
// would continue on the next line), a key starting with U+FEFF is indented by
// one space (otherwise the mark would be skipped), and one key starting with
// '#' or ';' per file is written behind a byte order mark (otherwise it would
// be a comment).
func (f *File) Format() ([]byte, error) {
	var b bytes.Buffer
	commentKeyWritten := false
	for i, s := range f.Sections {
		if !validUTF8(s.Name) || !safeSectionName(s.Name) || strings.IndexByte(s.Name, 0) >= 0 {
			return nil, fmt.Errorf("unitfile: section %q: name cannot be written", s.Name)
		}
		if len(s.Name)+2 >= LongLineMax {
			return nil, fmt.Errorf("unitfile: section header too long")
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("[" + s.Name + "]\n")
		for _, e := range s.Entries {
			line, err := formatEntry(s.Name, e)
			if err != nil {
				return nil, err
			}
			if k := e.Key[0]; k == '#' || k == ';' {
				// Only the first line that starts with a byte order mark has
				// it skipped; systemd keeps any later one.
				if commentKeyWritten {
					return nil, fmt.Errorf("unitfile: [%s] %s=: only one key per file can start with %q", s.Name, e.Key, k)
				}
				commentKeyWritten = true
				line = byteOrderMark + line
			} else if strings.HasPrefix(e.Key, byteOrderMark) {
				line = " " + line
			}
			if endsEscaped(line) {
				line += " "
			}
			if len(line) >= LongLineMax {
				return nil, fmt.Errorf("unitfile: [%s] %s=: line too long", s.Name, e.Key)
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}

// WriteTo writes Format's text to w.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	text, err := f.Format()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(text)
	return int64(n), err
}

func formatEntry(section string, e Entry) (string, error) {
	bad := func(what string) error {
		return fmt.Errorf("unitfile: [%s] %q: %s", section, e.Key, what)
	}
	switch {
	case e.Key == "":
		return "", bad("empty key")
	case strings.Trim(e.Key, whitespace) != e.Key:
		return "", bad("key has surrounding whitespace")
	case strings.ContainsAny(e.Key, "=\x00\n\r"):
		return "", bad("key contains '=' or a line break")
	case e.Key[0] == '[':
		return "", bad("key starts with '['")
	case strings.Trim(e.Value, whitespace) != e.Value:
		return "", bad("value has surrounding whitespace")
	case strings.ContainsAny(e.Value, "\x00\n\r"):
		return "", bad("value contains a line break")
	case !validUTF8(e.Key) || !validUTF8(e.Value):
		return "", bad("not valid UTF-8")
	}
	return e.Key + "=" + e.Value, nil
}
