package repart_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/internal/testutil"
	"github.com/imago-os/imago/repart"
)

// The conformance tests run systemd-repart and imago on copies of the same
// disk, step by step, and require the same exit status and the same
// partition table as sfdisk --json prints it (offsets, sizes, types, UUIDs,
// labels, attributes, disk UUID, first and last usable LBA); for cases
// without verity contents also the same bytes on the whole disk.
//
// Each case is a directory under testdata/conformance with a file "steps",
// one step per line:
//
//	sector-size 4096            (first line) use loop devices with 4096-byte sectors
//	no-byte-compare             (first line) compare tables only
//	both DEFS ARGS...           run both tools; DEFS is a directory of the case, or - for none
//	both-dry DEFS ARGS...       run both without --dry-run=no (nothing may change)
//	systemd DEFS ARGS...        run systemd-repart only, then copy its disk for imago
//	truncate SIZE               grow (or create) both image files
//	sfdisk SCRIPT               feed the case file SCRIPT to sfdisk on both disks
//	sfdisk-append SCRIPT        the same with sfdisk --append
//	sfdisk-args ARGS...         run sfdisk ARGS with @DISK@ replaced by each disk
//	imago DEFS ARGS...          run imago only (what systemd-repart cannot do here)
//	compare N MODE              compare partition N of both disks: bytes; vfat (bytes
//	                            but the label entry's times); tree:FSTYPE (blkid's view
//	                            and the files the file system's offline tools extract)
//	tree N FSTYPE DIR           imago's partition N holds exactly the files of DIR
//	verity DATA HASH SIG        on both disks: veritysetup verifies DATA with HASH, the
//	                            UUIDs are the halves of the root hash, openssl verifies
//	                            the signature partition SIG (- for none) over it
//
// In ARGS, "@/" stands for the case directory, @KEY@ and @CERT@ for a
// generated private key and certificate. Unless ARGS say otherwise, both
// tools get --seed=0123456789abcdef0123456789abcdef and --dry-run=no, and
// SOURCE_DATE_EPOCH is set for both.
//
// imago fills partitions with its real content step. systemd-repart 252
// picks a random verity salt and superblock UUID; imago's run is given the
// ones systemd-repart wrote at the same place (ContentOptions.VerityParams),
// so that the hash partitions, the partition UUIDs derived from the root
// hash and the signatures can be compared byte for byte.

const (
	conformanceSeed  = "0123456789abcdef0123456789abcdef"
	conformanceEpoch = 1640995200
)

type conformanceEnv struct {
	repart, sfdisk string
	key, cert      string
	tmp            string // for scratch files of the content step
}

func TestConformance(t *testing.T) {
	env := conformanceEnv{
		repart: testutil.RequireTool(t, "systemd-repart", "systemd"),
		sfdisk: testutil.RequireTool(t, "sfdisk", "fdisk"),
		tmp:    t.TempDir(),
	}
	cases, err := os.ReadDir("testdata/conformance")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		name := c.Name()
		t.Run(name, func(t *testing.T) {
			runConformanceCase(t, &env, filepath.Join("testdata/conformance", name))
		})
	}
}

// conformanceSide is one of the two disks of a case.
type conformanceSide struct {
	dir  string // holds disk.img
	dev  string // what the tool gets: "disk.img" (in dir) or a loop device
	loop bool
}

func (s *conformanceSide) image() string { return filepath.Join(s.dir, "disk.img") }

