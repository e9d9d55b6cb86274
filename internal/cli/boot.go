package cli

import "github.com/spf13/cobra"

func init() { register(newBootCmd) }

// bootSubcommands holds the constructors of the `imago boot` subcommands;
// each subcommand's file appends itself from init.
var bootSubcommands []func(*env) *cobra.Command

func newBootCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "boot",
		Short: "Control the next boots through systemd's EFI variables (bootctl-compatible)",
		Args:  cobra.NoArgs,
	}
	for _, newSub := range bootSubcommands {
		cmd.AddCommand(newSub(e))
	}
	return cmd
}
