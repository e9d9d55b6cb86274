package cli

import "github.com/spf13/cobra"

func init() { register(newBootCmd) }

// bootSubcommands holds the constructors of the `imago boot` subcommands;
// each subcommand's file appends itself from init.
var bootSubcommands []func(*env) *cobra.Command

func newBootCmd(e *env) *cobra.Command {
	return commandGroup(e, "boot", "Control the next boots through systemd's EFI variables (bootctl-compatible)", bootSubcommands)
}
