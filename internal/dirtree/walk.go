package dirtree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry is one entry met by a walk.
type Entry struct {
	// Name is the entry's name in its directory, Rel its slash-separated path
	// from the root and Depth its number of components (1 for the root's
	// children).
	Name  string
	Rel   string
	Depth int
	// Stat is the entry's lstat, taken when the walk met it.
	Stat unix.Stat_t
}

// IsDir reports whether the entry was a directory when the walk met it.
func (e *Entry) IsDir() bool { return e.Stat.Mode&unix.S_IFMT == unix.S_IFDIR }

// Walker visits a tree depth first, parents before children and names in
// byte order, so that the listing is the same for the same tree. The zero
// limits mean no limit.
type Walker struct {
	// MaxDepth and MaxEntries bound the walk; exceeding them is a
	// *LimitError.
	MaxDepth   int
	MaxEntries int
	// Visit is called for each entry with the cursor at its parent. For a
	// directory, descend says whether to walk into it.
	Visit func(c *Cursor, e *Entry) (descend bool, err error)
	// Enter, if set, is called once the walk is inside directory e, before
	// its entries; Leave after them.
	Enter func(e *Entry) error
	Leave func(e *Entry) error
	// DirError, if set, decides what an error entering or listing directory
	// e does: nil skips the directory's contents. Without it, a directory
	// that vanished or was replaced by a non-directory is skipped and any
	// other error ends the walk. vanished says which case it is.
	DirError func(e *Entry, err error, vanished bool) error
}

// LimitError reports that a tree exceeds a bound.
type LimitError struct {
	What  string // "entries", "levels of directories", ...
	Limit int64
	Path  string // where the bound was exceeded, relative to the root
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("more than %d %s (at %q)", e.Limit, e.What, ShortPath(e.Path))
}

// ShortPath shortens a path for a message: a deep tree's paths can be many
// kilobytes long, and the two ends say where it is.
func ShortPath(p string) string {
	const keep = 80
	if len(p) <= 2*keep+20 {
		return p
	}
	return p[:keep] + fmt.Sprintf("/…%d bytes…/", len(p)-2*keep) + p[len(p)-keep:]
}

// Vanished reports whether err means an entry disappeared or changed type
// while it was being read: it was removed, or replaced by a symbolic link
// or a file where a directory was expected.
func Vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

type frame struct {
	entry *Entry // nil for the root
	rel   string
	names []string
	next  int
}

// Walk walks the tree at root. ctx is checked before each entry.
func (w *Walker) Walk(ctx context.Context, root string) error {
	c, err := Open(root)
	if err != nil {
		return err
	}
	defer c.Close()
	names, err := c.ReadNames()
	if err != nil {
		return err
	}
	slices.Sort(names)
	count := 0
	if err := w.checkCount(&count, len(names), "."); err != nil {
		return err
	}
	stack := []frame{{names: names}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := &stack[len(stack)-1]
		if f.next == len(f.names) {
			stack = stack[:len(stack)-1]
			if f.entry == nil {
				continue
			}
			if err := c.Up(); err != nil {
				return err
			}
			if w.Leave != nil {
				if err := w.Leave(f.entry); err != nil {
					return err
				}
			}
			continue
		}
		name := f.names[f.next]
		f.names[f.next] = "" // let the string go once used
		f.next++
		e := &Entry{Name: name, Depth: len(stack)}
		if f.rel == "" {
			e.Rel = name
		} else {
			e.Rel = f.rel + "/" + name
		}
		if err := unix.Fstatat(c.Fd(), name, &e.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed since the listing
			}
			return PathErr("lstat", e.Rel, err)
		}
		descend, err := w.Visit(c, e)
		if err != nil {
			return err
		}
		if !descend || !e.IsDir() {
			continue
		}
		if w.MaxDepth > 0 && e.Depth >= w.MaxDepth {
			return &LimitError{What: "levels of directories", Limit: int64(w.MaxDepth), Path: e.Rel}
		}
		names, err := w.enter(c, e)
		if err != nil {
			return err
		}
		if names == nil {
			continue
		}
		if err := w.checkCount(&count, len(names), e.Rel); err != nil {
			return err
		}
		if w.Enter != nil {
			if err := w.Enter(e); err != nil {
				return err
			}
		}
		stack = append(stack, frame{entry: e, rel: e.Rel, names: names})
	}
	return nil
}

// enter moves into directory e and lists it. It returns nil names, with the
// cursor where it was, when the directory is skipped.
func (w *Walker) enter(c *Cursor, e *Entry) ([]string, error) {
	err := c.Down(e.Name)
	var names []string
	if err == nil {
		names, err = c.ReadNames()
		if err != nil {
			if uerr := c.Up(); uerr != nil {
				return nil, uerr
			}
		}
	}
	if err != nil {
		vanished := Vanished(err)
		switch {
		case w.DirError != nil:
			err = w.DirError(e, err, vanished)
		case vanished:
			err = nil
		}
		return nil, err
	}
	slices.Sort(names)
	if names == nil {
		names = []string{}
	}
	return names, nil
}

func (w *Walker) checkCount(count *int, n int, at string) error {
	*count += n
	if w.MaxEntries > 0 && *count > w.MaxEntries {
		return &LimitError{What: "entries", Limit: int64(w.MaxEntries), Path: at}
	}
	return nil
}

// ValidRel reports whether p is a relative slash path without empty, "."
// or ".." elements or NUL bytes. Unlike fs.ValidPath it accepts any bytes
// in a name: file names on Linux need not be UTF-8.
func ValidRel(p string) bool {
	if p == "" || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for el := range strings.SplitSeq(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

// PathErr is an *fs.PathError for the relative path rel, shortened with
// ShortPath so that an error deep in a tree stays readable.
func PathErr(op, rel string, err error) error {
	return &fs.PathError{Op: op, Path: ShortPath(rel), Err: err}
}
