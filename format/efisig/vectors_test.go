package efisig

import (
	"bytes"
	"crypto/x509"
	"testing"
)

// TestVectorESL: our signature list for each vector certificate equals
// what cert-to-efi-sig-list wrote, and parses back to it.
func TestVectorESL(t *testing.T) {
	for _, name := range []string{"PK", "KEK", "db"} {
		t.Run(name, func(t *testing.T) {
			cert, _ := vectorKey(t, name)
			want := readTestdata(t, name+".esl")
			got, err := EncodeLists([]List{NewX509List(cert.Raw, vectorOwner)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ESL differs from cert-to-efi-sig-list's:\n got %x\nwant %x", got[:48], want[:48])
			}
			lists, err := ParseLists(want)
			if err != nil {
				t.Fatal(err)
			}
			if len(lists) != 1 || lists[0].Type != CertX509 || len(lists[0].Signatures) != 1 ||
				lists[0].Signatures[0].Owner != vectorOwner || !bytes.Equal(lists[0].Signatures[0].Data, cert.Raw) ||
				lists[0].SignatureSize != uint32(16+len(cert.Raw)) {
				t.Fatalf("parsed %+v", lists)
			}
			certs, err := lists[0].Certificates()
			if err != nil || len(certs) != 1 || !certs[0].Equal(cert) {
				t.Fatalf("Certificates: %v, %v", certs, err)
			}
			if err := CheckVariable(name, lists); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestVectorAuth: signing each vector ESL with the vector keys and
// timestamp gives sign-efi-sig-list's .auth byte for byte, and the vector
// verifies with its signer only.
func TestVectorAuth(t *testing.T) {
	for _, name := range []string{"PK", "KEK", "db"} {
		t.Run(name, func(t *testing.T) {
			cert, key := vectorKey(t, vectorSigner[name])
			want := readTestdata(t, name+".auth")
			esl := readTestdata(t, name+".esl")
			vendor := mustVendor(t, name)
			av, err := Sign(name, vendor, Attributes, vectorTime, esl, cert, key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := av.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("auth differs from sign-efi-sig-list's (%d vs %d bytes)", len(got), len(want))
			}

			parsed, err := ParseAuth(want)
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Timestamp != vectorTime || !bytes.Equal(parsed.Data, esl) {
				t.Fatalf("parsed timestamp %v, %d data bytes", parsed.Timestamp, len(parsed.Data))
			}
			reencoded, err := parsed.Encode()
			if err != nil || !bytes.Equal(reencoded, want) {
				t.Fatalf("re-encoding differs: %v", err)
			}
			signers, err := parsed.Verify(name, vendor, Attributes, []*x509.Certificate{cert})
			if err != nil || len(signers) != 1 || !signers[0].Equal(cert) {
				t.Fatalf("Verify: %v", err)
			}
			for _, other := range []string{"PK", "KEK", "db"} {
				if other == vectorSigner[name] {
					continue
				}
				otherCert, _ := vectorKey(t, other)
				if _, err := parsed.Verify(name, vendor, Attributes, []*x509.Certificate{otherCert}); err == nil {
					t.Errorf("verified with %s's certificate", other)
				}
			}
			// Another name, vendor, attribute set or timestamp is another
			// signed bundle.
			if _, err := parsed.Verify(name+"x", vendor, Attributes, []*x509.Certificate{cert}); err == nil {
				t.Error("verified under another name")
			}
			if _, err := parsed.Verify(name, GlobalVariable, Attributes|0x40, []*x509.Certificate{cert}); err == nil {
				t.Error("verified with APPEND_WRITE")
			}
			later := *parsed
			later.Timestamp.Second++
			if _, err := later.Verify(name, vendor, Attributes, []*x509.Certificate{cert}); err == nil {
				t.Error("verified with another timestamp")
			}
			tampered := *parsed
			tampered.Data = append([]byte(nil), parsed.Data...)
			tampered.Data[len(tampered.Data)-1] ^= 1
			if _, err := tampered.Verify(name, vendor, Attributes, []*x509.Certificate{cert}); err == nil {
				t.Error("verified tampered data")
			}
		})
	}
}

// TestVectorSignedBundle: the to-be-signed bytes equal efitools' db.tbs.
func TestVectorSignedBundle(t *testing.T) {
	got, err := SignedBundle("db", ImageSecurityDatabase, Attributes, vectorTime, readTestdata(t, "db.esl"))
	if err != nil {
		t.Fatal(err)
	}
	if want := readTestdata(t, "db.tbs"); !bytes.Equal(got, want) {
		t.Fatalf("bundle differs:\n got %x\nwant %x", got[:48], want[:48])
	}
}
