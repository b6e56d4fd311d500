package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/mlab/mlab/internal/testenv"
	"github.com/mlab/mlab/sandbox"
)

// escapes are scripts that leave processes behind which are neither in the
// exec's process group nor children of its process.
var escapes = []struct {
	name, code string
	timeout    bool
}{
	{"setsid", "import subprocess\nsubprocess.Popen(['sleep', '1001'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nprint('ok')\n", false},
	{"setsid holding the output", "import subprocess\nsubprocess.Popen(['sleep', '1002'], start_new_session=True)\nprint('ok')\n", false},
	{"double fork", doubleFork("1003", "print('ok')"), false},
	{"setsid then timeout", "import subprocess, time\nsubprocess.Popen(['sleep', '1004'], start_new_session=True)\nprint('ok', flush=True)\nwhile True: time.sleep(1)\n", true},
	{"double fork then timeout", doubleFork("1005", "import time\nprint('ok', flush=True)\nwhile True: time.sleep(1)"), true},
}

// doubleFork daemonizes `sleep arg` the classic way (fork, setsid, fork, the
// middle process exits so init adopts the last one), then runs rest.
func doubleFork(arg, rest string) string {
	return fmt.Sprintf("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '%s'])\n    os._exit(0)\nos.wait()\n%s\n", arg, rest)
}

// TestHostileEscapedChildrenDie: nothing an exec started outlives it, however
// it left its process group, whether the script exits or times out; both with
// a cgroup per exec (the server is root) and without one (leftovers are
// found by user). The container itself survives the cleanup.
func TestHostileEscapedChildrenDie(t *testing.T) {
	p, _ := newProvider(t, Options{})
	for _, mode := range []string{"cgroup", "by user"} {
		t.Run(mode, func(t *testing.T) {
			sb := create(t, p, sandbox.Limits{})
			if mode == "cgroup" && sb.cgroup == "" {
				if os.Geteuid() != 0 {
					testenv.Absent(t, "a cgroup per exec needs root")
				}
				t.Fatal("running as root, but the sandbox found no cgroup for its execs")
			}
			if mode == "by user" {
				sb.cgroup = ""
			}
			for _, tc := range escapes {
				t.Run(tc.name, func(t *testing.T) {
					timeout := time.Minute
					if tc.timeout {
						timeout = 3 * time.Second
					}
					res := py(t, sb, tc.code, timeout)
					if res.TimedOut != tc.timeout || !strings.HasPrefix(res.Stdout, "ok\n") {
						t.Fatalf("want stdout ok and timed out %v: %+v", tc.timeout, res)
					}
					if left := remaining(t, sb); len(left) > 0 {
						t.Errorf("processes survived the exec: %v", left)
					}
				})
			}
			if res := py(t, sb, "print('alive')", time.Minute); res.Stdout != "alive\n" {
				t.Errorf("sandbox unusable after the cleanups: %+v", res)
			}
		})
	}
}

// TestHostileConcurrentExecSurvives: the cleanup after one exec does not kill
// another exec running in the same container.
func TestHostileConcurrentExecSurvives(t *testing.T) {
	p, _ := newProvider(t, Options{})
	sb := create(t, p, sandbox.Limits{})
	if sb.cgroup == "" {
		testenv.Absent(t, "concurrent execs need a cgroup per exec, so root")
	}
	ws := sb.Workspace()
	os.WriteFile(filepath.Join(ws, "long.py"), []byte("import os, time\nopen('started', 'w').close()\nwhile not os.path.exists('go'): time.sleep(0.05)\nprint('long done')\n"), 0o644)
	var wg sync.WaitGroup
	var long sandbox.ExecResult
	var longErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		long, longErr = sb.Exec(context.Background(), sandbox.ExecRequest{Args: []string{"python3", "-u", "long.py"}, Timeout: 2 * time.Minute})
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(ws, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the long exec did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := py(t, sb, escapes[0].code, time.Minute)
	if res.Stdout != "ok\n" {
		t.Fatalf("short exec: %+v", res)
	}
	// The long exec is the one process that may remain.
	var left []string
	for _, proc := range remaining(t, sb) {
		if !strings.HasSuffix(proc, " python3 -u long.py") {
			left = append(left, proc)
		}
	}
	if len(left) > 0 {
		t.Errorf("processes survived the short exec: %v", left)
	}
	if err := os.WriteFile(filepath.Join(ws, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if longErr != nil || long.ExitCode != 0 || long.Stdout != "long done\n" {
		t.Errorf("the long exec was hurt by the short one's cleanup: %+v, %v", long, longErr)
	}
}

// TestHostileKillContainerInit: the agent's user cannot signal the
// container's init or its keeper, so a script cannot take the sandbox down.
func TestHostileKillContainerInit(t *testing.T) {
	p, _ := newProvider(t, Options{})
	sb := create(t, p, sandbox.Limits{})
	code := `import os, signal
for pid in [1] + [int(d) for d in os.listdir('/proc') if d.isdigit()]:
    if pid != os.getpid():
        try: os.kill(pid, signal.SIGKILL)
        except OSError: pass
try: os.kill(-1, signal.SIGKILL)
except OSError: pass
print('tried')
`
	if res := py(t, sb, code, time.Minute); res.Stdout != "tried\n" {
		t.Errorf("%+v", res)
	}
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"echo", "alive"}})
	if err != nil || res.Stdout != "alive\n" {
		t.Errorf("the sandbox did not survive its script: %+v, %v", res, err)
	}
}

