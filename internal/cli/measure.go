package cli

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/format/measure"
)

func init() { register(newMeasureCmd) }

func newMeasureCmd(e *env) *cobra.Command {
	cmd := commandGroup(e, "measure", "Pre-calculate and sign the PCR 11 values of a UKI (systemd-measure)",
		[]func(*env) *cobra.Command{newMeasureCalculateCmd, newMeasureSignCmd})
	cmd.Long = `Pre-calculate the TPM PCR 11 values a unified kernel image (UKI) produces
when systemd-stub boots it, at each boot phase systemd-pcrphase marks, and sign
them for TPM2 policies bound to a signing key (the UKI's .pcrsig section).

The options and the output are those of systemd-measure 252; unlike it, no TPM
is needed to sign.`
	return cmd
}

// measureFlags are systemd-measure's options; both verbs take all of them,
// as systemd-measure does.
type measureFlags struct {
	sections              [7]string // in measure.SectionOrder()
	banks, phases         []string
	privateKey, publicKey string
	json                  string
	jsonAuto, noPager     bool
	tpm2Device            string
}

// measureSectionFlags are the section options, in measure.SectionOrder().
var measureSectionFlags = [7]struct{ flag, help string }{
	{"linux", "Linux kernel image `file` [.linux]"},
	{"osrel", "os-release `file` [.osrel]"},
	{"cmdline", "`file` with the kernel command line [.cmdline]"},
	{"initrd", "initrd image `file` [.initrd]"},
	{"splash", "splash bitmap `file` [.splash]"},
	{"dtb", "Devicetree `file` [.dtb]"},
	{"pcrpkey", "public key `file` for PCR signatures [.pcrpkey]"},
}

func (fl *measureFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	for i, s := range measureSectionFlags {
		f.StringVar(&fl.sections[i], s.flag, "", s.help)
	}
	f.StringArrayVar(&fl.banks, "bank", nil, "PCR bank `DIGEST` (sha1, sha256, sha384, sha512, sha3-256, sha3-384, sha3-512; repeatable; default: sha1 sha256 sha384 sha512)")
	f.StringArrayVar(&fl.phases, "phase", nil, "boot `PHASE` path such as enter-initrd:leave-initrd (repeatable; default: the four phases from enter-initrd to ready)")
	f.StringVar(&fl.privateKey, "private-key", "", "PEM private `key` to sign with (RSA or ECDSA)")
	f.StringVar(&fl.publicKey, "public-key", "", "PEM public `key` whose fingerprint the signatures carry (default: derived from --private-key)")
	f.StringVar(&fl.json, "json", "", "JSON output `MODE`: pretty, short or off (-j: pretty on a terminal, short otherwise)")
	f.BoolVarP(&fl.jsonAuto, "json-auto", "j", false, "same as --json=pretty on a terminal, --json=short otherwise")
	f.StringVar(&fl.tpm2Device, "tpm2-device", "", "TPM2 device `PATH`, accepted for compatibility: no TPM is used")
	f.BoolVar(&fl.noPager, "no-pager", false, "accepted for compatibility; output is never paged")
	_ = f.MarkHidden("json-auto")
	_ = f.MarkHidden("no-pager")
}

// jsonMode is the output mode --json= and -j select.
type jsonMode int

const (
	jsonOff jsonMode = iota
	jsonShort
	jsonPretty
	jsonAuto // pretty on a terminal, short otherwise
)

// outputMode resolves --json= and -j; def is the verb's default. For
// --json=help it prints the modes and reports done.
func (fl *measureFlags) outputMode(e *env, cmd *cobra.Command, def jsonMode) (mode jsonMode, done bool, err error) {
	if cmd.Flags().Changed("json") {
		switch fl.json {
		case "pretty":
			return jsonPretty, false, nil
		case "short":
			return jsonShort, false, nil
		case "off":
			return jsonOff, false, nil
		case "help":
			_, err := io.WriteString(e.stdout, "pretty\nshort\noff\n")
			return 0, true, err
		}
		return 0, false, fmt.Errorf("unknown argument to --json: %s", fl.json)
	}
	if fl.jsonAuto {
		return jsonAuto, false, nil
	}
	return def, false, nil
}

// resolveAuto turns jsonAuto into pretty or short depending on whether
// standard output is a terminal.
func resolveAuto(e *env, mode jsonMode) jsonMode {
	if mode != jsonAuto {
		return mode
	}
	if f, ok := e.stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return jsonPretty
		}
	}
	return jsonShort
}

// inputs reads the section files and resolves banks and phases.
func (fl *measureFlags) inputs() (measure.Sections, []measure.Bank, []measure.Phase, error) {
	var s measure.Sections
	if fl.sections[0] == "" {
		return s, nil, nil, errors.New("--linux= must be specified")
	}
	for i, name := range measure.SectionOrder() {
		path := fl.sections[i]
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return s, nil, nil, err
		}
		s.Set(name, data)
	}
	var banks []measure.Bank
	for _, name := range fl.banks {
		b, err := measure.ParseBank(name)
		if err != nil {
			return s, nil, nil, err
		}
		banks = append(banks, b)
	}
	return s, measure.NormalizeBanks(banks), measure.NormalizePhases(fl.phases), nil
}

const measureSectionsHelp = `The UKI's sections are given as files: --linux= (required), --osrel=,
--cmdline=, --initrd=, --splash=, --dtb=, --pcrpkey=. Empty files are skipped,
as systemd-stub skips empty sections. PCR 11 is computed as systemd-stub 252
measures it (each section's name and contents, in the order .linux .osrel
.cmdline .initrd .splash .dtb .pcrpkey), then each word of the phase path is
measured as systemd-pcrphase does.

--phase= takes a colon-separated phase path (words: enter-initrd,
leave-initrd, sysinit, ready, shutdown, final; ":" is the moment right after
the stub) and may be repeated; several are sorted and de-duplicated. Without
it the four phases enter-initrd, enter-initrd:leave-initrd, …:sysinit and
…:sysinit:ready are used. --bank= may be repeated; without it sha1, sha256,
sha384 and sha512 are used.`

