package runlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Entry types.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Reasons recorded in Entry.Skipped.
const (
	SkippedTooLarge   = "too large"
	SkippedUnreadable = "unreadable"
)

const defaultSnapshotFileLimit = 256 << 20

// defaultRacyWindow covers the coarsest timestamp granularity we expect
// (one second on some filesystems). A file changed within it of the moment it
// was hashed could change again without its stat changing, so it is not
// cached; it is re-hashed at the next snapshot instead.
const defaultRacyWindow = time.Second

// Entry is one path in a manifest.
type Entry struct {
	Path    string      `json:"path"` // slash-separated, relative
	Type    string      `json:"type"` // "file", "dir", "symlink"
	Mode    fs.FileMode `json:"mode"` // permission bits
	Size    int64       `json:"size,omitempty"`
	SHA256  string      `json:"sha256,omitempty"`
	Target  string      `json:"target,omitempty"` // symlinks
	Skipped string      `json:"skipped,omitempty"`
}

// Manifest is snapshots/<name>.json.
type Manifest struct {
	Name    string    `json:"name"`
	Time    time.Time `json:"time"`
	Entries []Entry   `json:"entries"`
}

// cacheKey identifies one version of a file cheaply. Any write changes the
// size, mtime or ctime, and a replaced file changes the inode; the device
// keeps trees on different filesystems apart.
type cacheKey struct {
	path  string
	size  int64
	mtime int64
	dev   uint64
	ino   uint64
	ctime int64
}

func keyOf(p string, fi fs.FileInfo) cacheKey {
	dev, ino, ctime := fileIdentity(fi)
	return cacheKey{path: p, size: fi.Size(), mtime: fi.ModTime().UnixNano(), dev: dev, ino: ino, ctime: ctime}
}

// SetSnapshotFileLimit sets the size above which Snapshot records a file as
// skipped instead of storing it; n <= 0 restores the 256 MiB default.
func (l *Log) SetSnapshotFileLimit(n int64) {
	if n <= 0 {
		n = defaultSnapshotFileLimit
	}
	l.fileLimit.Store(n)
}

func (l *Log) manifestPath(name string) string {
	return filepath.Join(l.dir, snapshotsDir, name+".json")
}

// Snapshot records the tree at dir as manifest snapshots/<name>.json and
// returns name. File contents go to the content-addressed object store, and
// a cache of (path, size, mtime, inode, ctime) -> hash means an unchanged
// file is neither re-read nor re-stored. The tree is read through an
// os.Root, so symlinks are recorded (not followed) and a tree that changes
// under the walk cannot make it read outside dir. Special files (FIFOs,
// sockets, devices) are left out; files that vanish mid-walk are left out;
// unreadable files and directories are recorded with Skipped set. ctx is
// checked between entries. A name that already has a manifest is an error,
// because the trace refers to manifests by name.
func (l *Log) Snapshot(ctx context.Context, dir, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	l.snapMu.Lock()
	defer l.snapMu.Unlock()

	mpath := l.manifestPath(name)
	if _, err := os.Lstat(mpath); err == nil {
		return "", fmt.Errorf("snapshot %s: manifest %s: %w", name, mpath, fs.ErrExist)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", name, err)
	}
	defer root.Close()

	m := Manifest{Name: name, Time: time.Now().UTC(), Entries: []Entry{}}
	// Building a fresh cache drops entries for deleted files, so the cache
	// never outgrows the tree.
	next := make(map[cacheKey]string, len(l.cache))
	limit := l.fileLimit.Load()

	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, walkErr error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if walkErr != nil {
			if p == "." {
				return walkErr
			}
			// A directory we listed could not be read. Its entry was just
			// appended; keep the directory but say its contents are missing.
			if n := len(m.Entries); n > 0 && m.Entries[n-1].Path == p {
				if errors.Is(walkErr, fs.ErrNotExist) {
					m.Entries = m.Entries[:n-1]
				} else {
					m.Entries[n-1].Skipped = SkippedUnreadable
				}
			}
			return nil
		}
		if p == "." {
			return nil
		}
		e, ok, err := l.snapshotEntry(root, p, limit, next)
		if err != nil {
			return err
		}
		if !ok {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		m.Entries = append(m.Entries, e)
		if e.Type != TypeDir && d.IsDir() {
			// Replaced by a non-directory since it was listed.
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("snapshot %s of %s: %w", name, dir, err)
	}

	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode manifest %s: %w", name, err)
	}
	// Not fsynced per step: the rename makes it atomic against a killed
	// process, which is the failure that matters here.
	if err := writeFileAtomic(mpath, data, false); err != nil {
		return "", err
	}
	l.cache = next
	return name, nil
}

