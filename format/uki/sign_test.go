package uki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// TestBuildSignedReproducible: with a fixed signing time, a UKI built and
// signed twice (PCR policies and Authenticode) is the same bytes; with
// another time only the signature differs.
func TestBuildSignedReproducible(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1700000000, 0)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imago test signer"},
		NotBefore: when.Add(-time.Hour), NotAfter: when.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	build := func(at time.Time) []byte {
		in := synthInput()
		in.PCRPKey = nil
		out, err := BuildSigned(synthStub(), in, BuildOptions{
			PCR:                   &PCRSigning{Key: key, PublicKeyPEM: pub},
			SecureBootCertificate: cert, SecureBootKey: key, SecureBootTime: at,
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := build(when), build(when)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds with the same signing time differ")
	}
	if bytes.Equal(a, build(when.Add(time.Second))) {
		t.Fatal("the signing time is not in the signature")
	}
}
