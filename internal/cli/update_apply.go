package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/imago-os/imago/bootentry"
	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/sysupdate"
	"github.com/spf13/cobra"
)

// updateApplyFlags are the options of the verbs that change targets.
type updateApplyFlags struct {
	verify       string
	keyring      string
	cacheDir     string
	instancesMax uint64
	sync         yesNo
}

// env fills the parts of the environment that the apply verbs add.
func (a *updateApplyFlags) apply(f *updateFlags, e *env) {
	if a.verify != "" {
		v := a.verify == "yes"
		f.verify = &v
	}
	f.keyring, f.cacheDir = a.keyring, a.cacheDir
	f.progress = e.byteProgress()
}

func (a *updateApplyFlags) options() sysupdate.UpdateOptions {
	return sysupdate.UpdateOptions{InstancesMax: a.instancesMax, NoSync: !bool(a.sync)}
}

// byteProgress reports downloads and writes on stderr: a live line on a
// terminal, otherwise a line per tenth of each instance (so that a log or
// a serial console shows the update advancing without flooding).
func (e *env) byteProgress() func(name string, done, total int64) {
	tty := e.stderrTerminal() != nil
	var mu sync.Mutex
	var last time.Time
	lastTenth := map[string]int64{}
	return func(name string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if tty {
			if total > 0 && done >= total {
				fmt.Fprintf(e.stderr, "\r\033[K%s: %d MiB\n", name, total>>20)
				return
			}
			if time.Since(last) < 200*time.Millisecond {
				return
			}
			last = time.Now()
			if total > 0 {
				fmt.Fprintf(e.stderr, "\r\033[K%s: %d%% (%d/%d MiB)", name, done*100/total, done>>20, total>>20)
			} else {
				fmt.Fprintf(e.stderr, "\r\033[K%s: %d MiB", name, done>>20)
			}
			return
		}
		if total <= 0 {
			return
		}
		tenth := done * 10 / total
		if prev, ok := lastTenth[name]; ok && tenth <= prev {
			return
		}
		lastTenth[name] = tenth
		fmt.Fprintf(e.stderr, "%s: %d%% (%d/%d MiB)\n", name, tenth*10, done>>20, total>>20)
	}
}

func addApplyFlags(cmd *cobra.Command, a *updateApplyFlags) {
	fl := cmd.Flags()
	a.sync = true
	fl.StringVar(&a.verify, "verify", "", "check SHA256SUMS.gpg, `yes|no` (default: each transfer's Verify=); payload hashes are always checked")
	fl.StringVar(&a.keyring, "keyring", "", "OpenPGP keyring for SHA256SUMS.gpg (default: systemd's import-pubring locations)")
	fl.StringVar(&a.cacheDir, "cache-dir", "", "where downloads are kept until installed (default /var/cache/imago/sysupdate)")
	fl.Uint64VarP(&a.instancesMax, "instances-max", "m", 0, "keep at most this many instances per transfer (overrides InstancesMax=)")
	fl.Var(&a.sync, "sync", "sync written data to disk (yes|no)")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if a.verify != "" && a.verify != "yes" && a.verify != "no" {
			return fmt.Errorf("--verify=%s: want yes or no", a.verify)
		}
		return nil
	}
}

// planJSON is `imago update --plan --json`.
type planJSON struct {
	Version   string             `json:"version"`
	UpToDate  bool               `json:"upToDate"`
	Reason    string             `json:"reason,omitempty"`
	Repair    bool               `json:"repair"`
	Warnings  []string           `json:"warnings"`
	Vacuum    []vacuumPlanJSON   `json:"vacuum"`
	Transfers []transferPlanJSON `json:"transfers"`
}

type vacuumPlanJSON struct {
	Transfer string   `json:"transfer"`
	Remove   []string `json:"remove"`
}

type transferPlanJSON struct {
	Transfer         string `json:"transfer"`
	Installed        bool   `json:"installed"`
	Source           string `json:"source,omitempty"`
	URL              string `json:"url,omitempty"`
	DownloadSize     int64  `json:"downloadSize"`
	SignatureChecked bool   `json:"signatureChecked"`
	Size             int64  `json:"size"`
	Target           string `json:"target,omitempty"`
	TargetPath       string `json:"targetPath,omitempty"`
	Slot             int    `json:"slot,omitempty"`
	SlotLabel        string `json:"slotLabel,omitempty"`
	Free             int64  `json:"free"`
}

