package keys

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/imago-os/imago/format/efisig"
)

func TestGenerateWritesExactlyTheSet(t *testing.T) {
	s := sharedSet(t)
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Name()+" "+info.Mode().String())
	}
	want := []string{
		"KEK.auth -rw-r--r--", "KEK.crt -rw-r--r--", "KEK.esl -rw-r--r--", "KEK.key -rw-------",
		"PK.auth -rw-r--r--", "PK.crt -rw-r--r--", "PK.esl -rw-r--r--", "PK.key -rw-------",
		"db.auth -rw-r--r--", "db.crt -rw-r--r--", "db.esl -rw-r--r--", "db.key -rw-------",
		"import-pubring.gpg -rw-r--r--",
		"tpm2-pcr-private-key.pem -rw-------", "tpm2-pcr-public-key.pem -rw-r--r--",
		"update-signing.key -rw-------",
		"verity.crt -rw-r--r--", "verity.key -rw-------",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("files:\n got %q\nwant %q", got, want)
	}
	info, err := os.Stat(s.Dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, %v", info.Mode(), err)
	}
}

func checkCertificate(t *testing.T, c *x509.Certificate, cn string, eku []x509.ExtKeyUsage) {
	t.Helper()
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	switch {
	case !ok || pub.N.BitLen() != 2048:
		t.Errorf("%s: key %T, want RSA-2048", cn, c.PublicKey)
	case c.Subject.String() != "CN="+cn || c.Issuer.String() != "CN="+cn:
		t.Errorf("subject %s issuer %s, want CN=%s", c.Subject, c.Issuer, cn)
	case c.SignatureAlgorithm != x509.SHA256WithRSA:
		t.Errorf("%s: signature algorithm %v", cn, c.SignatureAlgorithm)
	case !c.NotBefore.Equal(setTime) || c.NotAfter.Year() != 9999:
		t.Errorf("%s: validity %v to %v", cn, c.NotBefore, c.NotAfter)
	case !c.BasicConstraintsValid || !c.IsCA:
		t.Errorf("%s: not CA:TRUE", cn)
	case c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign:
		t.Errorf("%s: key usage %v", cn, c.KeyUsage)
	case !slices.Equal(c.ExtKeyUsage, eku):
		t.Errorf("%s: extended key usage %v, want %v", cn, c.ExtKeyUsage, eku)
	case len(c.SubjectKeyId) != 20 || !bytes.Equal(c.SubjectKeyId, c.AuthorityKeyId):
		t.Errorf("%s: key identifiers %x %x", cn, c.SubjectKeyId, c.AuthorityKeyId)
	case c.CheckSignatureFrom(c) != nil:
		t.Errorf("%s: not self-signed: %v", cn, c.CheckSignatureFrom(c))
	}
}

func TestGeneratedSetContents(t *testing.T) {
	s := sharedSet(t)
	wantTime := efisig.Time{Year: 2025, Month: 3, Day: 4, Hour: 5, Minute: 6, Second: 7}
	for _, k := range s.SecureBootKeys() {
		var eku []x509.ExtKeyUsage
		if k.Name == DB {
			eku = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		}
		checkCertificate(t, k.Certificate, "test Secure Boot "+k.Name, eku)
		want, err := efisig.EncodeLists([]efisig.List{efisig.NewX509List(k.Certificate.Raw, s.Owner)})
		if err != nil || !bytes.Equal(k.SignatureList, want) {
			t.Errorf("%s: signature list is not the certificate under the owner GUID", k.Name)
		}
		av, err := efisig.ParseAuth(k.Auth)
		if err != nil {
			t.Fatal(err)
		}
		if av.Timestamp != wantTime || !bytes.Equal(av.Data, k.SignatureList) {
			t.Errorf("%s.auth: timestamp %v, data %d bytes", k.Name, av.Timestamp, len(av.Data))
		}
		vendor, _ := efisig.VendorOf(k.Name)
		signer := map[string]*x509.Certificate{PK: s.PK.Certificate, KEK: s.PK.Certificate, DB: s.KEK.Certificate}[k.Name]
		if _, err := av.Verify(k.Name, vendor, efisig.Attributes, []*x509.Certificate{signer}); err != nil {
			t.Errorf("%s.auth: %v", k.Name, err)
		}
	}
	checkCertificate(t, s.Verity.Certificate, "test verity signing", nil)
	if s.PCRKey.N.BitLen() != 2048 {
		t.Errorf("PCR key of %d bits", s.PCRKey.N.BitLen())
	}
	if s.Owner.IsZero() || s.Owner[6]>>4 != 4 {
		t.Errorf("owner GUID %s is not a random v4 UUID", s.Owner)
	}
	// Every key differs.
	seen := map[string]bool{}
	for _, k := range []*rsa.PrivateKey{s.PK.PrivateKey, s.KEK.PrivateKey, s.DB.PrivateKey, s.Verity.PrivateKey, s.PCRKey} {
		if seen[k.N.String()] {
			t.Error("two keys are the same")
		}
		seen[k.N.String()] = true
	}
}

