package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/dirtree"
)

// CopyDir copies the regular files and directories of src into dst, which is
// created if needed. Symlinks and special files are skipped: a task folder or
// a submission must not smuggle a link to a host path into a fresh sandbox;
// nor is a link already in dst followed. Both trees are read and written
// relative to directory descriptors (package dirtree), so the copy is linear
// in the tree and works beyond PATH_MAX, and errors name paths relative to
// src, never host paths, because they can reach the agent.
func CopyDir(ctx context.Context, src, dst string) error {
	return copyTree(ctx, src, dst, false, nil)
}

// copyTree is CopyDir and, with exact set, the copy of a snapshot's tree
// (CopyBase): directories keep their modes, set once their contents are in
// place so that a read-only one can still be filled; symlinks are copied as
// they are, never followed; files take their modes entry where they have
// one.
func copyTree(ctx context.Context, src, dst string, exact bool, modes map[string]fs.FileMode) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create copy destination: %w", hidePath(err))
	}
	out, err := dirtree.Open(dst)
	if err != nil {
		return fmt.Errorf("copy destination: %w", err)
	}
	defer out.Close()
	dirMode := uint32(0o755)
	if exact {
		dirMode = 0o700
	}
	w := dirtree.Walker{
		Visit: func(in *dirtree.Cursor, e *dirtree.Entry) (bool, error) {
			switch e.Stat.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if err := unix.Mkdirat(out.Fd(), e.Name, dirMode); err != nil && !errors.Is(err, unix.EEXIST) {
					return false, dirtree.PathErr("mkdir", e.Rel, err)
				}
				return true, nil
			case unix.S_IFREG:
				if err := copyFileAt(in.Fd(), out.Fd(), e); err != nil {
					return false, err
				}
				if m, ok := modes[e.Rel]; ok {
					if err := unix.Fchmodat(out.Fd(), e.Name, uint32(m.Perm()), 0); err != nil {
						return false, dirtree.PathErr("chmod", e.Rel, err)
					}
				}
			case unix.S_IFLNK:
				if exact {
					return false, copyLinkAt(in.Fd(), out.Fd(), e)
				}
			}
			return false, nil
		},
		Enter: func(e *dirtree.Entry) error { return out.Down(e.Name) },
		Leave: func(e *dirtree.Entry) error {
			if exact {
				if err := unix.Fchmod(out.Fd(), e.Stat.Mode&0o777); err != nil {
					return dirtree.PathErr("chmod", e.Rel, err)
				}
			}
			return out.Up()
		},
	}
	if err := w.Walk(ctx, src); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	return nil
}

// copyLinkAt recreates the symlink e of directory srcfd in directory dstfd.
func copyLinkAt(srcfd, dstfd int, e *dirtree.Entry) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(srcfd, e.Name, buf)
	if dirtree.Vanished(err) || errors.Is(err, unix.EINVAL) {
		return nil // gone, or no longer a link
	}
	if err != nil {
		return dirtree.PathErr("readlink", e.Rel, err)
	}
	if err := unix.Symlinkat(string(buf[:n]), dstfd, e.Name); err != nil {
		return dirtree.PathErr("symlink", e.Rel, err)
	}
	return nil
}

// copyFileAt copies the regular file e from directory srcfd into directory
// dstfd under the same name.
func copyFileAt(srcfd, dstfd int, e *dirtree.Entry) (err error) {
	// O_NONBLOCK: a file swapped for a FIFO since the lstat must not hang
	// the copy; O_NOFOLLOW: nor may one swapped for a link be followed.
	fd, err := unix.Openat(srcfd, e.Name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if dirtree.Vanished(err) {
		return nil
	}
	if err != nil {
		return dirtree.PathErr("open", e.Rel, err)
	}
	in := os.NewFile(uintptr(fd), e.Rel)
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return dirtree.PathErr("stat", e.Rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	ofd, err := unix.Openat(dstfd, e.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, st.Mode&0o777|0o600)
	if err != nil {
		return dirtree.PathErr("create", e.Rel, err)
	}
	out := os.NewFile(uintptr(ofd), e.Rel)
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %q: %w", e.Rel, hidePath(cerr))
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %q: %w", e.Rel, hidePath(err))
	}
	return nil
}

// ChownTree gives dir and everything under it to uid:gid, without following
// symlinks, through directory descriptors like CopyDir.
func ChownTree(dir string, uid, gid int) error {
	if err := os.Lchown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown tree root: %w", hidePath(err))
	}
	w := dirtree.Walker{Visit: func(c *dirtree.Cursor, e *dirtree.Entry) (bool, error) {
		if err := unix.Fchownat(c.Fd(), e.Name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
			return false, dirtree.PathErr("chown", e.Rel, err)
		}
		return e.IsDir(), nil
	}}
	if err := w.Walk(context.Background(), dir); err != nil {
		return fmt.Errorf("chown tree: %w", err)
	}
	return nil
}

// hidePath drops the host path from a *fs.PathError, keeping its errno.
func hidePath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
