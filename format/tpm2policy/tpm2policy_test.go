package tpm2policy

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testPublicKey(t *testing.T) *rsa.PublicKey {
	t.Helper()
	data, err := os.ReadFile("testdata/tpm2-pcr-public.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*rsa.PublicKey)
}

// The systemd-measure 252 "pol" values of the recorded sign vectors, from
// the PCR 11 values the calculate vectors show.
func TestPolicyPCRVectors(t *testing.T) {
	for _, tc := range []struct {
		alg        Alg
		pcr11, pol string
	}{
		// s02 signs the enter-initrd values c05 lists for every bank.
		{AlgSHA1, "f2137b709785479f1be3aa34acc14cb49feda416", "b548e9447b5a6d730af94d884d22bd591a4bde1be8158b4596935998f8626baa"},
		{AlgSHA256, "f7e6e8c5a8a77160417e99f2a9ce85ae7f116efb199f38977260979b5777dd83", "fc66fb14de710e08dd555f19b185dbf736cb5a5d64e35df9b52d530fe95e8281"},
		{AlgSHA384, "55336ab47c6d13d68bcf3abdb5292f35c6fb933816f9185bdb980dae4a2f0655b228d7739e0da82c19cb495e38779fe9", "a270f609ccbb0cea75a539271e2a001d4f1fe24a7edca2882adc01f37b18df45"},
		{AlgSHA512, "1a636361a16cd8b824a108f6e230ddfd0fc4f24bfcb3fe7b24cbb850c8e8330bf35504d57ad0a649ea75f2cff8f530631946b8cb5decbe09fafaa502e1dd89a2", "ebe82afb4814fd68c62af2aa63148bba95261dcdda423df6fc052c446b47adc2"},
	} {
		got, err := PolicyPCR(Digest{}, tc.alg, []int{11}, [][]byte{mustHex(t, tc.pcr11)})
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != tc.pol {
			t.Errorf("alg %#x: PolicyPCR = %x, want %s", tc.alg, got, tc.pol)
		}
	}
}

func TestMarshalPCRSelection(t *testing.T) {
	for _, tc := range []struct {
		alg  Alg
		pcrs []int
		want string
	}{
		{AlgSHA256, []int{11}, "00000001000b03000800"},
		{AlgSHA1, []int{0, 7, 23}, "00000001000403810080"},
		{AlgSHA512, nil, "00000001000d03000000"},
	} {
		got, err := MarshalPCRSelection(tc.alg, tc.pcrs)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != tc.want {
			t.Errorf("%v: got %x, want %s", tc.pcrs, got, tc.want)
		}
	}
	for _, bad := range []int{-1, 24} {
		if _, err := MarshalPCRSelection(AlgSHA256, []int{bad}); err == nil {
			t.Errorf("PCR %d accepted", bad)
		}
	}
	if _, err := PolicyPCR(Digest{}, AlgSHA256, []int{7, 11}, [][]byte{{1}}); err == nil {
		t.Error("PolicyPCR accepted fewer values than PCRs")
	}
}

// The key name and PolicyAuthorize digests systemd-cryptenroll 252 seals
// against for the test key, as recorded with tpm2_loadexternal and trial
// sessions on swtpm.
func TestPolicyAuthorizeVectors(t *testing.T) {
	pub := testPublicKey(t)
	for _, tc := range []struct {
		zeroExponent          bool
		name, auth, authValue string
	}{
		{false, "000bf40d2a83a17b356326189283e0980feff8496ffcd57d05e681b144d467b4587a",
			"f858ea154fd9db5e95bb2c270189e654512cdac85ba4fa27002a61e61d31eec2",
			"0e2978038aa4503e3a47a68a6fc8ed3abcc009d71c35e694a2b7e6344496fc74"},
		{true, "000b6950a539f9aa55ac866df6b407f057d425c179d83b9b368abad71b281c4031dc",
			"40971c3fce5c1495aabd848dc9f7327760382da663f9b4e44e0e2ffd5870b1ca",
			"a201befd308af966aab2f814c07e3a808e7bfa81a750ba68ce6a6af2a4f7063f"},
	} {
		name, err := RSAKeyName(pub, tc.zeroExponent)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(name) != tc.name {
			t.Errorf("zeroExponent=%v: name %x, want %s", tc.zeroExponent, name, tc.name)
		}
		auth := PolicyAuthorize(name, nil)
		if hex.EncodeToString(auth[:]) != tc.auth {
			t.Errorf("zeroExponent=%v: PolicyAuthorize %x, want %s", tc.zeroExponent, auth, tc.auth)
		}
		withPIN := PolicyAuthValue(auth)
		if hex.EncodeToString(withPIN[:]) != tc.authValue {
			t.Errorf("zeroExponent=%v: +PolicyAuthValue %x, want %s", tc.zeroExponent, withPIN, tc.authValue)
		}
	}
}

func TestMarshalRSAPublicLayout(t *testing.T) {
	n := new(big.Int).Lsh(big.NewInt(1), 1023) // 1024-bit modulus 0x80 00 … 00
	area, err := MarshalRSAPublic(&rsa.PublicKey{N: n, E: 65537}, false)
	if err != nil {
		t.Fatal(err)
	}
	head := "0001" + "000b" + "00060040" + "0000" + "0010" + "0010" + "0400" + "00010001" + "0080" + "80"
	if got := hex.EncodeToString(area[:len(head)/2]); got != head {
		t.Errorf("header %s, want %s", got, head)
	}
	if len(area) != len(head)/2+127 {
		t.Errorf("length %d", len(area))
	}
	// An exponent whose bytes are not symmetric comes out as systemd 252
	// writes it on a little-endian machine: 0x010003 -> 01 00 03 00 in
	// memory -> 0x00030001.
	area, err = MarshalRSAPublic(&rsa.PublicKey{N: n, E: 0x010003}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(area[16:20]); got != "00030001" {
		t.Errorf("exponent field %s, want 00030001", got)
	}
	if _, err := MarshalRSAPublic(&rsa.PublicKey{N: n, E: 3}, true); err == nil {
		t.Error("exponent 3 written as 0")
	}
	if _, err := MarshalRSAPublic(&rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 4097*8), E: 3}, false); err == nil {
		t.Error("oversized modulus accepted")
	}
	if _, err := MarshalRSAPublic(nil, false); err == nil {
		t.Error("nil key accepted")
	}
}

func TestHashAlg(t *testing.T) {
	for h, want := range map[crypto.Hash]Alg{crypto.SHA1: AlgSHA1, crypto.SHA256: AlgSHA256, crypto.SHA384: AlgSHA384,
		crypto.SHA512: AlgSHA512, crypto.SHA3_256: AlgSHA3256, crypto.SHA3_384: AlgSHA3384, crypto.SHA3_512: AlgSHA3512} {
		if got, err := HashAlg(h); err != nil || got != want {
			t.Errorf("%v: %#x %v", h, got, err)
		}
	}
	if _, err := HashAlg(crypto.MD5); err == nil {
		t.Error("MD5 accepted")
	}
}