func newMeasureCalculateCmd(e *env) *cobra.Command {
	var fl measureFlags
	cmd := &cobra.Command{
		Use:   "calculate --linux=FILE [--osrel=FILE …] [--bank=DIGEST …] [--phase=PHASE …] [--json=MODE]",
		Short: "Calculate the expected PCR 11 values",
		Long: `Calculate the PCR 11 values expected after booting a UKI, per bank and phase,
exactly as systemd-measure 252 calculate prints them.

Without --json, each phase gets a comment line "# PCR[11] Phase <PHASE>" on
standard error and one line "11:BANK=HEX" per bank on standard output. With
--json=short or --json=pretty standard output gets systemd's JSON:
{"BANK":[{"phase":…,"pcr":11,"hash":"HEX"},…],…}.

` + measureSectionsHelp,
		Example: `  imago measure calculate --linux=vmlinuz --osrel=os-release --cmdline=cmdline --bank=sha256
  imago measure calculate --linux=vmlinuz --initrd=initrd.cpio --phase=: --json=pretty`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, done, err := fl.outputMode(e, cmd, jsonOff)
			if done || err != nil {
				return measureErr(err)
			}
			s, banks, phases, err := fl.inputs()
			if err != nil {
				return measureErr(err)
			}
			calc, err := measure.Calculate(s, banks, phases)
			if err != nil {
				return measureErr(err)
			}
			switch resolveAuto(e, mode) {
			case jsonOff:
				return calc.WriteText(e.stdout, e.stderr)
			case jsonPretty:
				return writeMeasureJSON(e, calc.EncodeJSON, measure.JSONPretty)
			default:
				return writeMeasureJSON(e, calc.EncodeJSON, measure.JSONShort)
			}
		},
	}
	fl.register(cmd)
	return cmd
}

func writeMeasureJSON(e *env, encode func(measure.JSONFormat) ([]byte, error), f measure.JSONFormat) error {
	b, err := encode(f)
	if err != nil {
		return measureErr(err)
	}
	_, err = e.stdout.Write(b)
	return err
}

func newMeasureSignCmd(e *env) *cobra.Command {
	var fl measureFlags
	cmd := &cobra.Command{
		Use:   "sign --linux=FILE [--osrel=FILE …] --private-key=PEM [--public-key=PEM] [--bank=DIGEST …] [--phase=PHASE …]",
		Short: "Calculate and sign the expected PCR 11 values",
		Long: `Calculate the PCR 11 values expected after booting a UKI and sign, for each
bank and phase, the TPM2 policy that requires that value: the JSON document
for the UKI's .pcrsig section, exactly as systemd-measure 252 sign prints it
(identical signatures for RSA keys, since PKCS#1 v1.5 is deterministic).

Each entry holds "pcrs" ([11]), "pkfp" (SHA-256 of the public key's DER),
"pol" (the TPM2 PolicyPCR digest, computed here without a TPM) and "sig" (the
signature of pol, base64, made with the bank's hash). systemd-cryptsetup
checks signatures as RSA-SHA256, so the sha256 bank is the one that unlocks.

Output is JSON: --json=pretty, --json=short, or --json=off for the short form
without a final newline; by default pretty on a terminal and short otherwise.
Only sha1, sha256, sha384 and sha512 can be signed for, as in systemd 252.

` + measureSectionsHelp,
		Example: `  imago measure sign --linux=vmlinuz --osrel=os-release --cmdline=cmdline \
      --pcrpkey=tpm2-pcr-public.pem --bank=sha256 \
      --private-key=tpm2-pcr-private.pem --public-key=tpm2-pcr-public.pem > pcrsig.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, done, err := fl.outputMode(e, cmd, jsonAuto)
			if done || err != nil {
				return measureErr(err)
			}
			s, banks, phases, err := fl.inputs()
			if err != nil {
				return measureErr(err)
			}
			if fl.privateKey == "" {
				return measureErr(errors.New("no private key specified, use --private-key="))
			}
			key, err := readPEM(fl.privateKey, func(b []byte) (crypto.Signer, error) { return measure.ParsePrivateKeyPEM(b) })
			if err != nil {
				return measureErr(err)
			}
			var pub crypto.PublicKey
			if fl.publicKey != "" {
				if pub, err = readPEM(fl.publicKey, measure.ParsePublicKeyPEM); err != nil {
					return measureErr(err)
				}
			}
			sig, err := measure.Sign(s, banks, phases, key, pub)
			if err != nil {
				return measureErr(err)
			}
			format := measure.JSONShort
			switch resolveAuto(e, mode) {
			case jsonPretty:
				format = measure.JSONPretty
			case jsonOff:
				// systemd-measure sign only writes JSON; "off" leaves the
				// short form without its newline.
				format = measure.JSONShortNoNewline
			}
			_, err = e.stdout.Write(sig.Encode(format))
			return err
		},
	}
	fl.register(cmd)
	return cmd
}

// readPEM reads a key file and parses it, naming the file in errors.
func readPEM[T any](path string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(path)
	if err != nil {
		return zero, err
	}
	v, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// measureErr prefixes errors with the verb, once: those of
// format/measure already carry it.
func measureErr(err error) error {
	if err == nil || strings.HasPrefix(err.Error(), "measure: ") {
		return err
	}
	return fmt.Errorf("measure: %w", err)
}
