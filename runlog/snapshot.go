package runlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/atomicfile"
	"github.com/mlab/mlab/internal/dirtree"
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
	// Path is slash-separated and relative. In memory it holds the name's
	// exact bytes; in JSON a name that is not valid UTF-8 (which JSON strings
	// cannot carry) is also stored as PathB64, and Path is then only a
	// readable approximation.
	Path    string      `json:"path"`
	PathB64 string      `json:"path_b64,omitempty"`
	Type    string      `json:"type"` // "file", "dir", "symlink"
	Mode    fs.FileMode `json:"mode"` // permission bits
	Size    int64       `json:"size,omitempty"`
	SHA256  string      `json:"sha256,omitempty"`
	// Target is a symlink's target, stored like Path (TargetB64).
	Target    string `json:"target,omitempty"`
	TargetB64 string `json:"target_b64,omitempty"`
	Skipped   string `json:"skipped,omitempty"`
}

// Manifest is snapshots/<name>.json.
type Manifest struct {
	Name    string    `json:"name"`
	Time    time.Time `json:"time"`
	Entries []Entry   `json:"entries"`
}

// wireManifest is a Manifest as written.
type wireManifest struct {
	Name    string      `json:"name"`
	Time    time.Time   `json:"time"`
	Entries []wireEntry `json:"entries"`
}

// wireEntry is an Entry as written. An entry of a directory listed before it
// names that directory by In (its index plus one) and holds only its own name
// in Path, so that a manifest grows with the number of entries, not with the
// sum of their depths: by full paths, a chain of 4,000 nested directories
// made a 16 MB manifest on every step. In is 0 for top-level entries and in
// manifests written before it existed, whose paths are full.
//
// A name or target that is not valid UTF-8 is also stored in base64
// (PathB64, TargetB64): encoding/json would turn its odd bytes into U+FFFD,
// so that two such names would collide and one alone would be restored
// under another name.
type wireEntry struct {
	Entry
	In int `json:"in,omitempty"`
}

// MarshalJSON writes m in its wire form.
func (m Manifest) MarshalJSON() ([]byte, error) { return json.Marshal(m.wire()) }

// wire returns m as it is written.
func (m Manifest) wire() wireManifest {
	w := wireManifest{Name: m.Name, Time: m.Time, Entries: make([]wireEntry, len(m.Entries))}
	dirs := map[string]int{} // a directory's path -> its index plus one
	for i, e := range m.Entries {
		we := wireEntry{Entry: e}
		if j := strings.LastIndexByte(e.Path, '/'); j > 0 {
			if in, ok := dirs[e.Path[:j]]; ok {
				we.In, we.Path = in, e.Path[j+1:]
			}
		}
		if e.Type == TypeDir {
			dirs[e.Path] = i + 1
		}
		we.Path, we.PathB64 = encodeName(we.Path)
		we.Target, we.TargetB64 = encodeName(e.Target)
		w.Entries[i] = we
	}
	return w
}

// UnmarshalJSON reads what MarshalJSON writes, and manifests from before In
// and PathB64 existed as they always read.
func (m *Manifest) UnmarshalJSON(data []byte) error {
	var w wireManifest
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	entries := make([]Entry, len(w.Entries))
	for i, we := range w.Entries {
		e := we.Entry
		var err error
		if e.Path, err = decodeName(e.Path, e.PathB64); err != nil {
			return fmt.Errorf("entry %d path: %w", i, err)
		}
		if e.Target, err = decodeName(e.Target, e.TargetB64); err != nil {
			return fmt.Errorf("entry %d target: %w", i, err)
		}
		e.PathB64, e.TargetB64 = "", ""
		if we.In != 0 {
			if we.In < 0 || we.In > i || entries[we.In-1].Type != TypeDir {
				return fmt.Errorf("entry %d: in %d is not a directory listed before it", i, we.In)
			}
			if e.Path == "" || e.Path == "." || e.Path == ".." || strings.ContainsRune(e.Path, '/') {
				return fmt.Errorf("entry %d: %q is not a name", i, e.Path)
			}
			e.Path = entries[we.In-1].Path + "/" + e.Path
		}
		entries[i] = e
	}
	*m = Manifest{Name: w.Name, Time: w.Time, Entries: entries}
	return nil
}

