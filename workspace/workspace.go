package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
)

const (
	// MaxRead is the most bytes one Read returns.
	MaxRead = 64 << 10
	// MaxWrite is the largest content Write, Append, Edit and ReplaceLines
	// accept or produce, and the largest file Edit and ReplaceLines work on.
	MaxWrite = 16 << 20
	// MaxInspectLines is the most lines one Lines call returns.
	MaxInspectLines = 100
	// MaxHistoryVersions is how many earlier versions are kept per file.
	MaxHistoryVersions = 50
	// MaxHistoryBytes bounds the total size of all kept earlier versions;
	// past it the oldest versions (of any file) are dropped.
	MaxHistoryBytes = 64 << 20

	// maxBackupBytes is the largest earlier version kept for undo.
	maxBackupBytes = MaxWrite
	// binarySniffBytes is how much of a file is checked for NUL bytes.
	binarySniffBytes = 8 << 10
	// maxDiffBytes caps the diffs returned by Edit, ReplaceLines and Undo.
	maxDiffBytes = 64 << 10
	// maxLineDisplay caps one line as shown by Lines.
	maxLineDisplay = 2000
	// maxSymlinks bounds how many symbolic links one path may go through.
	maxSymlinks = 40
	// maxPathLen bounds the length of a path given by the agent.
	maxPathLen = 4096
	// tmpPrefix starts the names of the temporary files used to replace
	// files atomically.
	tmpPrefix = ".mlab-tmp-"
)

var (
	// ErrOutsideWorkspace is matched (errors.Is) by errors for paths that
	// are, or resolve to, somewhere outside the workspace.
	ErrOutsideWorkspace = errors.New("path outside the workspace")
	// ErrReadOnly is matched by errors for changes to read-only files.
	ErrReadOnly = errors.New("file is read-only")
	// errClosed is returned after Close.
	errClosed = errors.New("the workspace is closed")
)

// wsError is an error whose message is written for the agent. It matches a
// kind (such as fs.ErrNotExist or ErrReadOnly) and the underlying cause,
// if any, with errors.Is and errors.As.
type wsError struct {
	msg   string
	kind  error
	cause error
}

func (e *wsError) Error() string { return e.msg }

func (e *wsError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func newErr(kind, cause error, format string, args ...any) error {
	return &wsError{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// Workspace is the agent-visible directory of one episode, on this host.
// Every file access goes through an os.Root opened on the directory, after
// the agent's path has been checked and its symbolic links resolved inside
// the workspace, so nothing the agent passes reaches outside it. Files the
// task's read-only Matcher covers cannot be changed. Changes are recorded so
// that they can be undone.
//
// A Workspace is safe for concurrent use. It implements Files.
type Workspace struct {
	mu       sync.Mutex
	root     *os.Root
	closed   bool
	absDirs  []string // absolute spellings of the directory
	readOnly Matcher  // nil: nothing is read-only

	hist      map[string][]*version // keyed by resolved path
	histBytes int64
	seq       uint64

	// uid and gid own what the workspace creates; -1 keeps the server's.
	uid, gid int
}

// The workspace on this host is what tools act on.
var _ Files = (*Workspace)(nil)

// version is the state of a file before one change.
type version struct {
	seq      uint64
	existed  bool
	data     []byte
	mode     fs.FileMode // permission bits
	size     int64
	tooLarge bool // existed, but was larger than maxBackupBytes: data not kept
}

// Matcher says which paths of a workspace are read-only. The task owns the
// patterns and parses them once; the workspace only asks.
type Matcher interface {
	// Match reports whether rel is read-only. rel is clean, relative to the
	// workspace root and slash-separated, never "." and never holding "..".
	// The workspace asks about a path and about every directory above it, so
	// a Matcher that covers a directory covers everything below it.
	Match(rel string) bool
}

// Open opens the workspace at dir. readOnly says which paths cannot be
// changed; nil means none.
func Open(dir string, readOnly Matcher) (*Workspace, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open workspace: %w", err)
	}
	w := &Workspace{
		root:     root,
		readOnly: readOnly,
		hist:     make(map[string][]*version),
		uid:      -1,
		gid:      -1,
	}
	if abs, err := filepath.Abs(dir); err == nil {
		w.absDirs = append(w.absDirs, filepath.ToSlash(abs))
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			w.absDirs = append(w.absDirs, filepath.ToSlash(real))
		}
	}
	return w, nil
}

// Close releases the workspace directory. Later calls fail.
func (w *Workspace) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.hist = nil
	w.histBytes = 0
	return w.root.Close()
}

// IsReadOnly reports whether the task's read-only Matcher covers name.
// Invalid paths are not read-only (they cannot be written either). It does
// not follow symbolic links; the changing methods also check where a link
// leads.
func (w *Workspace) IsReadOnly(name string) bool {
	clean, err := w.cleanPath(name, false)
	if err != nil {
		return false
	}
	return covered(w.readOnly, clean)
}

// covered asks ro about the clean relative path p and each directory above
// it: a file inside a read-only directory is read-only.
func covered(ro Matcher, p string) bool {
	if ro == nil {
		return false
	}
	for c := p; c != "." && c != "/" && c != ""; c = path.Dir(c) {
		if ro.Match(c) {
			return true
		}
	}
	return false
}
