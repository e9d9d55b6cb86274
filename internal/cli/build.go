package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/build"
	"github.com/imago-os/imago/build/config"
	"github.com/imago-os/imago/build/reference"
)

func init() { register(newBuildCmd) }

func newBuildCmd(e *env) *cobra.Command {
	var (
		outputDir, imageVersion string
		force, asJSON           bool
	)
	cmd := &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build a disk image and update artifacts from an image definition",
		Long: `Builds the image definition in DIR (imago.conf, imago.conf.d/, repart.d/,
sysupdate.d/) into a GPT disk image IMAGEID_VERSION.raw and the update
artifacts of that version: the usr, usr-verity and usr-verity-sig partition
images, the UKI, SHA256SUMS and SHA256SUMS.gpg, the package manifest, the
hermetic report and the build log. With no DIR it builds imago's reference
image into ./imago.output.

Signing follows [Validation]: systemd-boot and the UKI for Secure Boot, the
UKI's PCR 11 predictions (.pcrsig, .pcrpkey), the verity root hash, and
SHA256SUMS. Keys the definition does not name come from imago's key set
(see imago keys), generated on first use.

Progress goes to standard error, the summary to standard output (--json:
as JSON). SOURCE_DATE_EPOCH in the environment clamps every timestamp, for
reproducible output. Existing outputs of the same version are only replaced
with --force. Needs root.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lopts := config.Options{ImageVersion: imageVersion, OutputDirectory: outputDir}
			var (
				def *config.Definition
				err error
			)
			if outputDir != "" {
				// --output-dir is relative to the working directory,
				// as every path on the command line.
				if lopts.OutputDirectory, err = filepath.Abs(outputDir); err != nil {
					return err
				}
			}
			if len(args) == 1 {
				def, err = config.Load(args[0], lopts)
			} else {
				var wd string
				if wd, err = os.Getwd(); err != nil {
					return err
				}
				if lopts.OutputDirectory == "" {
					lopts.OutputDirectory = filepath.Join(wd, config.DefaultOutputDir)
				}
				var scratch string
				if scratch, err = os.MkdirTemp("", "imago-reference-"); err != nil {
					return err
				}
				defer os.RemoveAll(scratch)
				def, err = referenceDefinition(scratch, lopts)
			}
			if err != nil {
				return err
			}
			epoch, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			self, err := os.Executable()
			if err != nil {
				return err
			}
			res, err := build.Run(ctx, def, build.Options{
				ImagoBinary:     self,
				Force:           force,
				SourceDateEpoch: epoch,
				Progress:        func(msg string) { fmt.Fprintln(e.stderr, msg) },
			})
			if err != nil {
				return err
			}
			if asJSON {
				return e.printJSON(res)
			}
			return res.WriteSummary(e.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&outputDir, "output-dir", "", "write the artifacts into `DIR` (default: OutputDirectory=)")
	f.StringVar(&imageVersion, "image-version", "", "build version `V` (default: ImageVersion=)")
	f.BoolVarP(&force, "force", "f", false, "replace the outputs of an earlier build of the same version")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

// referenceDefinition writes the embedded reference definition to dir and
// loads it from there: the build reads its repart.d, sysupdate.d and extra
// tree from disk.
func referenceDefinition(dir string, opts config.Options) (*config.Definition, error) {
	if _, err := reference.WriteTo(dir, false); err != nil {
		return nil, err
	}
	return config.Load(dir, opts)
}

// sourceDateEpoch parses $SOURCE_DATE_EPOCH; "" means none.
func sourceDateEpoch(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds since 1970", s)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}
