package efivar

import (
	"bytes"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary efivarfs file contents through every decoder
// and checks that what decodes re-encodes to something that decodes the
// same.
func FuzzDecode(f *testing.F) {
	for _, path := range []string{"testdata/efivars.tsv", "testdata/observed-boot.txt"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			for _, field := range strings.Fields(line) {
				if b, err := hex.DecodeString(field); err == nil && len(b) >= HeaderSize {
					f.Add(b)
				}
			}
		}
	}
	for _, seed := range []string{"", "07", "07000000", "0700000031", "07000000003d", "0600000000dc3dd83dd800de", "06000000610000000000620063"} {
		b, _ := hex.DecodeString(seed)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		v, err := Decode(file)
		if err != nil {
			if len(file) >= HeaderSize && len(file) <= MaxFileSize {
				t.Fatalf("Decode(%d bytes): %v", len(file), err)
			}
			return
		}
		if !bytes.Equal(v.Encode(), file) {
			t.Fatalf("Encode(Decode(x)) != x")
		}
		_ = v.Attributes.String()

		s := DecodeString(v.Data)
		enc, err := EncodeString(s)
		if err != nil {
			t.Fatalf("EncodeString(DecodeString(x)) = %v", err)
		}
		if again := DecodeString(enc); again != s {
			t.Fatalf("string round trip: %q != %q", again, s)
		}
		if b, err := ParseBoolean(s); err == nil {
			fr, err := DecodeFactoryReset(v.Data)
			if err != nil || fr != b {
				t.Fatalf("DecodeFactoryReset disagrees with ParseBoolean on %q", s)
			}
		}

		list := DecodeStringList(v.Data)
		encList, err := EncodeStringList(list)
		if err != nil {
			t.Fatalf("EncodeStringList(DecodeStringList(x)) = %v", err)
		}
		if again := DecodeStringList(encList); !reflect.DeepEqual(again, list) {
			t.Fatalf("list round trip: %q != %q", again, list)
		}
		for _, id := range DecodeEntries(v.Data) {
			if !EntryIDValid(id) {
				t.Fatalf("DecodeEntries returned invalid %q", id)
			}
		}

		if n, err := DecodeDecimal(v.Data); err == nil {
			if again, err := DecodeDecimal(EncodeDecimal(n)); err != nil || again != n {
				t.Fatalf("decimal round trip of %d: %d, %v", n, again, err)
			}
		}
		if n, err := DecodeUint64(v.Data); err == nil && !bytes.Equal(EncodeUint64(n), v.Data) {
			t.Fatalf("uint64 round trip of %x", v.Data)
		}

		if id, err := ParseFileName(string(v.Data)); err == nil {
			if name, err := id.FileName(); err != nil || !strings.EqualFold(name, string(v.Data)) {
				t.Fatalf("file name round trip: %q -> %q, %v", v.Data, name, err)
			}
		}
	})
}
