package fsimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/imago-os/imago/internal/toolexec"
)

// build formats the image file img (already sized for the writable types)
// and populates it. It returns how many bytes of img the file system uses:
// size for the writable types, the file's length for erofs and squashfs.
func build(ctx context.Context, img string, size int64, opts Options) (int64, error) {
	label, err := MangleLabel(opts.Type, opts.Label)
	if err != nil {
		return 0, err
	}
	tree := ""
	// systemd builds read-only file systems from an (empty) tree even when
	// nothing is copied; the writable ones are populated only on request.
	if opts.hasContent() || ReadOnly(opts.Type) {
		t, cleanup, err := prepareTree(opts)
		if err != nil {
			return 0, err
		}
		defer cleanup()
		tree = t
	}

	epoch := opts.epochString()
	var runOpts []toolexec.Option
	if epoch != "" {
		runOpts = append(runOpts, toolexec.Env("SOURCE_DATE_EPOCH="+epoch))
	} else {
		runOpts = append(runOpts, toolexec.UnsetEnv("SOURCE_DATE_EPOCH", "E2FSPROGS_FAKE_TIME"))
	}
	uuid := uuidString(opts.UUID)

	var tool string
	var args []string
	switch opts.Type {
	case "ext2", "ext3", "ext4":
		tool = "mkfs." + opts.Type
		args, runOpts = extArgs(opts, label, uuid, epoch, tree, img, runOpts)
	case "btrfs":
		tool = "mkfs.btrfs"
		args = []string{"-q", "-L", label, "-U", uuid}
		if opts.NoDiscard {
			args = append(args, "--nodiscard")
		}
		if tree != "" {
			args = append(args, "-r", tree)
		}
		args = append(args, img)
	case "xfs":
		tool = "mkfs.xfs"
		args = []string{"-q", "-L", label, "-m", "uuid=" + uuid, "-m", "reflink=1"}
		if opts.NoDiscard {
			args = append(args, "-K")
		}
		if tree != "" {
			proto, err := writeProtofileTemp(tree, opts.TempDir)
			if err != nil {
				return 0, err
			}
			defer os.Remove(proto)
			args = append(args, "-p", proto)
			// The protofile names sources relative to the tree, so that
			// no whitespace in the tree's own path can confuse mkfs.xfs.
			runOpts = append(runOpts, toolexec.Dir(tree))
		}
		if opts.SectorSize != 0 {
			args = append(args, "-s", "size="+strconv.Itoa(opts.SectorSize))
		}
		args = append(args, img)
	case "vfat":
		tool = "mkfs.vfat"
		args = nil
		if epoch != "" {
			// Fixed values instead of the current time for the label's
			// directory entry. It must come before -i: mkfs.fat applies
			// its options in order, and --invariant also sets the volume
			// ID, which -i then overrides.
			args = append(args, "--invariant")
		}
		args = append(args, "-i", fatVolumeID(opts.UUID), "-n", label, "-F", "32")
		if opts.SectorSize != 0 {
			args = append(args, "-S", strconv.Itoa(opts.SectorSize))
		}
		args = append(args, img)
	case "swap":
		tool = "mkswap"
		args = []string{"-L", label, "-U", uuid, img}
	case "squashfs":
		tool = "mksquashfs"
		args = []string{tree, img, "-quiet", "-noappend"}
	case "erofs":
		tool = "mkfs.erofs"
		args = []string{"-U", uuid, img, tree}
	default:
		return 0, fmt.Errorf("fsimage: unsupported file-system type %q", opts.Type)
	}
	if _, err := toolexec.Run(ctx, tool, args, runOpts...); err != nil {
		return 0, fmt.Errorf("fsimage: %w", err)
	}

	switch opts.Type {
	case "vfat":
		if tree != "" {
			if err := mcopyTree(ctx, img, tree, epoch); err != nil {
				return 0, err
			}
		}
	case "erofs":
		if label != "" {
			if err := setErofsLabel(img, label); err != nil {
				return 0, err
			}
		}
	}

	if !ReadOnly(opts.Type) {
		return size, nil
	}
	fi, err := os.Stat(img)
	if err != nil {
		return 0, fmt.Errorf("fsimage: %w", err)
	}
	return fi.Size(), nil
}

// extArgs returns mkfs.ext2/3/4's arguments: systemd v252-stable's, plus
// -d to populate, plus a fixed hash seed and creation time for a
// reproducible build.
func extArgs(opts Options, label, uuid, epoch, tree, img string, runOpts []toolexec.Option) ([]string, []toolexec.Option) {
	ext := "discard,lazy_itable_init=1"
	if opts.NoDiscard {
		ext = "nodiscard,lazy_itable_init=1"
	}
	if epoch != "" {
		// The directory-index hash seed is random otherwise.
		ext += ",hash_seed=" + uuid
		runOpts = append(runOpts, toolexec.Env("E2FSPROGS_FAKE_TIME="+epoch))
	}
	args := []string{"-q", "-L", label, "-U", uuid, "-I", "256"}
	if opts.Type != "ext2" {
		args = append(args, "-O", "has_journal")
	}
	// "-T default" came with v252.8: the usage type no longer depends on
	// the size (Debian 12's 252.x has it).
	args = append(args, "-m", "0", "-E", ext, "-T", "default")
	if tree != "" {
		args = append(args, "-d", tree)
	}
	if opts.SectorSize != 0 {
		runOpts = append(runOpts, toolexec.Env("MKE2FS_DEVICE_SECTSIZE="+strconv.Itoa(opts.SectorSize)))
	}
	return append(args, img), runOpts
}

// mcopyTree copies the tree into the FAT image as systemd (v253+) does:
// every top-level regular file and directory, recursively, keeping
// modification times, with mtools' geometry checks off, in UTC.
func mcopyTree(ctx context.Context, img, tree, epoch string) error {
	entries, err := os.ReadDir(tree) // sorted by name
	if err != nil {
		return fmt.Errorf("fsimage: %w", err)
	}
	args := []string{"-s", "-p", "-Q", "-m", "-i", img}
	n := 0
	for _, e := range entries {
		// Only what FAT can hold; symlinks, devices and the like at the top
		// are left out.
		if e.Type().IsRegular() || e.IsDir() {
			args = append(args, filepath.Join(tree, e.Name()))
			n++
		}
	}
	if n == 0 {
		return nil
	}
	args = append(args, "::")
	env := []string{"MTOOLS_SKIP_CHECK=1", "TZ=UTC"}
	if epoch != "" {
		env = append(env, "SOURCE_DATE_EPOCH="+epoch)
	}
	if _, err := toolexec.Run(ctx, "mcopy", args, toolexec.CleanEnv(), toolexec.Env(env...)); err != nil {
		return fmt.Errorf("fsimage: %w", err)
	}
	return nil
}
