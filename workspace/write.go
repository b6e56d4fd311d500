package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"syscall"
)

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
	if err := w.lock(context.Background()); err != nil {
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
func (w *Workspace) Write(ctx context.Context, name, content string) error {
	return w.rewrite(ctx, name, content, func(*version, string, string, io.Writer) error { return nil })
}

// Append adds content at the end of name, creating it if missing. The
// previous version is kept for Undo.
func (w *Workspace) Append(ctx context.Context, name, content string) error {
	return w.rewrite(ctx, name, content, func(cur *version, clean, resolved string, wr io.Writer) error {
		if !cur.tooLarge {
			_, err := wr.Write(cur.data)
			return err
		}
		f, _, err := w.openRegular(clean, resolved)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(wr, f)
		return err
	})
}

// rewrite replaces name with what prefix writes followed by content, and
// records the previous version for Undo.
func (w *Workspace) rewrite(ctx context.Context, name, content string, prefix func(cur *version, clean, resolved string, wr io.Writer) error) error {
	if len(content) > MaxWrite {
		return tooLargeErr("content", len(content))
	}
	if err := w.lock(ctx); err != nil {
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
		if err := prefix(cur, clean, resolved, wr); err != nil {
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
func (w *Workspace) Copy(ctx context.Context, src, dst string) error {
	if err := w.lock(ctx); err != nil {
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
