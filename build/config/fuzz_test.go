package config

import (
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/imago-os/imago/build/reference"
)

// FuzzParseDefinition loads arbitrary bytes as imago.conf (beside a small
// tree the paths may name). It must never panic, and whatever loads must
// survive the canonical round trip: Canonical loads back to an equal
// Definition and gives the same text again.
func FuzzParseDefinition(f *testing.F) {
	ref, err := fs.ReadFile(reference.FS(), "imago.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ref)
	for _, s := range []string{
		"[Output]\n",
		"[Distribution]\nRelease=trixie\nArchitecture=arm64\nSnapshot=20250101T000000Z\nRepositories=\n",
		"[Content]\nPackages=a,b c\nPackages=\nPackages=d\nExtraTrees=\"tree dir\":/opt\nKernelCommandLine=a=\"b c\" d\\e\n",
		"[Content]\nRootPassword=hashed:\nRemoveFiles='/x y' /z*\nPostInstallationScripts=run.sh\n",
		"[Validation]\nSecureBootKey=k\nSecureBootCertificate=k\nSign=no\nChecksum=no\nKey=k\n",
		"[Output]\nImageId=a\nImageVersion=1.0\nOutputDirectory=\"/o u t\"\n[Build]\nCacheDirectory=c\n",
		"[Output]\nImageId=x\\\n y\n",
		"\xef\xbb\xbf[Content]\n#c\n;c\nWithRecommends=on\nSourceDateEpoch=42\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"imago.conf":    {Data: data},
			"tree dir/file": {Data: []byte("x")},
			"extra/f":       {Data: []byte("x")},
			"k":             {Data: []byte("key")},
			"run.sh":        {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		}
		d, err := LoadFS(fsys, "/fuzz/def", Options{})
		if err != nil {
			return
		}
		text, err := d.Canonical()
		if err != nil {
			t.Fatalf("canonical form of a loaded definition: %v", err)
		}
		fsys["imago.conf"] = &fstest.MapFile{Data: text}
		d2, err := LoadFS(fsys, "/fuzz/def", Options{})
		if err != nil {
			t.Fatalf("canonical form does not load: %v\n%s", err, text)
		}
		text2, err := d2.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if string(text) != string(text2) {
			t.Fatalf("canonical form changed:\n%s\n---\n%s", text, text2)
		}
		d.fsys, d2.fsys = nil, nil
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("canonical round trip changed the definition:\n%+v\n%+v", d, d2)
		}
	})
}
