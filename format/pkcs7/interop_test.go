package pkcs7

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// opensslSign runs `openssl smime -sign -binary -outform DER` with extra
// arguments and returns the message.
func opensslSign(t *testing.T, s *testSigner, content []byte, args ...string) []byte {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "content"), filepath.Join(dir, "msg.der")
	if err := os.WriteFile(in, content, 0o644); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"smime", "-sign", "-binary", "-in", in, "-inkey", s.keyPath, "-signer", s.certPath,
		"-outform", "DER", "-out", out}, args...)
	testutil.Run(t, openssl, argv...)
	der, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// opensslVerify checks a detached message with `openssl smime -verify` and
// `openssl cms -verify`, trusting only the signer's certificate the way
// systemd does (no chain, embedded certificates ignored), and with
// `openssl smime -verify -CAfile` building the one-certificate chain.
func opensslVerify(t *testing.T, s *testSigner, der, content []byte) {
	t.Helper()
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	msg, in := filepath.Join(dir, "msg.der"), filepath.Join(dir, "content")
	if err := os.WriteFile(msg, der, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, content, 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"-verify", "-binary", "-inform", "DER", "-in", msg, "-content", in, "-out", os.DevNull}
	testutil.Run(t, openssl, append([]string{"smime"}, append(common, "-noverify", "-nointern", "-certfile", s.certPath)...)...)
	testutil.Run(t, openssl, append([]string{"cms"}, append(common, "-noverify", "-nointern", "-certfile", s.certPath)...)...)
	testutil.Run(t, openssl, append([]string{"smime"}, append(common, "-CAfile", s.certPath, "-purpose", "any")...)...)
}

func TestInteropByteIdenticalToOpenSSL(t *testing.T) {
	testutil.RequireTool(t, "openssl", "openssl")
	s := newTestSigner(t, "rsa2048")
	extra := newTestSigner(t, "p256")
	content := []byte(testRootHash)
	cases := []struct {
		name    string
		args    []string
		opts    SignOptions
		copyTim bool // copy OpenSSL's signingTime attribute, the one input we cannot choose
		// The smime app adds -certfile certificates before the signer's;
		// the PKCS7_sign library call (systemd's) and the cms app put the
		// signer first, as Sign does. Such messages are compared with the
		// certificate order ignored.
		anyCertOrder bool
	}{
		{"noattr detached (systemd-repart)", []string{"-noattr"}, SignOptions{Detached: true}, false, false},
		{"noattr embedded", []string{"-noattr", "-nodetach"}, SignOptions{}, false, false},
		{"noattr extra certificate", []string{"-noattr", "-certfile", extra.certPath}, SignOptions{Detached: true, ExtraCertificates: []*x509.Certificate{extra.cert}}, false, true},
		{"noattr sha384", []string{"-noattr", "-md", "sha384"}, SignOptions{Detached: true, Hash: crypto.SHA384}, false, false},
		{"attributes sha512", []string{"-nosmimecap", "-md", "sha512"}, SignOptions{Detached: true, SignedAttributes: true, Hash: crypto.SHA512}, true, false},
		{"noattr nocerts", []string{"-noattr", "-nocerts"}, SignOptions{Detached: true, NoCertificates: true}, false, false},
		{"attributes detached", []string{"-nosmimecap"}, SignOptions{Detached: true, SignedAttributes: true}, true, false},
		{"attributes embedded", []string{"-nosmimecap", "-nodetach"}, SignOptions{SignedAttributes: true}, true, false},
		{"attributes with S/MIME capabilities", nil, SignOptions{Detached: true, SignedAttributes: true}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := opensslSign(t, s, content, c.args...)
			opts := c.opts
			if c.copyTim {
				// Every attribute OpenSSL added besides the two computed ones.
				for _, a := range mustParse(t, want).Signers[0].SignedAttributes {
					if !a.Type.Equal(oidAttributeContentType) && !a.Type.Equal(oidAttributeMessageDigest) {
						opts.ExtraSignedAttributes = append(opts.ExtraSignedAttributes, a)
					}
				}
			}
			got, err := Sign(content, s.cert, s.key, opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.anyCertOrder {
				a, b := mustParse(t, got), mustParse(t, want)
				slices.SortFunc(a.RawCertificates, bytes.Compare)
				slices.SortFunc(b.RawCertificates, bytes.Compare)
				if da, db := describe(a), describe(b); da != db || !bytes.Equal(a.Signers[0].Signature, b.Signers[0].Signature) {
					t.Fatalf("differs from openssl beyond certificate order:\nours    %s\nopenssl %s", da, db)
				}
			} else if !bytes.Equal(got, want) {
				t.Fatalf("differs from openssl:\nours    %s\nopenssl %s", hex.EncodeToString(got), hex.EncodeToString(want))
			}
			sd := mustParse(t, want)
			trusted := []*x509.Certificate{s.cert}
			if opts.Detached {
				_, err = sd.VerifyDetached(content, trusted)
			} else {
				_, err = sd.Verify(trusted)
			}
			if err != nil {
				t.Errorf("our Verify rejects openssl's message: %v", err)
			}
		})
	}
}

