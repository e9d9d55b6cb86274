package cli

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/dissect"
)

func init() { register(newDissectCmd) }

func newDissectCmd(e *env) *cobra.Command {
	var (
		asJSON   bool
		certs    []string
		verifyHT bool
	)
	cmd := &cobra.Command{
		Use:   "dissect [--json] [--certificate=PEM]... [--verify] IMAGE",
		Short: "Inspect a disk image: partitions, versions and verity groups",
		Long: `Lists the GPT partitions of a disk image or block device: number, offset and size in
bytes, type UUID and Discoverable Partitions name, partition UUID, label, the version a
NAME_VERSION label carries, and the attribute flags by name.

For every root or /usr partition with a dm-verity hash partition it checks what systemd
checks before it uses the image: that the partition UUIDs are the two halves of the root
hash in the signature partition, and, given --certificate, that the signature comes from
one of those certificates. --verify also checks every data block against the hash tree.
The exit status is 1 when any check fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var trusted []*x509.Certificate
			for _, path := range certs {
				c, err := loadCertificates(path)
				if err != nil {
					return err
				}
				trusted = append(trusted, c...)
			}
			return e.dissect(args[0], trusted, verifyHT, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	cmd.Flags().StringArrayVar(&certs, "certificate", nil, "PEM `file` of certificates a verity signature may come from (repeatable)")
	cmd.Flags().BoolVar(&verifyHT, "verify", false, "check every data block against its verity hash tree")
	return cmd
}

func (e *env) dissect(path string, trusted []*x509.Certificate, verifyHashTree, asJSON bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := deviceSize(f)
	if err != nil {
		return err
	}
	opts := dissect.Options{Trusted: trusted, VerifyHashTree: verifyHashTree}
	if p := e.progressPrinter("verifying"); p != nil {
		opts.Progress = func(_ string, done, total uint64) { p(done, total) }
	}
	img, err := dissect.Open(f, int64(size), opts)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if asJSON {
		err = e.printJSON(img)
	} else {
		err = printImage(e, path, img)
	}
	if err != nil {
		return err
	}
	for _, g := range img.VerityGroups {
		if g.Failed() {
			return fmt.Errorf("%s: verity group %s failed its checks", path, g.Type)
		}
	}
	return nil
}

func printImage(e *env, path string, img *dissect.Image) error {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Image:\t%s\n", path)
	fmt.Fprintf(w, "Size:\t%d bytes, %d-byte sectors\n", img.Size, img.SectorSize)
	fmt.Fprintf(w, "Disk GUID:\t%s\n", img.DiskGUID)
	if img.UsedBackup {
		fmt.Fprintf(w, "Table:\tread from the backup GPT, the primary is damaged\n")
	}
	for _, warning := range img.Warnings {
		fmt.Fprintf(w, "Warning:\t%s\n", warning)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "#\tOFFSET\tSIZE\tTYPE\tUUID\tLABEL\tVERSION\tFLAGS")
	for _, p := range img.Partitions {
		typ := p.TypeName
		if typ == "" {
			typ = p.TypeUUID
		}
		version := p.Version
		if p.Empty {
			version = "(empty slot)"
		}
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Number, p.Offset, p.Size, typ, p.UUID,
			orDash(p.Label), orDash(version), orDash(strings.Join(p.Flags, ",")))
	}
	for _, g := range img.VerityGroups {
		fmt.Fprintf(w, "\nVerity %s:\tdata %s, hash %s, signature %s\n", g.Type,
			partitionRef(g.Data), partitionRef(g.Hash), partitionRef(g.Signature))
		if g.Empty {
			fmt.Fprintf(w, "  free slot\tnothing to check until an update fills it\n")
			continue
		}
		if g.RootHash != "" {
			fmt.Fprintf(w, "  root hash\t%s\n", g.RootHash)
		}
		fmt.Fprintf(w, "  partition UUIDs\t%s\n", describeCheck(g.UUIDs, "match the root hash"))
		sig := describeCheck(g.SignatureCheck, "valid")
		if g.SignedBy != "" {
			sig += ", signed by " + g.SignedBy
		}
		fmt.Fprintf(w, "  signature\t%s\n", sig)
		fmt.Fprintf(w, "  hash tree\t%s\n", describeCheck(g.HashTree, "verified"))
	}
	return w.Flush()
}

func describeCheck(c dissect.CheckResult, okText string) string {
	switch c.Status {
	case dissect.StatusOK:
		if c.Detail != "" {
			return okText + " (" + c.Detail + ")"
		}
		return okText
	case dissect.StatusFailed:
		return "FAILED: " + c.Detail
	default:
		return "not checked: " + c.Detail
	}
}

func partitionRef(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("#%d", n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
