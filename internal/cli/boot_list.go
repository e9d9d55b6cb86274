package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/bootentry"
	"github.com/imago-os/imago/efistore"
)

func init() { bootSubcommands = append(bootSubcommands, newBootListCmd) }

// bootSource holds the flags that say where boot entries and EFI
// variables come from, shared by `boot list` and `boot status`.
type bootSource struct {
	esp     string
	image   string
	efivars string
	asJSON  bool
}

func (s *bootSource) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.esp, "esp", "", "ESP `directory` (default: the first of "+strings.Join(bootentry.ESPCandidates, ", ")+" that is a mount point holding EFI/ or loader/)")
	cmd.Flags().StringVar(&s.image, "image", "", "read the ESP out of this disk image `file` (GPT with an ESP, or a bare FAT file system) instead")
	cmd.Flags().StringVar(&s.efivars, "efivars", efistore.DefaultDir, "efivarfs `directory` to read LoaderEntrySelected and the other loader variables from (ignored with --image unless given)")
	cmd.Flags().BoolVar(&s.asJSON, "json", false, "print JSON")
	cmd.MarkFlagsMutuallyExclusive("esp", "image")
}

// open returns the ESP directory to read, a function that removes what
// open made, and the variable store (nil when there is none: a disk image,
// or a system not booted through UEFI).
func (s *bootSource) open(ctx context.Context, cmd *cobra.Command) (string, func(), *efistore.Store, error) {
	cleanup := func() {}
	esp := s.esp
	switch {
	case s.image != "":
		tmp, err := os.MkdirTemp("", "imago-esp-*")
		if err != nil {
			return "", nil, nil, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		if err := bootentry.ExtractESP(ctx, s.image, tmp); err != nil {
			cleanup()
			return "", nil, nil, err
		}
		esp = tmp
	case esp == "":
		found, err := bootentry.FindESP()
		if err != nil {
			return "", nil, nil, fmt.Errorf("%w (use --esp=DIR or --image=FILE)", err)
		}
		esp = found
	}
	var vars *efistore.Store
	explicit := cmd.Flags().Changed("efivars")
	if s.image == "" || explicit {
		store, err := efistore.Open(s.efivars)
		switch {
		case err == nil:
			vars = store
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			// Not booted through UEFI: no variables, nothing selected.
		default:
			cleanup()
			return "", nil, nil, err
		}
	}
	return esp, cleanup, vars, nil
}

// runE is the RunE of a boot verb: it opens what the flags name, hands
// the ESP directory and the variable store (nil when there is none) to
// fn, and removes what open made afterwards.
func (s *bootSource) runE(fn func(esp string, vars *efistore.Store) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		esp, cleanup, vars, err := s.open(cmd.Context(), cmd)
		if err != nil {
			return err
		}
		defer cleanup()
		return fn(esp, vars)
	}
}

// where names the ESP for output: the directory, or the image.
func (s *bootSource) where(esp string) string {
	if s.image != "" {
		return s.image
	}
	return esp
}

func newBootListCmd(e *env) *cobra.Command {
	var src bootSource
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the boot loader entries in systemd-boot's menu order, with their boot counters",
		Long: `Lists the unified kernel images in EFI/Linux/ and the Type #1 entries in
loader/entries/ of the ESP as systemd-boot 252 orders them: entries with no
tries left ("bad") last, then by sort key, version (newest first) and ID.
Each entry shows its boot counter and assessment: good (no counter, or
blessed), indeterminate (still being assessed) or bad. The entry that was
booted (LoaderEntrySelected) and the one systemd-boot starts by default
(LoaderEntryDefault, loader.conf "default", else the first) are marked.`,
		Args: cobra.NoArgs,
		RunE: src.runE(func(esp string, vars *efistore.Store) error {
			entries, err := bootentry.List(esp, vars)
			if err != nil {
				return err
			}
			if src.asJSON {
				if entries == nil {
					entries = []bootentry.Entry{}
				}
				return e.printJSON(entries)
			}
			if len(entries) == 0 {
				fmt.Fprintf(e.stdout, "No boot loader entries in %s.\n", src.where(esp))
				return nil
			}
			fmt.Fprintf(e.stdout, "Boot loader entries in %s:\n", src.where(esp))
			for i := range entries {
				fmt.Fprintln(e.stdout)
				printEntry(e.stdout, &entries[i])
			}
			return nil
		}),
	}
	src.addFlags(cmd)
	return cmd
}

// printEntry writes one entry the way bootctl list does: aligned
// "key: value" lines.
func printEntry(w io.Writer, en *bootentry.Entry) {
	title := en.Title
	if en.Default {
		title += " (default)"
	}
	if en.Selected {
		title += " (booted)"
	}
	if en.OneShot {
		title += " (next boot only)"
	}
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%14s: %s\n", k, v)
		}
	}
	line("title", title)
	line("id", en.LoaderID)
	line("path", filepath.ToSlash(en.Path))
	line("version", en.DisplayVersion())
	line("sort-key", en.SortKey)
	if en.Counted {
		line("tries", fmt.Sprintf("%d left, %d done", en.TriesLeft, en.TriesDone))
	}
	line("assessment", assessmentText(en.Assessment, en.TriesLeft))
	line("linux", en.Linux)
	line("efi", en.EFI)
	line("options", en.Options)
}

// assessmentText explains an assessment in a few words.
func assessmentText(a bootentry.Assessment, left int) string {
	switch a {
	case bootentry.Good:
		return "good"
	case bootentry.Indeterminate:
		tries := "tries"
		if left == 1 {
			tries = "try"
		}
		return fmt.Sprintf("being assessed (%d %s left)", left, tries)
	case bootentry.Bad:
		return "bad (no tries left; sorted last)"
	}
	return string(a)
}
