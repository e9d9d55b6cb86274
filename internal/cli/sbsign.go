package cli

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/format/authenticode"
	"github.com/imago-os/imago/format/pe"
)

func init() {
	register(newSbsignCmd)
	register(newSbverifyCmd)
}

func newSbsignCmd(e *env) *cobra.Command {
	var keyPath, certPath, output string
	cmd := &cobra.Command{
		Use:   "sbsign --key=PEM --cert=PEM [--output=FILE] IMAGE",
		Short: "Sign a UEFI PE image for Secure Boot (Authenticode), like sbsign",
		Long: `Sign a UEFI PE image with an Authenticode signature, as sbsigntool's sbsign
does: the SHA-256 Authenticode digest is signed in a PKCS#7 SignedData with the
certificate embedded, appended as a WIN_CERTIFICATE, and the PE checksum is
updated. For an RSA key the output equals sbsign 0.9.4's byte for byte (both
write the current time as signingTime). An image that is already signed gets
one more signature. Without --output the result goes to IMAGE.signed.`,
		Example: `  imago sbsign --key=db.key --cert=db.crt --output=BOOTX64.EFI systemd-bootx64.efi`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" || certPath == "" {
				return errors.New("sbsign: --key and --cert are required")
			}
			key, err := loadSigningKey(keyPath)
			if err != nil {
				return fmt.Errorf("sbsign: %w", err)
			}
			certs, err := loadCertificates(certPath)
			if err != nil {
				return fmt.Errorf("sbsign: %w", err)
			}
			image, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("sbsign: %w", err)
			}
			if entries, err := authenticode.Certificates(image); err == nil && len(entries) > 0 {
				fmt.Fprintln(e.stderr, "Image was already signed; adding additional signature")
			} else if err == nil {
				fmt.Fprintln(e.stderr, "Signing Unsigned original image")
			}
			signed, err := authenticode.Sign(image, certs[0], key)
			if err != nil {
				return fmt.Errorf("sbsign: %s: %w", args[0], err)
			}
			if output == "" {
				output = args[0] + ".signed"
			}
			if err := os.WriteFile(output, signed, 0o644); err != nil {
				return fmt.Errorf("sbsign: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "signing key (PEM: PKCS#8, PKCS#1 or SEC1)")
	cmd.Flags().StringVar(&certPath, "cert", "", "signer certificate (PEM)")
	cmd.Flags().StringVar(&output, "output", "", "write the signed image to `FILE` (default IMAGE.signed)")
	return cmd
}

func newSbverifyCmd(e *env) *cobra.Command {
	var certPath string
	var list bool
	cmd := &cobra.Command{
		Use:   "sbverify (--cert=PEM | --list) IMAGE",
		Short: "Verify (or list) the Authenticode signatures of a UEFI PE image, like sbverify",
		Long: `Verify a UEFI PE image's Authenticode signature as sbsigntool's sbverify
does: the Authenticode digest is recomputed and compared with the signed one,
and the signature must be made by a certificate in --cert (a PEM file, which
may hold several) or by an embedded certificate that chains to one of them.
Prints "Signature verification OK" and exits 0, or "Signature verification
failed" and exits 1. --list prints every signature's issuers and certificates
without verifying.`,
		Example: `  imago sbverify --cert=db.crt BOOTX64.EFI`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			image, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("sbverify: %w", err)
			}
			if list {
				return sbverifyList(e, image)
			}
			if certPath == "" {
				return errors.New("sbverify: --cert or --list is required")
			}
			trusted, err := loadCertificates(certPath)
			if err != nil {
				return fmt.Errorf("sbverify: %w", err)
			}
			failed := &ExitError{Code: 1}
			sigs, err := authenticode.Signatures(image)
			if err != nil {
				fmt.Fprintln(e.stderr, err)
				fmt.Fprintln(e.stdout, "Signature verification failed")
				return failed
			}
			if len(sigs) == 0 {
				fmt.Fprintln(e.stderr, "No signature table present")
				fmt.Fprintln(e.stdout, "Signature verification failed")
				return failed
			}
			if digest, err := pe.AuthenticodeDigest(image, sigs[0].Hash); err == nil && !bytes.Equal(digest, sigs[0].Digest) {
				fmt.Fprintf(e.stderr, "Hash doesn't match image\n got:       %s\n expecting: %s\nImage fails hash check\n",
					hex.EncodeToString(digest), hex.EncodeToString(sigs[0].Digest))
			}
			if _, err := authenticode.Verify(image, trusted); err != nil {
				fmt.Fprintln(e.stderr, err)
				fmt.Fprintln(e.stdout, "Signature verification failed")
				return failed
			}
			fmt.Fprintln(e.stdout, "Signature verification OK")
			return nil
		},
	}
	cmd.Flags().StringVar(&certPath, "cert", "", "trusted certificate(s) (PEM)")
	cmd.Flags().BoolVar(&list, "list", false, "list all signatures (but do not verify)")
	return cmd
}

// sbverifyList prints the signatures the way sbverify --list does.
func sbverifyList(e *env, image []byte) error {
	sigs, err := authenticode.Signatures(image)
	if err != nil {
		return fmt.Errorf("sbverify: %w", err)
	}
	if len(sigs) == 0 {
		fmt.Fprintln(e.stderr, "No signature table present")
		return nil
	}
	for i, s := range sigs {
		fmt.Fprintf(e.stdout, "signature %d\n", i+1)
		fmt.Fprintln(e.stdout, "image signature issuers:")
		for _, si := range s.Message.Signers {
			fmt.Fprintf(e.stdout, " - %s\n", opensslNameOf(si.RawIssuer))
		}
		fmt.Fprintln(e.stdout, "image signature certificates:")
		for _, c := range s.Certificates {
			fmt.Fprintf(e.stdout, " - subject: %s\n   issuer:  %s\n", opensslNameOf(c.RawSubject), opensslNameOf(c.RawIssuer))
		}
	}
	return nil
}

// opensslNameOf renders a DER Name the way OpenSSL's X509_NAME_oneline does
// ("/CN=x/O=y"), which sbverify --list prints.
func opensslNameOf(der []byte) string {
	var name pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &name); err != nil || len(rest) != 0 {
		return "?"
	}
	var b strings.Builder
	for _, rdn := range name {
		for _, atv := range rdn {
			short, ok := opensslShortNames[atv.Type.String()]
			if !ok {
				short = atv.Type.String()
			}
			fmt.Fprintf(&b, "/%s=%v", short, atv.Value)
		}
	}
	return b.String()
}

var opensslShortNames = map[string]string{
	"2.5.4.3":              "CN",
	"2.5.4.6":              "C",
	"2.5.4.7":              "L",
	"2.5.4.8":              "ST",
	"2.5.4.10":             "O",
	"2.5.4.11":             "OU",
	"2.5.4.5":              "serialNumber",
	"1.2.840.113549.1.9.1": "emailAddress",
}
