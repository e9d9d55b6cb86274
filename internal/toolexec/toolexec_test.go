package toolexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFindInPath(t *testing.T) {
	p, err := Find("sh")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(p) || filepath.Base(p) != "sh" {
		t.Fatalf("Find(sh) = %q", p)
	}
}

func TestFindOutsidePath(t *testing.T) {
	// A tool that only lives in one of the extra directories is found even
	// with an empty $PATH.
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	var want string
	for _, d := range extraDirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if p := filepath.Join(d, e.Name()); isExecutable(p) {
				want = p
				break
			}
		}
		if want != "" {
			break
		}
	}
	if want == "" {
		t.Skip("no executable in any extra directory")
	}
	got, err := Find(filepath.Base(want))
	if err != nil {
		t.Fatal(err)
	}
	// An earlier extra directory may hold a program of the same name.
	if filepath.Base(got) != filepath.Base(want) {
		t.Fatalf("Find = %q, want a %q", got, want)
	}
}

func TestFindMissing(t *testing.T) {
	_, err := Find("mkfs.erofs-imago-missing")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if got, want := err.Error(), "mkfs.erofs-imago-missing not found"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func TestNotFoundNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := extraDirs
	extraDirs = nil
	defer func() { extraDirs = saved }()
	_, err := Find("mkfs.erofs")
	want := "mkfs.erofs not found: install the Debian package erofs-utils"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	_, err = Run(context.Background(), "mkfs.erofs", nil)
	if err == nil || err.Error() != want {
		t.Fatalf("Run err = %v, want %q", err, want)
	}
}

func TestFindWithSlash(t *testing.T) {
	sh, err := Find("sh")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Find(sh); err != nil || got != sh {
		t.Fatalf("Find(%q) = %q, %v", sh, got, err)
	}
	if _, err := Find(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Find(""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestRunStdout(t *testing.T) {
	out, err := Run(context.Background(), "sh", []string{"-c", "printf 'a\\nb\\n'; echo noise >&2"})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "a\nb\n" {
		t.Fatalf("stdout %q", out)
	}
}

func TestRunFalse(t *testing.T) {
	_, err := Run(context.Background(), "false", nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v", err, err)
	}
	if e.Tool != "false" || e.ExitCode != 1 || len(e.Output) != 0 {
		t.Fatalf("%+v", e)
	}
	if got := err.Error(); got != "false: exit status 1" {
		t.Fatalf("message %q", got)
	}
}

func TestRunFailureKeepsLastLines(t *testing.T) {
	script := `for i in $(seq 1 30); do echo "line $i" >&2; done; echo out; exit 3`
	_, err := Run(context.Background(), "sh", []string{"-c", script})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	if e.ExitCode != 3 {
		t.Fatalf("exit %d", e.ExitCode)
	}
	if len(e.Output) != tailLines || e.Output[0] != "line 11" || e.Output[tailLines-1] != "line 30" {
		t.Fatalf("output %q", e.Output)
	}
	if !strings.HasPrefix(err.Error(), "sh -c "+script+": exit status 3: line 11\n\tline 12") {
		t.Fatalf("message %q", err.Error())
	}
	if e.Args[0] != "-c" || !strings.HasSuffix(e.Path, "/sh") {
		t.Fatalf("%+v", e)
	}
}

func TestRunFailureFallsBackToStdout(t *testing.T) {
	_, err := Run(context.Background(), "sh", []string{"-c", "echo only-stdout; exit 2"})
	var e *Error
	if !errors.As(err, &e) || len(e.Output) != 1 || e.Output[0] != "only-stdout" {
		t.Fatalf("err = %#v", err)
	}
}

func TestRunEnv(t *testing.T) {
	t.Setenv("IMAGO_TOOLEXEC_A", "inherited")
	t.Setenv("IMAGO_TOOLEXEC_B", "inherited")
	t.Setenv("IMAGO_TOOLEXEC_C", "inherited")
	out, err := Run(context.Background(), "sh",
		[]string{"-c", `echo "$IMAGO_TOOLEXEC_A,$IMAGO_TOOLEXEC_B,${IMAGO_TOOLEXEC_C-unset},$SOURCE_DATE_EPOCH"`},
		Env("IMAGO_TOOLEXEC_B=set", "SOURCE_DATE_EPOCH=1700000000"), UnsetEnv("IMAGO_TOOLEXEC_C"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "inherited,set,unset,1700000000\n" {
		t.Fatalf("got %q", got)
	}
	sh, _ := Find("sh")
	out, err = Run(context.Background(), sh, []string{"-c", `echo "${IMAGO_TOOLEXEC_A-unset},$X"`}, CleanEnv(), Env("X=1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "unset,1\n" {
		t.Fatalf("clean env: got %q", got)
	}
}

func TestRunStdinDir(t *testing.T) {
	dir := t.TempDir()
	out, err := Run(context.Background(), "sh", []string{"-c", "cat; pwd"}, Stdin(strings.NewReader("in\n")), Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got := string(out); got != "in\n"+real+"\n" && got != "in\n"+dir+"\n" {
		t.Fatalf("got %q", got)
	}
}

func TestRunStderrCopy(t *testing.T) {
	var b strings.Builder
	if _, err := Run(context.Background(), "sh", []string{"-c", "echo progress >&2"}, Stderr(&b)); err != nil {
		t.Fatal(err)
	}
	if b.String() != "progress\n" {
		t.Fatalf("stderr %q", b.String())
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, "sh", []string{"-c", "echo started >&2; sleep 10"})
	if time.Since(start) > 5*time.Second {
		t.Fatal("not killed")
	}
	var e *Error
	if !errors.As(err, &e) || e.ExitCode != -1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "context deadline exceeded") || !strings.Contains(err.Error(), "started") {
		t.Fatalf("message %q", err.Error())
	}
}

func TestShortArgs(t *testing.T) {
	long := make([]string, 200)
	for i := range long {
		long[i] = fmt.Sprintf("arg%d", i)
	}
	s := shortArgs(long)
	if len(s) > 310 || !strings.HasSuffix(s, "…") {
		t.Fatalf("%d %q", len(s), s)
	}
}

func TestPackage(t *testing.T) {
	for tool, pkg := range map[string]string{
		"mkfs.vfat": "dosfstools", "mcopy": "mtools", "mkfs.ext4": "e2fsprogs", "mkfs.btrfs": "btrfs-progs",
		"mkfs.xfs": "xfsprogs", "mkfs.erofs": "erofs-utils", "mksquashfs": "squashfs-tools", "mkswap": "util-linux",
		"/usr/sbin/mkfs.ext4": "e2fsprogs", "no-such-tool": "",
	} {
		if got := Package(tool); got != pkg {
			t.Errorf("Package(%q) = %q, want %q", tool, got, pkg)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := LineWriter(func(l string) { got = append(got, l) })
	w.Write([]byte("I: one\nI: t"))
	w.Write([]byte("wo\r\n\nprogress 10%\rI: three\n"))
	if strings.Join(got, "|") != "I: one|I: two|progress 10%|I: three" {
		t.Fatalf("lines %q", got)
	}
}
