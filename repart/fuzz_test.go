package repart_test

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/repart"
)

var fuzzErrPrefix = regexp.MustCompile(`^repart: fuzz\.conf:(\d+): `)

// fuzzSpecifiers makes specifier expansion independent of the machine.
func fuzzSpecifiers() *repart.Specifiers {
	v := map[byte]string{}
	for _, c := range "aAbBHlqmMovwWTV" {
		v[byte(c)] = "v" + string(c)
	}
	return &repart.Specifiers{Values: v}
}

// FuzzParseDefinition feeds arbitrary text to the definition parser. It
// must never panic; a refusal must be one line naming the file and a line
// that exists; an accepted definition must satisfy what systemd 252
// guarantees after reading one, and parse the same way again, also when
// written back in canonical form.
func FuzzParseDefinition(f *testing.F) {
	for _, s := range []string{
		"[Partition]\nType=root\n",
		"[Partition]\nType=esp\nLabel=%A_x\nSizeMinBytes=1M\nSizeMaxBytes=1G\nPaddingMinBytes=1\nPaddingMaxBytes=9\n",
		"[Partition]\nType=usr\nVerity=data\nVerityMatchKey=u\nFormat=erofs\nCopyFiles=/usr\nUUID=null\n",
		"[Partition]\nType=home\nWeight=0x10\nPaddingWeight=0b11\nPriority=-0o7\nFlags=0x8000000000000001\n",
		"[Partition]\nType=swap\nNoAuto=yes\nReadOnly=\nGrowFileSystem=0\nFactoryReset=on\nSplitName=-\n",
		"[Partition]\nType=8484680c-9521-48c6-9c11-b0720656f69e\nEncrypt=key-file+tpm2\nMakeDirectories=/a \"/b c\"\n",
		"[Partition]\nType=root\nCopyBlocks=auto\n[X-Foo]\nBar=1\n",
		"# comment\n[Partition]\nType=root\\\n-verity\nLabel=a\\\nb\n",
		"[Partition]\nType=root\nMinimize=best\n",
		"[Partition]\nType=root\nLabel=0123456789012345678901234567890123456789\n",
		"[Other]\nType=root\n",
		"\xef\xbb\xbf[Partition]\nType=tmp\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := repart.ParseOptions{Arch: dps.ArchX86_64, Specifiers: fuzzSpecifiers(), Signing: true}
		d, err := repart.ParseDefinitionFile("fuzz.conf", data, opts)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error has several lines: %q", msg)
			}
			m := fuzzErrPrefix.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("error does not name file and line: %q", msg)
			}
			line, _ := strconv.Atoi(m[1])
			// systemd ends lines at "\n", "\r", "\r\n" and NUL.
			lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + bytes.Count(data, []byte{0}) + 1
			if line < 1 || line > lines+1 {
				t.Fatalf("error names line %d of a %d-line file: %q", line, lines, msg)
			}
			return
		}
		checkDefinition(t, d)
		again, err := repart.ParseDefinitionFile("fuzz.conf", data, opts)
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Fatalf("second parse differs: %v", err)
		}
		text, ok := canonical(d)
		if !ok {
			return
		}
		back, err := repart.ParseDefinitionFile("fuzz.conf", []byte(text), opts)
		if err != nil {
			t.Fatalf("canonical form refused: %v\n%s", err, text)
		}
		if !sameSettings(d, back) {
			t.Fatalf("canonical form reads differently:\n%s\n%+v\n%+v", text, d, back)
		}
	})
}

func checkDefinition(t *testing.T, d *repart.Definition) {
	t.Helper()
	if d.Type.UUID.IsZero() {
		t.Fatal("accepted without Type=")
	}
	if d.Weight > repart.MaxWeight || d.PaddingWeight > repart.MaxWeight {
		t.Fatalf("weight out of range: %d %d", d.Weight, d.PaddingWeight)
	}
	for _, s := range []uint64{d.SizeMin, d.SizeMax, d.PaddingMin, d.PaddingMax} {
		if s != repart.SizeUnset && s%4096 != 0 {
			t.Fatalf("size %d not a multiple of 4096", s)
		}
	}
	if d.SizeMin != repart.SizeUnset && d.SizeMax != repart.SizeUnset && d.SizeMin > d.SizeMax {
		t.Fatal("SizeMinBytes > SizeMaxBytes accepted")
	}
	if d.HasLabel && (len(d.Label) > repart.LabelMax || gpt.CheckName(d.Label) != nil) {
		t.Fatalf("label %q accepted", d.Label)
	}
	if (d.Verity == repart.VerityOff) != (d.VerityMatchKey == "") {
		t.Fatal("Verity= and VerityMatchKey= inconsistent")
	}
	if d.CopyBlocks != "" && (d.Format != "" || len(d.CopyFiles) > 0 || len(d.MakeDirectories) > 0) {
		t.Fatal("CopyBlocks= combined with file system contents")
	}
	for _, p := range append(append([]string{}, d.MakeDirectories...), copyFilesPaths(d)...) {
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("relative path %q accepted", p)
		}
	}
}

