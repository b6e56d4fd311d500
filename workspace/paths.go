package workspace

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Path checks: every agent path is cleaned, kept inside the workspace and
// resolved through its symbolic links before anything is opened.

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

// lock takes the mutex and fails if the workspace is closed or the call
// was cancelled before it began: a cancelled call changes nothing.
func (w *Workspace) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
	if covered(w.readOnly, clean) {
		return "", "", newErr(ErrReadOnly, nil, "file %q is read-only in this task", clean)
	}
	resolved, err = w.resolve(clean)
	if err != nil {
		return "", "", err
	}
	if resolved == "." {
		return "", "", newErr(nil, nil, "%q is the workspace directory itself: give a file path", clean)
	}
	if resolved != clean && covered(w.readOnly, resolved) {
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
	f, err := w.root.OpenFile(resolved, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, nil, w.openErr(clean, resolved, err, false)
	}
	return checkRegular(f, clean)
}

// openRead opens the agent's path name for reading, a directory if dir ("" is
// then the workspace root) or else a regular file, and returns its clean form
// and, for a file, its FileInfo. The common case costs one openat through the root, which itself
// keeps to the workspace; only when that fails is the path resolved link by
// link, which also follows absolute links that stay inside the workspace and
// says precisely what is wrong.
func (w *Workspace) openRead(name string, dir bool) (string, *os.File, fs.FileInfo, error) {
	clean, err := w.cleanPath(name, dir)
	if err != nil {
		return "", nil, nil, err
	}
	flag := os.O_RDONLY | nonblock
	if dir {
		// The kernel checks the type, so no fstat is needed.
		flag |= syscall.O_DIRECTORY
	}
	f, err := w.root.OpenFile(clean, flag, 0)
	if err != nil {
		resolved, rerr := w.resolve(clean)
		if rerr != nil {
			return "", nil, nil, rerr
		}
		if f, err = w.root.OpenFile(resolved, flag, 0); err != nil {
			return "", nil, nil, w.openErr(clean, resolved, err, dir)
		}
	}
	if dir {
		return clean, f, nil, nil
	}
	f, fi, err := checkRegular(f, clean)
	return clean, f, fi, err
}

// checkRegular returns f and its FileInfo if it is a regular file, and
// closes it if not.
func checkRegular(f *os.File, clean string) (*os.File, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err == nil {
		err = notRegular(clean, fi)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// openErr explains a failed open of what should be a directory (dir) or a
// regular file: a file where a directory was wanted, or a socket, which
// cannot be opened at all, is better named than by its errno.
func (w *Workspace) openErr(clean, resolved string, err error, dir bool) error {
	noun, check := "file", notRegular
	if dir {
		noun, check = "directory", notDir
	}
	if fi, serr := w.root.Stat(resolved); serr == nil {
		if cerr := check(clean, fi); cerr != nil {
			return cerr
		}
	}
	return w.fsErr(noun, clean, err)
}

func notDir(clean string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return newErr(nil, syscall.ENOTDIR, "%q is a file, not a directory (use read_file to read it)", clean)
	}
	return nil
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
