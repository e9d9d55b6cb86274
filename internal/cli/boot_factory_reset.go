package cli

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/efivar"
)

func init() { bootSubcommands = append(bootSubcommands, newBootFactoryResetCmd) }

// factoryResetStatus is what the factory-reset commands report.
type factoryResetStatus struct {
	Requested bool   `json:"requested"`
	Variable  string `json:"variable"`
	Path      string `json:"path"`
	// Value is the decoded string when the variable exists.
	Value *string `json:"value,omitempty"`
	// Attributes is the UEFI attribute mask when the variable exists.
	Attributes *uint32 `json:"attributes,omitempty"`
}

func newBootFactoryResetCmd(e *env) *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "factory-reset",
		Short: "Request, cancel or show a factory reset at the next boot",
		Long: `Sets, clears or shows the FactoryReset EFI variable of systemd's vendor
(8cf2644b-4b0b-428f-9387-6d876050dc67). When it is true, systemd-repart
252 to 257, running in the initrd, deletes and re-creates every partition
whose definition says FactoryReset=yes, then removes the variable.
"request" writes "1" as systemd does (UTF-16, attributes NV|BS|RT);
"cancel" deletes the variable.`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&dir, "efivars", efistore.DefaultDir, "efivarfs `directory` to read and write")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print the status as JSON")

	id := efivar.SystemdVar(efivar.FactoryReset)
	report := func(store *efistore.Store) error {
		st, err := readFactoryReset(store, id)
		if err != nil {
			return err
		}
		if asJSON {
			return e.printJSON(st)
		}
		switch {
		case st.Requested:
			fmt.Fprintln(e.stdout, "Factory reset: requested for the next boot")
		case st.Value != nil:
			fmt.Fprintf(e.stdout, "Factory reset: not requested (%s is %q)\n", efivar.FactoryReset, *st.Value)
		default:
			fmt.Fprintln(e.stdout, "Factory reset: not requested")
		}
		return nil
	}
	sub := func(use, short string, act func(*efistore.Store) error) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				store, err := efistore.Open(dir)
				if err != nil {
					return err
				}
				if act != nil {
					if err := act(store); err != nil {
						return err
					}
				}
				return report(store)
			},
		}
	}
	cmd.AddCommand(
		sub("request", "Ask systemd-repart to reset the FactoryReset=yes partitions at the next boot",
			func(s *efistore.Store) error {
				return s.Set(id, efivar.Variable{Attributes: efivar.AttributesSystemd, Data: efivar.EncodeFactoryResetRequest()})
			}),
		sub("cancel", "Withdraw a factory reset request",
			func(s *efistore.Store) error {
				if err := s.Delete(id); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				return nil
			}),
		sub("status", "Show whether a factory reset is requested", nil),
	)
	return cmd
}

// readFactoryReset reads the variable as systemd-repart 252 does. A value
// repart cannot parse is an error: repart would fail on it at boot.
func readFactoryReset(store *efistore.Store, id efivar.ID) (factoryResetStatus, error) {
	path, err := store.Path(id)
	if err != nil {
		return factoryResetStatus{}, err
	}
	st := factoryResetStatus{Variable: id.String(), Path: path}
	v, err := store.Get(id)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	value := efivar.DecodeString(v.Data)
	attrs := uint32(v.Attributes)
	st.Value, st.Attributes = &value, &attrs
	st.Requested, err = efivar.DecodeFactoryReset(v.Data)
	if err != nil {
		return st, fmt.Errorf("%s: value %q is not a boolean, systemd-repart would fail at boot (run \"imago boot factory-reset cancel\")", path, value)
	}
	return st, nil
}
