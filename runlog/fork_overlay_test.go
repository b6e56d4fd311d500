package runlog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlab/mlab/sandbox"
)

// TestSnapshotAfterFork snapshots a forked workspace, an overlay over the
// LinkTree of its fork point, as the sandboxes mount it: an unchanged file
// keeps its hash, and a file changed in place gets a new one, whether the
// change is its first write (a copy-up) or a later one, and even when the
// writer puts its mtime back. The stat cache must not hide any of these.
func TestSnapshotAfterFork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting an overlay needs root")
	}
	parent := newCachingLog(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "model.bin"), randomBytes(1, 1<<20), 0o644)
	writeFile(t, filepath.Join(src, "data", "train.csv"), []byte("a,b\n1,2\n"), 0o644)
	writeFile(t, filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	want := snapshot(t, parent, src, "step-0001")

	child, err := CreateFrom(filepath.Join(t.TempDir(), "runs"), "child", parent.Dir(), "step-0001")
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	child.racyWindow = 0 // every stable file is cached: the cache is under test
	lower := filepath.Join(t.TempDir(), "lower")
	modes, err := child.LinkTree(t.Context(), ForkSnapshot, lower)
	if err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	if err := sandbox.MountBase(t.Context(), ws, &sandbox.Base{Dir: lower, Modes: modes}, 70000, 70000); err != nil {
		t.Skipf("no overlay with metacopy here: %v", err)
	}
	t.Cleanup(func() {
		if err := sandbox.Unmount(ws); err != nil {
			t.Error(err)
		}
	})

	// The fork point, through the overlay: the same entries, each file
	// read once and none stored again.
	stored, before := len(objects(t, child)), child.hashedBytes.Load()
	got := snapshot(t, child, ws, "step-0002")
	if !equalEntries(got, want) {
		t.Fatalf("fork point differs:\n%+v\n%+v", got.Entries, want.Entries)
	}
	var total int64
	for _, e := range want.Entries {
		total += e.Size
	}
	if read := child.hashedBytes.Load() - before; read != total {
		t.Errorf("the fork's first snapshot read %d bytes, want %d (each file once)", read, total)
	}
	if n := len(objects(t, child)); n != stored {
		t.Errorf("the fork's first snapshot stored %d objects, want none", n-stored)
	}

	model := filepath.Join(ws, "model.bin")
	info, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	mtime := info.ModTime()
	for i, patch := range []string{"first write", "later write"} {
		f, err := os.OpenFile(model, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(patch), int64(1000*i)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		// Same size, same mtime: only the inode's change time and (on
		// copy-up) its identity tell.
		if err := os.Chtimes(model, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		before := child.hashedBytes.Load()
		name := StepSnapshot(3 + i)
		m := snapshot(t, child, ws, name)
		content, _ := os.ReadFile(model)
		if e := entryMap(m)["model.bin"]; e.SHA256 != sha(string(content)) {
			t.Errorf("%s: model.bin recorded as %s, its content hashes to %s", patch, e.SHA256[:8], sha(string(content))[:8])
		}
		if e := entryMap(m)["data/train.csv"]; e.SHA256 != entryMap(want)["data/train.csv"].SHA256 {
			t.Errorf("%s: an unchanged file changed hash", patch)
		}
		// Only the changed file was read again: hashed, found new, and
		// read once more to store it (its size is that of a known file).
		if read := child.hashedBytes.Load() - before; read != 2*int64(len(content)) {
			t.Errorf("%s: the snapshot read %d bytes, want %d (model.bin alone, twice)", patch, read, 2*len(content))
		}
		dst := filepath.Join(t.TempDir(), "restored")
		if err := child.Restore(t.Context(), name, dst); err != nil {
			t.Fatal(err)
		}
		if restored, _ := os.ReadFile(filepath.Join(dst, "model.bin")); !bytes.Equal(restored, content) {
			t.Errorf("%s: restored model.bin differs from the workspace's", patch)
		}
	}
	// And the parent's copy, behind the overlay, is what it was.
	if orig, _ := os.ReadFile(filepath.Join(src, "model.bin")); !bytes.Equal(orig, randomBytes(1, 1<<20)) {
		t.Error("the parent's workspace changed")
	}
	if data, _ := os.ReadFile(parent.objectPath(entryMap(want)["model.bin"].SHA256)); sha(string(data)) != entryMap(want)["model.bin"].SHA256 {
		t.Error("the parent's object changed")
	}
}

// equalEntries compares two manifests' entries.
func equalEntries(a, b Manifest) bool {
	if len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		if a.Entries[i] != b.Entries[i] {
			return false
		}
	}
	return true
}