func TestLoadMatchesGenerate(t *testing.T) {
	s := sharedSet(t)
	l, err := Load(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Owner != s.Owner || l.UpdateKeyFingerprint() != s.UpdateKeyFingerprint() ||
		!l.PCRKey.Equal(s.PCRKey) || !l.Verity.Certificate.Equal(s.Verity.Certificate) {
		t.Fatal("loaded set differs from the generated one")
	}
	for i, k := range l.SecureBootKeys() {
		g := s.SecureBootKeys()[i]
		if k.Name != g.Name || !k.Certificate.Equal(g.Certificate) || !k.PrivateKey.Equal(g.PrivateKey) ||
			!bytes.Equal(k.SignatureList, g.SignatureList) || !bytes.Equal(k.Auth, g.Auth) {
			t.Errorf("%s differs", g.Name)
		}
	}
}

func TestGenerateRefusesToOverwrite(t *testing.T) {
	s := sharedSet(t)
	before := snapshot(t, s.Dir)
	_, err := Generate(s.Dir, Options{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), filepath.Join(s.Dir, "PK.key")+" already exists") {
		t.Fatalf("error %v", err)
	}
	if !reflect.DeepEqual(snapshot(t, s.Dir), before) {
		t.Fatal("the set changed")
	}
	// One file of a set is enough to refuse, and nothing is written.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "import-pubring.gpg"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, Options{}); !errors.Is(err, ErrExists) {
		t.Fatalf("error %v", err)
	}
	if got := snapshot(t, dir); len(got) != 1 {
		t.Fatalf("wrote %d files", len(got))
	}
}

func TestGenerateForceReplaces(t *testing.T) {
	dir := copySet(t)
	old, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(extra, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files with other modes get the set's modes.
	if err := os.Chmod(filepath.Join(dir, "db.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Generate(dir, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Owner == old.Owner || s.PK.Certificate.Equal(old.PK.Certificate) || s.UpdateKeyFingerprint() == old.UpdateKeyFingerprint() {
		t.Fatal("--force kept old keys")
	}
	if _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, dir)
	if len(got) != len(Files())+1 || !strings.HasPrefix(got["db.key"], "-rw------- ") {
		t.Fatalf("after --force: %d files, db.key %.10s", len(got), got["db.key"])
	}
	if data, err := os.ReadFile(extra); err != nil || string(data) != "kept" {
		t.Fatal("--force touched a file outside the set")
	}
}

func TestLoadChecksConsistency(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(dir string) error
		want   string
	}{
		"missing file": {func(dir string) error { return os.Remove(filepath.Join(dir, "verity.crt")) }, "incomplete key set: missing [verity.crt]"},
		"list of another certificate": {func(dir string) error { return copyFile(dir, "KEK.esl", "db.esl") },
			"db.esl does not hold exactly the certificate of db.crt"},
		"auth of another variable": {func(dir string) error { return copyFile(dir, "KEK.auth", "PK.auth") }, "PK.auth does not carry PK.esl"},
		"key of another certificate": {func(dir string) error { return copyFile(dir, "PK.key", "verity.key") },
			"verity.key is not the key of"},
		"PCR public key": {func(dir string) error {
			return os.WriteFile(filepath.Join(dir, PCRPublicKeyFile), []byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"), 0o644)
		}, "tpm2-pcr-public-key.pem"},
		"keyring": {func(dir string) error { return os.WriteFile(filepath.Join(dir, UpdateKeyringFile), nil, 0o644) }, "import-pubring.gpg"},
		"corrupt auth": {func(dir string) error {
			path := filepath.Join(dir, "db.auth")
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			data[len(data)-300] ^= 1 // inside the certificate of db.esl
			return os.WriteFile(path, data, 0o644)
		}, "db.auth"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := copySet(t)
			if err := tc.change(dir); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func copyFile(dir, from, to string) error {
	data, err := os.ReadFile(filepath.Join(dir, from))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, to), data, 0o644)
}

func TestLoadOrGenerate(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "user", "keys")
	// Two builds starting at once end up with one set.
	var wg sync.WaitGroup
	sets := make([]*Set, 2)
	generated := make([]bool, 2)
	errs := make([]error, 2)
	for i := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sets[i], generated[i], errs[i] = LoadOrGenerate(dir)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if generated[0] == generated[1] || sets[0].Owner != sets[1].Owner {
		t.Fatalf("generated %v, owners %s %s", generated, sets[0].Owner, sets[1].Owner)
	}
	again, gen, err := LoadOrGenerate(dir)
	if err != nil || gen || again.Owner != sets[0].Owner {
		t.Fatalf("second call: generated %v, %v", gen, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("left %d entries beside the key directory", len(entries))
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %v", info.Mode())
	}

	// A directory with part of a set is not completed silently.
	partial := t.TempDir()
	if err := os.WriteFile(filepath.Join(partial, "PK.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrGenerate(partial); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("partial set: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		euid int
		env  map[string]string
		want string
	}{
		{0, map[string]string{"HOME": "/root", "XDG_CONFIG_HOME": "/root/.cfg"}, "/var/lib/imago/keys"},
		{1000, map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "/home/a/.cfg"}, "/home/a/.cfg/imago/keys"},
		{1000, map[string]string{"HOME": "/home/a"}, "/home/a/.config/imago/keys"},
		{1000, map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "relative"}, "/home/a/.config/imago/keys"},
		{1000, map[string]string{}, ""},
	} {
		got, err := defaultDir(tc.euid, env(tc.env))
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("defaultDir(%d, %v) = %q, %v; want %q", tc.euid, tc.env, got, err, tc.want)
		}
	}
}

