package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/unitfile"
	"github.com/imago-os/imago/repart"
)

func init() { register(newRepartCmd) }

// repartFlags are the options of imago repart, named as systemd-repart
// names them.
type repartFlags struct {
	definitions     []string
	empty           string
	size            string
	seed            string
	dryRun          string
	discard         string
	factoryReset    string
	canFactoryReset bool
	root            string
	privateKey      string
	certificate     string
	keyFile         string
	tpm2Device      string
	tpm2PCRs        string
	reproVerity     string
	json            string
	pretty          string
	noLegend        bool
	efiFactoryReset string
	efivars         string
	split           string
}

// repartJSON is one partition in --json output. The field names are
// systemd-repart 252's (--json=short); "action", "partno", "attrs" and
// "dropins" are imago's additions.
type repartJSON struct {
	Type       string   `json:"type"`
	Label      string   `json:"label"`
	UUID       string   `json:"uuid"`
	File       string   `json:"file"`
	Node       string   `json:"node"`
	Offset     uint64   `json:"offset"`
	OldSize    uint64   `json:"old_size"`
	RawSize    uint64   `json:"raw_size"`
	OldPadding uint64   `json:"old_padding"`
	RawPadding uint64   `json:"raw_padding"`
	Activity   string   `json:"activity"`
	RootHash   string   `json:"roothash,omitempty"`
	DropIns    []string `json:"drop-in_files,omitempty"`
	Action     string   `json:"action"`
	PartNo     int      `json:"partno"`
	Attrs      string   `json:"attrs"`
}

