package local

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/forktest"
	"github.com/mlab/mlab/sandbox"
)

// forkedSandbox creates a jailed sandbox whose workspace starts from f's
// base, with the small limits of hostileSandbox.
func forkedSandbox(t *testing.T, f *forktest.Fixture) *Sandbox {
	t.Helper()
	if _, err := probeBwrap(t.Context()); err != nil {
		t.Skipf("bubblewrap not usable on this host: %v", err)
	}
	p, err := New(t.Context(), Options{Root: t.TempDir(), Isolation: IsolationBwrap, WorkspaceBytes: hostileWorkspace, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	sb, err := p.Create(t.Context(), sandbox.Spec{Base: f.Base, ReadOnly: []string{forktest.ReadOnly},
		Limits: sandbox.Limits{Processes: 64, MemoryBytes: 256 << 20}})
	if err != nil {
		t.Fatalf("create from base: %v", err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb.(*Sandbox)
}

// isOverlay reports whether the workspace is the overlay MountBase makes.
func isOverlay(t testing.TB, ws string) bool {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(ws, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.OVERLAYFS_SUPER_MAGIC
}

// TestHostileForkedWorkspace runs the agent's attack on a forked workspace:
// it rewrites, appends to, patches, truncates, chmods, renames, links,
// maps and deletes files whose lower layer is the parent run's objects, and
// goes for the read-only task file, the overlay's attributes and the host
// paths behind the fork. None of it may reach the parent's objects, its
// workspace or the linked tree, and the fork's own snapshot must record
// exactly what the agent left. Close must leave no mount and no file.
func TestHostileForkedWorkspace(t *testing.T) {
	f := forktest.New(t)
	sb := forkedSandbox(t, f)
	if sb.tmpfs && !isOverlay(t, sb.Workspace()) {
		t.Error("root with a workspace tmpfs, but the fork was copied, not mounted copy-on-write")
	}
	args := append([]string{python, "-c", forktest.Script}, f.HostPaths()...)
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: args, Timeout: time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("script: %v %+v", err, res)
	}
	f.CheckScript(t, sb.Workspace(), res.Stdout)
	f.CheckIntact(t)

	// The tools, as root, replace files by renaming a temp file over them.
	tmp, err := os.CreateTemp(sb.Workspace(), ".tool-*")
	if err != nil {
		t.Fatal(err)
	}
	tmp.WriteString("from a tool")
	tmp.Close()
	uid, gid := sb.Owner()
	os.Chown(tmp.Name(), uid, gid)
	if err := os.Rename(tmp.Name(), filepath.Join(sb.Workspace(), "same2.txt")); err != nil {
		t.Fatalf("a tool's write: %v", err)
	}
	res = runPy(t, sb, "print(open('same2.txt').read()); open('same2.txt', 'a').write('!')", 30*time.Second)
	if res.Stdout != "from a tool\n" || res.ExitCode != 0 {
		t.Errorf("the sandbox does not see the tool's file, or cannot write it: %+v", res)
	}
	f.CheckIntact(t)

	dir := sb.dir
	if err := sb.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if left := forktest.Mounts(t, dir); len(left) > 0 {
		t.Errorf("mounts left after Close: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("sandbox dir left after Close: %v", err)
	}
	f.CheckIntact(t)
}

// TestHostileForkSizeCap: a fork's base does not count against the
// workspace cap (the fork of a file larger than the cap is created, so the
// base was not copied), but what the agent writes does, including the copy
// of a base file it changes.
func TestHostileForkSizeCap(t *testing.T) {
	big := strings.Repeat("b", hostileWorkspace+hostileWorkspace/2)
	f := forktest.New(t, forktest.File{Path: "big.bin", Data: big, Mode: 0o644})
	sb := forkedSandbox(t, f)
	if !sb.tmpfs {
		t.Skip("no workspace quota here (not root)")
	}
	if !isOverlay(t, sb.Workspace()) {
		t.Fatal("the fork was copied, not mounted copy-on-write")
	}
	res := runPy(t, sb, fmt.Sprintf(`import errno, hashlib
def attempt(what, fn):
    try:
        fn()
        print(what, 'ok')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
attempt('append', lambda: open('big.bin', 'a').write('x'))
def fill():
    with open('fill.bin', 'wb') as f:
        for _ in range(%d):
            f.write(b'x' * (1 << 20))
            f.flush()
attempt('fill', fill)
print('sha', hashlib.sha256(open('big.bin', 'rb').read()).hexdigest())
`, hostileWorkspace>>20+1), time.Minute)
	h := sha256.Sum256([]byte(big))
	want := fmt.Sprintf("append ENOSPC\nfill ENOSPC\nsha %s\n", hex.EncodeToString(h[:]))
	if res.Stdout != want {
		t.Errorf("got %q (%s), want %q", res.Stdout, res.Stderr, want)
	}
	f.CheckIntact(t)
}

// TestForkCopiedWithoutOverlay: where no overlay can be mounted (no jail,
// so no workspace tmpfs), a fork is a copy with the same content and modes,
// sharing no inode with the objects, so that changing it in place changes
// nothing behind it.
func TestForkCopiedWithoutOverlay(t *testing.T) {
	f := forktest.New(t)
	p, err := New(t.Context(), Options{Root: t.TempDir(), Isolation: IsolationNone, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := p.Create(t.Context(), sandbox.Spec{Base: f.Base})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if isOverlay(t, sb.Workspace()) {
		t.Fatal("an unjailed sandbox has an overlay")
	}
	for _, file := range forktest.Tree() {
		p := filepath.Join(sb.Workspace(), filepath.FromSlash(file.Path))
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm() != file.Mode || info.Sys().(*syscall.Stat_t).Nlink != 1 {
			t.Errorf("%s: %v %v, want mode %v and a file of its own", file.Path, info.Mode(), err, file.Mode)
		}
	}
	if info, err := os.Stat(filepath.Join(sb.Workspace(), "emptydir")); err != nil || !info.IsDir() {
		t.Errorf("emptydir: %v", err)
	}
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{python, "-c", `
import os
for root, dirs, files in os.walk('.'):
    for name in files:
        p = os.path.join(root, name)
        os.chmod(p, 0o644)
        with open(p, 'r+b') as f:
            f.write(b'overwritten')
`}, Timeout: time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("script: %v %+v", err, res)
	}
	f.CheckIntact(t)
}

func TestCreateRejectsFilesAndBase(t *testing.T) {
	p, err := New(t.Context(), Options{Root: t.TempDir(), Isolation: IsolationNone, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create(t.Context(), sandbox.Spec{Files: t.TempDir(), Base: &sandbox.Base{Dir: t.TempDir()}}); err == nil {
		t.Error("Create accepted both Files and Base")
	}
}
