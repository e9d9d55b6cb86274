package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/imago-os/imago/sysupdate"
	"github.com/spf13/cobra"
)

func init() { register(newUpdateCmd) }

// updateFlags are the options shared by the update verbs.
type updateFlags struct {
	definitions, root, image, component string
	esp, xbootldr                       string
	offline, asJSON                     bool
	// Set by the verbs that write (update, vacuum).
	verify   *bool
	keyring  string
	cacheDir string
	progress func(name string, done, total int64)
}

func (f *updateFlags) plan(cmd *cobra.Command) (*sysupdate.Plan, error) {
	if f.definitions != "" && (f.root != "" || f.component != "") {
		return nil, errors.New("--definitions= cannot be combined with --root= or --component=")
	}
	ts, err := sysupdate.Load(sysupdate.Options{Root: f.root, Definitions: f.definitions, Component: f.component})
	if err != nil {
		return nil, err
	}
	esp := f.esp
	if esp == "" && f.root == "" && f.image == "" {
		esp = defaultESP()
	}
	return sysupdate.BuildPlan(cmd.Context(), ts, sysupdate.PlanOptions{
		Offline: f.offline,
		Env: sysupdate.Env{Root: f.root, Image: f.image, ESP: esp, XBOOTLDR: f.xbootldr,
			Verify: f.verify, Keyring: f.keyring, CacheDir: f.cacheDir, Progress: f.progress},
	})
}

// updateSetJSON is one line of `imago update list --json`.
type updateSetJSON struct {
	Version    string `json:"version"`
	Installed  bool   `json:"installed"`
	Available  bool   `json:"available"`
	Assessment string `json:"assessment"`
}

// instanceJSON is one transfer's instance in `imago update list VERSION`.
type instanceJSON struct {
	Transfer  string  `json:"transfer"`
	Side      string  `json:"side"`
	Type      string  `json:"type"`
	Path      string  `json:"path"`
	Name      string  `json:"name"`
	PTUUID    string  `json:"ptuuid,omitempty"`
	PTFlags   string  `json:"ptflags,omitempty"`
	MTime     uint64  `json:"mtime,omitempty"`
	Mode      string  `json:"mode,omitempty"`
	Size      uint64  `json:"size,omitempty"`
	TriesDone *uint64 `json:"triesDone,omitempty"`
	TriesLeft *uint64 `json:"triesLeft,omitempty"`
	NoAuto    *bool   `json:"noAuto,omitempty"`
	ReadOnly  *bool   `json:"readOnly,omitempty"`
	GrowFS    *bool   `json:"growFileSystem,omitempty"`
	SHA256    string  `json:"sha256,omitempty"`
}

// versionJSON is `imago update list VERSION --json`.
type versionJSON struct {
	updateSetJSON
	Incomplete bool           `json:"incomplete"`
	Protected  bool           `json:"protected"`
	Obsolete   bool           `json:"obsolete"`
	Instances  []instanceJSON `json:"instances"`
}

func setJSON(us *sysupdate.UpdateSet) updateSetJSON {
	return updateSetJSON{Version: us.Version, Installed: us.Flags&sysupdate.FlagInstalled != 0,
		Available: us.Flags&sysupdate.FlagAvailable != 0, Assessment: us.Flags.Assessment()}
}

func instanceInfo(tr *sysupdate.Transfer, side string, in *sysupdate.Instance) instanceJSON {
	r := tr.Target
	if side == "source" {
		r = tr.Source
	}
	f := in.Fields
	j := instanceJSON{Transfer: tr.ID, Side: side, Type: string(r.Type), Path: in.Path, Name: in.Name,
		NoAuto: f.NoAuto, ReadOnly: f.ReadOnly, GrowFS: f.GrowFileSystem}
	if f.HasPartitionUUID {
		j.PTUUID = fmt.Sprintf("%x", f.PartitionUUID)
	}
	if f.HasPartitionFlags {
		j.PTFlags = fmt.Sprintf("0x%x", f.PartitionFlags)
	}
	if f.HasMTime {
		j.MTime = f.MTime
	}
	if f.HasMode {
		j.Mode = fmt.Sprintf("%03o", f.Mode)
	}
	if f.HasSize {
		j.Size = f.Size
	}
	if f.HasTriesDone {
		j.TriesDone = &f.TriesDone
	}
	if f.HasTriesLeft {
		j.TriesLeft = &f.TriesLeft
	}
	if f.HasSHA256 {
		j.SHA256 = fmt.Sprintf("%x", f.SHA256)
	}
	return j
}

