// Package dirtree walks and builds directory trees through directory file
// descriptors, one path component per system call. Resolving every entry's
// full path again makes work grow with the square of the depth (4,000 nested
// directories took 12.8 s per snapshot), and any single path longer than
// PATH_MAX fails with ENAMETOOLONG. Here each entry is named relative to its
// parent's descriptor, so the work is linear in the tree and depth has no
// limit but the caller's.
//
// Only one directory descriptor is held open at a time, whatever the depth:
// a walk climbs back up through "..", checks that it arrived where it came
// from, and reopens the parent from the root when the tree was moved under
// it. Errors name paths relative to the root, never host paths, so they can
// be shown to the agent.
package dirtree

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Cursor is an open directory somewhere below a root, moved one component
// at a time. It is not safe for concurrent use.
type Cursor struct {
	root  int      // the root, kept open to reopen from
	fd    int      // the current directory
	ids   []fileID // identity of each directory from the root to the current one
	names []string // components from the root to the current directory
}

type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), st.Ino} }

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC

// Open opens the directory root. root itself may be reached through
// symbolic links; nothing below it is.
func Open(root string) (*Cursor, error) {
	fd, err := unix.Open(root, dirFlags, 0)
	if err != nil {
		// The root is a host path: say what failed without it.
		return nil, fmt.Errorf("open root directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat root directory: %w", err)
	}
	cur, err := unix.Dup(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("dup root directory: %w", err)
	}
	unix.CloseOnExec(cur)
	return &Cursor{root: fd, fd: cur, ids: []fileID{idOf(&st)}}, nil
}

// Close releases the descriptors. It is idempotent.
func (c *Cursor) Close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		unix.Close(c.root)
		c.fd, c.root = -1, -1
	}
}

// Fd is the current directory, for *at system calls on its entries. It stays
// valid until the cursor moves.
func (c *Cursor) Fd() int { return c.fd }

// Depth is the number of components below the root.
func (c *Cursor) Depth() int { return len(c.names) }

// Rel returns the slash-separated path of name in the current directory,
// relative to the root. It costs the length of the path.
func (c *Cursor) Rel(name string) string {
	if len(c.names) == 0 {
		return name
	}
	return strings.Join(c.names, "/") + "/" + name
}

// Down enters the directory name, which must not be a symbolic link.
func (c *Cursor) Down(name string) error {
	fd, err := unix.Openat(c.fd, name, dirFlags|unix.O_NOFOLLOW, 0)
	if err != nil {
		return PathErr("open", c.Rel(name), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return PathErr("stat", c.Rel(name), err)
	}
	unix.Close(c.fd)
	c.fd = fd
	c.ids = append(c.ids, idOf(&st))
	c.names = append(c.names, name)
	return nil
}

// Up returns to the parent directory. If the current directory was moved
// since it was entered, the parent is reopened by its path from the root.
func (c *Cursor) Up() error {
	n := len(c.names)
	if n == 0 {
		return fmt.Errorf("dirtree: Up at the root")
	}
	fd, err := unix.Openat(c.fd, "..", dirFlags, 0)
	if err == nil {
		var st unix.Stat_t
		if err = unix.Fstat(fd, &st); err == nil && idOf(&st) == c.ids[n-1] {
			unix.Close(c.fd)
			c.fd = fd
			c.ids = c.ids[:n]
			c.names = c.names[:n-1]
			return nil
		}
		unix.Close(fd)
	}
	return c.reopen(n - 1)
}

// reopen moves to the first depth components of the current path, opening
// them one by one from the root. It is the slow path for a tree that changed
// under the cursor, so it records whatever directories it finds there.
func (c *Cursor) reopen(depth int) error {
	fd, err := unix.Dup(c.root)
	if err != nil {
		return fmt.Errorf("dup root directory: %w", err)
	}
	unix.CloseOnExec(fd)
	ids := c.ids[:1]
	for i := 0; i < depth; i++ {
		next, err := unix.Openat(fd, c.names[i], dirFlags|unix.O_NOFOLLOW, 0)
		unix.Close(fd)
		if err != nil {
			return PathErr("reopen", strings.Join(c.names[:i+1], "/"), err)
		}
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return PathErr("stat", strings.Join(c.names[:i+1], "/"), err)
		}
		ids = append(ids, idOf(&st))
	}
	unix.Close(c.fd)
	c.fd = fd
	c.ids = ids
	c.names = c.names[:depth]
	return nil
}

// MoveTo makes dir (components below the root) the current directory,
// climbing only as far as the common ancestor. Missing directories are
// created with mode perm when mkdir is set. Moving between neighbours in a
// depth-first listing costs one step each way, so a whole listing is linear.
func (c *Cursor) MoveTo(dir []string, mkdir bool, perm uint32) error {
	common := 0
	for common < len(dir) && common < len(c.names) && dir[common] == c.names[common] {
		common++
	}
	for len(c.names) > common {
		if err := c.Up(); err != nil {
			return err
		}
	}
	for _, name := range dir[common:] {
		if mkdir {
			if err := unix.Mkdirat(c.fd, name, perm); err != nil && err != unix.EEXIST {
				return PathErr("mkdir", c.Rel(name), err)
			}
		}
		if err := c.Down(name); err != nil {
			return err
		}
	}
	return nil
}

// ReadNames lists the current directory, without "." and "..", in no
// particular order.
func (c *Cursor) ReadNames() ([]string, error) {
	// A fresh descriptor: the current one's offset must stay at the start
	// for anyone else reading it.
	fd, err := unix.Openat(c.fd, ".", dirFlags, 0)
	if err != nil {
		return nil, PathErr("open", c.here(), err)
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, PathErr("readdir", c.here(), err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// here is the current directory relative to the root, "." for the root.
func (c *Cursor) here() string {
	if len(c.names) == 0 {
		return "."
	}
	return strings.Join(c.names, "/")
}
