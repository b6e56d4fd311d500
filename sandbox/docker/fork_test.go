package docker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/forktest"
	"github.com/mlab/mlab/internal/proc"
	"github.com/mlab/mlab/sandbox"
)

// TestHostileForkedWorkspace runs the agent's attack on a forked workspace
// in a container (see forktest.Script): nothing it does to the files, the
// read-only task file or the overlay may reach the parent run's objects,
// its workspace or the linked tree, the fork's snapshot records exactly
// what the agent left, and Close leaves no mount and no file.
func TestHostileForkedWorkspace(t *testing.T) {
	p, _ := newProvider(t, Options{WorkspaceBytes: 64 << 20})
	f := forktest.New(t)
	created, err := p.Create(t.Context(), sandbox.Spec{Session: "test", Run: t.Name(), Base: f.Base, ReadOnly: []string{forktest.ReadOnly}})
	if err != nil {
		t.Fatalf("create from base: %v", err)
	}
	sb := created.(*Sandbox)
	t.Cleanup(func() { sb.Close() })
	var st unix.Statfs_t
	if err := unix.Statfs(sb.Workspace(), &st); err != nil {
		t.Fatal(err)
	}
	if p.quota && st.Type != unix.OVERLAYFS_SUPER_MAGIC {
		t.Error("root with a workspace tmpfs, but the fork was copied, not mounted copy-on-write")
	}
	args := append([]string{"python3", "-c", forktest.Script}, f.HostPaths()...)
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
	os.Chown(tmp.Name(), agentUID, agentGID)
	if err := os.Rename(tmp.Name(), filepath.Join(sb.Workspace(), "same2.txt")); err != nil {
		t.Fatalf("a tool's write: %v", err)
	}
	res, err = sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"python3", "-c",
		"print(open('same2.txt').read()); open('same2.txt', 'a').write('!')"}, Timeout: time.Minute})
	if err != nil || res.Stdout != "from a tool\n" || res.ExitCode != 0 {
		t.Errorf("the sandbox does not see the tool's file, or cannot write it: %v %+v", err, res)
	}
	f.CheckIntact(t)

	ws := sb.Workspace()
	if err := sb.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if left := forktest.Mounts(t, ws); len(left) > 0 {
		t.Errorf("mounts left after Close: %v", left)
	}
	if _, err := os.Stat(ws); !os.IsNotExist(err) {
		t.Errorf("workspace left after Close: %v", err)
	}
	f.CheckIntact(t)
}

// TestReapForkedWorkspace: the reaper removes the forked workspace of a
// server that died, its overlay and the tmpfs under it, and leaves the base
// and the run logs behind it as they are.
func TestReapForkedWorkspace(t *testing.T) {
	p, cli := newProvider(t, Options{})
	f := forktest.New(t)
	dead, err := proc.Acquire(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dead.Release()
	p.server, p.lock = proc.Legacy(), dead.ID()
	sb, err := p.Create(t.Context(), sandbox.Spec{Session: "test", Run: t.Name(), Base: f.Base})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	ws := sb.Workspace()
	if len(forktest.Mounts(t, ws)) == 0 {
		t.Fatal("the forked workspace has no mount")
	}
	if _, err := Reap(t.Context(), cli, false); err != nil {
		t.Fatal(err)
	}
	if left := forktest.Mounts(t, ws); len(left) > 0 {
		t.Errorf("mounts left after Reap: %v", left)
	}
	if _, err := os.Stat(ws); !os.IsNotExist(err) {
		t.Errorf("workspace left after Reap: %v", err)
	}
	f.CheckIntact(t)
}
