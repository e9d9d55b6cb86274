// Package cli implements imago's command line: it parses flags, calls the
// package that owns each verb, and prints text or JSON. It holds no logic
// of its own beyond presentation.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"
)

// verbs holds the constructors of the top-level commands. Each verb's file
// registers itself from init, so verbs can be added without touching this file.
var verbs []func(*env) *cobra.Command

func register(newCmd func(*env) *cobra.Command) { verbs = append(verbs, newCmd) }

// env carries the streams a command reads and writes, so commands can be
// run in-process from tests.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// ExitError asks Main to exit with a given code. Message, when not empty, is
// printed as the one error line; an empty message means the command already
// said what it had to (as compare-versions does with its exit status).
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string { return e.Message }

// printJSON writes v as indented JSON followed by a newline.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// commandGroup returns a command that only holds subcommands, such as
// `imago verity`, built from the constructors their files registered.
func commandGroup(e *env, use, short string, subs []func(*env) *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: groupRunE}
	for _, newSub := range subs {
		cmd.AddCommand(newSub(e))
	}
	return cmd
}

// groupRunE runs a command group given no subcommand: the help, or for an
// unknown subcommand an error (and a non-zero exit).
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// NewRootCommand returns the imago command with every verb attached.
func NewRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "imago",
		Short:         "Build, boot, update, verify and reset image-based Linux systems",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	var cmds []*cobra.Command
	for _, newCmd := range verbs {
		cmds = append(cmds, newCmd(e))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

// Main runs imago with args and returns the process exit code. Errors are
// printed as one line on stderr.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Message != "" {
			fmt.Fprintf(stderr, "imago: %s\n", exit.Message)
		}
		return exit.Code
	}
	fmt.Fprintf(stderr, "imago: %v\n", err)
	return 1
}
