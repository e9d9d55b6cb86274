package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imago-os/imago/internal/toolexec"
)

// swtpm is a running software TPM 2.0 serving one qemu over a unix socket.
type swtpm struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
}

// swtpmStartTimeout bounds how long swtpm may take to create its socket.
const swtpmStartTimeout = 10 * time.Second

// startSwtpm starts swtpm with its state in stateDir and its control
// socket at sock, and waits for the socket to appear. swtpm needs no
// manufacturing step: it creates a fresh TPM in an empty state directory.
func startSwtpm(ctx context.Context, stateDir, sock string) (*swtpm, error) {
	path, err := toolexec.Find("swtpm")
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("vm: TPM state: %w", err)
	}
	args := []string{"socket", "--tpm2",
		"--tpmstate", "dir=" + stateDir,
		"--ctrl", "type=unixio,path=" + sock,
		"--log", "level=1",
	}
	s := &swtpm{stderr: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(path, args...)
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	// Its own process group keeps a terminal's Ctrl-C away from it (imago
	// stops it); Pdeathsig takes it down if imago itself is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("vm: starting swtpm: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.NewTimer(swtpmStartTimeout)
	defer deadline.Stop()
	for {
		if _, err := os.Stat(sock); err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("vm: swtpm exited during start-up (%v): %s", s.cmd.ProcessState, s.stderr.tail(10))
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("vm: starting swtpm: %w", ctx.Err())
		case <-deadline.C:
			s.stop()
			return nil, fmt.Errorf("vm: swtpm did not create %s within %s: %s", sock, swtpmStartTimeout, s.stderr.tail(10))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pid returns the process ID of swtpm.
func (s *swtpm) pid() int { return s.cmd.Process.Pid }

// stop ends swtpm: it normally exits by itself when qemu closes the
// connection; otherwise SIGTERM (which lets it save its state), then
// SIGKILL.
func (s *swtpm) stop() {
	for _, step := range []struct {
		sig   syscall.Signal
		grace time.Duration
	}{{0, 2 * time.Second}, {syscall.SIGTERM, 3 * time.Second}, {syscall.SIGKILL, time.Minute}} {
		if step.sig != 0 {
			_ = s.cmd.Process.Signal(step.sig)
		}
		select {
		case <-s.done:
			return
		case <-time.After(step.grace):
		}
	}
}

// lockedBuffer collects a child's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// maxChildOutput bounds what is kept of a child's output.
const maxChildOutput = 1 << 20

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > maxChildOutput {
		keep := b.buf.Bytes()[b.buf.Len()/2:]
		rest := append([]byte(nil), keep...)
		b.buf.Reset()
		b.buf.Write(rest)
	}
	return b.buf.Write(p)
}

// tail returns the last n non-empty lines, joined by "; " for one-line
// error messages.
func (b *lockedBuffer) tail(n int) string {
	return strings.Join(b.lines(n), "; ")
}

func (b *lockedBuffer) lines(n int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
