package tpm2policy

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"
)

// TestPolicyInteropTPM compares PolicyPCR, the RSA key name, PolicyAuthorize
// and PolicyAuthValue with what a TPM computes in trial sessions (swtpm
// driven by tpm2-tools), for random PCR selections, values and keys.
func TestPolicyInteropTPM(t *testing.T) {
	testutil.RequireTool(t, "tpm2_startauthsession", "tpm2-tools")
	tcti := testutil.StartSWTPM(t)
	dir := t.TempDir()
	tool := func(name string, args ...string) string {
		t.Helper()
		path := testutil.RequireTool(t, name, "tpm2-tools")
		out, err := testutil.RunErr(path, append([]string{"--tcti=" + tcti}, args...)...)
		if err != nil {
			t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		return string(out)
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(file(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	banks := []struct {
		name string
		hash crypto.Hash
		alg  Alg
	}{{"sha1", crypto.SHA1, AlgSHA1}, {"sha256", crypto.SHA256, AlgSHA256}, {"sha384", crypto.SHA384, AlgSHA384}, {"sha512", crypto.SHA512, AlgSHA512}}

	for i := 0; i < 6; i++ {
		bank := banks[i%len(banks)]
		var pcrs []string
		var selected []int
		var values [][]byte
		var concat []byte
		for pcr := 0; pcr <= MaxPCR; pcr++ {
			// tpm2-tools reads at most 8 PCR values in one selection.
			if pcr != 11 && (rng.IntN(4) != 0 || len(selected) == 7) {
				continue
			}
			v := make([]byte, bank.hash.Size())
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			selected = append(selected, pcr)
			pcrs = append(pcrs, strconv.Itoa(pcr))
			values = append(values, v)
			concat = append(concat, v...)
		}
		if err := os.WriteFile(file("values"), concat, 0o600); err != nil {
			t.Fatal(err)
		}
		tool("tpm2_startauthsession", "-S", file("session"))
		tool("tpm2_policypcr", "-S", file("session"), "-l", bank.name+":"+strings.Join(pcrs, ","), "-f", file("values"), "-L", file("pcrpolicy"))
		tool("tpm2_flushcontext", file("session"))
		want := read("pcrpolicy")
		got, err := PolicyPCR(Digest{}, bank.alg, selected, values)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("%s:%v: PolicyPCR %x, TPM %x", bank.name, selected, got, want)
		}

		bits := []int{1024, 2048}[i%2] // what swtpm 0.7 loads
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file("pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		tool("tpm2_loadexternal", "-C", "o", "-G", "rsa", "-a", "decrypt|sign|userwithauth", "-u", file("pub.pem"), "-n", file("name"), "-c", file("key.ctx"))
		tool("tpm2_flushcontext", "-t")
		name, err := RSAKeyName(&key.PublicKey, false)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(name, read("name")) {
			t.Fatalf("%d-bit key: name %x, TPM %x", bits, name, read("name"))
		}
		ref := make([]byte, rng.IntN(3)*8)
		for j := range ref {
			ref[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(file("ref"), ref, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"-S", file("session"), "-L", file("authpolicy"), "-i", file("pcrpolicy"), "-n", file("name")}
		if len(ref) > 0 {
			args = append(args, "-q", file("ref"))
		}
		tool("tpm2_startauthsession", "-S", file("session"))
		tool("tpm2_policyauthorize", args...)
		tool("tpm2_policyauthvalue", "-S", file("session"), "-L", file("pinpolicy"))
		tool("tpm2_flushcontext", file("session"))
		auth := PolicyAuthorize(name, ref)
		if !bytes.Equal(auth[:], read("authpolicy")) {
			t.Fatalf("PolicyAuthorize %x, TPM %x", auth, read("authpolicy"))
		}
		if pin := PolicyAuthValue(auth); !bytes.Equal(pin[:], read("pinpolicy")) {
			t.Fatalf("PolicyAuthValue %x, TPM %x", pin, read("pinpolicy"))
		}
	}
}
