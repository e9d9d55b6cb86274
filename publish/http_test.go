package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/keys"
	"github.com/imago-os/imago/sysupdate"
)

// transfers are the reference image's sysupdate.d sources, pointed at
// a test server.
var transfers = map[string]string{
	"50-usr.conf": `[Source]
Type=url-file
Path=%[1]s
MatchPattern=%%M_@v_@u.usr.raw %%M_@v_@u.usr.raw.gz %%M_@v_@u.usr.raw.xz %%M_@v_@u.usr.raw.zst
[Target]
Type=partition
Path=auto
MatchPattern=%%M_@v
MatchPartitionType=usr
`,
	"60-usr-verity.conf": `[Source]
Type=url-file
Path=%[1]s
MatchPattern=%%M_@v_@u.usr-verity.raw %%M_@v_@u.usr-verity.raw.gz %%M_@v_@u.usr-verity.raw.xz %%M_@v_@u.usr-verity.raw.zst
[Target]
Type=partition
Path=auto
MatchPattern=%%M_@v
MatchPartitionType=usr-verity
`,
	"70-usr-verity-sig.conf": `[Source]
Type=url-file
Path=%[1]s
MatchPattern=%%M_@v_@u.usr-verity-sig.raw %%M_@v_@u.usr-verity-sig.raw.gz %%M_@v_@u.usr-verity-sig.raw.xz %%M_@v_@u.usr-verity-sig.raw.zst
[Target]
Type=partition
Path=auto
MatchPattern=%%M_@v
MatchPartitionType=usr-verity-sig
`,
	"90-uki.conf": `[Source]
Type=url-file
Path=%[1]s
MatchPattern=%%M_@v.efi %%M_@v.efi.gz %%M_@v.efi.xz %%M_@v.efi.zst
[Target]
Type=regular-file
Path=/EFI/Linux
PathRelativeTo=boot
MatchPattern=%%M_@v+@l-@d.efi %%M_@v+@l.efi %%M_@v.efi
`,
}

func httpGet(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return data
}

// TestServedDirectory serves a publication directory over loopback HTTP
// and reads it as systemd-sysupdate does: the manifest with sysupdate's
// syntax, its signature against the keyring, and every transfer's
// instances and their digests.
func TestServedDirectory(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := makeBuild(t, "imago-ref", "1"), makeBuild(t, "imago-ref", "2")
	mustRun(t, dir, Options{}, v1)
	mustRun(t, dir, Options{Compression: None}, v2)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	m, err := sysupdate.FetchManifest(ctx, client, srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 8 {
		t.Errorf("the served SHA256SUMS lists %d files, want 8", m.Len())
	}
	manifest := httpGet(t, client, srv.URL+"/"+ManifestName)
	sig := httpGet(t, client, srv.URL+"/"+SignatureName)
	ring, err := os.ReadFile(testKeys(t).Path(keys.UpdateKeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.VerifyUpdateManifest(bytes.NewReader(ring), bytes.NewReader(manifest), bytes.NewReader(sig)); err != nil {
		t.Errorf("the served SHA256SUMS.gpg: %v", err)
	}
	// The check can fail: another manifest does not verify.
	if _, err := keys.VerifyUpdateManifest(bytes.NewReader(ring), bytes.NewReader(append(manifest, '\n')), bytes.NewReader(sig)); err == nil {
		t.Error("the signature verifies a changed manifest")
	}

	defs := t.TempDir()
	for name, text := range transfers {
		if err := os.WriteFile(filepath.Join(defs, name), fmt.Appendf(nil, text, srv.URL+"/"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := sysupdate.Load(sysupdate.Options{Definitions: defs, Specifiers: &sysupdate.Specifiers{ImageID: "imago-ref"}, Arch: dps.ArchX86_64})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 4 {
		t.Fatalf("%d transfers", len(ts))
	}
	builds := map[string]*fakeBuild{"1": v1, "2": v2}
	for i, tr := range ts {
		kind := kinds[i]
		// The keyring makes sysupdate check SHA256SUMS.gpg itself.
		d, err := tr.SourceInstances(ctx, sysupdate.Env{HTTPClient: client, Keyring: testKeys(t).Path(keys.UpdateKeyringFile)})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Instances) != 2 || d.Instances[0].Version() != "2" || d.Instances[1].Version() != "1" {
			t.Fatalf("%s: %d instances", tr.ID, len(d.Instances))
		}
		for _, in := range d.Instances {
			b := builds[in.Version()]
			want := b.payloadOf(t, kind)
			p, _ := ParseName(in.Name)
			if p.Uncompressed().Name() != want {
				t.Errorf("%s: instance %s, want %s", tr.ID, in.Name, want)
			}
			if kind != UKI && (!in.Fields.HasPartitionUUID || hex.EncodeToString(in.Fields.PartitionUUID[:]) != p.UUID) {
				t.Errorf("%s: %s: partition UUID %x", tr.ID, in.Name, in.Fields.PartitionUUID)
			}
			// What systemd-pull checks: the bytes as downloaded.
			data := httpGet(t, client, in.Path)
			if sha256.Sum256(data) != in.Fields.SHA256 {
				t.Errorf("%s: the download does not match SHA256SUMS", in.Path)
			}
			local := filepath.Join(t.TempDir(), in.Name)
			if err := os.WriteFile(local, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(decompress(t, local, p.Compression), b.payloads[want]) {
				t.Errorf("%s does not decompress to the build's %s", in.Path, want)
			}
		}
	}

	// A signature of something else makes sysupdate refuse the source.
	other, err := testSigner(t).Sign(bytes.NewReader([]byte("other\n")), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SignatureName), other, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ts[0].SourceInstances(ctx, sysupdate.Env{HTTPClient: client, Keyring: testKeys(t).Path(keys.UpdateKeyringFile)}); err == nil {
		t.Error("sysupdate accepted a signature of another manifest")
	}
}
