package publish

import (
	"encoding/hex"
	"testing"
)

func hexOf(d [32]byte) string { return hex.EncodeToString(d[:]) }

const testUUID = "0123456789abcdef0123456789abcdef"

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Payload
		ok   bool
	}{
		{"imago-ref_1_" + testUUID + ".usr.raw", Payload{"imago-ref", "1", testUUID, Usr, None}, true},
		{"imago-ref_1.2_" + testUUID + ".usr-verity.raw.zst", Payload{"imago-ref", "1.2", testUUID, UsrVerity, Zstd}, true},
		{"my_os_20250101.3_" + testUUID + ".usr-verity-sig.raw.xz", Payload{"my_os", "20250101.3", testUUID, UsrVeritySig, XZ}, true},
		{"imago-ref_1.efi.gz", Payload{"imago-ref", "1", "", UKI, Gzip}, true},
		{"imago-ref_1.efi", Payload{"imago-ref", "1", "", UKI, None}, true},
		{"imago-ref_1.raw", Payload{}, false},          // the whole disk
		{"imago-ref_1.build.log", Payload{}, false},    // a log
		{"imago-ref_1.usr.raw", Payload{}, false},      // no UUID
		{"imago-ref_1_0123.usr.raw", Payload{}, false}, // short UUID
		{"imago-ref_1_" + testUUID[:31] + "g.usr.raw", Payload{}, false},
		{"imago-ref.efi", Payload{}, false},        // no version
		{"Imago_1.efi", Payload{}, false},          // upper-case image ID
		{"imago_1+2.efi", Payload{}, false},        // '+' in version
		{"_1.efi", Payload{}, false},               // empty ID
		{"imago_.efi", Payload{}, false},           // empty version
		{".imago_1.efi.tmp-123", Payload{}, false}, // temporary
		{".imago_1.efi", Payload{}, false},         // hidden
		{"SHA256SUMS", Payload{}, false},
		{"imago-ref_1.efi.bz2", Payload{}, false},
	} {
		got, ok := ParseName(tc.name)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseName(%q) = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
		if ok && got.Name() != tc.name {
			t.Errorf("ParseName(%q).Name() = %q", tc.name, got.Name())
		}
	}
}

func TestParseCompression(t *testing.T) {
	for _, s := range []string{"none", "gz", "xz", "zst"} {
		if c, err := ParseCompression(s); err != nil || string(c) != s {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"", "zstd", "gzip", "bz2"} {
		if _, err := ParseCompression(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzParseName checks that ParseName never panics and that what it
// accepts it can name again, unchanged.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"imago-ref_1_" + testUUID + ".usr.raw.zst", "a_b_1.efi", "x_1.efi.gz", "_.efi", "a__" + testUUID + ".usr.raw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, ok := ParseName(name)
		if !ok {
			return
		}
		if p.Name() != name {
			t.Fatalf("ParseName(%q).Name() = %q", name, p.Name())
		}
		if again, ok := ParseName(p.Name()); !ok || again != p {
			t.Fatalf("%q: %+v then %+v", name, p, again)
		}
	})
}
