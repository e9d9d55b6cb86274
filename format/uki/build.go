package uki

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/imago-os/imago/format/pe"
)

// Section names of a UKI (UAPI.5).
const (
	SectionLinux     = ".linux"
	SectionOSRelease = ".osrel"
	SectionCmdline   = ".cmdline"
	SectionInitrd    = ".initrd"
	SectionSplash    = ".splash"
	SectionDTB       = ".dtb"
	SectionUname     = ".uname"
	SectionSBAT      = ".sbat"
	SectionPCRSig    = ".pcrsig"
	SectionPCRPKey   = ".pcrpkey"
)

// sbatHeader is the first line ukify writes into a merged .sbat section:
// the SBAT format version record that must come first and only once.
const sbatHeader = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"

// ukiSBATEntry is the SBAT entry ukify (254 and later) adds for the UKI
// itself when it is given no SBAT text.
const ukiSBATEntry = "uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/"

// Input is the content of a UKI. Every field but Linux is optional; empty
// fields give no section.
type Input struct {
	// Linux is the kernel image (an EFI-stub bzImage or PE kernel).
	Linux []byte
	// Initrds are concatenated into .initrd as ukify joins them (JoinInitrds).
	Initrds [][]byte
	// Cmdline is the kernel command line, stored as given.
	Cmdline []byte
	// OSRelease is os-release text; systemd-boot takes the menu title and
	// version from it and skips a UKI without it.
	OSRelease []byte
	// Uname is the kernel release (`uname -r`); see KernelRelease.
	Uname []byte
	// Splash is a BMP image.
	Splash []byte
	// Devicetree is a flattened devicetree blob.
	Devicetree []byte
	// PCRPKey is the PEM public key whose signatures in .pcrsig unlock
	// TPM2-sealed secrets.
	PCRPKey []byte
	// PCRSig is the JSON PCR 11 signature document; it covers the other
	// sections' contents (see Sections), so it is computed before it is set.
	PCRSig []byte
}

// Section is one section a UKI build adds to the stub.
type Section struct {
	Name string
	Data []byte
}

// JoinInitrds concatenates initrds as ukify does: one initrd is used as it
// is; with several, each one (the last too) is zero-padded to a multiple of
// 4 bytes, the alignment the kernel expects between concatenated cpio
// archives. It returns nil for none.
func JoinInitrds(initrds [][]byte) []byte {
	switch len(initrds) {
	case 0:
		return nil
	case 1:
		return initrds[0]
	}
	var out []byte
	for _, initrd := range initrds {
		out = append(out, initrd...)
		out = append(out, make([]byte, (4-len(initrd)%4)%4)...)
	}
	return out
}

// Sections returns the sections Build writes for in on stub, in layout
// order, with the data each will hold: .osrel .cmdline .dtb .uname .splash
// .pcrpkey .initrd, then .sbat, .pcrsig and .linux. These contents are what
// systemd-stub measures into PCR 11 (each section's name and data, in the
// stub's own order), so a PCR signature is computed from them.
//
// .sbat is what the UKI's .sbat section will hold: the SBAT entries of the
// stub and of the kernel plus ukify's entry for the UKI itself, under one
// SBAT version line, ending in a newline and a NUL — unless that does not
// fit in place of the stub's own .sbat section without reaching the next
// section in memory (Debian 12's stub leaves room for 256 bytes, less than
// the merged text), in which case the stub's .sbat is kept as it is.
func Sections(stub []byte, in *Input) ([]Section, error) {
	f, err := prepareStub(stub)
	if err != nil {
		return nil, err
	}
	return sections(f, in)
}

// prepareStub parses the stub and readies it for new sections as ukify
// does: no certificate table, no trailing symbol table, raw data aligned.
func prepareStub(stub []byte) (*pe.File, error) {
	f, err := pe.Parse(stub)
	if err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	f.RemoveCertificateTable()
	f.StripSymbolTable()
	if err := f.AlignRawData(); err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	return f, nil
}

