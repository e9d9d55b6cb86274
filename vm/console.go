package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// maxConsoleMemory bounds the console output a Machine keeps in memory for
// WaitFor and ConsoleTail; the log file keeps everything.
const maxConsoleMemory = 64 << 20

// consolePoll is how often the log file is checked for new output.
const consolePoll = 50 * time.Millisecond

// console collects the serial console: from a socket qemu connects to (it
// then writes the log itself, and can send input), or, when qemu owns the
// terminal, by following the log file qemu writes. It keeps the output in
// memory for waiters and copies it to a live writer.
type console struct {
	path string
	live io.Writer

	mu      sync.Mutex
	buf     []byte        // output from stream offset base on
	base    int64         // stream offset of buf[0]
	cursor  int64         // stream offset where the next WaitFor starts
	closed  bool          // no more output will come
	changed chan struct{} // closed and replaced whenever buf grows or closed is set
	started bool          // a reader goroutine runs
	stopped bool          // stop was called
	conn    net.Conn      // the socket, when serving one

	writeMu sync.Mutex    // serializes input
	finish  chan struct{} // closed by stop
	done    chan struct{} // closed when the reader has ended
}

// newConsole creates (or empties) the log file, so that nothing of an
// earlier run is read.
func newConsole(path string, live io.Writer) (*console, error) {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return nil, fmt.Errorf("vm: console log: %w", err)
	}
	return &console{
		path:    path,
		live:    live,
		changed: make(chan struct{}),
		finish:  make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// start marks the console as served by a reader; false when stop came
// first.
func (c *console) start(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.started = true
	c.conn = conn
	return true
}

// followFile follows the log file that qemu writes.
func (c *console) followFile() error {
	f, err := os.Open(c.path)
	if err != nil {
		return fmt.Errorf("vm: console log: %w", err)
	}
	if !c.start(nil) {
		f.Close()
		return errors.New("vm: console: the machine has stopped")
	}
	go c.follow(f)
	return nil
}

// serve reads the console from conn, appends it to the log file and keeps
// conn for input, until qemu closes the connection.
func (c *console) serve(conn net.Conn) error {
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("vm: console log: %w", err)
	}
	if !c.start(conn) {
		f.Close()
		return errors.New("vm: console: the machine has stopped")
	}
	go func() {
		defer close(c.done)
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for {
			n, err := conn.Read(chunk)
			if n > 0 {
				_, _ = f.Write(chunk[:n])
				c.append(chunk[:n])
			}
			if err != nil {
				break
			}
		}
		c.setClosed()
	}()
	return nil
}

// write sends input to the guest's serial port.
func (c *console) write(b []byte) error {
	c.mu.Lock()
	conn, closed := c.conn, c.closed
	c.mu.Unlock()
	if conn == nil {
		return errors.New("vm: the console takes no input (it is on the terminal, or not connected)")
	}
	if closed {
		return errors.New("vm: the machine has stopped")
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("vm: console input: %w", err)
	}
	return nil
}

// follow reads what qemu appends to the log until stop is called.
func (c *console) follow(f *os.File) {
	defer close(c.done)
	defer f.Close()
	chunk := make([]byte, 64<<10)
	ticker := time.NewTicker(consolePoll)
	defer ticker.Stop()
	for {
		finished := false
		select {
		case <-c.finish:
			finished = true
		case <-ticker.C:
		}
		for {
			n, err := f.Read(chunk)
			if n > 0 {
				c.append(chunk[:n])
			}
			if err != nil || n == 0 {
				break
			}
		}
		if finished {
			c.setClosed()
			return
		}
	}
}

func (c *console) setClosed() {
	c.mu.Lock()
	c.closed = true
	c.notifyLocked()
	c.mu.Unlock()
}