// encodeName returns name itself if it is valid UTF-8, and otherwise a
// readable approximation plus the exact bytes in base64.
func encodeName(name string) (text, b64 string) {
	if utf8.ValidString(name) {
		return name, ""
	}
	return strings.ToValidUTF8(name, "\uFFFD"), base64.StdEncoding.EncodeToString([]byte(name))
}

func decodeName(text, b64 string) (string, error) {
	if b64 == "" {
		return text, nil
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("decode base64: %w", err)
	}
	return string(b), nil
}

// cacheKey identifies one version of a file cheaply. Any write changes the
// size, mtime or ctime, and a replaced file changes the inode; the device
// keeps trees on different filesystems apart. The change time cannot be set
// from user space, so unlike mtime it cannot be rewound to make a modified
// file look unchanged.
type cacheKey struct {
	path  string
	size  int64
	mtime int64
	dev   uint64
	ino   uint64
	ctime int64
}

func keyOf(p string, st *unix.Stat_t) cacheKey {
	return cacheKey{path: p, size: st.Size, mtime: st.Mtim.Nano(), dev: uint64(st.Dev), ino: st.Ino, ctime: st.Ctim.Nano()}
}

// SetSnapshotFileLimit sets the size above which Snapshot records a file as
// skipped instead of storing it; n <= 0 restores the 256 MiB default.
func (l *Log) SetSnapshotFileLimit(n int64) {
	if n <= 0 {
		n = defaultSnapshotFileLimit
	}
	l.fileLimit.Store(n)
}

// SetSnapshotLimits sets the bounds of later snapshots; zero fields take
// the defaults.
func (l *Log) SetSnapshotLimits(lim SnapshotLimits) {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	l.limits = lim.withDefaults()
}

func (l *Log) manifestPath(name string) string { return manifestPath(l.dir, name) }

func manifestPath(dir, name string) string {
	return filepath.Join(dir, snapshotsDir, name+".json")
}

// Snapshot records the tree at dir as manifest snapshots/<name>.json and
// returns name. File contents go to the content-addressed object store, and
// a cache of (path, size, mtime, inode, ctime) -> hash means an unchanged
// file is neither re-read nor re-stored. The tree is walked through
// directory descriptors (package dirtree), so each entry is resolved once,
// whatever its depth, symlinks are recorded (not followed) and a tree that
// changes under the walk cannot make it read outside dir. Special files
// (FIFOs, sockets, devices) are left out; files that vanish mid-walk are
// left out; unreadable files and directories are recorded with Skipped set.
// A tree beyond the log's SnapshotLimits, or one that cannot be read before
// ctx's deadline, is an error that wraps ErrTooLarge and says, with
// workspace-relative paths only, what to remove. A name that already has a
// manifest is an error, because the trace refers to manifests by name.
func (l *Log) Snapshot(ctx context.Context, dir, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	l.snapMu.Lock()
	defer l.snapMu.Unlock()

	mpath := l.manifestPath(name)
	if _, err := os.Lstat(mpath); err == nil {
		return "", fmt.Errorf("snapshot %s: manifest already exists: %w", name, fs.ErrExist)
	}

	m := Manifest{Name: name, Time: time.Now().UTC(), Entries: []Entry{}}
	// Building a fresh cache drops entries for deleted files, so the cache
	// never outgrows the tree.
	next := make(map[cacheKey]string, len(l.cache))
	lim := l.limits
	fileLimit := l.fileLimit.Load()
	var pathBytes, fileBytes int64

	w := dirtree.Walker{
		MaxDepth:   lim.Depth,
		MaxEntries: lim.Entries,
		Visit: func(c *dirtree.Cursor, de *dirtree.Entry) (bool, error) {
			pathBytes += int64(len(de.Rel))
			if pathBytes > lim.PathBytes {
				return false, &dirtree.LimitError{What: "bytes of path names in all", Limit: lim.PathBytes, Path: de.Rel}
			}
			e, ok, err := l.snapshotEntry(c, de, fileLimit, next)
			if err != nil || !ok {
				return false, err
			}
			if e.Type == TypeFile && e.Skipped == "" {
				fileBytes += e.Size
				if fileBytes > lim.FileBytes {
					return false, &dirtree.LimitError{What: "bytes in files", Limit: lim.FileBytes, Path: de.Rel}
				}
			}
			m.Entries = append(m.Entries, e)
			return e.Type == TypeDir, nil
		},
		// The directory's own entry was just appended by Visit.
		DirError: func(de *dirtree.Entry, err error, vanished bool) error {
			n := len(m.Entries)
			switch {
			case n == 0 || m.Entries[n-1].Path != de.Rel:
				return err
			case vanished:
				m.Entries = m.Entries[:n-1]
			case errors.Is(err, fs.ErrPermission):
				m.Entries[n-1].Skipped = SkippedUnreadable
			default:
				return err
			}
			return nil
		},
	}
	if err := w.Walk(ctx, dir); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", name, snapshotErr(ctx, err, len(m.Entries)))
	}

	// The wire form directly: through MarshalJSON, encoding/json would
	// check and re-indent the whole manifest again.
	data, err := json.MarshalIndent(m.wire(), "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode manifest %s: %w", name, err)
	}
	// Not fsynced per step: the rename makes it atomic against a killed
	// process, which is the failure that matters here.
	if err := atomicfile.Write(mpath, data, 0o644, false); err != nil {
		return "", err
	}
	l.cache = next
	l.sizes = sizesOf(m.Entries)
	return name, nil
}

