package runlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Recover marks as aborted the runs under root that a server stopped
// without finishing: result.json still says running and the server process
// it names (Result.Server) is gone, which alive reports. Their traces stay as
// they are. It returns the run IDs it marked.
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
		if err != nil || r.Status != StatusRunning || alive(r.Server) {
			continue
		}
		r.Status = StatusAborted
		r.Error = "the server stopped unexpectedly (killed or crashed) before the episode ended"
		ended := lastActivity(dir, r.StartedAt)
		r.EndedAt = &ended
		r.Seconds = ended.Sub(r.StartedAt).Seconds()
		data, err := encodeResult(r)
		if err == nil {
			err = writeFileAtomic(filepath.Join(dir, resultFile), data, true)
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
