package runlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/atomicfile"
	"github.com/mlab/mlab/internal/dirtree"
)

// ForkSnapshot is the name of the manifest a run made by CreateFrom starts
// with: the same name as the initial snapshot of a run that starts from a
// task's files, so that "step-0000" is always the tree step 1 ran on.
const ForkSnapshot = "step-0000"

// CreateFrom makes a new run <root>/<runID>/, as Create does, whose
// workspace starts where the run in parentDir was at its manifest snapshot:
// the new run's ForkSnapshot manifest lists the same entries, and its object
// store holds the objects they name. It serves both a fork of a live episode
// and the resumption of a stopped one.
//
// The objects are hard links to the parent's, not copies: objects are
// immutable (written once, under their hash, read-only), so two stores may
// share an inode, and creating the run costs one link per distinct file,
// whatever the files' sizes. Where a link is impossible (the runs are on
// different filesystems, the inode has too many links, or the kernel's
// protected_hardlinks refuses a link to another user's file) the object is
// copied instead and its hash checked while copying. Files the parent's
// snapshot skipped (too large, unreadable) are not in the new run either.
func CreateFrom(root, runID, parentDir, snapshot string) (*Log, error) {
	m, err := readManifest(parentDir, snapshot)
	if err != nil {
		return nil, fmt.Errorf("create run %s from %s: %w", runID, snapshot, err)
	}
	l, err := Create(root, runID)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Log, error) {
		_ = l.Close()
		_ = os.RemoveAll(l.dir)
		return nil, fmt.Errorf("create run %s from %s of %s: %w", runID, snapshot, filepath.Base(parentDir), err)
	}
	done := map[string]bool{} // objects linked, and their directories by prefix
	for _, e := range m.Entries {
		if e.Type != TypeFile || e.Skipped != "" || done[e.SHA256] {
			continue
		}
		if !validSum(e.SHA256) {
			return fail(fmt.Errorf("entry %q: invalid sha256 %q", dirtree.ShortPath(e.Path), e.SHA256))
		}
		if !done[e.SHA256[:2]] {
			if err := os.Mkdir(filepath.Join(l.dir, objectsDir, e.SHA256[:2]), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fail(fmt.Errorf("create object dir: %w", err))
			}
			done[e.SHA256[:2]] = true
		}
		if err := shareObject(objectPath(parentDir, e.SHA256), l.objectPath(e.SHA256), e.SHA256); err != nil {
			return fail(err)
		}
		done[e.SHA256] = true
	}
	m.Name = ForkSnapshot
	// The manifest keeps its Time: it says when this tree was recorded.
	data, err := json.MarshalIndent(m.wire(), "", "  ")
	if err != nil {
		return fail(fmt.Errorf("encode manifest: %w", err))
	}
	// Durable, unlike a step's manifest: the new run's whole starting
	// point is this one file, written once.
	if err := atomicfile.Write(l.manifestPath(ForkSnapshot), data, 0o644, true); err != nil {
		return fail(err)
	}
	// The fork point is the new run's previous snapshot: its first own
	// snapshot finds the files it did not change already stored.
	l.sizes = sizesOf(m.Entries)
	return l, nil
}

// shareObject puts the object src at dst: a hard link, or a checked copy
// where no link can be made.
func shareObject(src, dst, sum string) error {
	err := os.Link(src, dst)
	switch {
	case err == nil || errors.Is(err, fs.ErrExist):
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("object %s of the parent run is missing", sum)
	case !linkRefused(err):
		return fmt.Errorf("link object %s: %w", sum, err)
	}
	return copyObject(src, dst, sum)
}

// linkRefused reports whether a link failed for a reason a copy avoids.
func linkRefused(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EMLINK) || errors.Is(err, unix.EPERM)
}

// copyObject copies the object src to dst, checking that its content still
// hashes to sum, through a temp file and a rename like storeObject.
func copyObject(src, dst, sum string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open object %s: %w", sum, hidePath(err))
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(filepath.Dir(dst)), ".tmp-*")
	if err != nil {
		return fmt.Errorf("create object temp: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		return fmt.Errorf("copy object %s: %w", sum, hidePath(err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("object %s is corrupt: hash mismatch (got %s)", sum, got)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("chmod object temp: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close object temp: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("store object %s: %w", sum, err)
	}
	renamed = true
	return nil
}

// LinkTree materialises manifest snapshot at dst (an empty directory or a
// path that does not exist yet) as a tree whose directories and symlinks are
// new and whose regular files are hard links to the log's objects, so that
// it costs one link per file whatever the files' sizes. It is meant as the
// read-only lower layer of a copy-on-write workspace (sandbox.Base): nothing
// may ever write through it, since every file is an object shared with every
// snapshot that names it. Files fall back to hash-checked copies where a
// link is impossible (see CreateFrom).
//
// A linked file's inode, and so its mode, is the object's (0444): modes
// returns the mode the manifest gives each regular file, by slash-separated
// path, for the layer above to apply. Directories get their manifest modes
// and dst itself 0700, so that the tree is reachable only through whatever
// mounts it. Entries are checked and created as Restore does, never
// followed through a symlink; on error dst is left partly populated.
func (l *Log) LinkTree(ctx context.Context, snapshot, dst string) (modes map[string]fs.FileMode, err error) {
	m, err := l.ReadManifest(snapshot)
	if err != nil {
		return nil, fmt.Errorf("link tree: %w", err)
	}
	c, err := openEmpty(dst, 0o700)
	if err != nil {
		return nil, fmt.Errorf("link tree %s: %w", snapshot, err)
	}
	defer c.Close()
	modes = map[string]fs.FileMode{}
	link := func(dirfd int, base string, e Entry) error {
		if !validSum(e.SHA256) {
			return fmt.Errorf("invalid sha256 %q", e.SHA256)
		}
		modes[e.Path] = e.Mode.Perm()
		err := unix.Linkat(unix.AT_FDCWD, l.objectPath(e.SHA256), dirfd, base, 0)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.ENOENT):
			return fmt.Errorf("object %s is missing", e.SHA256)
		case !linkRefused(err):
			return fmt.Errorf("link object %s: %w", e.SHA256, err)
		}
		return l.restoreFile(dirfd, base, e)
	}
	if err := restoreEntries(ctx, c, m.Entries, link); err != nil {
		return nil, fmt.Errorf("link tree %s: %w", snapshot, err)
	}
	return modes, nil
}

// RemoveTree removes a tree made by LinkTree (or Restore) once nothing
// mounts it: its directories may have read-only modes from the manifest,
// which stop a server that is not root from emptying them. Removing links
// leaves the objects, and so every run sharing them, as they are.
func RemoveTree(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			// Before WalkDir lists it, so that a 0000 directory can be.
			return os.Chmod(p, 0o700)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove tree: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove tree: %w", err)
	}
	return nil
}

// openEmpty creates dst with mode perm if it does not exist, checks that it
// is an empty directory and opens it.
func openEmpty(dst string, perm fs.FileMode) (*dirtree.Cursor, error) {
	if err := os.MkdirAll(dst, perm); err != nil {
		return nil, err
	}
	existing, err := os.ReadDir(dst)
	if err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("destination %s is not empty", dst)
	}
	return dirtree.Open(dst)
}

// hidePath drops the host path from a *fs.PathError: object paths are the
// server's business, and errors can reach the agent.
func hidePath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
