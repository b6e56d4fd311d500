package sandbox_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/forktest"
	"github.com/mlab/mlab/sandbox"
)

const testUID = 70123

// checkAdopted fails t unless every entry under ws belongs to uid and each
// file of forktest.Tree has its mode and content.
func checkAdopted(t *testing.T, ws string, uid int) {
	t.Helper()
	err := filepath.Walk(ws, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == ws {
			return err
		}
		if got := int(info.Sys().(*syscall.Stat_t).Uid); got != uid {
			t.Errorf("%s belongs to %d, want %d", p, got, uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forktest.Tree() {
		p := filepath.Join(ws, filepath.FromSlash(f.Path))
		info, err := os.Stat(p)
		data, _ := os.ReadFile(p)
		if err != nil || info.Mode().Perm() != f.Mode || string(data) != f.Data {
			t.Errorf("%s: %v %v, want mode %v and its content", f.Path, info.Mode(), err, f.Mode)
		}
	}
}

// tmpfs mounts a tmpfs of size bytes on a new directory, as the backends'
// workspace storage.
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	ws := t.TempDir()
	if err := unix.Mount("tmpfs", ws, "tmpfs", 0, "size="+strconv.Itoa(size)+",mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sandbox.Unmount(ws) })
	return ws
}

// TestMountBase mounts a fork of a tree bigger than its storage: it costs
// metadata only, gives the tree to the sandbox user with its modes, and
// Unmount takes away the overlay and the tmpfs under it.
func TestMountBase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	const storage = 1 << 20
	f := forktest.New(t, forktest.File{Path: "big.bin", Data: strings.Repeat("b", 4*storage), Mode: 0o644})
	ws := tmpfs(t, storage)
	if err := sandbox.MountBase(t.Context(), ws, f.Base, testUID, testUID); err != nil {
		t.Fatalf("MountBase: %v", err)
	}
	checkAdopted(t, ws, testUID)
	var st unix.Statfs_t
	if err := unix.Statfs(ws, &st); err != nil {
		t.Fatal(err)
	}
	// The storage holds inodes, not the 4 MiB file nor the others.
	if used := (st.Blocks - st.Bfree) * uint64(st.Bsize); used > storage/4 {
		t.Errorf("the fork takes %d bytes of its storage: its files were copied", used)
	}
	if got := forktest.Mounts(t, ws); len(got) != 2 {
		t.Errorf("mounts on the workspace: %v, want the tmpfs and the overlay", got)
	}
	if err := sandbox.Unmount(ws); err != nil {
		t.Fatal(err)
	}
	if got := forktest.Mounts(t, ws); len(got) != 0 {
		t.Errorf("mounts left after Unmount: %v", got)
	}
	if err := sandbox.Unmount(ws); err != nil {
		t.Errorf("Unmount of a plain directory: %v", err)
	}
	f.CheckIntact(t)
}

// TestMountBaseFailureLeavesNothing: a base that cannot be mounted leaves
// the storage empty and unmounted, ready for CopyBase.
func TestMountBaseFailureLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	ws := tmpfs(t, 1<<20)
	missing := filepath.Join(t.TempDir(), "missing")
	err := sandbox.MountBase(t.Context(), ws, &sandbox.Base{Dir: missing}, testUID, testUID)
	if err == nil {
		t.Fatal("MountBase of a missing tree succeeded")
	}
	if strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), ws) {
		t.Errorf("error names a host path: %v", err)
	}
	if got := forktest.Mounts(t, ws); len(got) != 1 {
		t.Errorf("mounts: %v, want the tmpfs alone", got)
	}
	if entries, _ := os.ReadDir(ws); len(entries) != 0 {
		t.Errorf("storage not emptied: %v", entries)
	}
}

// TestCopyBase: the fallback copy has the modes, symlinks and empty
// directories of the base, belongs to the sandbox user, and shares no
// inode with the objects.
func TestCopyBase(t *testing.T) {
	f := forktest.New(t)
	if err := os.Symlink("run.sh", filepath.Join(f.Base.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	uid := -1
	if os.Geteuid() == 0 {
		uid = testUID
	}
	ws := filepath.Join(t.TempDir(), "ws")
	if err := sandbox.CopyBase(t.Context(), f.Base, ws, uid, uid); err != nil {
		t.Fatalf("CopyBase: %v", err)
	}
	if uid < 0 {
		uid = os.Getuid()
	}
	checkAdopted(t, ws, uid)
	if target, err := os.Readlink(filepath.Join(ws, "link")); err != nil || target != "run.sh" {
		t.Errorf("link: %q %v", target, err)
	}
	if info, err := os.Stat(filepath.Join(ws, "emptydir")); err != nil || !info.IsDir() {
		t.Errorf("emptydir: %v", err)
	}
	for _, file := range forktest.Tree() {
		p := filepath.Join(ws, filepath.FromSlash(file.Path))
		if err := os.WriteFile(p, []byte("changed"), 0); err != nil {
			t.Fatal(err)
		}
	}
	f.CheckIntact(t)
}
