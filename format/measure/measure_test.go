package measure

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The vectors in testdata were recorded with systemd-measure 252
// (252.39-1~deb12u2); expected/ holds its stdout byte for byte.

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorSections(t *testing.T, names ...string) Sections {
	t.Helper()
	files := map[string]string{
		SectionLinux: "linux", SectionOSRel: "osrel", SectionCmdline: "cmdline", SectionInitrd: "initrd",
		SectionSplash: "splash", SectionDTB: "dtb", SectionPCRPKey: "tpm2-pcr-public.pem",
	}
	var s Sections
	for _, n := range names {
		file := files[n]
		if i := strings.IndexByte(n, '='); i > 0 { // ".initrd=empty"
			n, file = n[:i], n[i+1:]
		}
		if !s.Set(n, readTestdata(t, "inputs/"+file)) {
			t.Fatalf("section %s not measured", n)
		}
	}
	return s
}

func banks(t *testing.T, names ...string) []Bank {
	t.Helper()
	var out []Bank
	for _, n := range names {
		b, err := ParseBank(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return NormalizeBanks(out)
}

var allSections = []string{SectionLinux, SectionOSRel, SectionCmdline, SectionInitrd, SectionSplash, SectionDTB, SectionPCRPKey}

func TestCalculateVectors(t *testing.T) {
	for _, tc := range []struct {
		file     string
		sections []string
		banks    []string
		phases   []string
		format   JSONFormat
		text     bool
		stderr   string
	}{
		{file: "c01-linux-sha256-defaultphases.txt", sections: []string{SectionLinux}, banks: []string{"sha256"}, text: true,
			stderr: "# PCR[11] Phase <enter-initrd>\n# PCR[11] Phase <enter-initrd:leave-initrd>\n# PCR[11] Phase <enter-initrd:leave-initrd:sysinit>\n# PCR[11] Phase <enter-initrd:leave-initrd:sysinit:ready>\n"},
		{file: "c02-linux-nophase.txt", sections: []string{SectionLinux}, banks: []string{"sha1", "sha256"}, phases: []string{":"}, text: true,
			stderr: "# PCR[11] Phase <:>\n"},
		{file: "c03-empty-initrd-skipped.json", sections: []string{SectionLinux, ".initrd=empty"}, banks: []string{"sha256"}, phases: []string{":"}, format: JSONShort},
		{file: "c04-linux-osrel-cmdline.json", sections: []string{SectionLinux, SectionOSRel, SectionCmdline}, banks: []string{"sha256"}, format: JSONShort},
		{file: "c05-all-sections-all-banks.json", sections: allSections, format: JSONPretty},
		{file: "c06-explicit-phases.json", sections: []string{SectionLinux}, banks: []string{"sha256"},
			phases: []string{"enter-initrd:leave-initrd:sysinit:ready:shutdown:final", "::enter-initrd::"}, format: JSONShort},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := Calculate(vectorSections(t, tc.sections...), banks(t, tc.banks...), NormalizePhases(tc.phases))
			if err != nil {
				t.Fatal(err)
			}
			want := readTestdata(t, "expected/"+tc.file)
			var got []byte
			if tc.text {
				var stdout, stderr bytes.Buffer
				if err := c.WriteText(&stdout, &stderr); err != nil {
					t.Fatal(err)
				}
				got = stdout.Bytes()
				if stderr.String() != tc.stderr {
					t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tc.stderr)
				}
			} else if got, err = c.EncodeJSON(tc.format); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func testKey(t *testing.T) (crypto.Signer, crypto.PublicKey) {
	t.Helper()
	key, err := ParsePrivateKeyPEM(readTestdata(t, "inputs/tpm2-pcr-private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(readTestdata(t, "inputs/tpm2-pcr-public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return key, pub
}

func TestSignVectors(t *testing.T) {
	key, pub := testKey(t)
	for _, tc := range []struct {
		file     string
		sections []string
		banks    []string
		phases   []string
		pub      crypto.PublicKey
		format   JSONFormat
	}{
		{"s01-sign-sha256-defaultphases.json", []string{SectionLinux, SectionOSRel, SectionCmdline, SectionPCRPKey}, []string{"sha256"}, nil, pub, JSONPretty},
		{"s02-sign-allbanks-enter-initrd.json", allSections, []string{"sha1", "sha256", "sha384", "sha512"}, []string{"enter-initrd"}, nil, JSONPretty},
		{"s03-sign-two-phases-sorted.json", allSections, []string{"sha256"}, []string{"enter-initrd:leave-initrd:sysinit:ready", "enter-initrd"}, nil, JSONShort},
	} {
		t.Run(tc.file, func(t *testing.T) {
			sig, err := Sign(vectorSections(t, tc.sections...), banks(t, tc.banks...), NormalizePhases(tc.phases), key, tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			want := readTestdata(t, "expected/"+tc.file)
			got := sig.Encode(tc.format)
			if !bytes.Equal(got, want) {
				t.Fatalf("got:\n%s\nwant:\n%s", got, want)
			}
			// The recorded document parses back to the same entries, and
			// each verifies with the public key.
			parsed, err := ParsePCRSig(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(parsed.Encode(tc.format), want) {
				t.Error("parse/encode round trip differs")
			}
			for _, b := range parsed.Banks {
				bank, err := ParseBank(b.Bank)
				if err != nil {
					t.Fatal(err)
				}
				for i := range b.Entries {
					if err := b.Entries[i].Verify(pub, bank.Hash); err != nil {
						t.Errorf("%s entry %d: %v", b.Bank, i, err)
					}
				}
			}
		})
	}
}

func TestKeyFingerprint(t *testing.T) {
	_, pub := testKey(t)
	fp, err := KeyFingerprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	// SHA-256 of the PKCS#1 RSAPublicKey DER; the SubjectPublicKeyInfo
	// would give aa7ad1f6…bd51.
	if got := hex.EncodeToString(fp); got != "8e8d24466e1eabc01a8bb3212545d94d72fc87d2501240bbb8076a0ad31d216f" {
		t.Errorf("pkfp %s", got)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fp, err = KeyFingerprint(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	point, _ := ec.PublicKey.ECDH()
	if len(point.Bytes()) != 65 || point.Bytes()[0] != 4 {
		t.Fatalf("not an uncompressed point: %x", point.Bytes())
	}
	if want := digest(crypto.SHA256, point.Bytes()); !bytes.Equal(fp, want) {
		t.Errorf("EC pkfp %x, want %x", fp, want)
	}
	if _, err := KeyFingerprint("not a key"); err == nil {
		t.Error("fingerprint of a string")
	}
}

// The phase values follow from the section value by extending H(word),
// without a NUL, per word.
func TestPhaseWords(t *testing.T) {
	s := Sections{Linux: []byte("kernel")}
	base, err := MeasureSections(s, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	want := extend(crypto.SHA256, base, digest(crypto.SHA256, []byte("enter-initrd")))
	want = extend(crypto.SHA256, want, digest(crypto.SHA256, []byte("leave-initrd")))
	got, err := CalculatePCR11(s, crypto.SHA256, []Phase{ParsePhase("enter-initrd::leave-initrd:")})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0].Value, want) {
		t.Errorf("got %x, want %x", got[0].Value, want)
	}
	// Sections, by hand: H(0 || H(".linux\0")), then H(. || H("kernel")).
	pcr := extend(crypto.SHA256, make([]byte, 32), digest(crypto.SHA256, []byte(".linux\x00")))
	pcr = extend(crypto.SHA256, pcr, digest(crypto.SHA256, []byte("kernel")))
	if !bytes.Equal(base, pcr) {
		t.Errorf("sections %x, want %x", base, pcr)
	}
}

func TestNormalizePhases(t *testing.T) {
	got := NormalizePhases([]string{"b", "a", ":", "a::", "", "enter-initrd:leave-initrd", "enter-initrd"})
	var texts []string
	for _, p := range got {
		texts = append(texts, p.String())
	}
	if want := []string{"", "a", "b", "enter-initrd", "enter-initrd:leave-initrd"}; strings.Join(texts, ",") != strings.Join(want, ",") {
		t.Errorf("got %q, want %q", texts, want)
	}
	if got := NormalizePhases(nil); len(got) != 4 || got[3].String() != "enter-initrd:leave-initrd:sysinit:ready" {
		t.Errorf("default phases %v", got)
	}
}

func TestBanks(t *testing.T) {
	for in, want := range map[string]string{"SHA256": "sha256", "Sha-1": "sha1", "sha2-512": "sha512", "SHA3-256": "sha3-256", "sha-384": "sha384"} {
		b, err := ParseBank(in)
		if err != nil || b.Name != want {
			t.Errorf("%s: %v %v", in, b, err)
		}
	}
	for _, bad := range []string{"md5", "sha224", "bogus", ""} {
		if _, err := ParseBank(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var names []string
	for _, b := range banks(t, "sha512", "sha3-256", "SHA1", "sha384", "sha256", "sha-256") {
		names = append(names, b.Name)
	}
	// OpenSSL's names sort as systemd sorts them (strcmp).
	if got := strings.Join(names, " "); got != "sha1 sha256 sha3-256 sha384 sha512" {
		t.Errorf("order %s", got)
	}
	if b, err := BankForHash(crypto.SHA384); err != nil || b.Name != "sha384" {
		t.Errorf("BankForHash: %v %v", b, err)
	}
}

func TestJSONStrings(t *testing.T) {
	c := &Calculation{
		Phases: []Phase{{"a\"b\\c\td\x01e\x7ff/é€😀"}, {"\b\f\n\r\x1f"}},
		Banks:  []BankValues{{Bank: Bank{Name: "sha1"}, Values: []PhaseValue{{Phase: Phase{"a\"b\\c\td\x01e\x7ff/é€😀"}, Value: []byte{1}}, {Phase: Phase{"\b\f\n\r\x1f"}, Value: []byte{2}}}}},
	}
	got, err := c.EncodeJSON(JSONShort)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sha1":[{"phase":"a\"b\\c\td\u0001e` + "\x7f" + `f/é€😀","pcr":11,"hash":"01"},{"phase":"\b\f\n\r\u001f","pcr":11,"hash":"02"}]}` + "\n"
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for _, bad := range []string{"a\xffb", "\xed\xa0\x80", "\xc0\x80", "\uFDD0", "\uFDEF", "\uFFFE", "\U0001FFFF", "\U0010FFFE"} {
		c.Banks[0].Values[0].Phase = Phase{bad}
		if _, err := c.EncodeJSON(JSONShort); err == nil {
			t.Errorf("%q accepted in JSON", bad)
		}
	}
	for _, good := range []string{"\uFDF0", "\uFFFD", "\U0001FFFD"} {
		c.Banks[0].Values[0].Phase = Phase{good}
		if _, err := c.EncodeJSON(JSONShort); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
}

func TestSignRefusals(t *testing.T) {
	key, _ := testKey(t)
	s := Sections{Linux: []byte("k")}
	if _, err := Sign(s, banks(t, "sha3-256"), DefaultPhases(), key, nil); err == nil {
		t.Error("signed a sha3-256 bank")
	}
	if _, err := Sign(s, banks(t, "sha256"), DefaultPhases(), nil, nil); err == nil {
		t.Error("signed without a key")
	}
	if _, err := Sign(s, nil, DefaultPhases(), key, nil); err == nil {
		t.Error("signed no banks")
	}
}

// An ECDSA key signs as OpenSSL does through EVP_DigestSign: ASN.1 ECDSA
// over the bank's hash of the policy; Verify accepts it.
func TestSignECDSA(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(Sections{Linux: []byte("k")}, DefaultBanks(), DefaultPhases(), ec, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range sig.Banks {
		bank, _ := ParseBank(b.Bank)
		for i := range b.Entries {
			if err := b.Entries[i].Verify(&ec.PublicKey, bank.Hash); err != nil {
				t.Errorf("%s: %v", b.Bank, err)
			}
			if err := b.Entries[i].Verify(&ec.PublicKey, crypto.SHA512); bank.Hash != crypto.SHA512 && err == nil {
				t.Errorf("%s entry verified with the wrong hash", b.Bank)
			}
		}
	}
}

func TestFindAndVerify(t *testing.T) {
	_, pub := testKey(t)
	sig, err := ParsePCRSig(readTestdata(t, "expected/s03-sign-two-phases-sorted.json"))
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := KeyFingerprint(pub)
	pol, _ := hex.DecodeString("ccc62810d10d3b998b140567344165f3003bceaa53f4f4d52a057562e233f116")
	e := sig.Find("sha256", []int{11}, fp, pol)
	if e == nil || sig.Bank("sha256")[1].Signature[0] != e.Signature[0] {
		t.Fatal("entry not found")
	}
	if sig.Find("sha256", []int{7, 11}, fp, pol) != nil || sig.Find("sha1", []int{11}, fp, pol) != nil {
		t.Error("found an entry for the wrong PCRs or bank")
	}
	// Tampering with the policy breaks the signature.
	bad := *e
	bad.Policy = append([]byte{}, e.Policy...)
	bad.Policy[0] ^= 1
	if err := bad.Verify(pub, crypto.SHA256); err == nil {
		t.Error("tampered entry verified")
	}
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	if err := e.Verify(&other.PublicKey, crypto.SHA256); err == nil {
		t.Error("verified with another key")
	}
}

func TestParsePCRSigErrors(t *testing.T) {
	for _, bad := range []string{
		``, `[]`, `{"sha256":{}}`, `{"sha256":[1]}`, `{"sha256":[{"pcrs":[24]}]}`, `{"sha256":[{"pcrs":[-1]}]}`,
		`{"sha256":[{"pcrs":[1.0]}]}`, `{"sha256":[{"pcrs":["11"]}]}`, `{"sha256":[{"pol":"xyz"}]}`, `{"sha256":[{"sig":"!!"}]}`,
		`{"sha256":[{"pol":1}]}`, `{"sha256":[],"sha256":[]}`, `{"sha256":[{"pol":"00","pol":"00"}]}`, `{"sha256":[]} {}`,
		`{"sha256":[]`,
	} {
		if _, err := ParsePCRSig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	p, err := ParsePCRSig([]byte("{\"sha256\":[{\"phase\":{\"x\":[1,2]},\"pcrs\":[11],\"pol\":\"AB\",\"pkfp\":\"\"}]}\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	e := p.Banks[0].Entries[0]
	if len(e.PCRs) != 1 || !bytes.Equal(e.Policy, []byte{0xab}) || e.KeyFingerprint != nil || e.Signature != nil {
		t.Errorf("parsed %+v", e)
	}
}
