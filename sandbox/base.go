package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/dirtree"
)

// Base is a read-only host tree that a workspace starts from instead of a
// copy of Spec.Files: in practice runlog's LinkTree of a snapshot, whose
// regular files are hard links to the immutable objects of a run log, so
// that forking an episode does not copy its files.
//
// Backends that can mount it as the lower layer of an overlay do
// (MountBase): the workspace then costs one metadata-only copy-up per
// entry, and a file's bytes are copied only when something writes to it.
// The others copy it (CopyBase). Either way nothing writes through Dir, and
// the caller must keep it in place, unchanged, until the sandbox is closed.
type Base struct {
	// Dir is the tree.
	Dir string
	// Modes are the permission bits the tree's regular files have in the
	// workspace, by slash-separated path. A hard link shares its inode, and
	// so its mode, with every other link to the same object, so the tree's
	// own modes cannot be per file. Files not listed keep their inode's.
	Modes map[string]fs.FileMode
}

// Names in a workspace's storage, under the overlay once it is mounted.
const (
	upperName = ".mlab-upper"
	workName  = ".mlab-work"
)

// maxStacked bounds how many mounts Unmount expects on one workspace: an
// overlay over a tmpfs, and room for a bind of a caller's.
const maxStacked = 4

// MountBase makes the workspace ws a copy-on-write view of base owned by
// uid:gid. ws is the root of the sandbox's storage, in practice its
// size-capped tmpfs: the overlay's upper and work directories are made in it
// and the overlay is then mounted on ws itself, over them. So the agent and
// the tools see only the merged tree, everything the agent writes (new
// files, and copies of the base files it changes) counts against the
// workspace's cap, and Unmount of ws takes both mounts away.
//
// Why the agent cannot change the base, or the run log behind it:
//
//   - Overlayfs never writes to a lower layer. Opening a base file for
//     writing, truncating it, changing its mode, linking or renaming it all
//     copy it up to the upper layer first; deleting it leaves a whiteout
//     there. This is what the hostile tests check, byte for byte.
//   - The sandbox user must nonetheless own every file and directory and be
//     able to write them, as in a copied workspace, while the base's files
//     are objects owned by the server, mode 0444: overlayfs checks the
//     caller's permission against the lower inode before it copies up, so
//     left as they are they could not be opened for writing at all. So each
//     entry is chowned to uid:gid, and each file chmodded to its Modes
//     entry, through the merged view, with metacopy=on: those copy-ups are
//     metadata only (an inode in the upper layer whose data stays in the
//     lower one), never the file's bytes. The objects themselves keep
//     their owner and mode; no sandbox user is ever given an object inode.
//   - metacopy trusts the overlay's own extended attributes in the upper
//     layer, which is safe here because only the kernel writes them: the
//     upper layer lives under the mount, where only the overlay reaches it,
//     and overlayfs refuses trusted.overlay.* attributes set through it
//     (and setting trusted.* needs CAP_SYS_ADMIN, which scripts lack).
//   - The lower layer is named to the kernel through /proc/self/fd, so the
//     overlay's options in a jail's mountinfo show no host path.
//
// The mount needs root and a kernel with metacopy support (4.19+). On error
// nothing is left mounted and the storage is empty again, so the caller can
// fall back to CopyBase.
func MountBase(ctx context.Context, ws string, base *Base, uid, gid int) (err error) {
	upper, work := filepath.Join(ws, upperName), filepath.Join(ws, workName)
	mounted := false
	defer func() {
		if err == nil {
			return
		}
		if mounted {
			if uerr := unix.Unmount(ws, unix.MNT_DETACH); uerr != nil {
				err = errors.Join(err, fmt.Errorf("unmount overlay: %w", uerr))
				return
			}
		}
		for _, d := range []string{upper, work} {
			if rerr := os.RemoveAll(d); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove overlay storage: %w", hidePath(rerr)))
			}
		}
	}()
	if err := os.Mkdir(upper, 0o700); err != nil {
		return fmt.Errorf("create overlay upper layer: %w", hidePath(err))
	}
	// The upper layer's root is the workspace's root: private to the
	// sandbox's user, as a copied workspace is.
	if err := os.Chown(upper, uid, gid); err != nil {
		return fmt.Errorf("chown overlay upper layer: %w", hidePath(err))
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return fmt.Errorf("create overlay work dir: %w", hidePath(err))
	}
	var fds [3]int
	for i, d := range []string{base.Dir, upper, work} {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, open := range fds[:i] {
				unix.Close(open)
			}
			return fmt.Errorf("open overlay layer: %w", err)
		}
		fds[i] = fd
	}
	// Paths through /proc/self/fd need no escaping of ',' or ':' either.
	opts := fmt.Sprintf("lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d,metacopy=on,index=off",
		fds[0], fds[1], fds[2])
	err = unix.Mount("overlay", ws, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts)
	for _, fd := range fds {
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	mounted = true
	if err := adopt(ctx, ws, base.Modes, uid, gid); err != nil {
		return fmt.Errorf("hand the base to the sandbox user: %w", err)
	}
	return nil
}

// adopt gives every entry below ws to uid:gid and the files their modes.
func adopt(ctx context.Context, ws string, modes map[string]fs.FileMode, uid, gid int) error {
	w := dirtree.Walker{Visit: func(c *dirtree.Cursor, e *dirtree.Entry) (bool, error) {
		if err := unix.Fchownat(c.Fd(), e.Name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, dirtree.PathErr("chown", e.Rel, err)
		}
		if m, ok := modes[e.Rel]; ok && e.Stat.Mode&unix.S_IFMT == unix.S_IFREG {
			// After the chown, which clears set-id bits anyway. The
			// entry is a regular file: nothing but the server has
			// touched the tree yet.
			if err := unix.Fchmodat(c.Fd(), e.Name, uint32(m.Perm()), 0); err != nil {
				return false, dirtree.PathErr("chmod", e.Rel, err)
			}
		}
		return e.IsDir(), nil
	}}
	return w.Walk(ctx, ws)
}

// CopyBase copies base into the workspace ws, for backends or hosts where
// MountBase cannot work: directories with their modes, files with their
// Modes entries, symlinks as they are (like runlog's Restore, which a base
// stands in for). uid >= 0 gives the copy to uid:gid.
func CopyBase(ctx context.Context, base *Base, ws string, uid, gid int) error {
	if err := copyTree(ctx, base.Dir, ws, true, base.Modes); err != nil {
		return err
	}
	if uid >= 0 {
		return ChownTree(ws, uid, gid)
	}
	return nil
}

// Unmount takes away every mount stacked on dir, top first: a forked
// workspace has an overlay over the tmpfs that holds its changes. Each is
// detached lazily, since a process being torn down may still hold it. A dir
// with nothing mounted on it is not an error.
func Unmount(dir string) error {
	for range maxStacked {
		err := unix.Unmount(dir, unix.MNT_DETACH)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		default:
			return fmt.Errorf("unmount workspace: %w", err)
		}
	}
	return fmt.Errorf("unmount workspace: still mounted after %d unmounts", maxStacked)
}