// sizesOf returns the sizes of the stored files among entries.
func sizesOf(entries []Entry) map[int64]struct{} {
	sizes := map[int64]struct{}{}
	for _, e := range entries {
		if e.Type == TypeFile && e.Skipped == "" {
			sizes[e.Size] = struct{}{}
		}
	}
	return sizes
}

// snapshotEntry describes de and stores its content if needed. ok is false
// when de should be left out of the manifest. c is at de's parent.
func (l *Log) snapshotEntry(c *dirtree.Cursor, de *dirtree.Entry, limit int64, next map[cacheKey]string) (e Entry, ok bool, err error) {
	st := &de.Stat
	e = Entry{Path: de.Rel, Mode: fs.FileMode(st.Mode & 0o777)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = TypeDir
		return e, true, nil
	case unix.S_IFLNK:
		e.Type = TypeSymlink
		target, err := readlinkat(c.Fd(), de.Name)
		if err != nil {
			// EINVAL: no longer a link.
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
				return Entry{}, false, nil
			}
			return Entry{}, false, dirtree.PathErr("readlink", de.Rel, err)
		}
		e.Target = target
		return e, true, nil
	case unix.S_IFREG:
		e.Type = TypeFile
		e.Size = st.Size
		if st.Size > limit {
			e.Skipped = SkippedTooLarge
			return e, true, nil
		}
		key := keyOf(de.Rel, st)
		if sum, hit := l.cache[key]; hit {
			e.SHA256 = sum
			next[key] = sum
			return e, true, nil
		}
		return l.snapshotFile(c, de, e, limit, next)
	default:
		// Nothing meaningful to store, and opening a FIFO could block.
		return Entry{}, false, nil
	}
}

