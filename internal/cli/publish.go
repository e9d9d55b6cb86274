package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/publish"
)

func init() { register(newPublishCmd) }

func newPublishCmd(e *env) *cobra.Command {
	var (
		to, key, compression string
		keep                 int
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "publish [flags] BUILD_OUTPUT... --to=DIR",
		Short: "Publish builds' update payloads into a directory a web server serves to systemd-sysupdate",
		Long: `Copies the update payloads of each BUILD_OUTPUT directory (what imago build
wrote: the usr, usr-verity and usr-verity-sig partition images and the UKI;
not the disk image, logs or reports) into DIR, compressed, and rewrites
DIR/SHA256SUMS, listing every payload of every version in DIR, and its
detached OpenPGP signature DIR/SHA256SUMS.gpg. Serve DIR over HTTP at the
Path= of the image's sysupdate.d transfers.

Each build's own SHA256SUMS is checked first; a damaged build is refused
and DIR is left as it was. A version already in DIR with the same content
is left alone; the same payload with different content is an error: a
published version is never replaced. Versions are only removed with
--keep=N, which keeps the N newest versions of each image ID (in systemd's
version order). Files in DIR that are not payloads are left alone.

--key names the update signing key: a key set directory (see imago keys)
or an OpenPGP secret key file; the default is the default key set, the one
imago build signs with. Progress goes to standard error, one line per file.

Examples:
  imago publish imago.output --to=/srv/www/updates
  imago publish --keep=2 --compress=xz out/1 out/2 --to=/srv/www/updates
  imago publish --key=/etc/imago/update-signing.key --json out/3 --to=updates`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("publish: --to=DIR is required")
			}
			if keep < 0 {
				return fmt.Errorf("publish: --keep=%d: want a number of versions, 1 or more", keep)
			}
			comp, err := publish.ParseCompression(compression)
			if err != nil {
				return err
			}
			signer, err := publish.LoadSigner(key)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts := publish.Options{Dir: to, Signer: signer, Compression: comp, Keep: keep}
			if !asJSON {
				opts.Progress = func(msg string) { fmt.Fprintln(e.stderr, msg) }
			}
			res, err := publish.Run(ctx, args, opts)
			if err != nil {
				return err
			}
			if asJSON {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "Published %d version(s) into %s: %d file(s) written, %d unchanged, %d version(s) removed; SHA256SUMS lists %d file(s), signed by %s.\n",
				len(res.Published), res.Directory, len(res.Written), len(res.Unchanged), len(res.Removed), len(res.Listed), res.SignedBy)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "publish into `DIR` (created if missing)")
	f.StringVar(&key, "key", "", "update signing key `PATH`: a key set directory or an OpenPGP secret key file (default: the default key set)")
	f.IntVar(&keep, "keep", 0, "keep only the `N` newest versions of each image and remove older ones (default: remove nothing)")
	f.StringVar(&compression, "compress", string(publish.DefaultCompression), "compress payloads with `ALGO`: none, gz, xz or zst")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON instead of progress and a summary")
	return cmd
}
