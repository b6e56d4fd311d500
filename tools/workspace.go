package tools

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"
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

// Workspace is the agent-visible directory of one episode. Every file
// access goes through an os.Root opened on the directory, after the agent's
// path has been checked and its symbolic links resolved inside the
// workspace, so nothing the agent passes reaches outside it. Files matching
// the task's read-only patterns cannot be changed. Changes are recorded so
// that they can be undone.
//
// A Workspace is safe for concurrent use.
type Workspace struct {
	mu       sync.Mutex
	root     *os.Root
	closed   bool
	absDirs  []string // absolute spellings of the directory
	readOnly []string // cleaned read-only patterns

	hist      map[string][]*version // keyed by resolved path
	histBytes int64
	seq       uint64

	// uid and gid own what the workspace creates; -1 keeps the server's.
	uid, gid int
}

// version is the state of a file before one change.
type version struct {
	seq      uint64
	existed  bool
	data     []byte
	mode     fs.FileMode // permission bits
	size     int64
	tooLarge bool // existed, but was larger than maxBackupBytes: data not kept
}

// OpenWorkspace opens the workspace at dir. readOnly holds the task's
// read-only patterns (path.Match syntax, as in read_only_files.txt); blank
// entries and lines starting with "#" are ignored.
func OpenWorkspace(dir string, readOnly []string) (*Workspace, error) {
	patterns, err := cleanPatterns(readOnly)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open workspace: %w", err)
	}
	w := &Workspace{
		root:     root,
		readOnly: patterns,
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

// cleanPatterns normalises read-only patterns: "./x" and "/x" mean "x", and
// a trailing "/", "/*" or "/**" covers the whole directory (any path below a
// matching directory is read-only anyway, see matchReadOnly).
func cleanPatterns(in []string) ([]string, error) {
	var out []string
	for _, p := range in {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		orig := p
		p = strings.ReplaceAll(p, `\`, "/")
		for strings.HasPrefix(p, "./") || strings.HasPrefix(p, "/") {
			p = strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/")
		}
		for {
			switch {
			case strings.HasSuffix(p, "/**"):
				p = strings.TrimSuffix(p, "/**")
				continue
			case strings.HasSuffix(p, "/*"):
				p = strings.TrimSuffix(p, "/*")
				continue
			case strings.HasSuffix(p, "/"):
				p = strings.TrimSuffix(p, "/")
				continue
			}
			break
		}
		if p == "" || p == "." || p == "**" {
			p = "*" // the whole workspace
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("read-only pattern %q: %w", orig, err)
		}
		if _, err := path.Match(p, p); err != nil {
			return nil, fmt.Errorf("read-only pattern %q: %w", orig, err)
		}
		out = append(out, p)
	}
	return out, nil
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

// IsReadOnly reports whether the task's read-only patterns cover name.
// Invalid paths are not read-only (they cannot be written either). It does
// not follow symbolic links; the mutating methods also check where a link
// leads.
func (w *Workspace) IsReadOnly(name string) bool {
	clean, err := w.cleanPath(name, false)
	if err != nil {
		return false
	}
	return w.matchReadOnly(clean)
}

// matchReadOnly matches a clean relative path, and each directory above
// it, against the patterns: the whole path, and the base name for patterns
// without a "/".
func (w *Workspace) matchReadOnly(p string) bool {
	for c := p; c != "." && c != "/" && c != ""; c = path.Dir(c) {
		for _, pat := range w.readOnly {
			if globMatch(pat, c) {
				return true
			}
			if !strings.Contains(pat, "/") && globMatch(pat, path.Base(c)) {
				return true
			}
		}
	}
	return false
}

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	if err != nil {
		return pattern == name
	}
	return ok
}

// cleanPath checks a path given by the agent and returns it cleaned. An
// empty path is the workspace root when allowEmpty, an error otherwise.
func (w *Workspace) cleanPath(name string, allowEmpty bool) (string, error) {
	if name == "" {
		if allowEmpty {
			return ".", nil
		}
		return "", newErr(nil, nil, `path is empty: give a path relative to the workspace root, such as "train.py"`)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", newErr(nil, nil, "path %q contains a NUL byte", name)
	}
	if len(name) > maxPathLen {
		return "", newErr(nil, nil, "path is too long (%d bytes; at most %d)", len(name), maxPathLen)
	}
	if strings.Contains(name, `\`) {
		return "", newErr(nil, nil, `path %q contains "\": use "/" to separate directories`, name)
	}
	rel := name
	if isAbsPath(name) {
		r, ok := w.relToWorkspace(name)
		if !ok {
			return "", newErr(ErrOutsideWorkspace, nil,
				`path %q is outside the workspace: use a path relative to the workspace root, without a leading "/"`, name)
		}
		rel = r
	}
	for _, el := range strings.Split(rel, "/") {
		if el == ".." {
			return "", newErr(ErrOutsideWorkspace, nil,
				`path %q is outside the workspace: use a path relative to the workspace root, without ".."`, name)
		}
	}
	return path.Clean(rel), nil
}

// isAbsPath reports whether p is absolute on any common platform: a
// leading "/", or a Windows volume ("C:", "\\host\share").
func isAbsPath(p string) bool {
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) || filepath.VolumeName(p) != "" {
		return true
	}
	return len(p) >= 2 && p[1] == ':' && ('a' <= p[0]|0x20 && p[0]|0x20 <= 'z')
}

// relToWorkspace turns an absolute path that lies (lexically) inside the
// workspace directory into a relative one.
func (w *Workspace) relToWorkspace(p string) (string, bool) {
	for _, d := range w.absDirs {
		if p == d {
			return ".", true
		}
		if d == "/" {
			return strings.TrimPrefix(p, "/"), true
		}
		if strings.HasPrefix(p, d+"/") {
			return p[len(d)+1:], true
		}
	}
	return "", false
}

// resolve follows the symbolic links in the clean path name, staying in
// the workspace, and returns the path they lead to, which has no links in
// its existing components. Components from the first missing one on are
// kept as written, so that the result can be created. Links that lead
// outside the workspace are errors.
func (w *Workspace) resolve(name string) (string, error) {
	if name == "." {
		return ".", nil
	}
	todo := strings.Split(name, "/")
	var done []string
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..": // only from link targets: name has none
			if len(done) == 0 {
				return "", newErr(ErrOutsideWorkspace, nil,
					"path %q resolves outside the workspace (through a symbolic link)", name)
			}
			done = done[:len(done)-1]
			continue
		}
		cur := strings.Join(append(slices.Clip(done), c), "/")
		fi, err := w.root.Lstat(cur)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// Nothing below a missing entry exists either.
				rest := []string{cur}
				for _, r := range todo {
					switch r {
					case "", ".":
					case "..":
						return "", w.fsErr("file", name, err)
					default:
						rest = append(rest, r)
					}
				}
				return strings.Join(rest, "/"), nil
			}
			return "", w.fsErr("file", name, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		links++
		if links > maxSymlinks {
			return "", newErr(nil, syscall.ELOOP, "path %q goes through too many symbolic links", name)
		}
		target, err := w.root.Readlink(cur)
		if err != nil {
			return "", w.fsErr("file", name, err)
		}
		if target == "" {
			return "", newErr(fs.ErrNotExist, nil, "path %q goes through an empty symbolic link %q", name, cur)
		}
		if isAbsPath(target) {
			rel, ok := w.relToWorkspace(filepath.ToSlash(target))
			if !ok {
				return "", newErr(ErrOutsideWorkspace, nil,
					"path %q resolves outside the workspace (symbolic link %q points to %q)", name, cur, target)
			}
			done = nil
			target = rel
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return strings.Join(done, "/"), nil
}

// fsErr turns an error from the file system into a message for the agent.
// noun ("file", "directory") is what name was expected to be.
func (w *Workspace) fsErr(noun, name string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrClosed):
		return newErr(errClosed, err, "%s", errClosed.Error())
	case errors.Is(err, fs.ErrNotExist):
		return newErr(fs.ErrNotExist, err, "%s %q does not exist (use list_files to see the workspace)", noun, name)
	case errors.Is(err, syscall.ENOTDIR):
		return newErr(fs.ErrNotExist, err, "%s %q cannot exist: part of its path is a file, not a directory", noun, name)
	case errors.As(err, &pe) && pe.Err.Error() == "path escapes from parent",
		errors.As(err, &le) && le.Err.Error() == "path escapes from parent":
		return newErr(ErrOutsideWorkspace, err, "path %q resolves outside the workspace", name)
	case errors.Is(err, syscall.ELOOP):
		return newErr(nil, err, "path %q goes through too many symbolic links", name)
	case errors.Is(err, syscall.EISDIR):
		return newErr(nil, err, "%q is a directory, not a file", name)
	case errors.Is(err, fs.ErrPermission):
		return newErr(fs.ErrPermission, err, "permission denied for %q", name)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return newErr(nil, err, "path %q is too long", name)
	case errors.Is(err, syscall.ENOSPC):
		return newErr(nil, err, "no space left in the workspace while writing %q", name)
	}
	// The error text only holds paths relative to the workspace.
	return newErr(nil, err, "%q: %v", name, err)
}

