package bootentry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/internal/toolexec"
)

// ESPCandidates are the mount points systemd looks at for the ESP, in the
// order FindESP tries them.
var ESPCandidates = []string{"/efi", "/boot", "/boot/efi"}

// FindESP returns the first of ESPCandidates that is a mount point holding
// EFI/ or loader/.
func FindESP() (string, error) {
	for _, dir := range ESPCandidates {
		if isMountPoint(dir) && holdsBootFiles(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("bootentry: no ESP found: none of %s is a mount point holding EFI/ or loader/", strings.Join(ESPCandidates, ", "))
}

// holdsBootFiles reports whether dir has an EFI or loader directory, in
// any case (the ESP is FAT).
func holdsBootFiles(dir string) bool {
	for _, name := range []string{"EFI", "loader"} {
		if p, err := lookupFold(dir, name); err == nil && p != "" {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return true
			}
		}
	}
	return false
}

// isMountPoint reports whether dir is a directory on another file system
// than its parent's.
func isMountPoint(dir string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return false
	}
	if syscall.Stat(filepath.Join(dir, ".."), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}

// ExtractESP copies the boot loader entries (EFI/Linux/*, loader/entries/*
// and loader/loader.conf) of the ESP in a disk image into the directory
// dst, where List and Status can read them. image is a GPT disk image with
// an ESP partition, or a bare FAT file system. The FAT file system is read
// with mtools (mdir, mcopy); nothing is mounted.
func ExtractESP(ctx context.Context, image, dst string) error {
	offset, err := espOffset(image)
	if err != nil {
		return err
	}
	// mtools' syntax for a file system at a byte offset inside a file.
	img := fmt.Sprintf("%s@@%d", image, offset)
	env := []toolexec.Option{toolexec.CleanEnv(), toolexec.Env("MTOOLS_SKIP_CHECK=1", "TZ=UTC")}
	out, err := toolexec.Run(ctx, "mdir", []string{"-/", "-b", "-i", img, "::"}, env...)
	if err != nil {
		return fmt.Errorf("bootentry: %s: %w", image, err)
	}
	want := map[string][]string{} // target directory -> source paths
	for _, line := range strings.Split(string(out), "\n") {
		p, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "::/")
		if !ok || p == "" || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "*?[") {
			continue
		}
		dir, name := "", p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			dir, name = p[:i], p[i+1:]
		}
		var target string
		switch {
		case strings.EqualFold(dir, UKIDir):
			target = UKIDir
		case strings.EqualFold(dir, EntriesDir):
			target = EntriesDir
		case strings.EqualFold(p, LoaderConf):
			target, name = "loader", "loader.conf"
		default:
			continue
		}
		if name == "" || name == "." || name == ".." {
			continue
		}
		want[target] = append(want[target], "::/"+p)
	}
	for target, srcs := range want {
		d := filepath.Join(dst, filepath.FromSlash(target))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("bootentry: %w", err)
		}
		args := append([]string{"-n", "-m", "-i", img}, srcs...)
		args = append(args, d+"/")
		if _, err := toolexec.Run(ctx, "mcopy", args, env...); err != nil {
			return fmt.Errorf("bootentry: %s: %w", image, err)
		}
	}
	return nil
}

// espOffset returns where the ESP's file system starts in image: at the
// ESP partition of a GPT, or at 0 when there is no GPT.
func espOffset(image string) (int64, error) {
	f, err := os.Open(image)
	if err != nil {
		return 0, fmt.Errorf("bootentry: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("bootentry: %w", err)
	}
	t, err := gpt.Read(f, fi.Size(), 0)
	if errors.Is(err, gpt.ErrNoTable) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bootentry: %s: %w", image, err)
	}
	for _, p := range t.Partitions {
		if typ, ok := dps.LookupUUID(dps.UUID(p.TypeGUID)); ok && typ.Designator == dps.DesignatorESP {
			off, _ := p.Bytes(t.SectorSize)
			return off, nil
		}
	}
	return 0, fmt.Errorf("bootentry: %s: the partition table has no ESP (type c12a7328-f81f-11d2-ba4b-00a0c93ec93b)", image)
}