func planInfo(up *sysupdate.UpdatePlan) planJSON {
	j := planJSON{Version: up.Version, UpToDate: up.UpToDate, Reason: up.Reason, Repair: up.Repair,
		Warnings: append([]string{}, up.Warnings...), Vacuum: []vacuumPlanJSON{}, Transfers: []transferPlanJSON{}}
	for _, v := range up.Vacuum {
		if len(v.Remove) == 0 {
			continue
		}
		vj := vacuumPlanJSON{Transfer: v.Transfer.ID}
		for _, in := range v.Remove {
			vj.Remove = append(vj.Remove, in.Name)
		}
		j.Vacuum = append(j.Vacuum, vj)
	}
	for _, tp := range up.Transfers {
		t := transferPlanJSON{Transfer: tp.Transfer.ID, Installed: tp.Installed, URL: tp.URL,
			DownloadSize: tp.DownloadSize, SignatureChecked: tp.SignatureChecked, Size: tp.Size,
			Target: tp.TargetName, TargetPath: tp.TargetPath, Free: tp.Free}
		if tp.Source != nil {
			t.Source = tp.Source.Name
		}
		if tp.Slot != nil {
			t.Slot, t.SlotLabel = tp.Slot.Number, tp.Slot.Label
		}
		j.Transfers = append(j.Transfers, t)
	}
	return j
}

