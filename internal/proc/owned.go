package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OwnerFile, inside a folder, names the server that owns the folder by its
// legacy ID, the one servers from before lock files read; LockFile names it
// by its lock.
const (
	OwnerFile = ".mlab-owner"
	LockFile  = ".mlab-lock"
)

// MkdirOwned makes a new folder in parent ("" for the temporary directory)
// named prefix followed by random characters, with an owner record naming
// this process, so that RemoveOrphans can remove it if this process dies
// without doing so itself.
func MkdirOwned(parent, prefix string) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, prefix+"*")
	if err != nil {
		return "", fmt.Errorf("create %s folder: %w", prefix, err)
	}
	// The lock record first: a reaper that finds the owner record finds it.
	for _, rec := range []struct{ name, id string }{{LockFile, Self()}, {OwnerFile, Legacy()}} {
		if err := os.WriteFile(filepath.Join(dir, rec.name), []byte(rec.id+"\n"), 0o644); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("record the owner of %s: %w", dir, err)
		}
	}
	return dir, nil
}

// Owner reads the owner ID of a folder MkdirOwned made: its lock ID, or
// the legacy ID of a folder an older server made.
func Owner(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(dir, OwnerFile))
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// RemoveOrphans removes the folders in parent ("" for the temporary
// directory) whose names start with prefix and whose owner record names a
// dead server. Folders without a record are not mlab's to remove. release,
// when set, runs on each such folder first, to free what a plain delete
// cannot (mounts, cgroups, processes of the dead server's sandboxes).
func RemoveOrphans(parent, prefix string, release func(dir string) error) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	owners, err := filepath.Glob(filepath.Join(parent, prefix+"*", OwnerFile))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, f := range owners {
		dir := filepath.Dir(f)
		owner, err := Owner(dir)
		if err != nil || Alive(owner) {
			continue
		}
		if release != nil {
			if err := release(dir); err != nil {
				errs = append(errs, fmt.Errorf("release the folder of a stopped server: %w", err))
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove the folder of a stopped server: %w", err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}
