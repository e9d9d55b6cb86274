package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/format/measure"
	"github.com/imago-os/imago/format/uki"
)

func init() { register(newUKICmd) }

func newUKICmd(e *env) *cobra.Command {
	return commandGroup(e, "uki", "Build and inspect Unified Kernel Images (ukify-compatible)",
		[]func(*env) *cobra.Command{newUKIBuildCmd, newUKIInspectCmd})
}

// ukiEFIArch is the EFI architecture name in systemd's file names for the
// architecture imago runs on.
func ukiEFIArch() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aa64"
	case "386":
		return "ia32"
	case "riscv64":
		return "riscv64"
	case "loong64":
		return "loongarch64"
	default:
		return "x64"
	}
}

// ukiDefaultStub is where Debian's systemd-boot-efi installs systemd-stub.
func ukiDefaultStub() string {
	return "/usr/lib/systemd/boot/efi/linux" + ukiEFIArch() + ".efi.stub"
}

// ukiHostOSRelease is what ukify puts into .osrel when given no --os-release.
var ukiHostOSRelease = []string{"/etc/os-release", "/usr/lib/os-release"}

type ukiBuildFlags struct {
	stub, linux, cmdline, osRelease, uname, splash, devicetree, pcrpkey, output string
	initrds                                                                     []string
	// Signing (ukify's flag names).
	sbKey, sbCert, pcrPrivateKey, pcrPublicKey string
	phases, pcrBanks                           []string
}