func newRepartCmd(e *env) *cobra.Command {
	f := &repartFlags{}
	cmd := &cobra.Command{
		Use:   "repart [flags] [DEVICE|IMAGE]",
		Short: "Grow and add partitions from repart.d definitions, as systemd-repart 252 does",
		Long: `Reads repart.d partition definitions and grows the GPT of a block device
or image file from them, reaching the same partition table as
systemd-repart 252 with the same definitions, seed and disk. The flags mean
what they mean for systemd-repart. Nothing is written without --dry-run=no.

Definitions come from --definitions= directories, or from the repart.d
directories (/etc, /run, /usr/local/lib, /usr/lib) under --root.

New partitions are filled as systemd-repart fills them: CopyBlocks=,
Format= with CopyFiles= and MakeDirectories= (sources under --root), LUKS2
with --key-file= for Encrypt=key-file, verity hash trees and signatures
(--private-key=, --certificate=). Encrypt=tpm2 is refused: the TPM2 of the
machine that boots the image seals that key, at first boot; key-file+tpm2
gets its key-file slot only.

The plan lists every partition with its type, label, UUID, place, size and
action: keep, grow, create, factory-reset (removed and created anew),
foreign (not claimed by any definition, never touched) or drop (does not
fit for its priority). Exit status 77 means the disk was left alone
because of its partition table (none with --empty=refuse).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRepart(cmd.Context(), e, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.definitions, "definitions", nil, "read partition definitions from `DIR` (repeatable)")
	fl.StringVar(&f.empty, "empty", "refuse", "what to do with a disk without partition table: refuse, allow, require, force or create")
	fl.StringVar(&f.size, "size", "", "grow the image file to `BYTES` (base-1024 suffixes) or to the minimal size with \"auto\"")
	fl.StringVar(&f.seed, "seed", "", "128-bit seed `UUID` to derive all UUIDs from, or \"random\" (default: the machine ID under --root)")
	fl.StringVar(&f.dryRun, "dry-run", "", "whether to only show the plan: yes (default, no with --empty=create) or no")
	fl.StringVar(&f.discard, "discard", "yes", "whether to discard new partitions and gaps (image files: punch holes)")
	fl.StringVar(&f.factoryReset, "factory-reset", "", "whether to remove and re-create the partitions marked FactoryReset=yes")
	fl.BoolVar(&f.canFactoryReset, "can-factory-reset", false, "exit 0 if a factory reset would remove a partition, 1 otherwise")
	fl.StringVar(&f.root, "root", "", "operate relative to root `PATH` (definitions, os-release, machine ID, copy sources)")
	fl.StringVar(&f.privateKey, "private-key", "", "private key (PEM) for verity signature partitions")
	fl.StringVar(&f.certificate, "certificate", "", "certificate (PEM) for verity signature partitions")
	fl.StringVar(&f.keyFile, "key-file", "", "`file` whose whole content is the passphrase of encrypted partitions (default: empty passphrase)")
	fl.StringVar(&f.tpm2Device, "tpm2-device", "", "accepted for compatibility: TPM2 keys are enrolled on the device at first boot, never here")
	fl.StringVar(&f.tpm2PCRs, "tpm2-pcrs", "", "accepted for compatibility (PCR indexes separated by + or ,); see --tpm2-device")
	fl.StringVar(&f.reproVerity, "reproducible-verity", "yes", "derive verity salts and superblock UUIDs from the seed, as systemd 255 does; no: random ones, as systemd 252")
	fl.StringVar(&f.json, "json", "off", "print the plan as JSON: pretty, short or off")
	fl.Lookup("json").NoOptDefVal = "pretty"
	fl.StringVar(&f.pretty, "pretty", "", "whether to print the plan (default yes)")
	fl.BoolVar(&f.noLegend, "no-legend", false, "do not print the column headers")
	fl.StringVar(&f.efiFactoryReset, "efi-factory-reset", "auto", "whether to honour systemd.factory_reset= and the FactoryReset EFI variable when --factory-reset= is not given: yes, no, or auto (only in an initrd, as systemd-repart)")
	fl.StringVar(&f.efivars, "efivars", efistore.DefaultDir, "efivarfs `directory` for the FactoryReset variable")
	fl.StringVar(&f.split, "split", "no", "whether to also write each partition with a SplitName= to a file next to the image")
	return cmd
}

func parseBoolFlag(name, v string, def bool) (bool, error) {
	if v == "" {
		return def, nil
	}
	b, err := unitfile.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("--%s=%s: not a boolean", name, v)
	}
	return b, nil
}

func runRepart(ctx context.Context, e *env, f *repartFlags, args []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	empty, err := repart.ParseEmptyMode(f.empty)
	if err != nil {
		return err
	}
	dryRun, err := parseBoolFlag("dry-run", f.dryRun, empty != repart.EmptyCreate)
	if err != nil {
		return err
	}
	discard, err := parseBoolFlag("discard", f.discard, true)
	if err != nil {
		return err
	}
	pretty, err := parseBoolFlag("pretty", f.pretty, true)
	if err != nil {
		return err
	}
	split, err := parseBoolFlag("split", f.split, false)
	if err != nil {
		return err
	}
	switch f.json {
	case "off", "pretty", "short":
	default:
		return fmt.Errorf("--json=%s: want pretty, short or off", f.json)
	}
	if f.canFactoryReset {
		dryRun = true
	}
	var size uint64
	var sizeAuto bool
	if f.size != "" {
		if size, sizeAuto, err = repart.ParseSize(f.size); err != nil {
			return err
		}
	}
	if len(args) == 0 {
		return errors.New("a block device or image file argument is required (finding the root disk is not supported)")
	}
	device := args[0]

	root := f.root
	initrd := repart.InInitrd()
	if root == "" && initrd {
		root = repart.DefaultInitrdRoot()
	}

	factoryReset := false
	var efiStore *efistore.Store
	if f.factoryReset != "" {
		if factoryReset, err = parseBoolFlag("factory-reset", f.factoryReset, false); err != nil {
			return err
		}
	} else {
		honour := initrd
		if f.efiFactoryReset != "auto" {
			if honour, err = parseBoolFlag("efi-factory-reset", f.efiFactoryReset, false); err != nil {
				return err
			}
		}
		if honour {
			efiStore, _ = efistore.Open(f.efivars) // no efivarfs: no EFI request
			cmdline, _ := os.ReadFile("/proc/cmdline")
			req, source, err := repart.FactoryResetRequested(string(cmdline), efiStore)
			if err != nil {
				return err
			}
			if req {
				fmt.Fprintf(e.stderr, "Factory reset requested via %s.\n", source)
			}
			factoryReset = req
		}
	}
	if factoryReset && (empty == repart.EmptyForce || empty == repart.EmptyRequire || empty == repart.EmptyCreate) {
		return errors.New("combination of --factory-reset=yes and --empty=force/--empty=require/--empty=create is invalid")
	}
	if empty == repart.EmptyCreate && f.size == "" {
		return errors.New("if --empty=create is specified, --size= must be specified, too")
	}

	logf := func(format string, a ...any) { fmt.Fprintf(e.stderr, format+"\n", a...) }
	seed, source, err := repart.ResolveSeed(f.seed, root, nil)
	if err != nil {
		return err
	}
	if source == repart.SeedRandom && f.seed != "random" {
		logf("No machine ID set, using randomized partition UUIDs.")
	}
	signing := f.privateKey != "" && f.certificate != ""
	specs := &repart.Specifiers{Root: root}
	defs, err := repart.LoadDefinitions(repart.LoadOptions{
		ParseOptions: repart.ParseOptions{Specifiers: specs, Signing: signing},
		Root:         root,
		Dirs:         f.definitions,
	})
	if err != nil {
		return err
	}

	var disk repart.Disk
	if empty == repart.EmptyCreate {
		d, err := repart.CreateImage(device)
		if err != nil {
			return err
		}
		defer d.Close()
		disk = d
	} else {
		d, err := repart.OpenDevice(device, !dryRun)
		if err != nil {
			return err
		}
		defer d.Close()
		disk = d
	}

	content, err := repartContent(f, logf)
	if err != nil {
		return err
	}
	opts := repart.Options{
		Definitions:  defs,
		Seed:         seed,
		Empty:        empty,
		Write:        !dryRun,
		NoDiscard:    !discard,
		Size:         size,
		SizeAuto:     sizeAuto,
		FactoryReset: factoryReset,
		EFIVars:      efiStore,
		Content:      content,
		Root:         root,
		Device:       device,
		Split:        split,
		Logf:         logf,
	}
	if f.canFactoryReset {
		ok, err := repart.CanFactoryReset(ctx, disk, opts)
		if err != nil {
			return repartError(err)
		}
		if !ok {
			return &ExitError{Code: 1}
		}
		return nil
	}
	plan, err := repart.Run(ctx, disk, opts)
	if plan != nil {
		if perr := printRepartPlan(e, f, plan, pretty); perr != nil && err == nil {
			err = perr
		}
	}
	return repartError(err)
}

// repartContent returns the content step that fills new partitions
// (Format=, CopyFiles=, CopyBlocks=, Encrypt=, Verity=) with the keys the
// flags name.
func repartContent(f *repartFlags, logf func(string, ...any)) (repart.Content, error) {
	var o repart.ContentOptions
	var err error
	if f.privateKey != "" {
		if o.Signer, err = loadSigningKey(f.privateKey); err != nil {
			return nil, fmt.Errorf("--private-key=: %w", err)
		}
	}
	if f.certificate != "" {
		certs, err := loadCertificates(f.certificate)
		if err != nil {
			return nil, fmt.Errorf("--certificate=: %w", err)
		}
		o.Certificate = certs[0]
	}
	if f.keyFile != "" {
		if o.Key, err = os.ReadFile(f.keyFile); err != nil {
			return nil, fmt.Errorf("--key-file=: %w", err)
		}
	}
	if f.tpm2PCRs != "" {
		if err := checkTPM2PCRs(f.tpm2PCRs); err != nil {
			return nil, err
		}
	}
	if f.tpm2Device != "" || f.tpm2PCRs != "" {
		logf("TPM2 keys are enrolled on the device at first boot, not here: --tpm2-device=/--tpm2-pcrs= are ignored.")
	}
	if o.ReproducibleVerity, err = parseBoolFlag("reproducible-verity", f.reproVerity, true); err != nil {
		return nil, err
	}
	// systemd-repart's mkfs inherits SOURCE_DATE_EPOCH.
	if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%s: not a number of seconds", v)
		}
		t := time.Unix(n, 0).UTC()
		o.SourceDateEpoch = &t
	}
	return repart.NewContent(o), nil
}

// checkTPM2PCRs checks a --tpm2-pcrs= list as systemd 252 reads it: PCR
// indexes 0…23 separated by "+" or ",".
func checkTPM2PCRs(s string) error {
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == '+' || r == ',' }) {
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 || n > 23 {
			return fmt.Errorf("--tpm2-pcrs=%s: %q is not a PCR index (0…23)", s, w)
		}
	}
	return nil
}

// repartError maps "disk left alone" to systemd-repart's exit status 77.
func repartError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, repart.ErrNoGPT) {
		return &ExitError{Code: 77, Message: err.Error()}
	}
	return err
}

func printRepartPlan(e *env, f *repartFlags, plan *repart.Plan, pretty bool) error {
	if f.json != "off" {
		var out []repartJSON
		for _, p := range plan.Partitions {
			if p.Action == repart.ActionDrop {
				continue
			}
			j := repartJSON{
				Type:       p.TypeName(),
				Label:      p.Label,
				UUID:       p.UUID.String(),
				File:       repart.DefinitionFile(p.Definition),
				Node:       p.Node,
				Offset:     p.Offset,
				OldSize:    p.OldSize,
				RawSize:    p.Size,
				OldPadding: p.OldPadding,
				RawPadding: p.Padding,
				Activity:   p.Activity,
				DropIns:    p.DropIns,
				Action:     string(p.Action),
				PartNo:     p.Number,
				Attrs:      fmt.Sprintf("0x%016x", p.Attributes),
			}
			if j.Label == "" {
				j.Label = "-"
			}
			if j.Node == "" {
				j.Node = "-"
			}
			if len(p.RootHash) > 0 {
				j.RootHash = fmt.Sprintf("%x", p.RootHash)
			}
			out = append(out, j)
		}
		if out == nil {
			out = []repartJSON{}
		}
		if f.json == "short" {
			return printCompactJSON(e, out)
		}
		return e.printJSON(out)
	}
	if !pretty {
		return nil
	}
	if len(plan.Partitions) == 0 {
		fmt.Fprintln(e.stderr, "Empty partition table.")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	if !f.noLegend {
		fmt.Fprintln(w, "TYPE\tLABEL\tUUID\tFILE\tNODE\tOFFSET\tSIZE\tPADDING\tACTION")
	}
	for _, p := range plan.Partitions {
		label := p.Label
		if label == "" {
			label = "-"
		}
		uuid := p.UUID.String()
		if !p.UUIDKnown {
			uuid = "(from root hash)"
		}
		node, offset := p.Node, fmt.Sprint(p.Offset)
		if p.Action == repart.ActionDrop {
			node, offset = "-", "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.TypeName(), label, uuid,
			repart.DefinitionFile(p.Definition), node, offset,
			sizeChange(p.OldSize, p.Size, p.Action), sizeChange(p.OldPadding, p.Padding, p.Action), p.Action)
	}
	return w.Flush()
}

// sizeChange shows a size as systemd-repart does: "→ NEW" for a new
// partition, "OLD → NEW" when it changes.
func sizeChange(old, new uint64, a repart.Action) string {
	switch {
	case a == repart.ActionDrop:
		return "-"
	case a == repart.ActionCreate || a == repart.ActionFactoryReset:
		return "→ " + repart.FormatBytes(new)
	case old != new:
		return repart.FormatBytes(old) + " → " + repart.FormatBytes(new)
	}
	return repart.FormatBytes(new)
}

func printCompactJSON(e *env, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}
