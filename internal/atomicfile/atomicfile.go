// Package atomicfile owns replacing a file's content atomically, for every
// record the server writes whole (result.json, snapshot manifests, cached
// baselines): a reader, or a server killed half way, sees the old content
// or the new one, never a mix.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data. The data goes to a temporary file in the
// same directory, which is then renamed over path; the temporary file is
// removed if anything fails. The new file gets exactly perm (no umask).
// durable adds an fsync of the file before the rename and of the directory
// after it, for records that must survive a machine crash and not just a
// killed process; the directory's fsync is best effort, as some file
// systems refuse it and the rename is visible by then anyway.
func Write(path string, data []byte, perm fs.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", tmpName, err)
		}
	}
	// CreateTemp makes 0600, whatever the caller wants.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmpName, path, err)
	}
	renamed = true
	if durable {
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync()
			_ = d.Close()
		}
	}
	return nil
}
