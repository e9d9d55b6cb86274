package uki

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"github.com/imago-os/imago/format/pe"
)

// SectionInfo describes one section of a PE image.
type SectionInfo struct {
	Name string `json:"name"`
	// VirtualAddress is the section's RVA; VirtualSize its size in memory,
	// which for UKI sections is the length of their contents.
	VirtualAddress uint32 `json:"virtualAddress"`
	VirtualSize    uint32 `json:"virtualSize"`
	// FileOffset and FileSize locate the raw data in the file.
	FileOffset uint32 `json:"fileOffset"`
	FileSize   uint32 `json:"fileSize"`
	// SHA256 is the hex SHA-256 of the contents (the first VirtualSize bytes
	// of the raw data): the digest systemd-stub measures for UKI sections.
	SHA256 string `json:"sha256"`
}

// Info is what Inspect finds in a UKI.
type Info struct {
	// Sections lists every section in table order, the stub's own included.
	Sections []SectionInfo `json:"sections"`
	// OSRelease, Cmdline and Uname are the texts of .osrel, .cmdline and
	// .uname with trailing NUL bytes removed; empty when absent.
	OSRelease string `json:"osRelease,omitempty"`
	Cmdline   string `json:"cmdline,omitempty"`
	Uname     string `json:"uname,omitempty"`
	// HasLinux says whether there is a .linux section, without which it is
	// no UKI (systemd-stub refuses to start).
	HasLinux bool `json:"hasLinux"`
	// Signed says whether the image has an Authenticode certificate table.
	Signed bool `json:"signed"`
	// CertificateTableSize is the size of that table in bytes.
	CertificateTableSize uint32 `json:"certificateTableSize,omitempty"`
	// SignedBy lists the subjects of the Authenticode signers' certificates
	// as embedded in the signatures (not verified; see
	// authenticode.Verify).
	SignedBy []string `json:"signedBy,omitempty"`
	// PCR11 lists the PCR 11 values systemd-stub 252 and systemd-pcrphase
	// produce with this image, for systemd-measure's default banks and
	// phases, bank by bank.
	PCR11 []PCR11Value `json:"pcr11,omitempty"`
}

// Inspect parses a PE image and describes its sections, the UKI texts and
// whether it carries a signature. Where a name occurs more than once the
// last section wins, as in systemd-stub 252.
func Inspect(image []byte) (*Info, error) {
	f, err := pe.Parse(image)
	if err != nil {
		return nil, fmt.Errorf("uki: %w", err)
	}
	info := &Info{Sections: make([]SectionInfo, 0, len(f.Sections))}
	for i := range f.Sections {
		s := &f.Sections[i]
		sum := sha256.Sum256(f.Contents(i))
		info.Sections = append(info.Sections, SectionInfo{
			Name:           s.NameString(),
			VirtualAddress: s.VirtualAddress,
			VirtualSize:    s.VirtualSize,
			FileOffset:     s.PointerToRawData,
			FileSize:       s.SizeOfRawData,
			SHA256:         hex.EncodeToString(sum[:]),
		})
	}
	text := func(name string) string {
		if i := f.Section(name); i >= 0 {
			return string(bytes.TrimRight(f.Contents(i), "\x00"))
		}
		return ""
	}
	info.OSRelease = text(SectionOSRelease)
	info.Cmdline = text(SectionCmdline)
	info.Uname = text(SectionUname)
	info.HasLinux = f.Section(SectionLinux) >= 0
	if _, size, ok := f.CertificateTable(); ok {
		info.Signed = true
		info.CertificateTableSize = size
		info.SignedBy = signers(image)
	}
	if info.PCR11, err = predictPCR11(f); err != nil {
		return nil, fmt.Errorf("uki: %w", err)
	}
	return info, nil
}

// x86 boot protocol offsets (Documentation/arch/x86/boot.rst): the setup
// header's "HdrS" magic and the pointer to the kernel version string, which
// is relative to 0x200.
const (
	bootHeaderMagicOffset  = 0x202
	kernelVersionPtrOffset = 0x20e
	kernelVersionBase      = 0x200
	kernelVersionMaxLength = 128
	bootHeaderMagic        = "HdrS"
)

// kernelVersionPattern matches "RELEASE (BUILDER) #…", the start of the
// kernel version string, as ukify matches it.
var kernelVersionPattern = regexp.MustCompile(`^([a-z0-9._-]+) \([^ )]+\) #`)

// ErrNoKernelRelease is returned (wrapped) when KernelRelease finds no
// release string.
var ErrNoKernelRelease = errors.New("no kernel release found")

// KernelRelease returns the release (`uname -r`) of an x86 bzImage kernel,
// read from its setup header's version string as ukify reads it when no
// --uname is given.
func KernelRelease(linux []byte) (string, error) {
	if len(linux) < kernelVersionPtrOffset+2 || string(linux[bootHeaderMagicOffset:bootHeaderMagicOffset+4]) != bootHeaderMagic {
		return "", fmt.Errorf("uki: %w: no x86 boot protocol header", ErrNoKernelRelease)
	}
	start := kernelVersionBase + int(binary.LittleEndian.Uint16(linux[kernelVersionPtrOffset:]))
	if start >= len(linux) {
		return "", fmt.Errorf("uki: %w: version string pointer 0x%x is past the end", ErrNoKernelRelease, start)
	}
	text := linux[start:min(len(linux), start+kernelVersionMaxLength)]
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	m := kernelVersionPattern.FindSubmatch(text)
	if m == nil {
		return "", fmt.Errorf("uki: %w: cannot parse kernel version string %q", ErrNoKernelRelease, text)
	}
	return string(m[1]), nil
}