func runConformanceCase(t *testing.T, env *conformanceEnv, caseDir string) {
	data, err := os.ReadFile(filepath.Join(caseDir, "steps"))
	if err != nil {
		t.Fatal(err)
	}
	absCase, err := filepath.Abs(caseDir)
	if err != nil {
		t.Fatal(err)
	}
	sectorSize := 512
	compareBytes := true
	sys := &conformanceSide{dir: t.TempDir(), dev: "disk.img"}
	img := &conformanceSide{dir: t.TempDir(), dev: "disk.img"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		where := fmt.Sprintf("%s/steps:%d: %s", caseDir, lineNo, line)
		switch f[0] {
		case "sector-size":
			sectorSize, _ = strconv.Atoi(f[1])
		case "no-byte-compare":
			compareBytes = false
		case "truncate":
			for _, s := range []*conformanceSide{sys, img} {
				size, _, err := repart.ParseSize(f[1])
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				if err := growFile(s.image(), int64(size)); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				if sectorSize != 512 && !s.loop {
					s.dev = attachLoop(t, s.image(), sectorSize)
					s.loop = true
				} else if s.loop {
					testutil.Run(t, "losetup", "--set-capacity", s.dev)
				}
			}
		case "sfdisk", "sfdisk-append":
			script, err := os.ReadFile(filepath.Join(caseDir, f[1]))
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--no-reread", "--no-tell-kernel", "-q"}
			if f[0] == "sfdisk-append" {
				args = append(args, "--append")
			}
			for _, s := range []*conformanceSide{sys, img} {
				if out, err := runIn(s.dir, bytes.NewReader(script), env.sfdisk, append(args, s.dev)...); err != nil {
					t.Fatalf("%s: sfdisk: %v\n%s", where, err, out)
				}
			}
		case "sfdisk-args":
			for _, s := range []*conformanceSide{sys, img} {
				var args []string
				for _, a := range f[1:] {
					args = append(args, strings.ReplaceAll(a, "@DISK@", s.dev))
				}
				if out, err := runIn(s.dir, nil, env.sfdisk, args...); err != nil {
					t.Fatalf("%s: sfdisk: %v\n%s", where, err, out)
				}
			}
		case "compare":
			if len(f) != 3 {
				t.Fatalf("%s: want compare N MODE", where)
			}
			comparePartition(t, where, env, sys, img, atoi(t, where, f[1]), f[2])
		case "tree":
			if len(f) != 4 {
				t.Fatalf("%s: want tree N FSTYPE DIR", where)
			}
			dir := strings.ReplaceAll(f[3], "@/", absCase+"/")
			checkTree(t, where, env, img, atoi(t, where, f[1]), f[2], dir)
		case "verity":
			if len(f) != 4 {
				t.Fatalf("%s: want verity DATA HASH SIG", where)
			}
			for _, s := range []*conformanceSide{sys, img} {
				sig := 0
				if f[3] != "-" {
					sig = atoi(t, where, f[3])
				}
				checkVerityGroup(t, where, env, s, atoi(t, where, f[1]), atoi(t, where, f[2]), sig)
			}
		case "imago":
			if len(f) < 2 {
				t.Fatalf("%s: missing definitions directory", where)
			}
			args := expandArgs(t, env, absCase, f[2:], true)
			var log bytes.Buffer
			if code, err := runImago(env, img, nil, filepath.Join(absCase, f[1]), args, &log); code != 0 {
				t.Fatalf("%s: imago exited %d (%v)\n%s", where, code, err, log.String())
			}
			t.Logf("%s: imago:\n%s", where, log.String())
		case "systemd", "both", "both-dry":
			if len(f) < 2 {
				t.Fatalf("%s: missing definitions directory", where)
			}
			args := expandArgs(t, env, absCase, f[2:], f[0] != "both-dry")
			defs := ""
			if f[1] != "-" {
				defs = filepath.Join(absCase, f[1])
			}
			sysArgs := args
			if defs != "" {
				sysArgs = append([]string{"--definitions=" + defs}, args...)
			}
			sysOut, sysCode := runSystemdRepart(env, sys, sysArgs)
			if f[0] == "systemd" {
				if sysCode != 0 {
					t.Fatalf("%s: systemd-repart exited %d:\n%s", where, sysCode, sysOut)
				}
				copyDisk(t, sys, img)
				continue
			}
			var log bytes.Buffer
			imgCode, imgErr := runImago(env, img, sys, defs, args, &log)
			if sysCode != imgCode {
				t.Fatalf("%s: systemd-repart exited %d, imago %d (%v)\nsystemd-repart:\n%s\nimago:\n%s", where, sysCode, imgCode, imgErr, sysOut, log.String())
			}
			t.Logf("%s: both exited %d\nsystemd-repart:\n%s\nimago:\n%s", where, sysCode, sysOut, log.String())
			compareTables(t, where, env, sys, img)
			if compareBytes {
				compareImages(t, where, sys, img)
			}
		default:
			t.Fatalf("%s: unknown step", where)
		}
	}
}

// expandArgs substitutes the placeholders and adds the default seed and
// --dry-run=no.
func expandArgs(t *testing.T, env *conformanceEnv, caseDir string, in []string, write bool) []string {
	var out []string
	hasSeed, hasDry := false, false
	for _, a := range in {
		if strings.Contains(a, "@KEY@") || strings.Contains(a, "@CERT@") {
			env.signingKey(t)
		}
		a = strings.ReplaceAll(a, "@/", caseDir+"/")
		a = strings.ReplaceAll(a, "@KEY@", env.key)
		a = strings.ReplaceAll(a, "@CERT@", env.cert)
		hasSeed = hasSeed || strings.HasPrefix(a, "--seed=")
		hasDry = hasDry || strings.HasPrefix(a, "--dry-run=")
		out = append(out, a)
	}
	if !hasSeed {
		out = append(out, "--seed="+conformanceSeed)
	}
	if !hasDry && write {
		out = append(out, "--dry-run=no")
	}
	return out
}