func sections(stub *pe.File, in *Input) ([]Section, error) {
	if len(in.Linux) == 0 {
		return nil, errors.New("uki: no kernel (.linux)")
	}
	sbat := mergeSBAT(stub, in.Linux)
	if i := stub.Section(SectionSBAT); i >= 0 && stub.CheckReplace(i, len(sbat)) != nil {
		sbat = stub.Contents(i)
	}
	var out []Section
	add := func(name string, data []byte) {
		if len(data) > 0 {
			out = append(out, Section{Name: name, Data: data})
		}
	}
	add(SectionOSRelease, in.OSRelease)
	add(SectionCmdline, in.Cmdline)
	add(SectionDTB, in.Devicetree)
	add(SectionUname, in.Uname)
	add(SectionSplash, in.Splash)
	add(SectionPCRPKey, in.PCRPKey)
	add(SectionInitrd, JoinInitrds(in.Initrds))
	add(SectionSBAT, sbat)
	add(SectionPCRSig, in.PCRSig)
	add(SectionLinux, in.Linux)
	return out, nil
}

// mergeSBAT returns the .sbat contents ukify 254–256 writes when given no
// SBAT text of its own: the entries of the stub's and the kernel's .sbat
// sections (each without its version line) and ukify's entry for the UKI,
// under one version line, then a newline and a NUL. A source whose first
// line is not an SBAT version line is skipped, as ukify skips it.
func mergeSBAT(stub *pe.File, linux []byte) []byte {
	var entries []string
	sources := []*pe.File{stub}
	if kernel, err := pe.Parse(linux); err == nil {
		sources = append(sources, kernel)
	}
	for _, f := range sources {
		i := f.Section(SectionSBAT)
		if i < 0 {
			continue
		}
		lines := splitLines(string(bytes.TrimRight(f.Contents(i), "\x00")))
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "sbat,") {
			continue
		}
		entries = append(entries, lines[1:]...)
	}
	entries = append(entries, ukiSBATEntry)
	return []byte(sbatHeader + strings.Join(entries, "\n") + "\n\x00")
}

// splitLines splits text into lines the way ukify's Python does for CSV:
// at "\n" or "\r\n", with no empty last line for a trailing newline.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// Characteristics ukify gives the sections it adds: .linux is marked as code
// because kernels started through the EFI handover protocol run in place.
const (
	linuxCharacteristics = pe.SectionMemRead | pe.SectionCntCode
	dataCharacteristics  = pe.SectionMemRead | pe.SectionCntInitializedData
)

// Build returns a UKI made of stub and in, laid out as ukify does (see the
// package documentation). The stub's certificate table, if any, is dropped:
// the UKI must be signed as a whole. The optional header's CheckSum is left
// zero, as ukify leaves it; a signer sets it.
//
// A stub has room for a limited number of new section headers before its
// first section's data (Debian 12's systemd-stub: 7); Build fails with a
// clear error when the sections do not fit.
func Build(stub []byte, in *Input) ([]byte, error) {
	f, err := prepareStub(stub)
	if err != nil {
		return nil, err
	}
	secs, err := sections(f, in)
	if err != nil {
		return nil, err
	}
	for _, s := range secs {
		if s.Name != SectionSBAT && f.Section(s.Name) >= 0 {
			return nil, fmt.Errorf("uki: the stub already has a %s section (is it a UKI?)", s.Name)
		}
	}
	for _, s := range secs {
		if i := f.Section(s.Name); i >= 0 {
			if err := f.ReplaceContents(i, s.Data); err != nil {
				return nil, fmt.Errorf("uki: %w", err)
			}
			continue
		}
		ch := uint32(dataCharacteristics)
		if s.Name == SectionLinux {
			ch = linuxCharacteristics
		}
		if _, err := f.AddSection(s.Name, s.Data, ch); err != nil {
			return nil, fmt.Errorf("uki: %w", err)
		}
	}
	f.OptionalHeader.CheckSum = 0
	if err := f.CheckLayout(); err != nil {
		return nil, fmt.Errorf("uki: %w", err)
	}
	return f.Bytes(), nil
}
