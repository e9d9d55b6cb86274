package measure

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// JSONFormat selects one of the layouts systemd's JSON writer produces.
type JSONFormat int

const (
	// JSONShort is one line with no spaces, then a newline (--json=short).
	JSONShort JSONFormat = iota
	// JSONPretty indents with tabs, one member or element per line, with
	// " : " between key and value, then a newline (--json=pretty).
	JSONPretty
	// JSONShortNoNewline is JSONShort without the final newline: what
	// systemd-measure sign prints for --json=off.
	JSONShortNoNewline
)

// jsonMember is one key and value of a JSON object; objects keep their
// members in order, as systemd's JSON variants do.
type jsonMember struct {
	key   string
	value any
}

// jsonObject and jsonArray are the containers of the tiny JSON tree the
// writer below prints; the scalars are string and int.
type (
	jsonObject []jsonMember
	jsonArray  []any
)

// encodeJSON prints v the way systemd 252's json_variant_dump does for the
// given format.
func encodeJSON(v any, f JSONFormat) []byte {
	var b bytes.Buffer
	writeJSON(&b, v, f == JSONPretty, "")
	if f != JSONShortNoNewline {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func writeJSON(b *bytes.Buffer, v any, pretty bool, prefix string) {
	inner := prefix + "\t"
	switch v := v.(type) {
	case string:
		writeJSONString(b, v)
	case int:
		b.WriteString(strconv.Itoa(v))
	case jsonArray:
		if len(v) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString(choose(pretty, "[\n", "["))
		for i, e := range v {
			if i > 0 {
				b.WriteString(choose(pretty, ",\n", ","))
			}
			if pretty {
				b.WriteString(inner)
			}
			writeJSON(b, e, pretty, inner)
		}
		if pretty {
			b.WriteString("\n" + prefix)
		}
		b.WriteByte(']')
	case jsonObject:
		if len(v) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString(choose(pretty, "{\n", "{"))
		for i, m := range v {
			if i > 0 {
				b.WriteString(choose(pretty, ",\n", ","))
			}
			if pretty {
				b.WriteString(inner)
			}
			writeJSONString(b, m.key)
			b.WriteString(choose(pretty, " : ", ":"))
			writeJSON(b, m.value, pretty, inner)
		}
		if pretty {
			b.WriteString("\n" + prefix)
		}
		b.WriteByte('}')
	default:
		// Only the types above are ever built.
		fmt.Fprintf(b, "%q", fmt.Sprint(v))
	}
}

// choose returns prettyText when pretty and shortText otherwise.
func choose(pretty bool, prettyText, shortText string) string {
	if pretty {
		return prettyText
	}
	return shortText
}

// writeJSONString quotes s as systemd does: backslash escapes for '"', '\\'
// and \b \f \n \r \t, \u00XX (lower-case hex) for the other control
// characters below 0x20, and every other byte as it is.
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				fmt.Fprintf(b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// validJSONString reports whether systemd's JSON layer accepts s as a string:
// well-formed UTF-8 (no overlong forms, no surrogates, nothing above
// U+10FFFF) without the Unicode noncharacters U+FDD0…U+FDEF and U+xxFFFE/
// U+xxFFFF.
func validJSONString(s string) bool {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			// A genuine U+FFFD is fine; a decoding error is not.
			if !utf8.ValidString(s) {
				return false
			}
		case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
			return false
		}
	}
	return true
}
