package hermetic

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-os/imago/internal/testutil"
)

// The offline first boot: a new, empty root file system gets only the
// tree's /usr; then what systemd 252 does on first boot runs against it with
// --root=, in boot order:
//
//  1. switch-root's base_filesystem_create(): /bin, /sbin, /lib, /lib64
//     links into /usr, and /etc, /var, /root, /proc, /sys, /dev;
//  2. PID 1: machine-id (systemd-machine-id-setup --root=), then the
//     first-boot preset of all units (systemctl --root= preset-all
//     --preset-mode=enable-only, the mode 252 uses);
//  3. systemd-sysusers.service, with the credentials its unit's
//     SetCredential= lines give (passed as $CREDENTIALS_DIRECTORY);
//  4. systemd-tmpfiles-setup.service: --create --remove --boot
//     --exclude-prefix=/dev.
//
// Then every entry of the tree outside /usr is compared with the new root.

// simulateFirstBoot returns the new root.
func simulateFirstBoot(t *testing.T, tree string) string {
	t.Helper()
	for _, tool := range []string{"systemd-machine-id-setup", "systemctl", "systemd-sysusers", "systemd-tmpfiles"} {
		testutil.RequireTool(t, tool, "systemd")
	}
	cp := testutil.RequireTool(t, "cp", "coreutils")
	newRoot := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(newRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, cp, "-a", "--reflink=auto", filepath.Join(tree, "usr"), filepath.Join(newRoot, "usr"))

	// 1. base_filesystem_create()
	for _, d := range []struct {
		name string
		mode uint32
	}{{"root", 0o750}, {"var", 0o755}, {"etc", 0o755}, {"proc", 0o755}, {"sys", 0o755}, {"dev", 0o755}} {
		p := filepath.Join(newRoot, d.name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "lib", "sbin"} {
		if err := os.Symlink("usr/"+l, filepath.Join(newRoot, l)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(filepath.Join(newRoot, "usr/lib64/ld-linux-x86-64.so.2")); err == nil {
		if err := os.Symlink("usr/lib64", filepath.Join(newRoot, "lib64")); err != nil {
			t.Fatal(err)
		}
	}

	// 2. PID 1
	runTool(t, nil, "systemd-machine-id-setup", "--root="+newRoot)
	if _, err := os.Stat(filepath.Join(newRoot, "usr/lib/systemd/system")); err == nil {
		runTool(t, nil, "systemctl", "--root="+newRoot, "preset-all", "--preset-mode=enable-only")
	}

	// 3. systemd-sysusers.service
	creds := t.TempDir()
	if data, err := os.ReadFile(filepath.Join(newRoot, SysusersDropIn)); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			v, ok := strings.CutPrefix(l, "SetCredential=")
			if !ok {
				continue
			}
			id, val, _ := strings.Cut(v, ":")
			if err := os.WriteFile(filepath.Join(creds, id), []byte(val), 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
	stderr := runTool(t, []string{"CREDENTIALS_DIRECTORY=" + creds}, "systemd-sysusers", "--root="+newRoot)
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !strings.Contains(l, "Creating ") {
			t.Logf("systemd-sysusers: %s", l)
		}
	}

	// 4. systemd-tmpfiles-setup.service
	stderr = runTool(t, nil, "systemd-tmpfiles", "--root="+newRoot, "--create", "--remove", "--boot", "--exclude-prefix=/dev")
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.Contains(l, path.Base(TmpfilesPath)) {
			t.Errorf("systemd-tmpfiles complains about our file: %s", l)
		} else if l != "" {
			t.Logf("systemd-tmpfiles: %s", l)
		}
	}
	return newRoot
}

// runTool runs a program with extra environment and a timeout, fails the
// test when it fails, and returns what it wrote to stderr.
func runTool(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stderr.String()
}

// difference is one entry of the tree that the new root does not reproduce.
type difference struct {
	path, what string
}

func (d difference) String() string { return d.path + ": " + d.what }

// fileInfo is what the comparison looks at.
type fileInfo struct {
	typ        byte
	mode       uint32
	uid, gid   uint32
	target     string
	sum        string
	mtime      int64
	rdev       uint64
	exists     bool
	userXattrs string
}

func describe(t *testing.T, p string) fileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fileInfo{}
	}
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	info := fileInfo{exists: true, mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid}
	switch {
	case fi.Mode().IsRegular():
		info.typ = 'f'
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(data)
		info.sum = hex.EncodeToString(s[:8])
		info.mtime = st.Mtim.Sec*1e9 + st.Mtim.Nsec
		info.userXattrs = userXattrs(p)
	case fi.IsDir():
		info.typ = 'd'
		info.userXattrs = userXattrs(p)
	case fi.Mode()&fs.ModeSymlink != 0:
		info.typ = 'l'
		info.target, _ = os.Readlink(p)
		info.mode = 0
	default:
		info.typ = 'o'
		info.rdev = st.Rdev
		info.mode = st.Mode
	}
	return info
}

