package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/keys"
)

func init() { register(newKeysCmd) }

// keysSubcommands holds the constructors of the `imago keys` subcommands.
var keysSubcommands = []func(*env) *cobra.Command{newKeysGenerateCmd}

func newKeysCmd(e *env) *cobra.Command {
	return commandGroup(e, "keys", "Generate the keys that sign images, boot code and updates", keysSubcommands)
}

// keysFileJSON is one file in the --json output of `keys generate`.
type keysFileJSON struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Mode    string `json:"mode"`
	Purpose string `json:"purpose"`
}

// keysGenerateJSON is the --json output of `keys generate`.
type keysGenerateJSON struct {
	Directory            string         `json:"directory"`
	SignatureOwner       string         `json:"signatureOwner"`
	UpdateKeyFingerprint string         `json:"updateKeyFingerprint"`
	Files                []keysFileJSON `json:"files"`
}

func newKeysGenerateCmd(e *env) *cobra.Command {
	var force, asJSON bool
	var commonName string
	cmd := &cobra.Command{
		Use:   "generate [--force] DIR",
		Short: "Create a new key set: Secure Boot PK/KEK/db, verity, PCR policy and OpenPGP update keys",
		Long: `Create a new key set in DIR (made with mode 0700 if missing):

  PK, KEK, db   UEFI Secure Boot keys: NAME.key (RSA-2048, PKCS#8 PEM),
                NAME.crt (self-signed X.509, SHA-256), NAME.esl (EFI signature
                list) and NAME.auth (time-based authenticated update, PK and
                KEK signed by PK, db by KEK), as efitools writes them.
  verity        verity.key and verity.crt, which sign dm-verity root hashes.
  PCR policy    tpm2-pcr-private-key.pem and tpm2-pcr-public-key.pem (RSA-2048),
                which sign PCR 11 policies (.pcrsig, .pcrpkey).
  updates       update-signing.key (OpenPGP Ed25519 secret key, armored) and
                import-pubring.gpg (its public key as a binary keyring, the
                file systemd-sysupdate gives gpg), which sign SHA256SUMS.

Private keys get mode 0600, everything else 0644. If any of these files
exists, nothing is written unless --force is given; --force replaces each
file of the set atomically and leaves other files alone.

For systemd-boot to enroll the Secure Boot keys, copy PK.auth, KEK.auth and
db.auth to loader/keys/auto/ on the ESP and set "secure-boot-enroll force"
in loader.conf; the firmware must be in setup mode.`,
		Example: `  imago keys generate ./keys
  imago keys generate --force --common-name="Example Corp" /var/lib/imago/keys`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			s, err := keys.Generate(dir, keys.Options{Force: force, CommonName: commonName})
			if errors.Is(err, keys.ErrExists) {
				return fmt.Errorf("keys generate: %w; pass --force to replace the key set", err)
			}
			if err != nil {
				return fmt.Errorf("keys generate: %w", err)
			}
			if asJSON {
				out := keysGenerateJSON{Directory: dir, SignatureOwner: s.Owner.String(), UpdateKeyFingerprint: s.UpdateKeyFingerprint()}
				for _, f := range keys.Files() {
					out.Files = append(out.Files, keysFileJSON{Name: f.Name, Path: s.Path(f.Name),
						Mode: fmt.Sprintf("%04o", uint32(f.Mode())), Purpose: f.Purpose})
				}
				return e.printJSON(out)
			}
			fmt.Fprintf(e.stdout, "Generated a key set in %s:\n", dir)
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			for _, f := range keys.Files() {
				fmt.Fprintf(tw, "  %s\t%04o\t%s\n", f.Name, uint32(f.Mode()), f.Purpose)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Secure Boot signature owner: %s\n", s.Owner)
			fmt.Fprintf(e.stdout, "OpenPGP update signing key: %s\n", s.UpdateKeyFingerprint())
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace the files of an existing key set")
	cmd.Flags().StringVar(&commonName, "common-name", "", `start of the certificate subjects and the OpenPGP user ID (default "`+keys.DefaultCommonName+`")`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
