package repart

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/imago-os/imago/efistore"
	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/efivar"
	"github.com/imago-os/imago/format/unitfile"
)

// SeedSource says where ResolveSeed took the seed from.
type SeedSource string

// The sources of a seed.
const (
	SeedGiven     SeedSource = "--seed"
	SeedMachineID SeedSource = "machine-id"
	SeedRandom    SeedSource = "random"
)

// ResolveSeed returns the seed systemd-repart 252 uses: the UUID given
// with --seed= (spec); "random" for a random one; otherwise (spec empty,
// or the all-zero UUID) the machine ID in root's /etc/machine-id, or a
// random seed when that file is missing, empty or "uninitialized". rnd nil
// means crypto/rand.
func ResolveSeed(spec, root string, rnd io.Reader) (dps.UUID, SeedSource, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	random := func() (dps.UUID, SeedSource, error) {
		var u dps.UUID
		if _, err := io.ReadFull(rnd, u[:]); err != nil {
			return u, "", fmt.Errorf("repart: random seed: %w", err)
		}
		return MakeV4(u), SeedRandom, nil
	}
	switch spec {
	case "random":
		return random()
	case "":
	default:
		u, err := dps.ParseUUID(spec)
		if err != nil {
			return dps.UUID{}, "", fmt.Errorf("repart: --seed=%s: not a UUID", spec)
		}
		if !u.IsZero() {
			return u, SeedGiven, nil
		}
	}
	b, err := readFileInRoot(root, "/etc/machine-id")
	if errors.Is(err, fs.ErrNotExist) {
		return random()
	}
	if err != nil {
		return dps.UUID{}, "", fmt.Errorf("repart: machine ID of %s: %w", rootOrSlash(root), err)
	}
	u, err := parseID128(b)
	if errors.Is(err, errNoID) {
		return random()
	}
	if err != nil {
		return dps.UUID{}, "", fmt.Errorf("repart: machine ID of %s: %w", rootOrSlash(root), err)
	}
	return u, SeedMachineID, nil
}

// ParseSize parses --size=: "auto", or a size with base-1024 suffixes,
// rounded up to a multiple of 4096 as systemd does.
func ParseSize(s string) (size uint64, auto bool, err error) {
	if s == "auto" {
		return 0, true, nil
	}
	n, err := unitfile.ParseSize(s, 1024)
	if err != nil {
		return 0, false, fmt.Errorf("repart: --size=%s: %w", s, err)
	}
	r := roundUp(n, 4096)
	if r == 0 {
		return 0, false, fmt.Errorf("repart: --size=%s: image size too small, refusing", s)
	}
	if r == unset || r > 1<<62 {
		return 0, false, fmt.Errorf("repart: --size=%s: image size too large, refusing", s)
	}
	return r, false, nil
}

// InInitrd reports whether imago runs in an initrd, as systemd's
// in_initrd() decides: $SYSTEMD_IN_INITRD if set, else whether
// /etc/initrd-release exists.
func InInitrd() bool {
	if v, ok := os.LookupEnv("SYSTEMD_IN_INITRD"); ok {
		b, err := unitfile.ParseBool(v)
		return err == nil && b
	}
	_, err := os.Stat("/etc/initrd-release")
	return err == nil
}

// DefaultInitrdRoot returns the root systemd-repart uses in the initrd
// when none is given: /sysusr if /sysusr/usr is a mount point, else
// /sysroot.
func DefaultInitrdRoot() string {
	a, errA := os.Stat("/sysusr/usr")
	b, errB := os.Stat("/sysusr")
	if errA == nil && errB == nil && a.IsDir() && !sameDevice(a, b) {
		return "/sysusr"
	}
	return "/sysroot"
}

// FactoryResetRequested tells whether a factory reset was requested the
// ways systemd-repart 252 honours in the initrd when --factory-reset= is
// not given: the kernel command line option systemd.factory_reset=
// (cmdline is the text of /proc/cmdline), else the FactoryReset EFI
// variable in store (nil to skip). source names where the answer came
// from ("" when neither says anything).
func FactoryResetRequested(cmdline string, store *efistore.Store) (requested bool, source string, err error) {
	words, err := unitfile.SplitWords(strings.TrimSpace(cmdline), "", unitfile.ExtractUnquote|unitfile.ExtractRelax)
	if err != nil {
		return false, "", fmt.Errorf("repart: kernel command line: %w", err)
	}
	found := false
	for _, w := range words {
		for _, key := range []string{"systemd.factory_reset", "rd.systemd.factory_reset"} {
			switch {
			case w == key:
				requested, found = true, true
			case strings.HasPrefix(w, key+"="):
				b, err := unitfile.ParseBool(w[len(key)+1:])
				if err != nil {
					return false, "", fmt.Errorf("repart: kernel command line %s: not a boolean", w)
				}
				requested, found = b, true
			}
		}
	}
	if found {
		return requested, "kernel command line", nil
	}
	if store == nil {
		return false, "", nil
	}
	v, err := store.Get(efivar.SystemdVar(efivar.FactoryReset))
	if errors.Is(err, fs.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("repart: reading EFI variable FactoryReset: %w", err)
	}
	b, err := efivar.DecodeFactoryReset(v.Data)
	if err != nil {
		return false, "", fmt.Errorf("repart: %w", err)
	}
	return b, "EFI variable FactoryReset", nil
}

func absPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return a, nil
}

func rootFS(dir string) fs.FS { return os.DirFS(dir) }