// snapshotEntry describes p and stores its content if needed. ok is false
// when p should be left out of the manifest.
func (l *Log) snapshotEntry(root *os.Root, p string, limit int64, next map[cacheKey]string) (e Entry, ok bool, err error) {
	fi, err := root.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Entry{}, false, nil
		}
		return Entry{}, false, fmt.Errorf("lstat %s: %w", p, err)
	}
	e = Entry{Path: p, Mode: fi.Mode().Perm()}
	switch {
	case fi.IsDir():
		e.Type = TypeDir
		return e, true, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type = TypeSymlink
		target, err := root.Readlink(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Entry{}, false, nil
			}
			return Entry{}, false, fmt.Errorf("readlink %s: %w", p, err)
		}
		e.Target = target
		return e, true, nil
	case fi.Mode().IsRegular():
		e.Type = TypeFile
		e.Size = fi.Size()
		if fi.Size() > limit {
			e.Skipped = SkippedTooLarge
			return e, true, nil
		}
		key := keyOf(p, fi)
		if sum, hit := l.cache[key]; hit {
			e.SHA256 = sum
			next[key] = sum
			return e, true, nil
		}
		return l.snapshotFile(root, e, limit, next)
	default:
		// Nothing meaningful to store, and opening a FIFO could block.
		return Entry{}, false, nil
	}
}

// snapshotFile reads, hashes and stores the regular file e.Path. Size, mode
// and cache key come from the open file rather than the earlier lstat, so
// the entry describes exactly the bytes stored.
func (l *Log) snapshotFile(root *os.Root, e Entry, limit int64, next map[cacheKey]string) (Entry, bool, error) {
	f, err := root.OpenFile(e.Path, openSourceFlags, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Entry{}, false, nil
	case errors.Is(err, fs.ErrPermission):
		e.Skipped = SkippedUnreadable
		return e, true, nil
	case err != nil:
		return Entry{}, false, fmt.Errorf("open %s: %w", e.Path, err)
	}
	defer f.Close()

	before, err := f.Stat()
	if err != nil {
		return Entry{}, false, fmt.Errorf("stat %s: %w", e.Path, err)
	}
	if !before.Mode().IsRegular() {
		return Entry{}, false, nil
	}
	e.Mode = before.Mode().Perm()
	sum, n, tooLarge, err := l.storeObject(f, limit)
	if err != nil {
		return Entry{}, false, fmt.Errorf("store %s: %w", e.Path, err)
	}
	e.Size = n
	if tooLarge {
		e.Size = before.Size()
		e.Skipped = SkippedTooLarge
		return e, true, nil
	}
	e.SHA256 = sum

	after, err := f.Stat()
	if err != nil {
		return Entry{}, false, fmt.Errorf("stat %s: %w", e.Path, err)
	}
	key := keyOf(e.Path, after)
	// Cache only what is known to be stable: the file did not change while
	// being read, and its last change is old enough that a further change
	// would move its timestamps.
	if key == keyOf(e.Path, before) && n == after.Size() && !l.racy(key, time.Now()) {
		next[key] = sum
	}
	return e, true, nil
}

func (l *Log) racy(k cacheKey, now time.Time) bool {
	changed := max(k.mtime, k.ctime)
	return changed >= now.Add(-l.racyWindow).UnixNano()
}

// ReadManifest reads snapshots/<name>.json.
func (l *Log) ReadManifest(name string) (Manifest, error) {
	if err := validName(name); err != nil {
		return Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	p := l.manifestPath(name)
	data, err := os.ReadFile(p)
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest %s: %w", p, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("decode manifest %s: %w", p, err)
	}
	return m, nil
}