func (c *console) append(b []byte) {
	if c.live != nil {
		_, _ = c.live.Write(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, b...)
	if len(c.buf) > maxConsoleMemory {
		drop := len(c.buf) - maxConsoleMemory/2
		c.buf = append([]byte(nil), c.buf[drop:]...)
		c.base += int64(drop)
		if c.cursor < c.base {
			c.cursor = c.base
		}
	}
	c.notifyLocked()
}

func (c *console) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// stop is called once qemu has exited: it lets the reader take the rest
// of the output and waits for it.
func (c *console) stop() {
	c.mu.Lock()
	started, conn := c.started, c.conn
	c.stopped = true
	c.mu.Unlock()
	close(c.finish)
	if conn != nil {
		// qemu has exited, so the connection is at its end; the
		// deadline only guards against a descriptor kept open elsewhere.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	if started {
		<-c.done
		if conn != nil {
			conn.Close()
		}
	} else {
		c.setClosed()
	}
}

// WaitError is returned by Machine.WaitFor when the pattern did not appear.
type WaitError struct {
	Pattern string        // the regular expression waited for
	Timeout time.Duration // the time waited
	Exited  bool          // qemu exited before the pattern appeared
	Cause   error         // the context's error, when it ended the wait
	Tail    string        // the last lines of the console
}

func (e *WaitError) Error() string {
	var why string
	switch {
	case e.Exited:
		why = "the machine stopped first"
	case e.Cause != nil:
		why = e.Cause.Error()
	default:
		why = fmt.Sprintf("timed out after %s", e.Timeout)
	}
	return fmt.Sprintf("vm: waiting for %q on the serial console: %s; last console lines:\n%s", e.Pattern, why, e.Tail)
}

// Unwrap returns the context's error, if any.
func (e *WaitError) Unwrap() error { return e.Cause }

// tailLinesOnError is how many console lines a WaitError carries.
const tailLinesOnError = 40

// waitFor waits until a console line after the cursor matches re, moves
// the cursor past it and returns the line's submatches. With partial, the
// unterminated last line counts too: a prompt waits for input there.
func (c *console) waitFor(ctx context.Context, re *regexp.Regexp, timeout time.Duration, partial bool) ([]string, error) {
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	c.mu.Lock()
	scanned := c.cursor
	c.mu.Unlock()
	for {
		c.mu.Lock()
		if scanned < c.base {
			scanned = c.base
		}
		m, next, end := matchLines(c.buf[scanned-c.base:], re, c.closed || partial)
		if m != nil {
			c.cursor = scanned + int64(next)
			c.mu.Unlock()
			return m, nil
		}
		scanned += int64(end)
		if c.closed {
			tail := c.tailLocked(tailLinesOnError)
			c.mu.Unlock()
			return nil, &WaitError{Pattern: re.String(), Timeout: timeout, Exited: true, Tail: tail}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-timer:
			return nil, &WaitError{Pattern: re.String(), Timeout: timeout, Tail: c.tail(tailLinesOnError)}
		case <-ctx.Done():
			return nil, &WaitError{Pattern: re.String(), Timeout: timeout, Cause: ctx.Err(), Tail: c.tail(tailLinesOnError)}
		}
	}
}

// matchLines looks for the first complete line of b that matches re (and
// the unterminated last line too when final). It returns the submatches,
// the offset just past the matching line, and the offset up to which b
// holds only complete lines that did not match (an unterminated last line
// is never counted as scanned).
func matchLines(b []byte, re *regexp.Regexp, final bool) (match []string, next, scanned int) {
	off := 0
	for off < len(b) {
		i := bytes.IndexByte(b[off:], '\n')
		unterminated := i < 0
		if unterminated {
			if !final {
				return nil, 0, off
			}
			i = len(b) - off
		}
		line := strings.TrimRight(string(b[off:off+i]), "\r")
		end := off + i + 1
		if end > len(b) {
			end = len(b)
		}
		if m := re.FindStringSubmatch(line); m != nil {
			return m, end, off
		}
		if unterminated {
			// The rest of the line may still come: look at it whole
			// next time.
			return nil, 0, off
		}
		off = end
	}
	return nil, 0, off
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tailLocked(n)
}

// tailLocked returns the last n lines of the console kept in memory.
func (c *console) tailLocked(n int) string {
	return lastLines(c.buf, n)
}

// lastLines returns the last n lines of b, with carriage returns removed.
func lastLines(b []byte, n int) string {
	s := strings.ReplaceAll(string(b), "\r", "")
	s = strings.TrimRight(s, "\n")
	if s == "" || n <= 0 {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