// readlinkat reads the target of the symbolic link name in directory fd.
func readlinkat(fd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// snapshotFile reads, hashes and stores the regular file de. Size, mode and
// cache key come from the open file rather than the earlier lstat, so the
// entry describes exactly the bytes stored.
func (l *Log) snapshotFile(c *dirtree.Cursor, de *dirtree.Entry, e Entry, limit int64, next map[cacheKey]string) (Entry, bool, error) {
	// O_NONBLOCK so that a file swapped for a FIFO since the lstat cannot
	// hang the snapshot, O_NOFOLLOW so that one swapped for a link is not
	// followed.
	fd, err := unix.Openat(c.Fd(), de.Name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case dirtree.Vanished(err):
		return Entry{}, false, nil
	case errors.Is(err, fs.ErrPermission):
		e.Skipped = SkippedUnreadable
		return e, true, nil
	case err != nil:
		return Entry{}, false, dirtree.PathErr("open", de.Rel, err)
	}
	f := os.NewFile(uintptr(fd), de.Rel)
	defer f.Close()

	var before, after unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		return Entry{}, false, dirtree.PathErr("stat", de.Rel, err)
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return Entry{}, false, nil
	}
	e.Mode = fs.FileMode(before.Mode & 0o777)
	sum, n, tooLarge, err := l.hashAndStore(f, before.Size, limit)
	if err != nil {
		return Entry{}, false, fmt.Errorf("store %q: %w", de.Rel, err)
	}
	e.Size = n
	if tooLarge {
		e.Size = before.Size
		e.Skipped = SkippedTooLarge
		return e, true, nil
	}
	e.SHA256 = sum

	if err := unix.Fstat(fd, &after); err != nil {
		return Entry{}, false, dirtree.PathErr("stat", de.Rel, err)
	}
	key := keyOf(de.Rel, &after)
	// Cache only what is known to be stable: the file did not change while
	// being read, and its last change is old enough that a further change
	// would move its timestamps.
	if key == keyOf(de.Rel, &before) && n == after.Size && !l.racy(key, time.Now()) {
		next[key] = sum
	}
	return e, true, nil
}

// smallObject is the size up to which a file is read into memory and hashed
// before anything is written: most files of a workspace are small, and
// their content is often in the store already.
const smallObject = 64 << 10

// hashAndStore stores the content of f (size bytes when stat'ed) unless the
// store has it already, and returns its hash and length. A file whose
// content is likely stored already is hashed before it is copied, so that
// such content is never written again: a small file, or one of the size of
// a file of the previous snapshot (a file rewritten with the same bytes,
// touched, renamed, or every file of a fork's first snapshot, whose
// previous snapshot is the fork point). Others, in practice new outputs and
// checkpoints, are copied while they are hashed, and so read once.
func (l *Log) hashAndStore(f *os.File, size, limit int64) (sum string, n int64, tooLarge bool, err error) {
	_, known := l.sizes[size]
	switch {
	case size <= smallObject:
		// Bounded: a file that grows while it is read is not buffered
		// past smallObject.
		data, err := io.ReadAll(io.LimitReader(f, smallObject+1))
		l.hashedBytes.Add(int64(len(data)))
		if err != nil {
			return "", 0, false, fmt.Errorf("read: %w", err)
		}
		n = int64(len(data))
		if n > limit {
			return "", n, true, nil
		}
		if n <= smallObject {
			h := sha256.Sum256(data)
			if sum = hex.EncodeToString(h[:]); l.hasObject(sum) {
				return sum, n, false, nil
			}
			return l.storeObject(bytes.NewReader(data), limit)
		}
	case known:
		h := sha256.New()
		n, err = io.Copy(h, io.LimitReader(f, limit+1))
		l.hashedBytes.Add(n)
		if err != nil {
			return "", n, false, fmt.Errorf("read: %w", err)
		}
		if n > limit {
			return "", n, true, nil
		}
		if sum = hex.EncodeToString(h.Sum(nil)); l.hasObject(sum) {
			return sum, n, false, nil
		}
	}
	if size <= smallObject || known {
		// Read again, and hashed again: the file may have changed since,
		// and the entry describes what is stored.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", 0, false, fmt.Errorf("rewind: %w", err)
		}
	}
	sum, n, tooLarge, err = l.storeObject(f, limit)
	l.hashedBytes.Add(n)
	return sum, n, tooLarge, err
}

func (l *Log) racy(k cacheKey, now time.Time) bool {
	changed := max(k.mtime, k.ctime)
	return changed >= now.Add(-l.racyWindow).UnixNano()
}

// ReadManifest reads snapshots/<name>.json.
func (l *Log) ReadManifest(name string) (Manifest, error) {
	return readManifest(l.dir, name)
}

// readManifest reads snapshots/<name>.json of the run directory dir.
func readManifest(dir, name string) (Manifest, error) {
	if err := validName(name); err != nil {
		return Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	p := manifestPath(dir, name)
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
