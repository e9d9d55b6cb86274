package cli

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/format/veritysig"
	"github.com/imago-os/imago/internal/pemkey"
)

func init() {
	veritySubcommands = append(veritySubcommands, newVeritySignCmd, newVerityVerifySignatureCmd)
}

// Values of `imago verity sign --padding`.
const (
	paddingNone      = "none"
	paddingPartition = "partition"
)

// veritySignResult is the --json output of `verity sign`.
type veritySignResult struct {
	RootHash               string `json:"rootHash"`
	CertificateFingerprint string `json:"certificateFingerprint"`
	Signature              string `json:"signature"`
	Output                 string `json:"output,omitempty"`
	Padding                string `json:"padding,omitempty"`
	Size                   int    `json:"size,omitempty"`
}

func newVeritySignCmd(e *env) *cobra.Command {
	var rootHashHex, keyPath, certPath, output, padding string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sign --root-hash=HEX --private-key=PEM --certificate=PEM [--output=FILE]",
		Short: "Sign a dm-verity root hash into a verity signature partition payload",
		Long: `Sign a dm-verity root hash the way systemd-repart does for a Verity=signature
partition: a detached PKCS#7 signature (SHA-256, no signed attributes, the
certificate embedded) over the root hash as lowercase hex, wrapped in the JSON
object {"rootHash":…,"certificateFingerprint":…,"signature":…}.

The private key is PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC). RSA keys give the
same bytes as systemd-repart 252 for the same key, certificate and root hash.

Without --output the JSON text is printed followed by a newline. With --output
the file receives the exact content of a verity signature partition: the JSON
NUL-padded to 16384 bytes, the partition size systemd-repart uses, ready to be
copied onto the partition. --padding=none writes the JSON text alone instead;
--padding=partition pads on standard output too.`,
		Example: `  imago verity sign --root-hash=$(cat usr.roothash) --private-key=db.key \
      --certificate=db.crt --output=usr-verity-sig.raw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rootHashHex == "" || keyPath == "" || certPath == "" {
				return errors.New("verity sign: --root-hash, --private-key and --certificate are required")
			}
			if padding == "" {
				padding = paddingNone
				if output != "" {
					padding = paddingPartition
				}
			}
			if padding != paddingNone && padding != paddingPartition {
				return fmt.Errorf("verity sign: --padding=%s: want none or partition", padding)
			}
			rootHash, err := parseRootHashFlag(rootHashHex)
			if err != nil {
				return fmt.Errorf("verity sign: %w", err)
			}
			key, err := loadSigningKey(keyPath)
			if err != nil {
				return fmt.Errorf("verity sign: %w", err)
			}
			certs, err := loadCertificates(certPath)
			if err != nil {
				return fmt.Errorf("verity sign: %w", err)
			}
			sig, err := veritysig.Sign(rootHash, certs[0], key)
			if err != nil {
				return err
			}
			payload, err := sig.Marshal()
			if err != nil {
				return err
			}
			if padding == paddingPartition {
				if payload, err = sig.MarshalPartition(veritysig.PartitionSize); err != nil {
					return err
				}
			}
			switch {
			case output != "":
				if err := os.WriteFile(output, payload, 0o644); err != nil {
					return fmt.Errorf("verity sign: %w", err)
				}
			case asJSON:
				// The report below carries the signature.
			case padding == paddingNone:
				if _, err := fmt.Fprintf(e.stdout, "%s\n", payload); err != nil {
					return err
				}
			default:
				if _, err := e.stdout.Write(payload); err != nil {
					return err
				}
			}
			if asJSON {
				res := veritySignResult{
					RootHash:               hex.EncodeToString(sig.RootHash),
					CertificateFingerprint: hex.EncodeToString(sig.CertificateFingerprint),
					Signature:              base64.StdEncoding.EncodeToString(sig.PKCS7),
				}
				if output != "" {
					res.Output, res.Padding, res.Size = output, padding, len(payload)
				}
				return e.printJSON(res)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&rootHashHex, "root-hash", "", "the dm-verity root hash in hex")
	fl.StringVar(&keyPath, "private-key", "", "PEM private key (PKCS#8, PKCS#1 or SEC1)")
	fl.StringVar(&certPath, "certificate", "", "PEM X.509 certificate of the key")
	fl.StringVar(&output, "output", "", "write the partition payload to FILE instead of printing the JSON")
	fl.StringVar(&padding, "padding", "", "none (JSON text only) or partition (NUL-padded to 16384 bytes); default: partition with --output, none otherwise")
	fl.BoolVar(&asJSON, "json", false, "print a JSON report (with the signature) instead of the payload on standard output")
	return cmd
}

// verityVerifySignatureResult is the --json output of `verity verify-signature`.
type verityVerifySignatureResult struct {
	Valid                  bool                `json:"valid"`
	Error                  string              `json:"error,omitempty"`
	RootHash               string              `json:"rootHash,omitempty"`
	CertificateFingerprint string              `json:"certificateFingerprint,omitempty"`
	Signers                []veritySignerFacts `json:"signers,omitempty"`
}

type veritySignerFacts struct {
	Subject     string `json:"subject"`
	Fingerprint string `json:"fingerprint"`
}

func newVerityVerifySignatureCmd(e *env) *cobra.Command {
	var certPaths []string
	var rootHashHex string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify-signature --certificate=PEM [--root-hash=HEX] FILE",
		Short: "Check a verity signature partition payload against trusted certificates",
		Long: `Check the content of a verity signature partition (or its JSON text; - reads
standard input) the way systemd checks it in userspace: the payload must be well
formed (at most 4 MiB, NUL padding only after the text), its signature must be a
PKCS#7 signature over the root hash as lowercase hex by one of the given
certificates (matched by issuer and serial number; certificates inside the
signature are not trusted, no chain is built, validity periods are not checked).
With --root-hash, the payload's rootHash must also equal it.

Exit status 0 means valid; otherwise 1 and one line saying why.`,
		Example: `  imago verity verify-signature --certificate=/usr/lib/verity.d/db.crt usr-verity-sig.raw`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(certPaths) == 0 {
				return errors.New("verity verify-signature: --certificate is required")
			}
			var trusted []*x509.Certificate
			for _, p := range certPaths {
				certs, err := loadCertificates(p)
				if err != nil {
					return fmt.Errorf("verity verify-signature: %w", err)
				}
				trusted = append(trusted, certs...)
			}
			var expected []byte
			if rootHashHex != "" {
				var err error
				if expected, err = parseRootHashFlag(rootHashHex); err != nil {
					return fmt.Errorf("verity verify-signature: %w", err)
				}
			}
			data, err := e.readSignatureFile(args[0])
			if err != nil {
				return fmt.Errorf("verity verify-signature: %w", err)
			}
			res, err := verifyVeritySignature(data, expected, trusted)
			if err != nil {
				message := fmt.Sprintf("%s: %v", args[0], err)
				if asJSON {
					if err := e.printJSON(verityVerifySignatureResult{Error: message}); err != nil {
						return err
					}
				}
				return &ExitError{Code: 1, Message: message}
			}
			if asJSON {
				return e.printJSON(res)
			}
			var who []string
			for _, s := range res.Signers {
				who = append(who, fmt.Sprintf("%q", s.Subject))
			}
			_, err = fmt.Fprintf(e.stdout, "%s: valid signature of root hash %s by %s\n", args[0], res.RootHash, strings.Join(who, ", "))
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&certPaths, "certificate", nil, "PEM file of trusted certificates (repeatable)")
	fl.StringVar(&rootHashHex, "root-hash", "", "the root hash the payload must carry, in hex")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func verifyVeritySignature(data, expected []byte, trusted []*x509.Certificate) (*verityVerifySignatureResult, error) {
	sig, err := veritysig.Parse(data)
	if err != nil {
		return nil, err
	}
	if expected != nil {
		if err := sig.CheckRootHash(expected); err != nil {
			return nil, err
		}
	}
	signers, err := sig.Verify(trusted)
	if err != nil {
		return nil, err
	}
	res := &verityVerifySignatureResult{
		Valid:                  true,
		RootHash:               hex.EncodeToString(sig.RootHash),
		CertificateFingerprint: hex.EncodeToString(sig.CertificateFingerprint),
	}
	for _, c := range signers {
		res.Signers = append(res.Signers, veritySignerFacts{Subject: c.Subject.String(), Fingerprint: hex.EncodeToString(veritysig.Fingerprint(c))})
	}
	return res, nil
}

// readSignatureFile reads a payload from path ("-": standard input), at most
// one byte more than a signature partition may hold so Parse can refuse it.
func (e *env) readSignatureFile(path string) ([]byte, error) {
	var r io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, veritysig.MaxPartitionSize+1))
}

// parseRootHashFlag decodes a root hash given in hex on the command line.
func parseRootHashFlag(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("invalid root hash %q: want hex digits", s)
	}
	return b, nil
}

// loadSigningKey reads a PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
// Blocks of other types, such as the EC PARAMETERS openssl ecparam writes
// first, are skipped.
func loadSigningKey(path string) (crypto.Signer, error) {
	return readPEM(path, pemkey.ParseSigner)
}

// loadCertificates reads every CERTIFICATE block of a PEM file.
func loadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return certs, nil
}
