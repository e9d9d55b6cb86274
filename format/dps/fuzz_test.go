package dps

import "testing"

// FuzzParseType checks that resolving any string never panics and that
// whatever resolves is consistent (and so are flag names) with the table: the UUID prints and
// parses back, and a named type is found again by its UUID and its name.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{"root", "usr-verity-sig", "root-secondary-verity", "root-amd64", "esp",
		"usr-x86-64-verity", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "4F68BCE3E8CD4DB196E7FBCAF984B709",
		"root--verity", "usr-sig", "bit-63", "no-auto"} {
		f.Add(s, "x86-64")
		f.Add(s, "arm64")
	}
	f.Fuzz(func(t *testing.T, s, native string) {
		if bit, err := ParseFlagName(s); err == nil {
			names := FlagNames(bit)
			if len(names) != 1 {
				t.Fatalf("flag %q gives bits %#x", s, bit)
			}
			if back, err := ParseFlagName(names[0]); err != nil || back != bit {
				t.Fatalf("flag %q named %q parses to %#x, %v", s, names[0], back, err)
			}
		}
		typ, err := ParseType(s, Arch(native))
		if err != nil {
			return
		}
		u, err := ParseUUID(typ.UUID.String())
		if err != nil || u != typ.UUID {
			t.Fatalf("UUID %s does not round-trip: %v", typ.UUID, err)
		}
		if typ.Name == "" {
			if _, ok := LookupUUID(typ.UUID); ok {
				t.Fatalf("%q resolved to an unnamed type although %s is known", s, typ.UUID)
			}
			return
		}
		if back, ok := LookupUUID(typ.UUID); !ok || back != typ {
			t.Fatalf("%q: LookupUUID gives %+v, want %+v", s, back, typ)
		}
		if back, ok := LookupName(typ.Name, ""); !ok || back != typ {
			t.Fatalf("%q: canonical name %q does not resolve to itself", s, typ.Name)
		}
	})
}
