package sysupdate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFeaturesAndDropIns(t *testing.T) {
	root := t.TempDir()
	tr := func(features string) string {
		return "[Transfer]\n" + features + "\n[Source]\nType=regular-file\nPath=/s\nMatchPattern=a_@v\n[Target]\nType=regular-file\nPath=/d\n"
	}
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/a.feature"), "[Feature]\nDescription=A\nDocumentation=https://example.com/a\nEnabled=no\n")
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/b.feature"), "[Feature]\nDescription=B\nEnabled=yes\n")
	// Drop-ins across directories, applied in file-name order: 20 wins.
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/a.feature.d/10-on.conf"), "[Feature]\nEnabled=yes\n")
	writeFile(t, filepath.Join(root, "etc/sysupdate.d/a.feature.d/20-off.conf"), "[Feature]\nEnabled=no\n")
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/10-plain.transfer"), tr(""))
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/20-a.transfer"), tr("Features=a"))
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/30-ab.transfer"), tr("Features=a b"))
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/40-req.transfer"), tr("Features=b\nRequisiteFeatures=a"))
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/50-unknown.transfer"), tr("Features=nosuch"))
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/60-reqb.transfer"), tr("RequisiteFeatures=b"))
	fs, err := LoadFeatures(Options{Root: root})
	if err != nil || len(fs) != 2 {
		t.Fatalf("features %v %v", fs, err)
	}
	if fs[0].Name != "a" || fs[0].Enabled || fs[0].Description != "A" || !slices.Equal(fs[0].Documentation, []string{"https://example.com/a"}) {
		t.Errorf("a: %+v", fs[0])
	}
	if fs[1].Name != "b" || !fs[1].Enabled {
		t.Errorf("b: %+v", fs[1])
	}
	check := func(want map[string]bool) {
		t.Helper()
		ts, err := Load(Options{Root: root, Specifiers: &testSpec})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			if x.Enabled != want[x.ID] {
				t.Errorf("%s enabled = %v", x.ID, x.Enabled)
			}
		}
		if got := TransfersOf(ts, "a"); len(got) != 3 {
			t.Errorf("transfers of a: %d", len(got))
		}
	}
	check(map[string]bool{"10-plain": true, "20-a": false, "30-ab": true, "40-req": false, "50-unknown": false, "60-reqb": true})
	os.Remove(filepath.Join(root, "etc/sysupdate.d/a.feature.d/20-off.conf"))
	check(map[string]bool{"10-plain": true, "20-a": true, "30-ab": true, "40-req": true, "50-unknown": false, "60-reqb": true})

	// Errors name file and line.
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.d/b.feature"), "[Feature]\nEnabled=perhaps\n")
	if _, err := LoadFeatures(Options{Root: root}); err == nil || !strings.Contains(err.Error(), "b.feature:2") {
		t.Errorf("bad boolean: %v", err)
	}
	if _, err := ParseFeature("x.feature", []byte("[Feature]\nColour=red\n")); err == nil || !strings.Contains(err.Error(), "x.feature:2") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := ParseFeature("x.feature", []byte("[Other]\nA=b\n")); err == nil {
		t.Error("unknown section accepted")
	}
}

func TestComponents(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/sysupdate.d", "etc/sysupdate.foo.d", "run/sysupdate.bar.d", "usr/lib/sysupdate.foo.d", "usr/lib/sysupdate.d.bak"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	writeFile(t, filepath.Join(root, "usr/lib/sysupdate.file.d"), "not a directory")
	got, err := Components(root)
	if err != nil || !slices.Equal(got, []string{"bar", "foo"}) {
		t.Errorf("components %v %v", got, err)
	}
	if got, err := Components(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("empty root: %v %v", got, err)
	}
}

func FuzzParseFeature(f *testing.F) {
	f.Add([]byte("[Feature]\nDescription=x\nEnabled=yes\nDocumentation=https://a https://b\n"))
	f.Add([]byte("[Feature]\nAppStream=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ft, err := ParseFeature("f.feature", data)
		if err == nil && ft.Name != "f" {
			t.Fatalf("name %q", ft.Name)
		}
	})
}
