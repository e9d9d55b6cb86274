package build

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-os/imago/build/config"
	"github.com/imago-os/imago/build/reference"
	"github.com/imago-os/imago/dissect"
)

func TestDeriveSeedIsStableAndDistinct(t *testing.T) {
	a := deriveSeed("abc", "img_1")
	if a != deriveSeed("abc", "img_1") {
		t.Fatal("seed differs for equal inputs")
	}
	if a == deriveSeed("abc", "img_2") || a == deriveSeed("abd", "img_1") {
		t.Fatal("seed equal for different inputs")
	}
	if a[6]>>4 != 4 || a[8]>>6 != 2 {
		t.Fatalf("seed %s is not a version 4 UUID", a)
	}
	// Fixed value: a change of the derivation changes every UUID of every
	// build, which must be deliberate.
	if got, want := a.String(), "9601f37a-ee6c-48ee-9065-2632da11c472"; got != want {
		t.Fatalf("seed %s, want %s", got, want)
	}
}

func TestPrepareOutputRefusesWithoutForce(t *testing.T) {
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "img_1.raw"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "img_10.raw"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(out, "img_1.raw.vm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "img_1.raw.vm", "console.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b := &builder{label: "img_1", out: out}
	err := b.prepareOutput()
	if err == nil || !strings.Contains(err.Error(), "img_1.raw") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("prepareOutput = %v, want a refusal naming img_1.raw", err)
	}
	b.opts.Force = true
	if err := b.prepareOutput(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "img_1.raw")); !os.IsNotExist(err) {
		t.Fatalf("img_1.raw not removed: %v", err)
	}
	// Another version's output and a machine's state are left alone.
	for _, keep := range []string{"img_10.raw", "img_1.raw.vm/console.log"} {
		if _, err := os.Stat(filepath.Join(out, keep)); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, ".work")); err != nil || !fi.IsDir() {
		t.Fatalf(".work: %v", err)
	}
}

func TestIsOutputName(t *testing.T) {
	for name, want := range map[string]bool{
		"SHA256SUMS":      true,
		"SHA256SUMS.gpg":  true,
		"img_1.raw":       true,
		"img_1.efi":       true,
		"img_1.build.log": true,
		"img_1.raw.vm":    false,
		"img_10.raw":      false,
		"img_1_0123456789abcdef0123456789abcdef.usr.raw":            true,
		"img_1_0123456789abcdef0123456789abcdef.usr-verity.raw":     true,
		"img_1_0123456789abcdef0123456789abcdef.usr-verity-sig.raw": true,
		"img_1_0123456789abcdef0123456789abcdeg.usr.raw":            false,
		"img_1_0123456789abcdef.usr.raw":                            false,
		"img_1_0123456789abcdef0123456789abcdef.usr.raw.xz":         false,
	} {
		if got := isOutputName("img_1", name); got != want {
			t.Errorf("isOutputName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRunRefusesWithoutVersion(t *testing.T) {
	def := &config.Definition{Output: config.Output{ImageID: "img", Format: "disk"}}
	if _, err := Run(context.Background(), def, Options{}); err == nil || !strings.Contains(err.Error(), "image version") {
		t.Fatalf("Run = %v, want an error about the image version", err)
	}
}

// buildReference builds the reference definition into out; version, if
// not empty, replaces its ImageVersion=, and cmdline, if not empty, is
// added to its kernel command line.
func buildReference(t *testing.T, out, keysDir string, epoch time.Time, version, cmdline string) *Result {
	t.Helper()
	dir := t.TempDir()
	if _, err := reference.WriteTo(dir, false); err != nil {
		t.Fatal(err)
	}
	if cmdline != "" {
		conf := filepath.Join(dir, "imago.conf")
		data, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		const line = "KernelCommandLine=console=ttyS0 systemd.firstboot=off"
		if !strings.Contains(string(data), line) {
			t.Fatalf("%s has no line %q", conf, line)
		}
		if err := os.WriteFile(conf, []byte(strings.Replace(string(data), line, line+" "+cmdline, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	def, err := config.Load(dir, config.Options{ImageVersion: version, OutputDirectory: out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	res, err := Run(ctx, def, Options{SourceDateEpoch: &epoch, KeysDir: keysDir, ImagoBinary: imagoBinary(t), Progress: func(m string) {
		if !strings.HasPrefix(m, "I: ") {
			t.Log(m)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	if err := res.WriteSummary(&sum); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary:\n%s", sum.String())
	return res
}

// TestReproducible builds the reference image a second time with the same
// SOURCE_DATE_EPOCH and key set as the shared build and compares every
// artifact byte for byte. Slow: the first build of a cold cache
// bootstraps the Debian tree.
func TestReproducible(t *testing.T) {
	r1 := sharedReference(t)
	t.Logf("first build:\n%s", shared.log.String())
	out1 := r1.OutputDir
	start := time.Now()
	r2 := buildReference(t, t.TempDir(), shared.keys, testEpoch, "", "")
	t.Logf("second build: %s", time.Since(start).Round(time.Millisecond))

	if len(r1.Artifacts) != len(r2.Artifacts) {
		t.Fatalf("%d artifacts, then %d", len(r1.Artifacts), len(r2.Artifacts))
	}
	for i, a := range r1.Artifacts {
		b := r2.Artifacts[i]
		if a.Name != b.Name {
			t.Fatalf("artifact %d: %s, then %s", i, a.Name, b.Name)
		}
		if strings.HasSuffix(a.Name, ".build.log") {
			continue // records times
		}
		if a.SHA256 != b.SHA256 || a.Size != b.Size {
			t.Errorf("%s differs: %d bytes sha256 %s, then %d bytes sha256 %s", a.Name, a.Size, a.SHA256, b.Size, b.SHA256)
		} else {
			t.Logf("%s identical (%d bytes)", a.Name, a.Size)
		}
	}

	// The image passes the checks systemd makes before it uses /usr.
	cert := filepath.Join(out1, r1.Label+".verity.crt")
	trusted, err := readCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(r1.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	img, err := dissect.Open(f, fi.Size(), dissect.Options{Trusted: trusted, VerifyHashTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.VerityGroups) != 1 {
		t.Fatalf("%d verity groups, want 1", len(img.VerityGroups))
	}
	g := img.VerityGroups[0]
	if g.Failed() || g.UUIDs.Status != dissect.StatusOK || g.SignatureCheck.Status != dissect.StatusOK || g.HashTree.Status != dissect.StatusOK {
		t.Fatalf("verity group: %+v", g)
	}
	if g.RootHash != r1.RootHash {
		t.Fatalf("signed root hash %s, build says %s", g.RootHash, r1.RootHash)
	}
}

func readCertificate(path string) ([]*x509.Certificate, error) {
	block, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{c}, nil
}