// signingKey makes a key and a self-signed certificate once.
func (env *conformanceEnv) signingKey(t *testing.T) {
	if env.key != "" {
		return
	}
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	dir, err := os.MkdirTemp("", "repart-key")
	if err != nil {
		t.Fatal(err)
	}
	env.key, env.cert = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	testutil.Run(t, openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", env.key, "-out", env.cert,
		"-days", "30", "-subj", "/CN=imago repart test")
}

func runIn(dir string, stdin io.Reader, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

func runSystemdRepart(env *conformanceEnv, s *conformanceSide, args []string) (string, int) {
	all := append(append([]string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", conformanceEpoch), env.repart, "--pretty=no", "--no-pager"}, args...), s.dev)
	out, err := runIn(s.dir, nil, "env", all...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	return fmt.Sprintf("%s\n%v", out, err), -1
}

// runImago runs the engine as imago repart does, with the real content
// step, and returns systemd-repart's exit status for the result. When sys
// is given, new verity hash partitions get the salt and superblock UUID
// systemd-repart wrote at the same offset of sys's disk.
func runImago(env *conformanceEnv, s, sys *conformanceSide, defsDir string, args []string, log io.Writer) (int, error) {
	err := func() error {
		var (
			empty                 repart.EmptyMode
			size                  uint64
			sizeAuto, dry         = false, true
			factoryReset, discard = false, true
			seed, root            string
			keyPath, certPath     string
			copts                 = repart.ContentOptions{PBKDF: cheapPBKDF, TempDir: env.tmp}
			err                   error
		)
		epoch := time.Unix(conformanceEpoch, 0)
		copts.SourceDateEpoch = &epoch
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			switch k {
			case "--empty":
				if empty, err = repart.ParseEmptyMode(v); err != nil {
					return err
				}
				if empty == repart.EmptyCreate {
					dry = false
				}
			case "--size":
				if size, sizeAuto, err = repart.ParseSize(v); err != nil {
					return err
				}
			case "--seed":
				seed = v
			case "--dry-run":
				dry = v != "no"
			case "--factory-reset":
				factoryReset = v == "yes"
			case "--discard":
				discard = v != "no"
			case "--root":
				root = v
			case "--private-key":
				keyPath = v
			case "--certificate":
				certPath = v
			case "--key-file":
				if copts.Key, err = os.ReadFile(v); err != nil {
					return err
				}
			default:
				return fmt.Errorf("harness: unsupported argument %q", a)
			}
		}
		if keyPath != "" && certPath != "" {
			copts.Signer, copts.Certificate = loadSigner(keyPath, certPath)
		}
		if sys != nil {
			copts.VerityParams = func(hash *repart.ContentPartition) ([]byte, dps.UUID, bool) {
				f, err := os.Open(sys.image())
				if err != nil {
					return nil, dps.UUID{}, false
				}
				defer f.Close()
				sb, err := verity.ReadSuperblock(f, int64(hash.Offset))
				if err != nil {
					return nil, dps.UUID{}, false
				}
				return sb.Salt, dps.UUID(sb.UUID), true
			}
		}
		u, _, err := repart.ResolveSeed(seed, root, nil)
		if err != nil {
			return err
		}
		var dirs []string
		if defsDir != "" {
			dirs = []string{defsDir}
		}
		defs, err := repart.LoadDefinitions(repart.LoadOptions{
			ParseOptions: repart.ParseOptions{Specifiers: &repart.Specifiers{Root: root}, Signing: keyPath != "" && certPath != ""},
			Root:         root,
			Dirs:         dirs,
		})
		if err != nil {
			return err
		}
		path := s.dev
		if !s.loop {
			path = s.image()
		}
		var disk *repart.DeviceFile
		if empty == repart.EmptyCreate {
			disk, err = repart.CreateImage(path)
		} else {
			disk, err = repart.OpenDevice(path, !dry)
		}
		if err != nil {
			return err
		}
		defer disk.Close()
		_, err = repart.Run(context.Background(), disk, repart.Options{
			Definitions:  defs,
			Seed:         u,
			Empty:        empty,
			Write:        !dry,
			NoDiscard:    !discard,
			Size:         size,
			SizeAuto:     sizeAuto,
			FactoryReset: factoryReset,
			Content:      repart.NewContent(copts),
			Root:         root,
			Device:       s.dev,
			Logf:         func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) },
		})
		return err
	}()
	switch {
	case err == nil:
		return 0, nil
	case errors.Is(err, repart.ErrNoGPT):
		fmt.Fprintln(log, err)
		return 77, err
	}
	fmt.Fprintln(log, err)
	return 1, err
}

var loopName = regexp.MustCompile(`/dev/loop\d+`)

func sfdiskJSON(t *testing.T, env *conformanceEnv, s *conformanceSide) (string, bool) {
	out, err := runIn(s.dir, nil, env.sfdisk, "--json", s.dev)
	if err != nil {
		// No table at all: compare that.
		return "no partition table: " + strings.TrimSpace(loopName.ReplaceAllString(string(out), "DEV")), false
	}
	return loopName.ReplaceAllString(string(out), "DEV"), true
}

func compareTables(t *testing.T, where string, env *conformanceEnv, sys, img *conformanceSide) {
	t.Helper()
	a, _ := sfdiskJSON(t, env, sys)
	b, _ := sfdiskJSON(t, env, img)
	if a != b {
		t.Fatalf("%s: partition tables differ\n%s", where, lineDiff(a, b))
	}
}

// compareImages compares the disks byte for byte and names the first
// differing offset. Only ranges that hold data in either file are read;
// holes in both are zeros in both.
func compareImages(t *testing.T, where string, sys, img *conformanceSide) {
	t.Helper()
	a, err := os.Open(sys.image())
	if err != nil {
		if os.IsNotExist(err) {
			if _, err := os.Stat(img.image()); !os.IsNotExist(err) {
				t.Fatalf("%s: systemd-repart created no image, imago did", where)
			}
			return
		}
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(img.image())
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	defer b.Close()
	fa, _ := a.Stat()
	fb, _ := b.Stat()
	if fa.Size() != fb.Size() {
		t.Fatalf("%s: images differ in size: systemd %d, imago %d", where, fa.Size(), fb.Size())
	}
	ranges := append(dataRanges(a, fa.Size()), dataRanges(b, fb.Size())...)
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, r := range ranges {
		for off := r[0]; off < r[1]; off += int64(len(ba)) {
			n := min(int64(len(ba)), r[1]-off)
			if _, err := a.ReadAt(ba[:n], off); err != nil {
				t.Fatal(err)
			}
			if _, err := b.ReadAt(bb[:n], off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ba[:n], bb[:n]) {
				for i := range ba[:n] {
					if ba[i] != bb[i] {
						t.Fatalf("%s: images differ at offset %d (systemd %#02x, imago %#02x)", where, off+int64(i), ba[i], bb[i])
					}
				}
			}
		}
	}
}

// dataRanges lists the ranges of f that hold data (SEEK_DATA/SEEK_HOLE);
// the whole file if the file system cannot tell.
func dataRanges(f *os.File, size int64) [][2]int64 {
	const seekData, seekHole = 3, 4
	var out [][2]int64
	for off := int64(0); off < size; {
		start, err := f.Seek(off, seekData)
		if err != nil {
			if len(out) == 0 && off == 0 && !errors.Is(err, syscall.ENXIO) {
				return [][2]int64{{0, size}}
			}
			break
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			end = size
		}
		out = append(out, [2]int64{start, end})
		off = end
	}
	return out
}

// lineDiff shows two texts side by side where their lines differ.
func lineDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	var sb strings.Builder
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		mark := "  "
		if x != y {
			mark = "≠ "
		}
		fmt.Fprintf(&sb, "%s%-60s | %s\n", mark, x, y)
	}
	return "systemd-repart | imago\n" + sb.String()
}

func growFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < size {
		return f.Truncate(size)
	}
	return nil
}

func copyDisk(t *testing.T, from, to *conformanceSide) {
	t.Helper()
	data, err := os.ReadFile(from.image())
	if err != nil {
		t.Fatal(err)
	}
	if to.loop {
		f, err := os.OpenFile(to.dev, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(to.image(), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// attachLoop attaches a loop device with the given sector size.
func attachLoop(t *testing.T, path string, sectorSize int) string {
	t.Helper()
	losetup := testutil.RequireTool(t, "losetup", "mount")
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	out, err := testutil.RunErr(losetup, "--find", "--show", "--sector-size", strconv.Itoa(sectorSize), path)
	if err != nil {
		t.Skipf("cannot attach a loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if _, err := testutil.RunErr(losetup, "--detach", dev); err != nil {
			t.Errorf("detaching %s: %v", dev, err)
		}
	})
	return dev
}
