package toolexec

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// LineWriter returns a writer, meant for Stderr, that calls emit with every
// complete non-blank line written to it, trimmed of surrounding space. A
// carriage return ends a line as a newline does, so that a tool's progress
// bar reads as a line per update.
func LineWriter(emit func(line string)) io.Writer {
	return &lineWriter{emit: emit}
}

// lineWriter is the writer LineWriter returns.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexAny(w.buf, "\r\n")
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.emit(line)
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		// A progress bar without line ends: drop it rather than grow.
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