func newUpdateCmd(e *env) *cobra.Command {
	f := &updateFlags{}
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Inspect A/B updates described by sysupdate.d transfer definitions",
		Long: `Read sysupdate.d transfer definitions (as systemd-sysupdate does) and report the
versions installed on their targets and available from their sources.

Definitions are read from /etc, /run, /usr/local/lib and /usr/lib sysupdate.d
below --root (sysupdate.<COMPONENT>.d with --component), or only from
--definitions=DIR. Partition targets with Path=auto are the disk that holds the
booted /usr, or the disk image given with --image (written as a file, without
loop devices).`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.definitions, "definitions", "", "read transfer definitions only from this directory")
	pf.StringVar(&f.root, "root", "", "operate on the OS tree at this directory")
	pf.StringVar(&f.image, "image", "", "disk image file standing for Path=auto partition targets")
	pf.StringVarP(&f.component, "component", "C", "", "use sysupdate.COMPONENT.d definitions")
	pf.StringVar(&f.esp, "esp-path", "", "EFI system partition mount point for PathRelativeTo=esp/boot")
	pf.StringVar(&f.xbootldr, "xbootldr-path", "", "XBOOTLDR partition mount point for PathRelativeTo=xbootldr/boot")
	pf.BoolVar(&f.offline, "offline", false, "only look at installed versions")
	pf.BoolVar(&f.asJSON, "json", false, "print JSON")

	list := &cobra.Command{
		Use:   "list [VERSION]",
		Short: "List installed and available versions, or the instances of one version",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := f.plan(cmd)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				return showVersion(e, f, p, args[0])
			}
			if f.asJSON {
				out := []updateSetJSON{}
				for _, us := range p.Sets {
					out = append(out, setJSON(us))
				}
				return e.printJSON(out)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tINSTALLED\tAVAILABLE\tASSESSMENT")
			for _, us := range p.Sets {
				j := setJSON(us)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", j.Version, mark(j.Installed), mark(j.Available), j.Assessment)
			}
			return tw.Flush()
		},
	}
	checkNew := &cobra.Command{
		Use:   "check-new",
		Short: "Print the newest available version if it is newer than the installed one",
		Long: `Print the version an update would install and exit 0, or exit 1 (printing
nothing) if there is none.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.offline {
				return errors.New("check-new needs the sources; it cannot run with --offline")
			}
			p, err := f.plan(cmd)
			if err != nil {
				return err
			}
			v, ok := p.CheckNew()
			if f.asJSON {
				if err := e.printJSON(map[string]any{"available": ok, "version": v}); err != nil {
					return err
				}
			} else if ok {
				fmt.Fprintln(e.stdout, v)
			}
			if !ok {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.AddCommand(list, checkNew)
	cmd.AddCommand(newUpdateApplyCmds(e, f)...)
	return cmd
}

func mark(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func showVersion(e *env, f *updateFlags, p *sysupdate.Plan, version string) error {
	us := p.Set(version)
	if us == nil {
		return fmt.Errorf("update %q not found", version)
	}
	v := versionJSON{updateSetJSON: setJSON(us), Incomplete: us.Flags&sysupdate.FlagIncomplete != 0,
		Protected: us.Flags&sysupdate.FlagProtected != 0, Obsolete: us.Flags&sysupdate.FlagObsolete != 0, Instances: []instanceJSON{}}
	for k, tr := range p.Transfers {
		if k < len(us.Installed) && us.Installed[k] != nil {
			v.Instances = append(v.Instances, instanceInfo(tr, "target", us.Installed[k]))
		}
		if k < len(us.Available) && us.Available[k] != nil {
			v.Instances = append(v.Instances, instanceInfo(tr, "source", us.Available[k]))
		}
	}
	if f.asJSON {
		return e.printJSON(v)
	}
	fmt.Fprintf(e.stdout, "  Version: %s\n    State: %s\nInstalled: %s\nAvailable: %s\nProtected: %s\n Obsolete: %s\n\n",
		v.Version, v.Assessment, mark(v.Installed), mark(v.Available), mark(v.Protected), mark(v.Obsolete))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSFER\tSIDE\tTYPE\tPATH\tNAME")
	for _, in := range v.Instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Transfer, in.Side, in.Type, in.Path, strings.TrimSpace(in.Name))
	}
	return tw.Flush()
}