func printPlan(e *env, j planJSON) error {
	if j.UpToDate {
		fmt.Fprintf(e.stdout, "Nothing to do: %s\n", j.Reason)
		return nil
	}
	what := "Install"
	if j.Repair {
		what = "Repair"
	}
	fmt.Fprintf(e.stdout, "%s version %s\n", what, j.Version)
	for _, w := range j.Warnings {
		fmt.Fprintf(e.stdout, "Warning: %s\n", w)
	}
	for _, v := range j.Vacuum {
		fmt.Fprintf(e.stdout, "Remove first (%s): %s\n", v.Transfer, strings.Join(v.Remove, ", "))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSFER\tSOURCE\tDOWNLOAD\tSIGNED\tSIZE\tTARGET\tINTO\tFREE")
	var download int64
	for _, t := range j.Transfers {
		if t.Installed {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t(installed)\t\t\n", t.Transfer, t.Source)
			continue
		}
		into := t.TargetPath
		if t.Slot != 0 {
			into = fmt.Sprintf("%s partition %d (%s)", t.TargetPath, t.Slot, t.SlotLabel)
		}
		signed := "-"
		if t.URL != "" {
			signed = mark(t.SignatureChecked)
		}
		if t.DownloadSize > 0 {
			download += t.DownloadSize
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Transfer, t.Source, sizeOrUnknown(t.DownloadSize),
			signed, sizeOrUnknown(t.Size), t.Target, into, sizeOrUnknown(t.Free))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Download: %s in total\n", sizeOrUnknown(download))
	return nil
}

func sizeOrUnknown(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// updateLockPath is the lock that keeps two updates (a timer's and a
// user's, say) from writing at the same time.
const updateLockPath = "/run/lock/imago-update.lock"

// lockUpdates takes the update lock, or fails at once if another update
// or vacuum holds it. The returned function releases it; so does the end
// of the process.
func lockUpdates() (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(updateLockPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(updateLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another update or vacuum is running (%s is locked)", updateLockPath)
		}
		return nil, fmt.Errorf("%s: %w", updateLockPath, err)
	}
	return func() { f.Close() }, nil
}

func newUpdateApplyCmds(e *env, f *updateFlags) []*cobra.Command {
	var plan, reboot bool
	ua := &updateApplyFlags{}
	update := &cobra.Command{
		Use:   "update [VERSION]",
		Short: "Install the newest available version (or VERSION) into a free slot",
		Long: `Install the newest available version (or VERSION), as systemd-sysupdate update does.

Every url-file and url-tar payload is downloaded into the cache and checked
against SHA256SUMS, whose OpenPGP signature SHA256SUMS.gpg is checked first
(--verify=no skips only the signature), before anything is written. Then the
oldest unprotected versions make room (InstancesMax=, free partition slots),
each payload is written to a free partition slot (which stays labelled _empty
while it is written) or to a temporary file, and only after all are written do
labels, partition UUIDs and flags, file names and CurrentSymlink= change, one
transfer at a time in file-name order. An interruption leaves the installed
versions intact; the next run cleans up and installs the version again.

--plan only reports what would be done: the version, the downloads and their
sizes, whether signatures were checked, the slots or files used and the space
available.

Examples:
  imago update update
  imago update update --plan
  imago update --image=disk.raw --definitions=sysupdate.d update 2`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ua.apply(f, e)
			p, err := f.plan(cmd)
			if err != nil {
				return err
			}
			version := ""
			if len(args) == 1 {
				version = args[0]
			}
			if plan {
				up, err := p.PlanUpdate(cmd.Context(), version, ua.options())
				if err != nil {
					return err
				}
				if f.asJSON {
					return e.printJSON(planInfo(up))
				}
				return printPlan(e, planInfo(up))
			}
			unlock, err := lockUpdates()
			if err != nil {
				return err
			}
			defer unlock()
			res, err := p.Update(cmd.Context(), version, ua.options())
			if err != nil {
				return err
			}
			if err := printUpdateResult(e, f, res); err != nil {
				return err
			}
			if reboot && !res.Plan.UpToDate {
				return rebootIfNewer(cmd, e, f)
			}
			return nil
		},
	}
	addApplyFlags(update, ua)
	update.Flags().BoolVar(&plan, "plan", false, "only report what the update would do")
	update.Flags().BoolVar(&reboot, "reboot", false, "reboot afterwards if a version newer than the booted one was installed")

	va := &updateApplyFlags{}
	vacuum := &cobra.Command{
		Use:   "vacuum",
		Short: "Remove the oldest versions beyond InstancesMax= and those of disabled features",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			va.apply(f, e)
			f.offline = true
			p, err := f.plan(cmd)
			if err != nil {
				return err
			}
			unlock, err := lockUpdates()
			if err != nil {
				return err
			}
			defer unlock()
			res, err := p.Vacuum(cmd.Context(), va.options())
			if err != nil {
				return err
			}
			removed := []string{}
			for _, r := range res.Removed {
				removed = append(removed, r.Transfer+": "+r.Name)
			}
			if f.asJSON {
				errs := []string{}
				for _, err := range res.Errors {
					errs = append(errs, err.Error())
				}
				if err := e.printJSON(map[string]any{"removed": removed, "temporary": append([]string{}, res.Temporary...), "errors": errs}); err != nil {
					return err
				}
			} else {
				for _, r := range removed {
					fmt.Fprintf(e.stdout, "Removed %s\n", r)
				}
				for _, t := range res.Temporary {
					fmt.Fprintf(e.stdout, "Removed temporary %s\n", t)
				}
			}
			return errors.Join(res.Errors...)
		},
	}
	addApplyFlags(vacuum, va)

	pending := &cobra.Command{
		Use:   "pending",
		Short: "Exit 0 if a version newer than the booted one is installed (a reboot is due)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			newer, err := reportPending(cmd, e, f)
			if err != nil {
				return err
			}
			if !newer {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	rebootCmd := &cobra.Command{
		Use:   "reboot",
		Short: "Reboot if a version newer than the booted one is installed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return rebootIfNewer(cmd, e, f)
		},
	}
	features := &cobra.Command{
		Use:   "features [FEATURE]",
		Short: "List the optional features, or the transfers of one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return showFeatures(e, f, args)
		},
	}
	components := &cobra.Command{
		Use:   "components",
		Short: "List the components (sysupdate.COMPONENT.d directories)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := sysupdate.Components(f.root)
			if err != nil {
				return err
			}
			if names == nil {
				names = []string{}
			}
			if f.asJSON {
				return e.printJSON(map[string]any{"components": names})
			}
			for _, n := range names {
				fmt.Fprintln(e.stdout, n)
			}
			return nil
		},
	}
	return []*cobra.Command{update, vacuum, pending, rebootCmd, features, components}
}

func printUpdateResult(e *env, f *updateFlags, res *sysupdate.UpdateResult) error {
	if f.asJSON {
		installed := []map[string]any{}
		for _, in := range res.Installed {
			installed = append(installed, map[string]any{"transfer": in.Transfer, "name": in.Name, "path": in.Path, "partition": in.Partition})
		}
		removed := []string{}
		for _, r := range res.Vacuum.Removed {
			removed = append(removed, r.Transfer+": "+r.Name)
		}
		return e.printJSON(map[string]any{"version": res.Plan.Version, "upToDate": res.Plan.UpToDate,
			"reason": res.Plan.Reason, "installed": installed, "removed": removed})
	}
	if res.Plan.UpToDate {
		fmt.Fprintf(e.stdout, "No update needed: %s\n", res.Plan.Reason)
		return nil
	}
	for _, r := range res.Vacuum.Removed {
		fmt.Fprintf(e.stdout, "Removed %s: %s\n", r.Transfer, r.Name)
	}
	for _, in := range res.Installed {
		where := in.Path
		if in.Partition != 0 {
			where = fmt.Sprintf("%s partition %d", in.Path, in.Partition)
		}
		fmt.Fprintf(e.stdout, "Installed %s: %s (%s)\n", in.Transfer, in.Name, where)
	}
	fmt.Fprintf(e.stdout, "Version %s installed.\n", res.Plan.Version)
	return nil
}

