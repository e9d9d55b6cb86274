package measure

import (
	"encoding/hex"
	"fmt"
	"io"
)

// WriteText prints c as systemd-measure calculate does without --json: for
// each phase a comment line "# PCR[11] Phase <PHASE>" (":" for the empty
// phase) on stderr, then one line "11:BANK=HEX" per bank on stdout. The
// comment goes to stderr so that stdout stays machine-readable.
func (c *Calculation) WriteText(stdout, stderr io.Writer) error {
	for i, p := range c.Phases {
		name := p.String()
		if name == "" {
			name = ":"
		}
		if _, err := fmt.Fprintf(stderr, "# PCR[%d] Phase <%s>\n", PCR, name); err != nil {
			return err
		}
		for _, b := range c.Banks {
			if i >= len(b.Values) {
				return fmt.Errorf("measure: bank %s has no value for phase %q", b.Bank.Name, name)
			}
			if _, err := fmt.Fprintf(stdout, "%d:%s=%s\n", PCR, b.Bank.Name, hex.EncodeToString(b.Values[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

// EncodeJSON returns c as systemd-measure calculate --json=… prints it: an
// object with one member per bank, each an array with one object per phase
// holding "phase" (left out for the empty phase), "pcr" and "hash" (hex).
// Like systemd, it refuses a phase that is not valid UTF-8 (or holds a
// Unicode noncharacter), since JSON strings cannot carry it.
func (c *Calculation) EncodeJSON(f JSONFormat) ([]byte, error) {
	var root jsonObject
	for _, b := range c.Banks {
		var entries jsonArray
		for _, v := range b.Values {
			var e jsonObject
			if name := v.Phase.String(); name != "" {
				if !validJSONString(name) {
					return nil, fmt.Errorf("measure: phase %q is not valid UTF-8 text", name)
				}
				e = append(e, jsonMember{"phase", name})
			}
			e = append(e, jsonMember{"pcr", PCR}, jsonMember{"hash", hex.EncodeToString(v.Value)})
			entries = append(entries, e)
		}
		root = append(root, jsonMember{b.Bank.Name, entries})
	}
	return encodeJSON(root, f), nil
}