// TestHostileSandboxGone: once the container is killed or removed under the
// sandbox, Exec says so with sandbox.ErrGone, both for the next exec and for
// one running at that moment.
func TestHostileSandboxGone(t *testing.T) {
	p, cli := newProvider(t, Options{})
	kill := func(t *testing.T, id string) {
		if err := cli.ContainerKill(context.Background(), id, "KILL"); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(t *testing.T, id string) {
		if err := cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		during bool
		end    func(t *testing.T, id string)
	}{
		{"killed between execs", false, kill},
		{"killed during an exec", true, kill},
		{"removed between execs", false, remove},
		{"removed during an exec", true, remove},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := create(t, p, sandbox.Limits{})
			if res := py(t, sb, "print('up')", time.Minute); res.Stdout != "up\n" {
				t.Fatalf("%+v", res)
			}
			var err error
			if tc.during {
				os.WriteFile(filepath.Join(sb.Workspace(), "wait.py"), []byte("import time\nopen('started', 'w').close()\ntime.sleep(600)\n"), 0o644)
				done := make(chan error, 1)
				go func() {
					res, err := sb.Exec(context.Background(), sandbox.ExecRequest{Args: []string{"python3", "wait.py"}, Timeout: 5 * time.Minute})
					if err == nil {
						t.Logf("exec result: %+v", res)
					}
					done <- err
				}()
				deadline := time.Now().Add(time.Minute)
				for {
					if _, err := os.Stat(filepath.Join(sb.Workspace(), "started")); err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the exec did not start")
					}
					time.Sleep(20 * time.Millisecond)
				}
				tc.end(t, sb.ID())
				select {
				case err = <-done:
				case <-time.After(2 * time.Minute):
					t.Fatal("Exec did not return after its container went")
				}
			} else {
				tc.end(t, sb.ID())
				_, err = sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"echo", "hi"}})
			}
			if !errors.Is(err, sandbox.ErrGone) {
				t.Errorf("want ErrGone, got %v", err)
			}
			if err := sb.Close(); err != nil {
				t.Errorf("close a sandbox whose container is gone: %v", err)
			}
		})
	}
}

// TestHostileWorkspacePrivate: no other user of the host can list or read a
// workspace, not even one whose uid is the sandbox user's.
func TestHostileWorkspacePrivate(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Absent(t, "checking access as other users needs root")
	}
	// The root sits where anyone may pass, as the default one under /tmp.
	public := t.TempDir()
	for _, dir := range []string{filepath.Dir(public), public} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := newProvider(t, Options{})
	p.opts.Root = filepath.Join(public, "mlab-docker")
	p, err := New(t.Context(), p.opts)
	if err != nil {
		t.Fatal(err)
	}
	sb := create(t, p, sandbox.Limits{})
	ws := sb.Workspace()
	for _, uid := range []uint32{65534, agentUID} {
		for _, args := range [][]string{{"ls", ws}, {"cat", filepath.Join(ws, "hello.txt")}, {"ls", p.opts.Root}} {
			t.Run(fmt.Sprintf("%d %s", uid, strings.Join(args, " ")), func(t *testing.T) {
				cmd := exec.Command(args[0], args[1:]...)
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
				out, err := cmd.CombinedOutput()
				if err == nil {
					t.Errorf("uid %d could run %v: %s", uid, args, out)
				} else if !strings.Contains(string(out), "Permission denied") {
					t.Errorf("uid %d: %v failed, but not for lack of permission: %v %s", uid, args, err, out)
				}
			})
		}
	}
	// The sandbox itself still owns it.
	if res := py(t, sb, "print(open('hello.txt').read()); open('new.txt', 'w').write('x')", time.Minute); res.Stdout != "hi\n" || res.ExitCode != 0 {
		t.Errorf("the sandbox lost its workspace: %+v", res)
	}
}

// TestPrivateRoot: the workspace root is made private, and one that another
// user owns is refused.
func TestPrivateRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := privateRoot(dir); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("root not made private: %v %v", info.Mode(), err)
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(dir, link)
	if err := privateRoot(link); err == nil {
		t.Error("a symlinked root was accepted")
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(t.TempDir(), "other")
		os.Mkdir(other, 0o700)
		os.Chown(other, 65534, 65534)
		if err := privateRoot(other); err == nil {
			t.Error("a root owned by another user was accepted")
		}
	}
}