func userXattrs(p string) string {
	size, err := syscall.Listxattr(p, nil)
	if err != nil || size == 0 {
		return ""
	}
	buf := make([]byte, size)
	size, _ = syscall.Listxattr(p, buf)
	var out []string
	for _, n := range strings.Split(string(buf[:size]), "\x00") {
		if strings.HasPrefix(n, "user.") {
			v := make([]byte, 256)
			vs, _ := syscall.Getxattr(p, n, v)
			out = append(out, n+"="+string(v[:max(vs, 0)]))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (f fileInfo) String() string {
	switch f.typ {
	case 'l':
		return fmt.Sprintf("link to %s owned by %d:%d", f.target, f.uid, f.gid)
	case 'f':
		return fmt.Sprintf("file %04o %d:%d sha256:%s mtime %d xattrs[%s]", f.mode, f.uid, f.gid, f.sum, f.mtime, f.userXattrs)
	case 'd':
		return fmt.Sprintf("directory %04o %d:%d xattrs[%s]", f.mode, f.uid, f.gid, f.userXattrs)
	}
	return fmt.Sprintf("node %o %d:%d rdev %d", f.mode, f.uid, f.gid, f.rdev)
}

// accountFiles are compared by content, entry by entry.
var accountFiles = map[string]bool{"/etc/passwd": true, "/etc/group": true, "/etc/shadow": true, "/etc/gshadow": true}

// compareFirstBoot lists every entry of the tree outside /usr (and outside
// the API directories) that the new root lacks or has differently, and the
// entries the new root has in addition under the same directories.
func compareFirstBoot(t *testing.T, tree, newRoot string) (diffs []difference, extra []string) {
	t.Helper()
	// Files another package's tmpfiles.d line creates are new files: only
	// those restored from the factory keep the tree's timestamps.
	decl, _, err := existingTmpfiles(tree, path.Base(TmpfilesPath))
	if err != nil {
		t.Fatal(err)
	}
	top, err := os.ReadDir(tree)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	_ = decl
	for _, e := range top {
		name := e.Name()
		if name == "usr" || apiDirs[name] != "" || name == "lost+found" {
			continue
		}
		err := filepath.WalkDir(filepath.Join(tree, name), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(tree, p)
			ip := "/" + filepath.ToSlash(rel)
			seen[ip] = true
			want := describe(t, p)
			got := describe(t, filepath.Join(newRoot, rel))
			if !got.exists {
				diffs = append(diffs, difference{ip, "missing (tree: " + want.String() + ")"})
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if accountFiles[ip] {
				want.sum, got.sum, want.mtime, got.mtime = "", "", 0, 0
				for _, d := range compareAccounts(t, ip, p, filepath.Join(newRoot, rel)) {
					diffs = append(diffs, difference{ip, d})
				}
			}
			if _, ok := decl[ip]; ok || want.typ == 'd' || got.typ == 'd' {
				// Directory timestamps change as entries are created.
				want.mtime, got.mtime = 0, 0
			}
			if want != got {
				diffs = append(diffs, difference{ip, "tree: " + want.String() + "; first boot: " + got.String()})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range top {
		name := e.Name()
		if name == "usr" || apiDirs[name] != "" || !e.IsDir() {
			continue
		}
		base := filepath.Join(newRoot, name)
		_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(newRoot, p)
			ip := "/" + filepath.ToSlash(rel)
			if !seen[ip] {
				extra = append(extra, ip)
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
	}
	return diffs, extra
}

// compareAccounts compares account files entry by entry: sysusers writes
// them in its own order, with its own password aging fields.
func compareAccounts(t *testing.T, name, treeFile, newFile string) []string {
	t.Helper()
	a, err := os.ReadFile(treeFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(newFile)
	if err != nil {
		t.Fatal(err)
	}
	norm := func(data []byte) map[string]string {
		out := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Split(sc.Text(), ":")
			if len(f) < 2 {
				continue
			}
			switch name {
			case "/etc/shadow":
				// Locked is locked, however it is written; aging fields
				// differ by design.
				if Locked(f[1]) {
					f[1] = "!"
				}
				f = f[:2]
			case "/etc/gshadow":
				if Locked(f[1]) {
					f[1] = "!"
				}
			}
			out[f[0]] = strings.Join(f, ":")
		}
		return out
	}
	ta, na := norm(a), norm(b)
	var diffs []string
	for k, v := range ta {
		if na[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: tree %q, first boot %q", k, v, na[k]))
		}
	}
	for k, v := range na {
		if _, ok := ta[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only on first boot: %q", k, v))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// explain returns the finding of the report that accounts for a
// difference: one covering its path, and for an account file one naming the
// account. Fixed and Late findings explain nothing: those entries must match.
func explain(rep *Report, d difference) (Finding, bool) {
	for _, f := range rep.Findings {
		if f.Kind == Fixed || f.Kind == Late || !f.Covers(d.path) {
			continue
		}
		if accountFiles[d.path] && strings.Contains(d.what, ":") {
			who := d.what[:strings.IndexByte(d.what, ':')]
			if !strings.Contains(f.Reason, " "+who+":") {
				continue
			}
		}
		return f, true
	}
	return Finding{}, false
}

// unexplained returns the differences the report does not account for.
func unexplained(rep *Report, diffs []difference) []difference {
	var out []difference
	for _, d := range diffs {
		if _, ok := explain(rep, d); !ok {
			out = append(out, d)
		}
	}
	return out
}

// logDiffs writes the differences and extras to the test log.
func logDiffs(t *testing.T, rep *Report, diffs []difference, extra []string) {
	t.Helper()
	for _, d := range diffs {
		why := "UNEXPLAINED"
		if f, ok := explain(rep, d); ok {
			why = string(f.Kind) + ": " + f.Reason
		}
		t.Logf("difference %s\n    -> %s", d, why)
	}
	for _, e := range extra {
		t.Logf("only on first boot: %s", e)
	}
}

// checkDropIns runs systemd-analyze verify on the units Apply extends, in
// the first-boot root, and fails on any complaint about our drop-ins. A
// bogus drop-in proves that complaints are seen.
func checkDropIns(t *testing.T, newRoot string) {
	t.Helper()
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	verify := func() string {
		cmd := exec.Command(analyze, "verify", "--root="+newRoot, "systemd-sysusers.service", "systemd-firstboot.service")
		out, _ := cmd.CombinedOutput() // unrelated units may be missing in a test tree
		return string(out)
	}
	for _, l := range strings.Split(verify(), "\n") {
		if strings.Contains(l, "imago-hermetic") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
	bogus := filepath.Join(newRoot, "usr/lib/systemd/system/systemd-sysusers.service.d/zz-bogus.conf")
	if err := os.WriteFile(bogus, []byte("[Service]\nSetCredentialBogus=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(bogus)
	if !strings.Contains(verify(), "zz-bogus.conf:2: Unknown key") {
		t.Error("systemd-analyze verify does not report a bogus drop-in: the check proves nothing")
	}
}