func copyFilesPaths(d *repart.Definition) []string {
	var out []string
	for _, c := range d.CopyFiles {
		out = append(out, c.Source, c.Target)
	}
	return out
}

// canonical writes the settings of d as a definition, for the settings
// that have a plain spelling; ok is false when d holds something this
// simple writer cannot express.
func canonical(d *repart.Definition) (string, bool) {
	var b strings.Builder
	b.WriteString("[Partition]\n")
	fmt.Fprintf(&b, "Type=%s\n", d.Type.UUID)
	if d.HasLabel {
		if strings.ContainsAny(d.Label, "\\\n\r\"'") || strings.TrimSpace(d.Label) != d.Label {
			return "", false
		}
		fmt.Fprintf(&b, "Label=%s\n", strings.ReplaceAll(d.Label, "%", "%%"))
	}
	if d.HasUUID {
		if d.UUID.IsZero() {
			b.WriteString("UUID=null\n")
		} else {
			fmt.Fprintf(&b, "UUID=%s\n", d.UUID)
		}
	}
	fmt.Fprintf(&b, "Priority=%d\nWeight=%d\nPaddingWeight=%d\n", d.Priority, d.Weight, d.PaddingWeight)
	for _, s := range []struct {
		key string
		v   uint64
	}{{"SizeMinBytes", d.SizeMin}, {"SizeMaxBytes", d.SizeMax}, {"PaddingMinBytes", d.PaddingMin}, {"PaddingMaxBytes", d.PaddingMax}} {
		if s.v != repart.SizeUnset {
			fmt.Fprintf(&b, "%s=%d\n", s.key, s.v)
		}
	}
	fmt.Fprintf(&b, "FactoryReset=%t\nFlags=%d\n", d.FactoryReset, d.Flags)
	if d.CopyBlocks != "" || len(d.CopyFiles) > 0 || len(d.MakeDirectories) > 0 || d.Format != "" || d.SplitName != "%t" {
		return "", false
	}
	fmt.Fprintf(&b, "Encrypt=%s\nVerity=%s\n", d.Encrypt, d.Verity)
	if d.VerityMatchKey != "" {
		if strings.ContainsAny(d.VerityMatchKey, "\\\n\r") || strings.TrimSpace(d.VerityMatchKey) != d.VerityMatchKey {
			return "", false
		}
		fmt.Fprintf(&b, "VerityMatchKey=%s\n", d.VerityMatchKey)
	}
	for _, f := range []struct {
		key string
		v   *bool
	}{{"NoAuto", d.NoAuto}, {"ReadOnly", d.ReadOnly}, {"GrowFileSystem", d.GrowFileSystem}} {
		if f.v != nil {
			fmt.Fprintf(&b, "%s=%t\n", f.key, *f.v)
		}
	}
	return b.String(), true
}

// sameSettings compares what a definition means, not where it came from.
func sameSettings(a, b *repart.Definition) bool {
	x, y := *a, *b
	x.Path, y.Path, x.DropIns, y.DropIns = "", "", nil, nil
	return x.Type == y.Type && x.Label == y.Label && x.HasLabel == y.HasLabel && x.UUID == y.UUID &&
		x.HasUUID == y.HasUUID && x.Priority == y.Priority && x.Weight == y.Weight &&
		x.PaddingWeight == y.PaddingWeight && x.SizeMin == y.SizeMin && x.SizeMax == y.SizeMax &&
		x.PaddingMin == y.PaddingMin && x.PaddingMax == y.PaddingMax && x.FactoryReset == y.FactoryReset &&
		x.Encrypt == y.Encrypt && x.Verity == y.Verity && x.VerityMatchKey == y.VerityMatchKey &&
		x.Flags == y.Flags && x.Format == y.Format && x.WriteFlags() == y.WriteFlags() &&
		reflect.DeepEqual(x.NoAuto, y.NoAuto) && reflect.DeepEqual(x.ReadOnly, y.ReadOnly) &&
		reflect.DeepEqual(x.GrowFileSystem, y.GrowFileSystem)
}
