package runlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// Restore materialises manifest name into dst, which must be an empty
// directory or not exist. It recreates directories, files with their modes,
// and symlinks, and verifies every object against its hash so that a
// corrupted store cannot silently produce a wrong submission. Entries
// recorded as skipped are not restored (directories still are, empty).
// Writes go through an os.Root, so even a tampered manifest cannot write
// outside dst. On error dst is left partially populated; callers should
// discard it.
func (l *Log) Restore(ctx context.Context, name, dst string) error {
	m, err := l.ReadManifest(name)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("restore %s: %w", name, err)
	}
	existing, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("restore %s: %w", name, err)
	}
	if len(existing) > 0 {
		return fmt.Errorf("restore %s: destination %s is not empty", name, dst)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("restore %s: %w", name, err)
	}
	defer root.Close()

	var dirs []Entry
	for _, e := range m.Entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("restore %s: %w", name, err)
		}
		if !fs.ValidPath(e.Path) || e.Path == "." {
			return fmt.Errorf("restore %s: invalid entry path %q", name, e.Path)
		}
		if e.Skipped != "" && e.Type != TypeDir {
			continue
		}
		// Snapshot lists parents first; this only matters for hand-edited
		// manifests.
		if parent := path.Dir(e.Path); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("restore %s: %w", name, err)
			}
		}
		switch e.Type {
		case TypeDir:
			// Owner-writable until the end so that children can be created
			// inside directories recorded as read-only.
			if err := root.MkdirAll(e.Path, 0o700); err != nil {
				return fmt.Errorf("restore %s: %w", name, err)
			}
			dirs = append(dirs, e)
		case TypeFile:
			if err := l.restoreFile(root, e); err != nil {
				return fmt.Errorf("restore %s: %w", name, err)
			}
		case TypeSymlink:
			if err := root.Symlink(e.Target, e.Path); err != nil {
				return fmt.Errorf("restore %s: %w", name, err)
			}
		default:
			return fmt.Errorf("restore %s: entry %q has unknown type %q", name, e.Path, e.Type)
		}
	}
	// Deepest first, so a read-only parent is locked only after its children.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].Path, dirs[i].Mode.Perm()); err != nil {
			return fmt.Errorf("restore %s: %w", name, err)
		}
	}
	return nil
}

func (l *Log) restoreFile(root *os.Root, e Entry) error {
	if !validSum(e.SHA256) {
		return fmt.Errorf("entry %q has invalid sha256 %q", e.Path, e.SHA256)
	}
	objPath := l.objectPath(e.SHA256)
	obj, err := os.Open(objPath)
	if err != nil {
		return fmt.Errorf("open object for %q: %w", e.Path, err)
	}
	defer obj.Close()

	f, err := root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %q: %w", e.Path, err)
	}
	h := sha256.New()
	n, copyErr := io.Copy(io.MultiWriter(f, h), obj)
	closeErr := f.Close()
	if copyErr != nil {
		return fmt.Errorf("copy object %s to %q: %w", objPath, e.Path, copyErr)
	}
	if closeErr != nil {
		return fmt.Errorf("close %q: %w", e.Path, closeErr)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		// Never leave corrupt bytes where a careless caller could score them.
		_ = root.Remove(e.Path)
		return fmt.Errorf("object %s for %q is corrupt: hash mismatch (got %s)", objPath, e.Path, got)
	}
	if n != e.Size {
		_ = root.Remove(e.Path)
		return fmt.Errorf("object %s for %q: size %d, manifest says %d", objPath, e.Path, n, e.Size)
	}
	// Explicit chmod because the create mode is filtered by the umask.
	if err := root.Chmod(e.Path, e.Mode.Perm()); err != nil {
		return fmt.Errorf("chmod %q: %w", e.Path, err)
	}
	return nil
}