func TestInteropECDSA(t *testing.T) {
	testutil.RequireTool(t, "openssl", "openssl")
	for _, kind := range []string{"p256", "p384"} {
		t.Run(kind, func(t *testing.T) {
			s := newTestSigner(t, kind)
			content := []byte(testRootHash)
			for _, opts := range []SignOptions{{Detached: true}, {Detached: true, SignedAttributes: true}} {
				ours, err := Sign(content, s.cert, s.key, opts)
				if err != nil {
					t.Fatal(err)
				}
				opensslVerify(t, s, ours, content)
			}
			// OpenSSL's ECDSA signatures are randomized; everything else must
			// equal ours, so compare the parsed messages without the signature.
			theirs := mustParse(t, opensslSign(t, s, content, "-noattr"))
			if _, err := theirs.VerifyDetached(content, []*x509.Certificate{s.cert}); err != nil {
				t.Fatalf("our Verify rejects openssl's ECDSA message: %v", err)
			}
			ours, _ := Sign(content, s.cert, s.key, SignOptions{Detached: true})
			mine := mustParse(t, ours)
			mine.Raw, theirs.Raw = nil, nil
			mine.Signers[0].Signature, theirs.Signers[0].Signature = nil, nil
			if a, b := describe(mine), describe(theirs); a != b {
				t.Errorf("structure differs:\nours    %s\nopenssl %s", a, b)
			}
		})
	}
}

func TestInteropOpenSSLAcceptsRSA(t *testing.T) {
	testutil.RequireTool(t, "openssl", "openssl")
	s := newTestSigner(t, "rsa2048")
	content := []byte(testRootHash)
	for _, opts := range []SignOptions{{Detached: true}, {Detached: true, SignedAttributes: true}} {
		ours, err := Sign(content, s.cert, s.key, opts)
		if err != nil {
			t.Fatal(err)
		}
		opensslVerify(t, s, ours, content)
	}
}

// describe renders a parsed message for structural comparison.
func describe(sd *SignedData) string {
	var b bytes.Buffer
	b.WriteString(hex.EncodeToString(sd.Content))
	for _, a := range sd.DigestAlgorithms {
		b.WriteString(" " + a.Algorithm.String() + "/" + hex.EncodeToString(a.Parameters.FullBytes))
	}
	b.WriteString(" " + sd.ContentType.String())
	for _, c := range sd.RawCertificates {
		b.WriteString(" cert:" + hex.EncodeToString(c))
	}
	for _, si := range sd.Signers {
		b.WriteString(" signer:" + hex.EncodeToString(si.RawIssuer) + "/" + si.SerialNumber.String() + "/" +
			si.DigestAlgorithm.Algorithm.String() + "/" + hex.EncodeToString(si.DigestAlgorithm.Parameters.FullBytes) + "/" +
			si.SignatureAlgorithm.Algorithm.String() + "/" + hex.EncodeToString(si.SignatureAlgorithm.Parameters.FullBytes))
	}
	return b.String()
}
