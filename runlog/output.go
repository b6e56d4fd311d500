package runlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// defaultOutputLimit caps one output file when the caller gives no limit.
const defaultOutputLimit = 64 << 20

// OutputFile creates outputs/<name> (e.g. "step-0004.log") for the full
// output of a script, which the tool result shown to the agent only
// summarises, and returns the writer and its run-relative path for
// Step.Output. The writer keeps the first maxBytes and
// silently discards (but counts) the rest, so that a flood cannot fill the
// disk or make the script fail on a write error; Close appends a line saying
// how many bytes were dropped. maxBytes <= 0 means 64 MiB. An existing file
// is an error rather than overwritten, because a reused name means a
// previous step's record would be lost.
func (l *Log) OutputFile(name string, maxBytes int64) (io.WriteCloser, string, error) {
	if err := validName(name); err != nil {
		return nil, "", fmt.Errorf("output file: %w", err)
	}
	if maxBytes <= 0 {
		maxBytes = defaultOutputLimit
	}
	p := filepath.Join(l.dir, outputsDir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("create output %s: %w", p, err)
	}
	return &cappedWriter{f: f, limit: maxBytes}, outputsDir + "/" + name, nil
}

// cappedWriter is safe for concurrent use because callers commonly hand the
// same writer to a process's stdout and stderr copiers.
type cappedWriter struct {
	mu      sync.Mutex
	f       *os.File
	limit   int64
	written int64
	dropped int64
	closed  bool
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("write output %s: %w", w.f.Name(), os.ErrClosed)
	}
	keep := min(int64(len(p)), max(w.limit-w.written, 0))
	if keep > 0 {
		n, err := w.f.Write(p[:keep])
		w.written += int64(n)
		if err != nil {
			return n, fmt.Errorf("write output %s: %w", w.f.Name(), err)
		}
	}
	w.dropped += int64(len(p)) - keep
	// Report the whole slice as written: the excess is dropped on purpose and
	// an error would make io.Copy abandon the pipe and block the script.
	return len(p), nil
}

func (w *cappedWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	if w.dropped > 0 {
		note := fmt.Sprintf("\n…[output truncated: %d bytes dropped after the first %d bytes]\n", w.dropped, w.written)
		if _, err := io.WriteString(w.f, note); err != nil {
			errs = append(errs, fmt.Errorf("write output %s: %w", w.f.Name(), err))
		}
	}
	if err := w.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close output %s: %w", w.f.Name(), err))
	}
	return errors.Join(errs...)
}
