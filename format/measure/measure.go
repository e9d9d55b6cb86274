package measure

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"

	// The SHA-3 banks need their hashes registered with crypto.
	_ "crypto/sha3"
)

// PCR is the PCR systemd-stub measures a UKI's sections into and
// systemd-pcrphase measures the boot phases into (TPM_PCR_INDEX_KERNEL_IMAGE).
const PCR = 11

// UKI section names, as measured (PE section names).
const (
	SectionLinux   = ".linux"
	SectionOSRel   = ".osrel"
	SectionCmdline = ".cmdline"
	SectionInitrd  = ".initrd"
	SectionSplash  = ".splash"
	SectionDTB     = ".dtb"
	SectionPCRSig  = ".pcrsig"
	SectionPCRPKey = ".pcrpkey"
)

// SectionOrder returns the names of the sections systemd-stub 252 measures,
// in the order it measures them. .pcrsig sits between .dtb and .pcrpkey in
// the stub's list but is never measured, since it holds the signatures of
// the values being predicted.
func SectionOrder() []string {
	return []string{SectionLinux, SectionOSRel, SectionCmdline, SectionInitrd, SectionSplash, SectionDTB, SectionPCRPKey}
}

// Sections holds the contents of a UKI's measured sections. A nil or empty
// section is not measured, as systemd-stub skips empty sections.
type Sections struct {
	Linux, OSRel, Cmdline, Initrd, Splash, DTB, PCRPKey []byte
}

// Set stores data as the contents of the section called name and reports
// whether systemd-stub 252 measures such a section. Other names (.pcrsig,
// .sbat, .uname, …) are ignored and report false.
func (s *Sections) Set(name string, data []byte) bool {
	p := s.field(name)
	if p == nil {
		return false
	}
	*p = data
	return true
}

// Get returns the contents stored for the section called name.
func (s *Sections) Get(name string) []byte {
	if p := s.field(name); p != nil {
		return *p
	}
	return nil
}

func (s *Sections) field(name string) *[]byte {
	switch name {
	case SectionLinux:
		return &s.Linux
	case SectionOSRel:
		return &s.OSRel
	case SectionCmdline:
		return &s.Cmdline
	case SectionInitrd:
		return &s.Initrd
	case SectionSplash:
		return &s.Splash
	case SectionDTB:
		return &s.DTB
	case SectionPCRPKey:
		return &s.PCRPKey
	}
	return nil
}

// Bank is a PCR bank: the hash algorithm a TPM keeps a set of PCRs for.
type Bank struct {
	// Name is the bank's name as systemd-measure prints it: the lower-case
	// OpenSSL name of the hash ("sha1", "sha256", "sha3-256").
	Name string
	// Hash is the bank's hash function.
	Hash crypto.Hash
}

// bankHash resolves the OpenSSL names systemd-measure accepts for the banks
// imago supports, without regard to case.
func bankHash(name string) (Bank, bool) {
	switch strings.ToLower(name) {
	case "sha1", "sha-1":
		return Bank{"sha1", crypto.SHA1}, true
	case "sha256", "sha-256", "sha2-256":
		return Bank{"sha256", crypto.SHA256}, true
	case "sha384", "sha-384", "sha2-384":
		return Bank{"sha384", crypto.SHA384}, true
	case "sha512", "sha-512", "sha2-512":
		return Bank{"sha512", crypto.SHA512}, true
	case "sha3-256":
		return Bank{"sha3-256", crypto.SHA3_256}, true
	case "sha3-384":
		return Bank{"sha3-384", crypto.SHA3_384}, true
	case "sha3-512":
		return Bank{"sha3-512", crypto.SHA3_512}, true
	}
	return Bank{}, false
}

// ParseBank resolves a --bank= argument. It accepts, in any case, the
// OpenSSL names of SHA-1, the SHA-2 family members TPMs use (SHA-256,
// SHA-384, SHA-512) and SHA3-256/384/512: "sha256", "SHA-256",
// "SHA2-256" and so on.
func ParseBank(name string) (Bank, error) {
	b, ok := bankHash(name)
	if !ok {
		return Bank{}, fmt.Errorf("measure: unknown bank %q (want sha1, sha256, sha384, sha512, sha3-256, sha3-384 or sha3-512)", name)
	}
	return b, nil
}

// BankForHash returns the bank of a hash function.
func BankForHash(h crypto.Hash) (Bank, error) {
	for _, name := range []string{"sha1", "sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"} {
		if b, _ := bankHash(name); b.Hash == h {
			return b, nil
		}
	}
	return Bank{}, fmt.Errorf("measure: hash %v is not a supported PCR bank", h)
}

// DefaultBanks returns the banks systemd-measure uses when none is named:
// SHA-1, SHA-256, SHA-384 and SHA-512.
func DefaultBanks() []Bank {
	var banks []Bank
	for _, name := range []string{"sha1", "sha256", "sha384", "sha512"} {
		b, _ := bankHash(name)
		banks = append(banks, b)
	}
	return banks
}

// NormalizeBanks returns banks as systemd-measure uses them: sorted by name,
// each once; none means DefaultBanks.
func NormalizeBanks(banks []Bank) []Bank {
	if len(banks) == 0 {
		return DefaultBanks()
	}
	out := slices.Clone(banks)
	slices.SortFunc(out, func(a, b Bank) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b Bank) bool { return a.Name == b.Name })
}

