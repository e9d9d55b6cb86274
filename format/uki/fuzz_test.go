package uki

import (
	"bytes"
	"testing"

	"github.com/imago-os/imago/format/pe"
)

// FuzzInspect feeds arbitrary bytes to Inspect and KernelRelease, and uses
// them as a stub for Build. Nothing may panic; Inspect must list every
// section the PE parser sees; and whatever Build makes from the input must
// inspect as a UKI holding exactly the contents it was given.
func FuzzInspect(f *testing.F) {
	f.Add(synthStub())
	f.Add(synthKernel())
	f.Add(stubWithLittleRoom())
	uki, err := Build(synthStub(), synthInput())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uki)
	f.Add(bzImageHeader("6.1.0-1-amd64 (someone@example.org) #1 SMP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = KernelRelease(data)
		info, err := Inspect(data)
		if err == nil {
			p, err := pe.Parse(data)
			if err != nil || len(p.Sections) != len(info.Sections) {
				t.Fatalf("Inspect saw %d sections, the parser %v", len(info.Sections), err)
			}
		}
		in := &Input{Linux: []byte("kernel"), Cmdline: []byte("quiet"), OSRelease: []byte("ID=fuzz\n")}
		out, err := Build(data, in)
		if err != nil {
			return
		}
		got, err := Inspect(out)
		if err != nil {
			t.Fatalf("built UKI does not inspect: %v", err)
		}
		if !got.HasLinux || got.Cmdline != "quiet" || got.OSRelease != "ID=fuzz\n" || got.Signed {
			t.Fatalf("built UKI: %+v", got)
		}
		p, _ := pe.Parse(out)
		if !bytes.Equal(p.Contents(p.Section(SectionLinux)), in.Linux) {
			t.Fatal(".linux contents differ")
		}
		if err := p.CheckLayout(); err != nil {
			t.Fatalf("built UKI layout: %v", err)
		}
	})
}
