package debian

import (
	"strings"
	"testing"
	"time"
)

func testSpec() Spec {
	epoch := time.Unix(1700000000, 0)
	return Spec{
		Release:         "bookworm",
		Sources:         Sources("http://deb.debian.org/debian", "http://deb.debian.org/debian-security", "bookworm", nil),
		Architecture:    "amd64",
		Packages:        []string{"systemd", "dbus", "systemd"},
		SourceDateEpoch: &epoch,
	}
}

func TestNormalized(t *testing.T) {
	n, err := testSpec().normalized()
	if err != nil {
		t.Fatal(err)
	}
	if n.Variant != "minbase" {
		t.Errorf("variant %q", n.Variant)
	}
	if got := strings.Join(n.Packages, " "); got != "dbus systemd" {
		t.Errorf("packages %q", got)
	}
	var lines []string
	for _, s := range n.Sources {
		lines = append(lines, s.Line())
	}
	want := "deb http://deb.debian.org/debian bookworm main|deb http://deb.debian.org/debian bookworm-updates main|deb http://deb.debian.org/debian-security bookworm-security main"
	if got := strings.Join(lines, "|"); got != want {
		t.Errorf("sources %q", got)
	}
}

func TestNormalizedRejects(t *testing.T) {
	for name, change := range map[string]func(*Spec){
		"variant":         func(s *Spec) { s.Variant = "extract" },
		"release":         func(s *Spec) { s.Release = "--help" },
		"architecture":    func(s *Spec) { s.Architecture = "" },
		"no sources":      func(s *Spec) { s.Sources = nil },
		"file URI":        func(s *Spec) { s.Sources[0].URI = "file:///srv/mirror" },
		"space in URI":    func(s *Spec) { s.Sources[0].URI = "http://a b" },
		"flat suite":      func(s *Spec) { s.Sources[0].Suite = "./" },
		"component":       func(s *Spec) { s.Sources[0].Components = []string{"main contrib"} },
		"option package":  func(s *Spec) { s.Packages = []string{"--mode=root"} },
		"comma package":   func(s *Spec) { s.Packages = []string{"a,b"} },
		"pattern package": func(s *Spec) { s.Packages = []string{"?essential"} },
	} {
		s := testSpec()
		s.Sources = append([]Source(nil), s.Sources...)
		change(&s)
		if _, err := s.normalized(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s := testSpec()
	s.Packages = []string{"libtss2-esys-3.0.2-0", "systemd=252.39-1~deb12u2", "linux-image-amd64/bookworm-updates", "libc6:amd64", "initramfs-tools-", "g++"}
	if _, err := s.normalized(); err != nil {
		t.Errorf("apt package syntax rejected: %v", err)
	}
}

func TestKey(t *testing.T) {
	base, err := testSpec().normalized()
	if err != nil {
		t.Fatal(err)
	}
	k := base.key()
	if len(k) != 64 {
		t.Fatalf("key %q", k)
	}
	// The order and repetition of packages do not matter.
	s := testSpec()
	s.Packages = []string{"dbus", "systemd"}
	if n, _ := s.normalized(); n.key() != k {
		t.Error("package order changes the key")
	}
	// Every input does.
	later := time.Unix(1700000001, 0)
	for name, change := range map[string]func(*Spec){
		"packages":     func(s *Spec) { s.Packages = append(s.Packages, "udev") },
		"variant":      func(s *Spec) { s.Variant = "apt" },
		"architecture": func(s *Spec) { s.Architecture = "arm64" },
		"mirror": func(s *Spec) {
			s.Sources = Sources("http://ftp.de.debian.org/debian", "http://deb.debian.org/debian-security", "bookworm", nil)
		},
		"components": func(s *Spec) {
			s.Sources = Sources("http://deb.debian.org/debian", "http://deb.debian.org/debian-security", "bookworm", []string{"main", "contrib"})
		},
		"recommends":  func(s *Spec) { s.WithRecommends = true },
		"valid-until": func(s *Spec) { s.IgnoreValidUntil = true },
		"epoch":       func(s *Spec) { s.SourceDateEpoch = &later },
		"no epoch":    func(s *Spec) { s.SourceDateEpoch = nil },
		"release":     func(s *Spec) { s.Release = "trixie" },
	} {
		s := testSpec()
		change(&s)
		n, err := s.normalized()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n.key() == k {
			t.Errorf("%s does not change the key", name)
		}
	}
}

func TestMmdebstrapArgs(t *testing.T) {
	s := testSpec()
	s.WithRecommends = true
	n, err := s.normalized()
	if err != nil {
		t.Fatal(err)
	}
	args := n.mmdebstrapArgs("/cache/x/rootfs.tar")
	want := []string{
		"--mode=unshare", "--format=tar", "--variant=minbase", "--architectures=amd64",
		"--include=dbus,systemd", `--aptopt=Apt::Install-Recommends "true"`,
		"--essential-hook=" + stubInitrdTools, "--customize-hook=" + restoreInitrdTools,
		"--customize-hook=" + copyOutState, "--customize-hook=" + dropHostFiles,
		"--", "bookworm", "/cache/x/rootfs.tar",
		"deb http://deb.debian.org/debian bookworm main",
		"deb http://deb.debian.org/debian bookworm-updates main",
		"deb http://deb.debian.org/debian-security bookworm-security main",
	}
	if strings.Join(args, "\n") != strings.Join(want, "\n") {
		t.Fatalf("args:\n%s\nwant:\n%s", strings.Join(args, "\n"), strings.Join(want, "\n"))
	}
}

func TestDefaultPackages(t *testing.T) {
	got := strings.Join(DefaultPackages("arm64"), " ")
	for _, p := range []string{"systemd", "linux-image-arm64", "libtss2-esys-3.0.2-0", "libtss2-tcti-device0", "dracut", "btrfs-progs", "systemd-boot-efi"} {
		if !strings.Contains(" "+got+" ", " "+p+" ") {
			t.Errorf("DefaultPackages lacks %s: %s", p, got)
		}
	}
	s := testSpec()
	s.Packages = DefaultPackages("amd64")
	if _, err := s.normalized(); err != nil {
		t.Fatal(err)
	}
}
