package runlog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mlab/mlab/internal/atomicfile"
)

// Recover marks as aborted the runs under root that a server stopped
// without finishing: result.json still says running and the server process
// it names (Result.ServerLock, else Result.Server) is gone, which alive
// reports. A trace that ends
// in a torn line (a killed server's write cut short) is cut back to its last
// whole line; the rest stays as it is. It returns the run IDs it marked.
func Recover(root string, alive func(server string) bool) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", root, err)
	}
	var marked []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		r, err := ReadResult(dir)
		owner := r.ServerLock
		if owner == "" {
			owner = r.Server
		}
		if err != nil || r.Status != StatusRunning || alive(owner) {
			continue
		}
		ended := lastActivity(dir, r.StartedAt)
		if err := trimTornLine(filepath.Join(dir, traceFile)); err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", e.Name(), err))
		}
		r.Status = StatusAborted
		r.Error = "the server stopped unexpectedly (killed or crashed) before the episode ended"
		r.EndedAt = &ended
		r.Seconds = ended.Sub(r.StartedAt).Seconds()
		data, err := encodeResult(r)
		if err == nil {
			err = atomicfile.Write(filepath.Join(dir, resultFile), data, 0o644, true)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mark run %s aborted: %w", e.Name(), err))
			continue
		}
		marked = append(marked, e.Name())
	}
	return marked, errors.Join(errs...)
}

// lastActivity is when the trace was last written, the best estimate of when
// a killed server stopped.
func lastActivity(dir string, started time.Time) time.Time {
	if info, err := os.Stat(filepath.Join(dir, traceFile)); err == nil && info.ModTime().After(started) {
		return info.ModTime().UTC()
	}
	return started
}

// trimTornLine cuts a trace back to the end of its last whole line. Append
// writes each line with one write(2), but a large write is not atomic: a
// server killed during one can leave part of a line, which would make the
// whole trace unreadable as JSON lines.
func trimTornLine(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open trace: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat trace: %w", err)
	}
	// Scan back from the end in blocks for the last newline.
	const block = 64 << 10
	buf := make([]byte, block)
	end := info.Size()
	for pos := end; pos > 0; {
		n := min(pos, block)
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return fmt.Errorf("read trace: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep := pos + int64(i) + 1
			if keep == end {
				return nil
			}
			return truncate(f, keep)
		}
	}
	if end == 0 {
		return nil
	}
	return truncate(f, 0) // not one whole line
}

func truncate(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("trim torn trace line: %w", err)
	}
	return f.Sync()
}
