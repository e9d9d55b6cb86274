package osrelease

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics and that what it reads survives a
// write and a second read unchanged: Parse(Format(Parse(x))) == Parse(x),
// with no warnings the second time and Format stable.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
	}
	for _, v := range edgeValues {
		f.Add([]byte("A=" + v + "\n"))
		f.Add([]byte("A=" + FormatValue(v) + "\n"))
	}
	f.Add([]byte("NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n"))
	f.Add([]byte("A=\"\\\r\nB='\r'\\\r\n#\\\r;x\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		first, err := ParseBytes(data)
		if err != nil {
			return
		}
		out := first.Format()
		second, err := ParseBytes(out)
		if err != nil {
			t.Fatalf("cannot read our own output %q: %v", out, err)
		}
		if !reflect.DeepEqual(first.Fields(), second.Fields()) {
			t.Fatalf("round trip changed fields:\n%q\n%q\nvia %q", first.Fields(), second.Fields(), out)
		}
		if len(second.Warnings) != 0 {
			t.Fatalf("warnings reading our own output %q: %v", out, second.Warnings)
		}
		if again := second.Format(); !bytes.Equal(again, out) {
			t.Fatalf("Format not stable: %q then %q", out, again)
		}
	})
}
