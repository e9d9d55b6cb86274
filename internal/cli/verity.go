package cli

import "github.com/spf13/cobra"

func init() { register(newVerityCmd) }

// veritySubcommands holds the constructors of the `imago verity` subcommands;
// each subcommand's file appends itself from init.
var veritySubcommands []func(*env) *cobra.Command

func newVerityCmd(e *env) *cobra.Command {
	return commandGroup(e, "verity", "Format, verify and sign dm-verity hash trees (veritysetup-compatible)", veritySubcommands)
}