func TestCommonNameChecked(t *testing.T) {
	for _, cn := range []string{"a<b", "new\nline", strings.Repeat("x", 41)} {
		if _, err := Generate(t.TempDir(), Options{CommonName: cn}); err == nil || !strings.Contains(err.Error(), "common name") {
			t.Errorf("%q: %v", cn, err)
		}
	}
}

func TestUpdateManifestSignature(t *testing.T) {
	s := sharedSet(t)
	manifest := []byte(strings.Repeat("0", 64) + "  imago_1.0.usr.raw\n")
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	sig, err := s.SignUpdateManifest(bytes.NewReader(manifest), at)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.SignUpdateManifest(bytes.NewReader(manifest), at)
	if err != nil || !bytes.Equal(sig, again) {
		t.Fatal("signing the same manifest at the same time gave other bytes")
	}
	// Signed before the key existed, the signature carries the key's
	// creation time instead.
	early, err := s.SignUpdateManifest(bytes.NewReader(manifest), setTime.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	atCreation, err := s.SignUpdateManifest(bytes.NewReader(manifest), setTime)
	if err != nil || !bytes.Equal(early, atCreation) {
		t.Fatalf("early signature: %v", err)
	}
	keyring, err := os.ReadFile(s.Path(UpdateKeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := s.UpdateKeyring(); err != nil || !bytes.Equal(k, keyring) {
		t.Fatal("UpdateKeyring differs from import-pubring.gpg")
	}
	fpr, err := VerifyUpdateManifest(bytes.NewReader(keyring), bytes.NewReader(manifest), bytes.NewReader(sig))
	if err != nil || fpr != s.UpdateKeyFingerprint() || len(fpr) != 40 {
		t.Fatalf("verify: %q, %v", fpr, err)
	}
	tampered := bytes.Replace(manifest, []byte("1.0"), []byte("1.1"), 1)
	if _, err := VerifyUpdateManifest(bytes.NewReader(keyring), bytes.NewReader(tampered), bytes.NewReader(sig)); err == nil {
		t.Fatal("verified a tampered manifest")
	}
	if _, err := VerifyUpdateManifest(bytes.NewReader(nil), bytes.NewReader(manifest), bytes.NewReader(sig)); err == nil {
		t.Fatal("verified with an empty keyring")
	}
}

func TestZeroSetDoesNotPanic(t *testing.T) {
	var s Set
	if s.UpdateKeyFingerprint() != "" {
		t.Error("fingerprint of no key")
	}
	if _, err := s.UpdateKeyring(); err == nil {
		t.Error("keyring of no key")
	}
	if _, err := s.SignUpdateManifest(strings.NewReader("x"), time.Time{}); err == nil {
		t.Error("signed with no key")
	}
}

// TestVerifyUpdateManifestClockBehind: a machine whose clock lags the
// publisher's accepts a manifest signed "in the future", with a key also
// created after the machine's now; an expired signature stays refused.
func TestVerifyUpdateManifestClockBehind(t *testing.T) {
	now := time.Now()
	key, err := newUpdateKey("clock test", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := encodeUpdateKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(strings.Repeat("0", 64) + "  imago_2.usr.raw\n")
	var sig bytes.Buffer
	if err := openpgp.DetachSign(&sig, key, bytes.NewReader(manifest), openpgpConfig(now.Add(2*time.Hour).Truncate(time.Second))); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyUpdateManifest(bytes.NewReader(keyring), bytes.NewReader(manifest), bytes.NewReader(sig.Bytes())); err != nil {
		t.Fatalf("signature from 2 hours ahead: %v", err)
	}

	old, err := newUpdateKey("expiry test", now.Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if keyring, err = encodeUpdateKeyring(old); err != nil {
		t.Fatal(err)
	}
	config := openpgpConfig(now.Add(-24 * time.Hour).Truncate(time.Second))
	config.SigLifetimeSecs = 3600
	sig.Reset()
	if err := openpgp.DetachSign(&sig, old, bytes.NewReader(manifest), config); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyUpdateManifest(bytes.NewReader(keyring), bytes.NewReader(manifest), bytes.NewReader(sig.Bytes()))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("signature expired 23 hours ago: %v", err)
	}
}
