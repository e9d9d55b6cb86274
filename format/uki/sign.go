package uki

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imago-os/imago/format/authenticode"
	"github.com/imago-os/imago/format/measure"
	"github.com/imago-os/imago/format/pe"
)

// PCRSigning says how to sign the UKI's PCR 11 values into .pcrsig, as
// ukify 254 does through `systemd-measure sign`.
type PCRSigning struct {
	// Key signs the TPM2 policies.
	Key crypto.Signer
	// PublicKeyPEM is the matching public key (ukify's --pcr-public-key):
	// its fingerprint goes into the entries and, unless the Input already
	// has a .pcrpkey, it becomes .pcrpkey. nil means the entries carry
	// Key's own fingerprint and no .pcrpkey is added, as in ukify 254.
	PublicKeyPEM []byte
	// Banks and Phases are those signed; nil means systemd-measure's
	// defaults (measure.DefaultBanks, measure.DefaultPhases), which ukify
	// leaves in place when given no --pcr-banks or --phases.
	Banks  []measure.Bank
	Phases []measure.Phase
}

// PublicKeyPEM encodes pub as a PEM "PUBLIC KEY" (SubjectPublicKeyInfo)
// block, as `openssl pkey -pubout` writes it.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("uki: public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// MeasuredSections returns the contents of in's sections that systemd-stub
// measures into PCR 11, as Build would lay them out on stub.
func MeasuredSections(stub []byte, in *Input) (measure.Sections, error) {
	secs, err := Sections(stub, in)
	if err != nil {
		return measure.Sections{}, err
	}
	var ms measure.Sections
	for _, s := range secs {
		ms.Set(s.Name, s.Data)
	}
	return ms, nil
}

// SignPCR fills in.PCRSig with the signed PCR 11 policies over the measured
// sections, and in.PCRPKey (when empty) with s.PublicKeyPEM first, since
// .pcrpkey is itself measured. The text is what ukify 254 stores: the
// systemd-measure document re-encoded by Python's json.dumps (see
// EncodePCRSigUkify).
func SignPCR(stub []byte, in *Input, s PCRSigning) error {
	if s.Key == nil {
		return errors.New("uki: no PCR signing key")
	}
	var pub crypto.PublicKey
	if s.PublicKeyPEM != nil {
		var err error
		if pub, err = measure.ParsePublicKeyPEM(s.PublicKeyPEM); err != nil {
			return fmt.Errorf("uki: PCR public key: %w", err)
		}
		if len(in.PCRPKey) == 0 {
			in.PCRPKey = s.PublicKeyPEM
		}
	}
	banks, phases := s.Banks, s.Phases
	if len(banks) == 0 {
		banks = measure.DefaultBanks()
	}
	if len(phases) == 0 {
		phases = measure.DefaultPhases()
	}
	in.PCRSig = nil
	ms, err := MeasuredSections(stub, in)
	if err != nil {
		return err
	}
	sig, err := measure.Sign(ms, banks, phases, s.Key, pub)
	if err != nil {
		return fmt.Errorf("uki: .pcrsig: %w", err)
	}
	in.PCRSig = EncodePCRSigUkify(sig)
	return nil
}

// EncodePCRSigUkify encodes a .pcrsig document as ukify 254 writes it into
// the section: Python's json.dumps with its default separators (", " and
// ": "), no trailing newline, banks and entries in systemd-measure's order.
func EncodePCRSigUkify(sig *measure.PCRSig) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, bank := range sig.Banks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: [", bank.Bank)
		for j, e := range bank.Entries {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`{"pcrs": [`)
			for k, pcr := range e.PCRs {
				if k > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%d", pcr)
			}
			fmt.Fprintf(&b, `], "pkfp": "%s", "pol": "%s", "sig": "%s"}`,
				hex.EncodeToString(e.KeyFingerprint), hex.EncodeToString(e.Policy), base64.StdEncoding.EncodeToString(e.Signature))
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// BuildOptions add signing to Build.
type BuildOptions struct {
	// PCR, when set, fills .pcrpkey and .pcrsig (SignPCR).
	PCR *PCRSigning
	// SecureBootCertificate and SecureBootKey, when set, Authenticode-sign
	// the finished image (authenticode.Sign), the last step.
	SecureBootCertificate *x509.Certificate
	SecureBootKey         crypto.Signer
	// SecureBootTime is the signature's signing time; zero means now. A
	// fixed time (SOURCE_DATE_EPOCH) makes the signed image reproducible.
	SecureBootTime time.Time
}

// BuildSigned builds a UKI as ukify 254 does with its signing options: the
// PCR policy signatures first (they cover the sections), then the image,
// then the Authenticode signature over the whole image. in is updated with
// the .pcrpkey and .pcrsig contents.
func BuildSigned(stub []byte, in *Input, opts BuildOptions) ([]byte, error) {
	if opts.PCR != nil {
		if err := SignPCR(stub, in, *opts.PCR); err != nil {
			return nil, err
		}
	}
	image, err := Build(stub, in)
	if err != nil {
		return nil, err
	}
	if (opts.SecureBootCertificate == nil) != (opts.SecureBootKey == nil) {
		return nil, errors.New("uki: Secure Boot signing needs both a certificate and a key")
	}
	if opts.SecureBootKey != nil {
		if image, err = authenticode.SignWithOptions(image, opts.SecureBootCertificate, opts.SecureBootKey,
			authenticode.Options{Time: opts.SecureBootTime}); err != nil {
			return nil, fmt.Errorf("uki: %w", err)
		}
	}
	return image, nil
}

// PCR11Value is one predicted PCR 11 value.
type PCR11Value struct {
	Bank  string `json:"bank"`
	Phase string `json:"phase"`
	Value string `json:"value"`
}

// imageMeasuredSections collects the contents systemd-stub 252 measures
// from a built image: for each measured name the last matching section's
// first VirtualSize bytes.
func imageMeasuredSections(f *pe.File) measure.Sections {
	var ms measure.Sections
	for _, name := range measure.SectionOrder() {
		if i := f.Section(name); i >= 0 {
			ms.Set(name, f.Contents(i))
		}
	}
	return ms
}

// predictPCR11 returns the PCR 11 values the image produces for the default
// banks and phases.
func predictPCR11(f *pe.File) ([]PCR11Value, error) {
	calc, err := measure.Calculate(imageMeasuredSections(f), measure.DefaultBanks(), measure.DefaultPhases())
	if err != nil {
		return nil, err
	}
	var out []PCR11Value
	for _, b := range calc.Banks {
		for _, v := range b.Values {
			out = append(out, PCR11Value{Bank: b.Bank.Name, Phase: v.Phase.String(), Value: hex.EncodeToString(v.Value)})
		}
	}
	return out, nil
}

// signers returns the subjects of the embedded signer certificates of the
// image's Authenticode signatures.
func signers(image []byte) []string {
	sigs, err := authenticode.Signatures(image)
	if err != nil {
		return nil
	}
	var out []string
	for i := range sigs {
		if c := sigs[i].Signer(); c != nil {
			out = append(out, c.Subject.String())
		}
	}
	return out
}