func newUKIBuildCmd(e *env) *cobra.Command {
	var fl ukiBuildFlags
	cmd := &cobra.Command{
		Use:   "build --linux=PATH [--initrd=PATH]... [--cmdline=TEXT|@PATH] [--os-release=TEXT|@PATH] --output=PATH",
		Short: "Assemble a Unified Kernel Image from systemd-stub, a kernel, initrds and texts",
		Long: `Assemble a Unified Kernel Image the way systemd's ukify does (systemd 254-256):
the sections .osrel, .cmdline, .dtb, .uname, .splash, .pcrpkey and .initrd are
appended to the stub in that order, .linux last, each at the next
SectionAlignment boundary in memory and FileAlignment boundary in the file, and
the stub's .sbat is merged with the kernel's when it fits in place.

With --pcr-private-key, .pcrsig holds the PCR 11 policy signatures
systemd-measure sign would write for the measured sections (for --pcr-banks
and --phases, or systemd-measure's defaults), stored as ukify 254 stores them;
--pcr-public-key also becomes .pcrpkey. With --secureboot-private-key and
--secureboot-certificate the finished image is Authenticode-signed, exactly as
sbsign would sign it. Otherwise the result is unsigned.

--cmdline and --os-release take text, or @PATH for a file's contents as they
are; command-line text has its runs of white space collapsed to one space, as
ukify does. Without --os-release the host's os-release is used, and without
--uname the release is read from the kernel's boot header, both as ukify does.
Several --initrd files are concatenated, each padded to 4 bytes.`,
		Example: `  imago uki build --linux=/boot/vmlinuz-6.1.0-56-amd64 --initrd=initrd.img \
      --cmdline="console=ttyS0 usrhash=…" --os-release=@os-release --output=image.efi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return e.ukiBuild(&fl) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.stub, "stub", ukiDefaultStub(), "systemd-stub `file` to build on")
	f.StringVar(&fl.linux, "linux", "", "kernel image `file` [.linux section] (required)")
	f.StringArrayVar(&fl.initrds, "initrd", nil, "initrd `file` [part of .initrd section] (repeatable)")
	f.StringVar(&fl.cmdline, "cmdline", "", "kernel command line `TEXT|@PATH` [.cmdline section]")
	f.StringVar(&fl.osRelease, "os-release", "", "os-release `TEXT|@PATH` [.osrel section]")
	f.StringVar(&fl.uname, "uname", "", "kernel release `VERSION` as `uname -r` shows it [.uname section]")
	f.StringVar(&fl.splash, "splash", "", "splash image BMP `file` [.splash section]")
	f.StringVar(&fl.devicetree, "devicetree", "", "devicetree `file` [.dtb section]")
	f.StringVar(&fl.pcrpkey, "pcrpkey", "", "PEM public key `file` for PCR signatures [.pcrpkey section]")
	f.StringVar(&fl.output, "output", "", "where to write the UKI (required)")
	f.StringVar(&fl.sbKey, "secureboot-private-key", "", "PEM private key `file` to Authenticode-sign the UKI with")
	f.StringVar(&fl.sbCert, "secureboot-certificate", "", "PEM certificate `file` matching --secureboot-private-key")
	f.StringVar(&fl.pcrPrivateKey, "pcr-private-key", "", "PEM private key `file` to sign PCR 11 policies with [.pcrsig section]")
	f.StringVar(&fl.pcrPublicKey, "pcr-public-key", "", "PEM public key `file` of --pcr-private-key [.pcrpkey section]")
	f.StringArrayVar(&fl.phases, "phases", nil, "phase paths to sign, space-separated `PHASE-PATH…` (default: systemd-measure's)")
	f.StringArrayVar(&fl.pcrBanks, "pcr-banks", nil, "PCR banks to sign, comma-separated `BANK…` (default: sha1,sha256,sha384,sha512)")
	return cmd
}

// ukiTextOrFile resolves a ukify TEXT|@PATH argument; collapse squeezes white
// space in literal text as ukify does for the command line.
func ukiTextOrFile(arg string, collapse bool) ([]byte, error) {
	if path, ok := strings.CutPrefix(arg, "@"); ok {
		return os.ReadFile(path)
	}
	if collapse {
		arg = strings.Join(strings.Fields(arg), " ")
	}
	return []byte(arg), nil
}

// ukiReadOptional reads path, or returns nil for an empty path.
func ukiReadOptional(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}

func (e *env) ukiBuild(fl *ukiBuildFlags) error {
	if fl.linux == "" {
		return errors.New("uki build: --linux is required")
	}
	if fl.output == "" {
		return errors.New("uki build: --output is required")
	}
	stub, err := os.ReadFile(fl.stub)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && fl.stub == ukiDefaultStub() {
			return fmt.Errorf("uki build: %w (install the Debian package systemd-boot-efi or pass --stub)", err)
		}
		return fmt.Errorf("uki build: %w", err)
	}
	in := &uki.Input{}
	if in.Linux, err = os.ReadFile(fl.linux); err != nil {
		return fmt.Errorf("uki build: %w", err)
	}
	for _, path := range fl.initrds {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("uki build: %w", err)
		}
		in.Initrds = append(in.Initrds, b)
	}
	if in.Cmdline, err = ukiTextOrFile(fl.cmdline, true); err != nil {
		return fmt.Errorf("uki build: --cmdline: %w", err)
	}
	if fl.osRelease != "" {
		in.OSRelease, err = ukiTextOrFile(fl.osRelease, false)
	} else {
		in.OSRelease, err = ukiReadFirst(ukiHostOSRelease)
	}
	if err != nil {
		return fmt.Errorf("uki build: --os-release: %w", err)
	}
	in.Uname = []byte(fl.uname)
	if fl.uname == "" {
		if release, err := uki.KernelRelease(in.Linux); err == nil {
			in.Uname = []byte(release)
		}
	}
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{fl.splash, &in.Splash}, {fl.devicetree, &in.Devicetree}, {fl.pcrpkey, &in.PCRPKey}} {
		if *f.dst, err = ukiReadOptional(f.path); err != nil {
			return fmt.Errorf("uki build: %w", err)
		}
	}
	opts, err := ukiSigningOptions(fl)
	if err != nil {
		return fmt.Errorf("uki build: %w", err)
	}
	image, err := uki.BuildSigned(stub, in, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", fl.stub, err)
	}
	if err := ukiWriteFileAtomic(fl.output, image, 0o644); err != nil {
		return fmt.Errorf("uki build: %w", err)
	}
	state := "unsigned"
	if opts.SecureBootKey != nil {
		state = "signed"
	}
	fmt.Fprintf(e.stdout, "Wrote %s %s\n", state, fl.output)
	return nil
}

// ukiSigningOptions loads the keys and certificate the signing flags name.
func ukiSigningOptions(fl *ukiBuildFlags) (uki.BuildOptions, error) {
	var opts uki.BuildOptions
	if (fl.sbKey == "") != (fl.sbCert == "") {
		return opts, errors.New("--secureboot-private-key and --secureboot-certificate go together")
	}
	if fl.sbKey != "" {
		key, err := loadSigningKey(fl.sbKey)
		if err != nil {
			return opts, err
		}
		certs, err := loadCertificates(fl.sbCert)
		if err != nil {
			return opts, err
		}
		opts.SecureBootKey, opts.SecureBootCertificate = key, certs[0]
	}
	if fl.pcrPrivateKey == "" {
		if fl.pcrPublicKey != "" || len(fl.phases) > 0 || len(fl.pcrBanks) > 0 {
			return opts, errors.New("--pcr-public-key, --phases and --pcr-banks need --pcr-private-key")
		}
		return opts, nil
	}
	key, err := loadSigningKey(fl.pcrPrivateKey)
	if err != nil {
		return opts, err
	}
	pcr := &uki.PCRSigning{Key: key}
	if fl.pcrPublicKey != "" {
		if pcr.PublicKeyPEM, err = os.ReadFile(fl.pcrPublicKey); err != nil {
			return opts, err
		}
	}
	var phases []string
	for _, arg := range fl.phases {
		phases = append(phases, strings.Fields(arg)...)
	}
	if len(phases) > 0 {
		pcr.Phases = measure.NormalizePhases(phases)
	}
	var banks []measure.Bank
	for _, arg := range fl.pcrBanks {
		for _, name := range strings.Split(arg, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			b, err := measure.ParseBank(name)
			if err != nil {
				return opts, fmt.Errorf("--pcr-banks: %w", err)
			}
			banks = append(banks, b)
		}
	}
	if len(banks) > 0 {
		pcr.Banks = measure.NormalizeBanks(banks)
	}
	opts.PCR = pcr
	return opts, nil
}

// ukiReadFirst returns the contents of the first of paths that exists.
func ukiReadFirst(paths []string) ([]byte, error) {
	var firstErr error
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// ukiWriteFileAtomic writes data to a temporary file beside path and renames
// it into place, so a failed write never leaves a partial file at path.
func ukiWriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newUKIInspectCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [--json] FILE",
		Short: "List a UKI's sections and show its os-release, command line, kernel release and signature state",
		Long: `List every section of a PE image (name, address and size in memory, offset and size
in the file, SHA-256 of the contents systemd-stub measures), then the texts of
.osrel, .cmdline and .uname, whether the image carries an Authenticode
signature and by whom (the embedded signer certificate's subject, not
verified: see imago sbverify), and the PCR 11 values systemd-stub and
systemd-pcrphase will produce with it, per bank and boot phase.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			info, err := uki.Inspect(b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if asJSON {
				return e.printJSON(info)
			}
			return printUKIInfo(e, info)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	return cmd
}

func printUKIInfo(e *env, info *uki.Info) error {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SECTION\tADDRESS\tSIZE\tOFFSET\tFILE SIZE\tSHA256")
	for _, s := range info.Sections {
		fmt.Fprintf(w, "%s\t0x%x\t%d\t0x%x\t%d\t%s\n", s.Name, s.VirtualAddress, s.VirtualSize, s.FileOffset, s.FileSize, s.SHA256)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if info.OSRelease != "" {
		fmt.Fprintln(e.stdout, "\nos-release:")
		for _, line := range strings.Split(strings.TrimRight(info.OSRelease, "\n"), "\n") {
			fmt.Fprintf(e.stdout, "  %s\n", line)
		}
	}
	if info.Cmdline != "" {
		fmt.Fprintf(e.stdout, "\ncmdline: %s\n", strings.TrimRight(info.Cmdline, "\n"))
	}
	if info.Uname != "" {
		fmt.Fprintf(e.stdout, "uname: %s\n", info.Uname)
	}
	if !info.HasLinux {
		fmt.Fprintln(e.stdout, "\nno .linux section: not a UKI")
	}
	signed := "no"
	if info.Signed {
		signed = fmt.Sprintf("yes (certificate table of %d bytes)", info.CertificateTableSize)
	}
	if _, err := fmt.Fprintf(e.stdout, "signed: %s\n", signed); err != nil {
		return err
	}
	for _, who := range info.SignedBy {
		fmt.Fprintf(e.stdout, "signed by: %s\n", who)
	}
	if len(info.PCR11) > 0 {
		fmt.Fprintln(e.stdout, "\nPCR 11 per phase:")
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "BANK\tPHASE\tVALUE")
		for _, v := range info.PCR11 {
			phase := v.Phase
			if phase == "" {
				phase = ":"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", v.Bank, phase, v.Value)
		}
		return w.Flush()
	}
	return nil
}