// The words systemd-pcrphase 252 measures into PCR 11 as the boot goes on.
const (
	PhaseEnterInitrd = "enter-initrd"
	PhaseLeaveInitrd = "leave-initrd"
	PhaseSysinit     = "sysinit"
	PhaseReady       = "ready"
	PhaseShutdown    = "shutdown"
	PhaseFinal       = "final"
)

// Phase is a boot phase path: the words measured into PCR 11 after the UKI's
// sections, in order. An empty Phase is the value right after the stub ran.
type Phase []string

// ParsePhase reads a phase expression: words separated by colons. Empty
// words are dropped, so "::enter-initrd::" is "enter-initrd" and ":" is the
// empty phase.
func ParsePhase(expr string) Phase {
	var p Phase
	for _, w := range strings.Split(expr, ":") {
		if w != "" {
			p = append(p, w)
		}
	}
	return p
}

// String returns the normalised phase expression: the words joined with
// colons ("" for the empty phase).
func (p Phase) String() string { return strings.Join(p, ":") }

// DefaultPhases returns the phases systemd-measure signs when none is named,
// from entering the initrd up to the system being ready, in this order:
// enter-initrd, enter-initrd:leave-initrd, …:sysinit, …:sysinit:ready.
func DefaultPhases() []Phase {
	return []Phase{
		{PhaseEnterInitrd},
		{PhaseEnterInitrd, PhaseLeaveInitrd},
		{PhaseEnterInitrd, PhaseLeaveInitrd, PhaseSysinit},
		{PhaseEnterInitrd, PhaseLeaveInitrd, PhaseSysinit, PhaseReady},
	}
}

// NormalizePhases turns --phase= arguments into the list systemd-measure
// works through: each expression normalised (ParsePhase), then sorted by
// its normalised text, byte-wise, and de-duplicated. No expressions means
// DefaultPhases, in their own order.
func NormalizePhases(exprs []string) []Phase {
	if len(exprs) == 0 {
		return DefaultPhases()
	}
	var texts []string
	for _, e := range exprs {
		texts = append(texts, ParsePhase(e).String())
	}
	slices.Sort(texts)
	texts = slices.Compact(texts)
	phases := make([]Phase, len(texts))
	for i, t := range texts {
		phases[i] = ParsePhase(t)
	}
	return phases
}

// PhaseValue is the predicted PCR 11 value at one boot phase.
type PhaseValue struct {
	Phase Phase
	Value []byte
}

func checkHash(h crypto.Hash) error {
	if !h.Available() {
		return fmt.Errorf("measure: hash %v not available", h)
	}
	return nil
}

// extend returns H(pcr || digest), the new value of a PCR extended with digest.
func extend(h crypto.Hash, pcr, digest []byte) []byte {
	d := h.New()
	d.Write(pcr)
	d.Write(digest)
	return d.Sum(nil)
}

func digest(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// MeasureSections returns PCR 11 in the bank hashed with h after
// systemd-stub 252 measured s: starting from zeros, for each non-empty
// section in SectionOrder, extend with H(name NUL), then with H(contents).
func MeasureSections(s Sections, h crypto.Hash) ([]byte, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	pcr := make([]byte, h.Size())
	for _, name := range SectionOrder() {
		data := s.Get(name)
		if len(data) == 0 {
			continue
		}
		pcr = extend(h, pcr, digest(h, append([]byte(name), 0)))
		pcr = extend(h, pcr, digest(h, data))
	}
	return pcr, nil
}

// ExtendPhase returns pcr after systemd-pcrphase measured the words of p,
// one after the other: each word's hash, without a NUL, is extended in.
func ExtendPhase(pcr []byte, h crypto.Hash, p Phase) ([]byte, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	if len(pcr) != h.Size() {
		return nil, fmt.Errorf("measure: PCR value of %d bytes for a %d-byte hash", len(pcr), h.Size())
	}
	for _, w := range p {
		if w == "" {
			continue
		}
		pcr = extend(h, pcr, digest(h, []byte(w)))
	}
	return pcr, nil
}

// CalculatePCR11 predicts PCR 11 in the bank hashed with h at each of the
// phases, for a UKI with the sections s.
func CalculatePCR11(s Sections, h crypto.Hash, phases []Phase) ([]PhaseValue, error) {
	base, err := MeasureSections(s, h)
	if err != nil {
		return nil, err
	}
	values := make([]PhaseValue, 0, len(phases))
	for _, p := range phases {
		v, err := ExtendPhase(base, h, p)
		if err != nil {
			return nil, err
		}
		values = append(values, PhaseValue{Phase: p, Value: v})
	}
	return values, nil
}

// BankValues are the predicted values of one bank.
type BankValues struct {
	Bank   Bank
	Values []PhaseValue
}

// Calculation is what systemd-measure calculate prints: the predicted PCR 11
// values per bank and phase.
type Calculation struct {
	Banks  []BankValues
	Phases []Phase
}

// Calculate predicts PCR 11 for every bank and phase, as
// `systemd-measure calculate` does (which, like the stub, accepts an empty
// or missing .linux). banks and phases are used as given;
// NormalizeBanks and NormalizePhases turn command line arguments into them.
func Calculate(s Sections, banks []Bank, phases []Phase) (*Calculation, error) {
	if len(banks) == 0 || len(phases) == 0 {
		return nil, errors.New("measure: no banks or no phases")
	}
	c := &Calculation{Phases: phases}
	for _, b := range banks {
		values, err := CalculatePCR11(s, b.Hash, phases)
		if err != nil {
			return nil, fmt.Errorf("measure: bank %s: %w", b.Name, err)
		}
		c.Banks = append(c.Banks, BankValues{Bank: b, Values: values})
	}
	return c, nil
}