// lock takes the mutex and fails if the workspace is closed.
func (w *Workspace) lock() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosed
	}
	return nil
}

// locate checks and resolves a path that is read, not written.
func (w *Workspace) locate(name string, allowEmpty bool) (clean, resolved string, err error) {
	clean, err = w.cleanPath(name, allowEmpty)
	if err != nil {
		return "", "", err
	}
	resolved, err = w.resolve(clean)
	return clean, resolved, err
}

// target checks and resolves a path that is about to be changed: it must
// be a file path and neither it nor where it leads may be read-only.
func (w *Workspace) target(name string) (clean, resolved string, err error) {
	clean, err = w.cleanPath(name, false)
	if err != nil {
		return "", "", err
	}
	if w.matchReadOnly(clean) {
		return "", "", newErr(ErrReadOnly, nil, "file %q is read-only in this task", clean)
	}
	resolved, err = w.resolve(clean)
	if err != nil {
		return "", "", err
	}
	if resolved == "." {
		return "", "", newErr(nil, nil, "%q is the workspace directory itself: give a file path", clean)
	}
	if resolved != clean && w.matchReadOnly(resolved) {
		return "", "", newErr(ErrReadOnly, nil,
			"file %q is read-only in this task (it is a link to %q)", clean, resolved)
	}
	return clean, resolved, nil
}

