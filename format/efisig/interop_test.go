package efisig

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/format/uuid"
	"github.com/imago-os/imago/internal/testutil"
)

// freshKey makes a new RSA-2048 key and self-signed certificate with
// openssl, as a user following efitools' documentation would, and returns
// their paths and the parsed pair.
func freshKey(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	testutil.Run(t, openssl, "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
		"-subj", "/CN=interop "+name+"/", "-keyout", keyPath, "-out", certPath)
	return certPath, keyPath
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInteropEfitools compares our signature lists and authenticated
// variables with efitools' for fresh keys, a random owner GUID and the
// current time, for a replacing and an appending write and a deletion,
// and has sig-list-to-certs read our lists back.
func TestInteropEfitools(t *testing.T) {
	certToESL := testutil.RequireTool(t, "cert-to-efi-sig-list", "efitools")
	signESL := testutil.RequireTool(t, "sign-efi-sig-list", "efitools")
	eslToCerts := testutil.RequireTool(t, "sig-list-to-certs", "efitools")
	dir := t.TempDir()
	owner, err := uuid.NewRandom(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	certs := map[string]*x509.Certificate{}
	paths := map[string][2]string{}
	var ours [][]byte
	for _, name := range []string{"PK", "KEK", "db"} {
		certPath, keyPath := freshKey(t, dir, name)
		paths[name] = [2]string{certPath, keyPath}
		cert, err := x509.ParseCertificate(pemBlock(t, readFile(t, certPath), "CERTIFICATE"))
		if err != nil {
			t.Fatal(err)
		}
		certs[name] = cert
		eslPath := filepath.Join(dir, name+".esl")
		testutil.Run(t, certToESL, "-g", owner.String(), certPath, eslPath)
		got, err := EncodeLists([]List{NewX509List(cert.Raw, owner)})
		if err != nil {
			t.Fatal(err)
		}
		if want := readFile(t, eslPath); !bytes.Equal(got, want) {
			t.Fatalf("%s.esl differs from cert-to-efi-sig-list's", name)
		}
		ours = append(ours, got)
	}

	// sig-list-to-certs reads a database of our three lists back.
	db := bytes.Join(ours, nil)
	dbPath := filepath.Join(dir, "three.esl")
	if err := os.WriteFile(dbPath, db, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, eslToCerts, dbPath, filepath.Join(dir, "back"))
	for i, name := range []string{"PK", "KEK", "db"} {
		if back := readFile(t, filepath.Join(dir, fmt.Sprintf("back-%d.der", i))); !bytes.Equal(back, certs[name].Raw) {
			t.Errorf("sig-list-to-certs certificate %d differs from %s.crt", i, name)
		}
	}

	timestamp := TimeOf(time.Now())
	signer := map[string]string{"PK": "PK", "KEK": "PK", "db": "KEK"}
	for _, name := range []string{"PK", "KEK", "db"} {
		for _, mode := range []string{"replace", "append", "delete"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				signerCert, signerKey := paths[signer[name]][0], paths[signer[name]][1]
				data := readFile(t, filepath.Join(dir, name+".esl"))
				attrs := Attributes
				args := []string{"-t", timestamp.String(), "-g", owner.String(), "-k", signerKey, "-c", signerCert}
				switch mode {
				case "append":
					attrs |= efivar.AppendWrite
					args = append(args, "-a")
				case "delete":
					data = nil
				}
				in := filepath.Join(dir, name+"-"+mode+".in")
				if err := os.WriteFile(in, data, 0o644); err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(dir, name+"-"+mode+".auth")
				testutil.Run(t, signESL, append(args, name, in, out)...)
				want := readFile(t, out)

				key := loadPKCS8(t, signerKey)
				av, err := Sign(name, mustVendor(t, name), attrs, timestamp, data, certs[signer[name]], key)
				if err != nil {
					t.Fatal(err)
				}
				got, err := av.Encode()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("differs from sign-efi-sig-list %v (%d vs %d bytes)", args, len(got), len(want))
				}

				// The bundle is sign-efi-sig-list -o's.
				bundlePath := filepath.Join(dir, name+"-"+mode+".tbs")
				bundleArgs := []string{"-o", "-t", timestamp.String()}
				if mode == "append" {
					bundleArgs = append(bundleArgs, "-a")
				}
				testutil.Run(t, signESL, append(bundleArgs, name, in, bundlePath)...)
				bundle, err := SignedBundle(name, mustVendor(t, name), attrs, timestamp, data)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(bundle, readFile(t, bundlePath)) {
					t.Fatal("SignedBundle differs from sign-efi-sig-list -o")
				}

				// Theirs verifies with our verifier.
				parsed, err := ParseAuth(want)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := parsed.Verify(name, mustVendor(t, name), attrs, []*x509.Certificate{certs[signer[name]]}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestInteropOpenSSLVerifiesAuth: openssl cms checks our PKCS#7 over our
// bundle, trusting only the signer's certificate.
func TestInteropOpenSSLVerifiesAuth(t *testing.T) {
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	cert, key := vectorKey(t, "KEK")
	esl := readTestdata(t, "db.esl")
	timestamp := TimeOf(time.Now())
	av, err := Sign("db", ImageSecurityDatabase, Attributes, timestamp, esl, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := SignedBundle("db", ImageSecurityDatabase, Attributes, timestamp, esl)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p7 := filepath.Join(dir, "db.p7")
	tbs := filepath.Join(dir, "db.tbs")
	if err := os.WriteFile(p7, wrapContentInfo(av.Signature), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tbs, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", p7, "-content", tbs,
		"-certfile", filepath.Join("testdata", "KEK.crt"), "-nointern", "-noverify", "-out", os.DevNull)
	// The PK certificate is not the signer.
	if _, err := testutil.RunErr(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", p7, "-content", tbs,
		"-certfile", filepath.Join("testdata", "PK.crt"), "-nointern", "-noverify", "-out", os.DevNull); err == nil {
		t.Fatal("openssl verified with the wrong certificate")
	}
}

func loadPKCS8(t *testing.T, path string) crypto.Signer {
	t.Helper()
	key, err := x509.ParsePKCS8PrivateKey(pemBlock(t, readFile(t, path), "PRIVATE KEY"))
	if err != nil {
		t.Fatal(err)
	}
	return key.(crypto.Signer)
}
