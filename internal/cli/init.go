package cli

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/build/reference"
)

func init() { register(newInitCmd) }

func newInitCmd(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Write the reference image definition into DIR as a starting point",
		Long: `Writes the definition of imago's reference image (the one "imago build"
builds when given no directory) into DIR: imago.conf, repart.d/ (the
partitions made on first boot), sysupdate.d/ (the update transfers) and
extra/ (files copied into the image). DIR is created if needed. Existing
files are never replaced unless --force is given; then nothing is written
if any of them exists.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			written, err := reference.WriteTo(args[0], force)
			var pe *fs.PathError
			if errors.Is(err, fs.ErrExist) && errors.As(err, &pe) {
				return &ExitError{Code: 1, Message: fmt.Sprintf("%s already exists; use --force to overwrite", pe.Path)}
			}
			if err != nil {
				return err
			}
			for _, p := range written {
				fmt.Fprintln(e.stdout, p)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "overwrite files that already exist")
	return cmd
}