// nonblock keeps opening a FIFO, which the agent may have made with a
// script, from blocking; the file type is checked once it is open.
const nonblock = syscall.O_NONBLOCK

// openRegular opens the regular file at resolved for reading.
func (w *Workspace) openRegular(clean, resolved string) (*os.File, fs.FileInfo, error) {
	fi, err := w.root.Stat(resolved)
	if err != nil {
		return nil, nil, w.fsErr("file", clean, err)
	}
	if err := notRegular(clean, fi); err != nil {
		return nil, nil, err
	}
	f, err := w.root.OpenFile(resolved, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, nil, w.fsErr("file", clean, err)
	}
	fi, err = f.Stat()
	if err == nil {
		err = notRegular(clean, fi)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func notRegular(clean string, fi fs.FileInfo) error {
	switch {
	case fi.IsDir():
		return newErr(nil, syscall.EISDIR, "%q is a directory, not a file (use list_files to see its contents)", clean)
	case !fi.Mode().IsRegular():
		return newErr(nil, nil, "%q is not a regular file (%s)", clean, typeName(fi.Mode()))
	}
	return nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

// isBinary reports whether the start of data contains a NUL byte.
func isBinary(data []byte) bool {
	if len(data) > binarySniffBytes {
		data = data[:binarySniffBytes]
	}
	return slices.Contains(data, 0)
}

func binaryErr(clean string, size int64) error {
	return newErr(nil, nil, "file %q looks binary (%d bytes, contains NUL bytes); only text files can be shown or edited", clean, size)
}

// Entry is one directory entry as listed for the agent.
type Entry struct {
	Name string `json:"name"`
	Type string `json:"type"` // "file", "dir", "symlink" or "other"
	Size int64  `json:"size"`
}

// List returns the entries of dir ("" is the workspace root) sorted by
// name. Names are plain; Type tells directories apart.
func (w *Workspace) List(dir string) ([]Entry, error) {
	if err := w.lock(); err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	clean, resolved, err := w.locate(dir, true)
	if err != nil {
		return nil, err
	}
	fi, err := w.root.Stat(resolved)
	if err != nil {
		return nil, w.fsErr("directory", clean, err)
	}
	if !fi.IsDir() {
		return nil, newErr(nil, syscall.ENOTDIR, "%q is a file, not a directory (use read_file to read it)", clean)
	}
	f, err := w.root.OpenFile(resolved, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, w.fsErr("directory", clean, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		return nil, newErr(nil, err, "%q is not a directory", clean)
	}
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, w.fsErr("directory", clean, err)
	}
	entries := make([]Entry, 0, len(des))
	for _, de := range des {
		e := Entry{Name: de.Name(), Type: typeName(de.Type())}
		if st, err := w.root.Lstat(path.Join(resolved, de.Name())); err == nil {
			e.Type = typeName(st.Mode())
			if e.Type != "dir" {
				e.Size = st.Size()
			}
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// ReadResult is one chunk of a text file.
type ReadResult struct {
	Content    string `json:"content"`
	Offset     int64  `json:"offset"`      // byte offset of Content
	Bytes      int    `json:"bytes"`       // length of Content in bytes
	TotalBytes int64  `json:"total_bytes"` // size of the file
	Truncated  bool   `json:"truncated"`   // more of the file follows
	NextOffset int64  `json:"next_offset,omitempty"`
}

// Text returns Content for the agent, with a note when more of the file
// follows (or when there is nothing to show).
func (r ReadResult) Text() string {
	var note string
	switch {
	case r.Truncated:
		note = fmt.Sprintf("[truncated: showed bytes %d-%d of %d; call read_file with offset=%d to read more]",
			r.Offset, r.Offset+int64(r.Bytes), r.TotalBytes, r.NextOffset)
	case r.TotalBytes == 0:
		return "[the file is empty]"
	case r.Bytes == 0:
		return fmt.Sprintf("[offset %d is the end of the file (%d bytes)]", r.Offset, r.TotalBytes)
	default:
		return r.Content
	}
	if r.Content == "" || strings.HasSuffix(r.Content, "\n") {
		return r.Content + note
	}
	return r.Content + "\n" + note
}

// Read returns at most limit bytes of the text file name from byte offset;
// limit <= 0 or above MaxRead means MaxRead. The chunk never ends inside a
// UTF-8 sequence, and an offset inside one is moved back to its start.
// Binary files (a NUL byte in the first 8 KiB) are refused.
func (w *Workspace) Read(name string, offset, limit int64) (ReadResult, error) {
	if err := w.lock(); err != nil {
		return ReadResult{}, err
	}
	defer w.mu.Unlock()
	clean, resolved, err := w.locate(name, false)
	if err != nil {
		return ReadResult{}, err
	}
	if offset < 0 {
		return ReadResult{}, newErr(nil, nil, "offset must be >= 0 (got %d)", offset)
	}
	if limit <= 0 || limit > MaxRead {
		limit = MaxRead
	}
	f, fi, err := w.openRegular(clean, resolved)
	if err != nil {
		return ReadResult{}, err
	}
	defer f.Close()
	size := fi.Size()

	head := make([]byte, min(size, binarySniffBytes))
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return ReadResult{}, w.fsErr("file", clean, err)
	}
	if isBinary(head[:n]) {
		return ReadResult{}, binaryErr(clean, size)
	}
	if offset > size {
		return ReadResult{}, newErr(nil, nil, "offset %d is beyond the end of %q, which has %d bytes", offset, clean, size)
	}

	// Read from up to 3 bytes before offset (to find the start of a UTF-8
	// sequence) to 3 bytes past the limit (to finish one).
	from := max(offset-(utf8.UTFMax-1), 0)
	buf := make([]byte, min(offset+limit+utf8.UTFMax, size)-from)
	n, err = f.ReadAt(buf, from)
	if err != nil && err != io.EOF {
		return ReadResult{}, w.fsErr("file", clean, err)
	}
	buf = buf[:n]
	start := int(offset - from)
	if start < len(buf) && !utf8.RuneStart(buf[start]) {
		for i := start - 1; i >= 0; i-- {
			if utf8.RuneStart(buf[i]) {
				if r, sz := utf8.DecodeRune(buf[i:]); r != utf8.RuneError && i+sz > start {
					start = i
				}
				break
			}
		}
	}
	end := min(start+int(limit), len(buf))
	if end < len(buf) && !utf8.RuneStart(buf[end]) {
		// end is inside a sequence: stop before it, or if that leaves
		// nothing, after it.
		for i := end - 1; i >= start; i-- {
			if utf8.RuneStart(buf[i]) {
				if r, sz := utf8.DecodeRune(buf[i:]); r != utf8.RuneError && i+sz > end {
					if i > start {
						end = i
					} else {
						end = i + sz
					}
				}
				break
			}
		}
	}
	res := ReadResult{
		Content:    string(buf[start:end]),
		Offset:     from + int64(start),
		Bytes:      end - start,
		TotalBytes: size,
	}
	if next := res.Offset + int64(res.Bytes); next < size {
		res.Truncated = true
		res.NextOffset = next
	}
	return res, nil
}

// snapshot returns the current state of the file at resolved, for the undo
// history and for editing. A missing file is a version that did not exist;
// a directory or other non-file is an error.
func (w *Workspace) snapshot(clean, resolved string) (*version, error) {
	fi, err := w.root.Lstat(resolved)
	if errors.Is(err, fs.ErrNotExist) {
		return &version{}, nil
	}
	if err != nil {
		return nil, w.fsErr("file", clean, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		// Only a dangling link or a race gets here: resolve follows links.
		return nil, newErr(nil, nil, "%q is a symbolic link that could not be followed", clean)
	}
	if err := notRegular(clean, fi); err != nil {
		return nil, err
	}
	v := &version{existed: true, mode: fi.Mode().Perm(), size: fi.Size()}
	if fi.Size() > maxBackupBytes {
		v.tooLarge = true
		return v, nil
	}
	f, fi, err := w.openRegular(clean, resolved)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	buf.Grow(int(min(fi.Size(), maxBackupBytes)) + bytes.MinRead)
	_, err = buf.ReadFrom(io.LimitReader(f, maxBackupBytes+1))
	data := buf.Bytes()
	if err != nil {
		return nil, w.fsErr("file", clean, err)
	}
	v.mode = fi.Mode().Perm()
	v.size = int64(len(data))
	if len(data) > maxBackupBytes {
		v.tooLarge = true
		return v, nil
	}
	v.data = data
	return v, nil
}

// writable refuses to replace a file whose permissions forbid writing it.
func writable(clean string, cur *version) error {
	if cur.existed && cur.mode&0o200 == 0 {
		return newErr(fs.ErrPermission, nil, "file %q is not writable (mode %04o)", clean, cur.mode)
	}
	return nil
}

// newMode is the mode of a file written over cur: new files get 0644,
// existing ones keep theirs.
func newMode(cur *version) fs.FileMode {
	if cur.existed {
		return cur.mode
	}
	return 0o644
}

// SetOwner makes the files and directories the workspace creates belong to
// uid:gid, the user a sandbox runs scripts as, so that scripts can change
// what the agent wrote through the tools.
func (w *Workspace) SetOwner(uid, gid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.uid, w.gid = uid, gid
}

// chownDirs hands the directories leading to dir to the workspace's owner.
func (w *Workspace) chownDirs(dir string) error {
	if w.uid < 0 {
		return nil
	}
	for d := dir; d != "." && d != "/"; d = path.Dir(d) {
		if err := w.root.Lchown(d, w.uid, w.gid); err != nil {
			return err
		}
	}
	return nil
}

// replaceFile writes resolved atomically: fill writes the content to a
// temporary file next to it, which is then renamed over it. Missing parent
// directories are created with mode 0755. Renaming also breaks hard links,
// so a file linked to a read-only one is replaced, not written through.
func (w *Workspace) replaceFile(clean, resolved string, mode fs.FileMode, fill func(io.Writer) error) error {
	dir := path.Dir(resolved)
	if dir != "." {
		if err := w.root.MkdirAll(dir, 0o755); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
				return newErr(nil, err, "cannot create the directories for %q: a file is in the way", clean)
			}
			return w.fsErr("file", clean, err)
		}
		if err := w.chownDirs(dir); err != nil {
			return w.fsErr("file", clean, err)
		}
	}
	tmp := path.Join(dir, fmt.Sprintf("%s%016x", tmpPrefix, rand.Uint64()))
	f, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return w.fsErr("file", clean, err)
	}
	err = fill(f)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && w.uid >= 0 {
		err = f.Chown(w.uid, w.gid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Rename(tmp, resolved)
	}
	if err != nil {
		w.root.Remove(tmp)
		var we *wsError
		if errors.As(err, &we) {
			return err
		}
		return w.fsErr("file", clean, err)
	}
	return nil
}

// record adds cur as the newest earlier version of resolved and enforces
// the history bounds.
func (w *Workspace) record(resolved string, cur *version) {
	w.seq++
	cur.seq = w.seq
	h := append(w.hist[resolved], cur)
	w.histBytes += int64(len(cur.data))
	if len(h) > MaxHistoryVersions {
		w.histBytes -= int64(len(h[0].data))
		h[0] = nil
		h = h[1:]
	}
	w.hist[resolved] = h
	for w.histBytes > MaxHistoryBytes {
		// Drop the oldest version of any file.
		oldest := ""
		var seq uint64
		for k, vs := range w.hist {
			if oldest == "" || vs[0].seq < seq {
				oldest, seq = k, vs[0].seq
			}
		}
		vs := w.hist[oldest]
		w.histBytes -= int64(len(vs[0].data))
		vs[0] = nil
		if len(vs) == 1 {
			delete(w.hist, oldest)
		} else {
			w.hist[oldest] = vs[1:]
		}
	}
}

// HistoryLen returns how many earlier versions of name can be restored by
// Undo (0 for invalid paths).
func (w *Workspace) HistoryLen(name string) int {
	if err := w.lock(); err != nil {
		return 0
	}
	defer w.mu.Unlock()
	_, resolved, err := w.locate(name, false)
	if err != nil {
		return 0
	}
	return len(w.hist[resolved])
}

func tooLargeErr(what string, size int) error {
	return newErr(nil, nil, "%s is %d bytes; at most %d bytes (16 MiB) are accepted", what, size, MaxWrite)
}

// Write replaces the content of name, creating it and its parent
// directories if needed. The previous version is kept for Undo.
func (w *Workspace) Write(name, content string) error {
	if len(content) > MaxWrite {
		return tooLargeErr("content", len(content))
	}
	if err := w.lock(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	clean, resolved, err := w.target(name)
	if err != nil {
		return err
	}
	cur, err := w.snapshot(clean, resolved)
	if err != nil {
		return err
	}
	if err := writable(clean, cur); err != nil {
		return err
	}
	err = w.replaceFile(clean, resolved, newMode(cur), func(wr io.Writer) error {
		_, err := io.WriteString(wr, content)
		return err
	})
	if err != nil {
		return err
	}
	w.record(resolved, cur)
	return nil
}

// Append adds content at the end of name, creating it if missing. The
// previous version is kept for Undo.
func (w *Workspace) Append(name, content string) error {
	if len(content) > MaxWrite {
		return tooLargeErr("content", len(content))
	}
	if err := w.lock(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	clean, resolved, err := w.target(name)
	if err != nil {
		return err
	}
	cur, err := w.snapshot(clean, resolved)
	if err != nil {
		return err
	}
	if err := writable(clean, cur); err != nil {
		return err
	}
	err = w.replaceFile(clean, resolved, newMode(cur), func(wr io.Writer) error {
		if cur.tooLarge {
			f, _, err := w.openRegular(clean, resolved)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(wr, f); err != nil {
				return err
			}
		} else if _, err := wr.Write(cur.data); err != nil {
			return err
		}
		_, err := io.WriteString(wr, content)
		return err
	})
	if err != nil {
		return err
	}
	w.record(resolved, cur)
	return nil
}

// Copy copies the file src to dst, replacing dst. src may be read-only,
// dst may not; directories are refused. The previous version of dst is
// kept for Undo.
func (w *Workspace) Copy(src, dst string) error {
	if err := w.lock(); err != nil {
		return err
	}
	defer w.mu.Unlock()
	srcClean, srcRes, err := w.locate(src, false)
	if err != nil {
		return err
	}
	fi, err := w.root.Stat(srcRes)
	if err != nil {
		return w.fsErr("file", srcClean, err)
	}
	if fi.IsDir() {
		return newErr(nil, syscall.EISDIR, "%q is a directory; copy_file copies single files", srcClean)
	}
	dstClean, dstRes, err := w.target(dst)
	if err != nil {
		return err
	}
	if srcRes == dstRes {
		return newErr(nil, nil, "%q and %q are the same file", srcClean, dstClean)
	}
	f, _, err := w.openRegular(srcClean, srcRes)
	if err != nil {
		return err
	}
	defer f.Close()
	cur, err := w.snapshot(dstClean, dstRes)
	if err != nil {
		return err
	}
	if err := writable(dstClean, cur); err != nil {
		return err
	}
	err = w.replaceFile(dstClean, dstRes, newMode(cur), func(wr io.Writer) error {
		_, err := io.Copy(wr, f)
		if err != nil {
			return w.fsErr("file", srcClean, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.record(dstRes, cur)
	return nil
}

// Lines returns lines start..end (1-based, inclusive; end is clamped to
// the end of the file) of the text file name, numbered like "  12 | code",
// and the number of lines in the file. At most MaxInspectLines lines are
// returned; lines longer than 2000 bytes are cut.
func (w *Workspace) Lines(name string, start, end int) (text string, total int, err error) {
	if start < 1 {
		return "", 0, newErr(nil, nil, "start_line must be 1 or more (got %d); lines are numbered from 1", start)
	}
	if end < start {
		return "", 0, newErr(nil, nil, "end_line (%d) is before start_line (%d)", end, start)
	}
	if end-start+1 > MaxInspectLines {
		return "", 0, newErr(nil, nil, "lines %d-%d are %d lines; inspect at most %d lines at a time",
			start, end, end-start+1, MaxInspectLines)
	}
	if err := w.lock(); err != nil {
		return "", 0, err
	}
	defer w.mu.Unlock()
	clean, resolved, err := w.locate(name, false)
	if err != nil {
		return "", 0, err
	}
	f, fi, err := w.openRegular(clean, resolved)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()

	br := bufio.NewReaderSize(f, 64<<10)
	if head, _ := br.Peek(binarySniffBytes); isBinary(head) {
		return "", 0, binaryErr(clean, fi.Size())
	}
	type shown struct {
		text string
		cut  int // length of the whole line when it was cut, else 0
	}
	var lines []shown
	for {
		line, full, cut, err := readLine(br, maxLineDisplay)
		if err != nil && err != io.EOF {
			return "", 0, w.fsErr("file", clean, err)
		}
		if full == 0 {
			break // end of file
		}
		total++
		if total >= start && total <= end {
			l := shown{text: line}
			if cut {
				l.cut = full
			}
			lines = append(lines, l)
		}
		if err == io.EOF {
			break
		}
	}
	if start > total {
		if total == 0 {
			return "", 0, newErr(nil, nil, "file %q is empty", clean)
		}
		return "", total, newErr(nil, nil, "start_line %d is beyond the end of %q, which has %d lines", start, clean, total)
	}
	last := min(end, total)
	width := len(strconv.Itoa(last))
	var sb strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&sb, "%*d | %s", width, start+i, l.text)
		if l.cut > 0 {
			fmt.Fprintf(&sb, " ... [line cut: %d bytes in all]", l.cut)
		}
		sb.WriteByte('\n')
	}
	return sb.String(), total, nil
}

// readLine reads one line from br. It returns at most keep bytes of it,
// without the line ending and never ending inside a UTF-8 sequence; the
// length of the whole line including its "\n" (0 at the end of the input);
// and whether the line was cut. The last line may come with io.EOF.
func readLine(br *bufio.Reader, keep int) (text string, full int, cut bool, err error) {
	var kept []byte
	for {
		chunk, rerr := br.ReadSlice('\n')
		full += len(chunk)
		// Keep one byte more than needed (plus a "\r\n") to tell whether
		// the line is longer than keep.
		if room := keep + 2 - len(kept); room > 0 {
			kept = append(kept, chunk[:min(room, len(chunk))]...)
		}
		if rerr == bufio.ErrBufferFull {
			continue
		}
		if rerr != nil && rerr != io.EOF {
			return "", full, false, rerr
		}
		err = rerr
		break
	}
	kept = bytes.TrimSuffix(kept, []byte("\n"))
	kept = bytes.TrimSuffix(kept, []byte("\r"))
	if len(kept) > keep {
		kept = cutUTF8(kept[:keep])
		cut = true
	}
	return string(kept), full, cut, err
}

// cutUTF8 drops an incomplete UTF-8 sequence from the end of b.
func cutUTF8(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// editable returns the current content of name for Edit and ReplaceLines:
// it must exist, be text and be at most MaxWrite bytes.
func (w *Workspace) editable(name string) (clean, resolved string, cur *version, err error) {
	clean, resolved, err = w.target(name)
	if err != nil {
		return
	}
	cur, err = w.snapshot(clean, resolved)
	if err != nil {
		return
	}
	switch {
	case !cur.existed:
		err = newErr(fs.ErrNotExist, nil, "file %q does not exist (use list_files to see the workspace, or write_file to create it)", clean)
	case cur.tooLarge:
		err = newErr(nil, nil, "file %q is too large to edit (%d bytes; at most %d)", clean, cur.size, MaxWrite)
	case isBinary(cur.data):
		err = binaryErr(clean, cur.size)
	default:
		err = writable(clean, cur)
	}
	return
}

// change writes content over the file located by editable, records the
// previous version and returns the diff.
func (w *Workspace) change(clean, resolved string, cur *version, content string) (string, error) {
	if len(content) > MaxWrite {
		return "", tooLargeErr("the edited file", len(content))
	}
	err := w.replaceFile(clean, resolved, cur.mode, func(wr io.Writer) error {
		_, err := io.WriteString(wr, content)
		return err
	})
	if err != nil {
		return "", err
	}
	w.record(resolved, cur)
	return capDiff(UnifiedDiff(clean, string(cur.data), content)), nil
}

// Edit replaces the one occurrence of old in name with new and returns a
// unified diff of the change. old must occur exactly once. In a file with
// CRLF line endings, old and new may use plain "\n".
func (w *Workspace) Edit(name, old, new string) (diff string, err error) {
	if old == "" {
		return "", newErr(nil, nil, "old_text is empty: copy the exact text to replace from the file")
	}
	if old == new {
		return "", newErr(nil, nil, "new_text is the same as old_text: nothing to change")
	}
	if err := w.lock(); err != nil {
		return "", err
	}
	defer w.mu.Unlock()
	clean, resolved, cur, err := w.editable(name)
	if err != nil {
		return "", err
	}
	content := string(cur.data)
	n := countOverlapping(content, old)
	if n == 0 && strings.Contains(content, "\r\n") && strings.Contains(old, "\n") && !strings.Contains(old, "\r\n") {
		crlf := strings.ReplaceAll(old, "\n", "\r\n")
		if m := countOverlapping(content, crlf); m > 0 {
			old, n = crlf, m
			if !strings.Contains(new, "\r\n") {
				new = strings.ReplaceAll(new, "\n", "\r\n")
			}
		}
	}
	switch {
	case n == 0:
		msg := fmt.Sprintf("old_text not found in %s; inspect the file and copy the exact text, including indentation", clean)
		if t := strings.TrimSpace(old); t != "" && t != old && strings.Contains(content, t) {
			msg += " (it is found when leading and trailing whitespace is ignored)"
		}
		return "", newErr(nil, nil, "%s", msg)
	case n > 1:
		return "", newErr(nil, nil, "old_text occurs %d times in %s; include more surrounding lines to make it unique", n, clean)
	}
	i := strings.Index(content, old)
	return w.change(clean, resolved, cur, content[:i]+new+content[i+len(old):])
}

// countOverlapping counts the positions where sub occurs in s, overlapping
// ones included ("aa" occurs twice in "aaa").
func countOverlapping(s, sub string) int {
	n := 0
	for {
		i := strings.Index(s, sub)
		if i < 0 {
			return n
		}
		n++
		_, size := utf8.DecodeRuneInString(s[i:])
		s = s[i+size:]
	}
}

// ReplaceLines replaces lines start..end (1-based, inclusive) of name with
// text and returns a unified diff. end = start-1 inserts text before line
// start without replacing anything; start = total+1 appends. Empty text
// deletes the lines. text is taken as whole lines: a final "\n" is added
// unless it replaces a last line that had none.
func (w *Workspace) ReplaceLines(name string, start, end int, text string) (diff string, err error) {
	if start < 1 {
		return "", newErr(nil, nil, "start_line must be 1 or more (got %d); lines are numbered from 1", start)
	}
	if end < start-1 {
		return "", newErr(nil, nil,
			"end_line (%d) is before start_line (%d); to insert before line %d without replacing anything, use end_line=%d",
			end, start, start, start-1)
	}
	if err := w.lock(); err != nil {
		return "", err
	}
	defer w.mu.Unlock()
	clean, resolved, cur, err := w.editable(name)
	if err != nil {
		return "", err
	}
	lines := splitLines(string(cur.data))
	total := len(lines)
	if start > total+1 {
		return "", newErr(nil, nil, "start_line %d is beyond the end of %q, which has %d lines; use start_line=%d, end_line=%d to append",
			start, clean, total, total+1, total)
	}
	if end > total {
		return "", newErr(nil, nil, "end_line %d is beyond the end of %q, which has %d lines", end, clean, total)
	}
	add := splitLines(text)
	if n := len(add); n > 0 && !strings.HasSuffix(add[n-1], "\n") {
		replacesUnterminatedLast := end >= start && end == total && !strings.HasSuffix(lines[total-1], "\n")
		if !replacesUnterminatedLast {
			add[n-1] += "\n"
		}
	}
	out := make([]string, 0, total-(end-start+1)+len(add))
	out = append(out, lines[:start-1]...)
	out = append(out, add...)
	out = append(out, lines[end:]...)
	for i := 0; i < len(out)-1; i++ {
		if !strings.HasSuffix(out[i], "\n") {
			out[i] += "\n"
		}
	}
	content := strings.Join(out, "")
	if content == string(cur.data) {
		return "", nil
	}
	return w.change(clean, resolved, cur, content)
}

// Undo restores the version of name from before its most recent change
// (Write, Append, Copy to it, Edit, ReplaceLines), removing the file if it
// did not exist then, and returns a unified diff from the current content
// to the restored one. It can be called again to go further back, until
// no earlier version is left.
func (w *Workspace) Undo(name string) (diff string, err error) {
	if err := w.lock(); err != nil {
		return "", err
	}
	defer w.mu.Unlock()
	clean, resolved, err := w.target(name)
	if err != nil {
		return "", err
	}
	h := w.hist[resolved]
	if len(h) == 0 {
		return "", newErr(nil, nil, "no earlier version of %s to restore", clean)
	}
	prev := h[len(h)-1]
	if prev.tooLarge {
		return "", newErr(nil, nil, "cannot undo the last change to %s: the version before it (%d bytes) was too large to keep", clean, prev.size)
	}
	cur, err := w.snapshot(clean, resolved)
	if err != nil {
		return "", newErr(nil, err, "cannot undo the last change to %s: %v", clean, err)
	}
	switch {
	case prev.existed:
		err = w.replaceFile(clean, resolved, prev.mode, func(wr io.Writer) error {
			_, err := wr.Write(prev.data)
			return err
		})
	case cur.existed:
		if err = w.root.Remove(resolved); err != nil {
			err = w.fsErr("file", clean, err)
		}
	}
	if err != nil {
		return "", err
	}
	h[len(h)-1] = nil
	if len(h) == 1 {
		delete(w.hist, resolved)
	} else {
		w.hist[resolved] = h[:len(h)-1]
	}
	w.histBytes -= int64(len(prev.data))
	return capDiff(versionDiff(clean, cur, prev)), nil
}

// versionDiff shows the change from one version of a file to another,
// against /dev/null where one of them did not exist.
func versionDiff(clean string, from, to *version) string {
	oldName, newName := "a/"+clean, "b/"+clean
	if !from.existed {
		oldName = "/dev/null"
	}
	if !to.existed {
		newName = "/dev/null"
	}
	switch {
	case !from.existed && !to.existed:
		return ""
	case from.tooLarge || to.tooLarge:
		return fmt.Sprintf("[%s changed; too large to show a diff]\n", clean)
	case isBinary(from.data) || isBinary(to.data):
		if from.existed && to.existed && string(from.data) == string(to.data) {
			return ""
		}
		return fmt.Sprintf("Binary files %s and %s differ\n", oldName, newName)
	}
	d := unifiedDiff(oldName, newName, string(from.data), string(to.data))
	if d == "" && from.existed != to.existed {
		// An empty file created or removed.
		d = fmt.Sprintf("--- %s\n+++ %s\n", oldName, newName)
	}
	return d
}

// capDiff shortens a diff longer than maxDiffBytes at a line boundary.
func capDiff(d string) string {
	if len(d) <= maxDiffBytes {
		return d
	}
	cut := strings.LastIndexByte(d[:maxDiffBytes], '\n') + 1
	return d[:cut] + fmt.Sprintf("[diff cut: %d more bytes not shown]\n", len(d)-cut)
}
