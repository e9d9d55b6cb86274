package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/bootentry"
	"github.com/imago-os/imago/efistore"
)

func init() { bootSubcommands = append(bootSubcommands, newBootStatusCmd) }

func newBootStatusCmd(e *env) *cobra.Command {
	var src bootSource
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the booted entry's boot assessment, and why an older version booted",
		Long: `Shows which boot loader entry was booted (LoaderEntrySelected) and where its
automatic boot assessment stands: good (blessed, or never counted), being
assessed (with the tries it has left before it turns bad), or bad; and
LoaderBootCountPath when systemd-boot counted this boot. When a newer
version than the booted one is marked bad, it says which version failed,
how often it was started, and which version booted instead. With --image
(no EFI variables) the default entry stands in for the booted one.`,
		Args: cobra.NoArgs,
		RunE: src.runE(func(esp string, vars *efistore.Store) error {
			st, err := bootentry.Status(esp, vars)
			if err != nil {
				return err
			}
			if src.asJSON {
				if st.Entries == nil {
					st.Entries = []bootentry.Entry{}
				}
				return e.printJSON(st)
			}
			printStatus(e, src.where(esp), st, vars == nil)
			return nil
		}),
	}
	src.addFlags(cmd)
	return cmd
}

// printStatus writes the status as aligned lines; noVars says there were
// no EFI variables to read.
func printStatus(e *env, where string, st *bootentry.StatusReport, noVars bool) {
	line := func(k, v string) { fmt.Fprintf(e.stdout, "%12s: %s\n", k, v) }
	describe := func(en *bootentry.Entry) string {
		s := fmt.Sprintf("%s (%s)", en.Title, en.FileName)
		if v := en.DisplayVersion(); v != "" {
			s += ", version " + v
		}
		return s
	}
	line("ESP", where)
	switch {
	case st.Booted != nil:
		line("Booted", describe(st.Booted))
		line("Assessment", assessmentText(st.Assessment, st.TriesLeft))
	case st.Variables.EntrySelected != "":
		line("Booted", fmt.Sprintf("%s (LoaderEntrySelected), not found on this ESP", st.Variables.EntrySelected))
	case noVars:
		line("Booted", "unknown (no EFI variables: a disk image, or not booted through UEFI)")
	default:
		line("Booted", "unknown (LoaderEntrySelected is not set)")
	}
	if st.Variables.BootCountPath != "" {
		line("Count path", st.Variables.BootCountPath)
	}
	if st.Default != nil {
		line("Default", describe(st.Default))
	} else {
		line("Default", "none (no boot loader entries)")
	}
	if st.Fallback != nil {
		line("Fallback", st.Fallback.Message)
	}
}