func reportPending(cmd *cobra.Command, e *env, f *updateFlags) (bool, error) {
	if f.image != "" {
		return false, errors.New("pending and reboot look at the running system; they cannot be combined with --image")
	}
	f.offline = true
	p, err := f.plan(cmd)
	if err != nil {
		return false, err
	}
	installed, booted, newer, err := sysupdate.Pending(p, f.root)
	if err != nil {
		return false, err
	}
	// A newer version that used up its boot tries is not worth a reboot:
	// systemd-boot would start the booted one again.
	failed := newer && failedBootAssessment(f, installed)
	if failed {
		newer = false
	}
	if f.asJSON {
		return newer, e.printJSON(map[string]any{"installed": installed, "booted": booted, "rebootNeeded": newer, "installedFailed": failed})
	}
	if failed {
		fmt.Fprintf(e.stdout, "Version %s is installed but failed its boot assessment; %s stays booted.\n", installed, booted)
	} else if newer {
		fmt.Fprintf(e.stdout, "Version %s is installed, %s is booted: reboot recommended.\n", installed, booted)
	} else {
		fmt.Fprintf(e.stdout, "The booted version %s is the newest installed.\n", booted)
	}
	return newer, nil
}

// failedBootAssessment tells whether version's boot entry on the ESP is
// marked bad (its tries used up) and an older one booted instead.
func failedBootAssessment(f *updateFlags, version string) bool {
	esp := f.esp
	if esp == "" && f.root == "" {
		esp = defaultESP()
	}
	if esp == "" {
		return false
	}
	var vars *efistore.Store
	if f.root == "" {
		if s, err := efistore.Open(efistore.DefaultDir); err == nil {
			vars = s
		}
	}
	st, err := bootentry.Status(esp, vars)
	return err == nil && st.Fallback != nil && st.Fallback.FailedVersion == version
}

// rebootIfNewer reboots through systemd when a newer version is installed.
func rebootIfNewer(cmd *cobra.Command, e *env, f *updateFlags) error {
	newer, err := reportPending(cmd, e, f)
	if err != nil || !newer {
		return err
	}
	if f.root != "" {
		return errors.New("not rebooting: --root is not the running system")
	}
	systemctl, err := exec.LookPath("systemctl")
	if err != nil {
		return fmt.Errorf("rebooting: %w", err)
	}
	if out, err := exec.CommandContext(cmd.Context(), systemctl, "reboot").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl reboot: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func showFeatures(e *env, f *updateFlags, args []string) error {
	opts := sysupdate.Options{Root: f.root, Definitions: f.definitions, Component: f.component}
	feats, err := sysupdate.LoadFeatures(opts)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		out := []map[string]any{}
		for _, ft := range feats {
			out = append(out, map[string]any{"name": ft.Name, "enabled": ft.Enabled, "description": ft.Description})
		}
		if f.asJSON {
			return e.printJSON(out)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FEATURE\tENABLED\tDESCRIPTION")
		for _, ft := range feats {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", ft.Name, mark(ft.Enabled), ft.Description)
		}
		return tw.Flush()
	}
	var ft *sysupdate.Feature
	for _, x := range feats {
		if x.Name == args[0] {
			ft = x
		}
	}
	if ft == nil {
		return fmt.Errorf("feature %q not found", args[0])
	}
	ts, err := sysupdate.Load(opts)
	if err != nil {
		return err
	}
	ids := []string{}
	for _, t := range sysupdate.TransfersOf(ts, ft.Name) {
		ids = append(ids, t.ID)
	}
	if f.asJSON {
		return e.printJSON(map[string]any{"name": ft.Name, "file": ft.File, "description": ft.Description,
			"documentation": append([]string{}, ft.Documentation...), "enabled": ft.Enabled, "transfers": ids})
	}
	fmt.Fprintf(e.stdout, "      Name: %s\n      File: %s\n   Enabled: %s\nTransfers: %s\n", ft.Name, ft.File, mark(ft.Enabled), strings.Join(ids, ", "))
	if ft.Description != "" {
		fmt.Fprintf(e.stdout, "Description: %s\n", ft.Description)
	}
	return nil
}

// defaultESP returns the mounted ESP of the running system, or "".
func defaultESP() string {
	p, err := bootentry.FindESP()
	if err != nil {
		return ""
	}
	return p
}
