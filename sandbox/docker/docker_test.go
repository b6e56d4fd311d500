package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/internal/forktest"
	"github.com/mlab/mlab/internal/proc"
	"github.com/mlab/mlab/internal/testenv"
	"github.com/mlab/mlab/sandbox"
)

func TestContainerConfig(t *testing.T) {
	p := &Provider{opts: Options{Image: "img", TmpBytes: 1 << 20, CPUs: 1.5}, server: "42:7", lock: "lock:1:2:/s/server-ab.lock"}
	if cfg, _ := p.containerConfig(sandbox.Spec{Image: "task-image"}, sandbox.Limits{}, "/ws"); cfg.Image != "task-image" {
		t.Errorf("a task's image must override the default: %s", cfg.Image)
	}
	tests := []struct {
		name    string
		gpus    []string
		devices []string
		visible string
	}{
		{"no gpu", nil, nil, ""},
		{"one gpu", []string{"3"}, []string{"3"}, "0"},
		{"several gpus", []string{"1", "2", "5"}, []string{"1", "2", "5"}, "0,1,2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			limits := sandbox.Limits{MemoryBytes: 1 << 30, Processes: 64}.WithDefaults()
			cfg, host := p.containerConfig(sandbox.Spec{Session: "s1", Run: "r1", GPUs: tc.gpus}, limits, "/ws/ws-1")
			if len(tc.devices) == 0 {
				if len(host.DeviceRequests) != 0 {
					t.Errorf("device requests without GPUs: %+v", host.DeviceRequests)
				}
			} else {
				if len(host.DeviceRequests) != 1 {
					t.Fatalf("device requests %+v", host.DeviceRequests)
				}
				dr := host.DeviceRequests[0]
				if dr.Driver != "nvidia" || !slices.Equal(dr.DeviceIDs, tc.devices) || dr.Count != 0 ||
					len(dr.Capabilities) != 1 || !slices.Equal(dr.Capabilities[0], []string{"gpu"}) {
					t.Errorf("device request %+v, want devices %v", dr, tc.devices)
				}
			}
			if !slices.Contains(cfg.Env, "CUDA_VISIBLE_DEVICES="+tc.visible) {
				t.Errorf("env %v lacks CUDA_VISIBLE_DEVICES=%s", cfg.Env, tc.visible)
			}
			// The lock-down does not depend on GPUs.
			if host.NetworkMode != "none" || !cfg.NetworkDisabled || !slices.Equal(host.CapDrop, []string{"ALL"}) ||
				!slices.Contains(host.SecurityOpt, "no-new-privileges") || !host.ReadonlyRootfs || cfg.User != "0:0" ||
				host.Memory != 1<<30 || host.MemorySwap != 1<<30 || host.PidsLimit == nil || *host.PidsLimit != 64 ||
				host.NanoCPUs != 1.5e9 || !strings.Contains(host.Tmpfs["/tmp"], "size=1048576") ||
				!slices.Equal(host.Binds, []string{"/ws/ws-1:/workspace:rw"}) {
				t.Errorf("container not locked down: %+v %+v", cfg, host)
			}
			want := map[string]string{LabelManaged: "1", LabelSession: "s1", LabelRun: "r1", LabelServer: "42:7", LabelLock: "lock:1:2:/s/server-ab.lock", LabelWorkspace: "/ws/ws-1"}
			for k, v := range want {
				if cfg.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
				}
			}
		})
	}
}

// testImage is the runtime image the tests run in: MLAB_IMAGE, or the base
// image `make image` builds.
func testImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	return testenv.Image(t, cli, ImageTag(ImageSpec{Variant: "base"}))
}

func newProvider(t testing.TB, opts Options) (*Provider, *client.Client) {
	t.Helper()
	cli := testenv.Docker(t)
	opts.Client = cli
	opts.Image = testImage(t, cli)
	opts.Root = t.TempDir()
	opts.Logger = zerolog.Nop()
	p, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, cli
}

func create(t *testing.T, p *Provider, limits sandbox.Limits) *Sandbox {
	t.Helper()
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "hello.txt"), []byte("hi"), 0o644)
	sb, err := p.Create(t.Context(), sandbox.Spec{Session: "test", Run: t.Name(), Files: files, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb.(*Sandbox)
}

func py(t *testing.T, sb *Sandbox, code string, timeout time.Duration) sandbox.ExecResult {
	t.Helper()
	if err := os.WriteFile(filepath.Join(sb.Workspace(), "s.py"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"python3", "-u", "s.py"}, Timeout: timeout})
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	return res
}

func TestExec(t *testing.T) {
	p, _ := newProvider(t, Options{})
	sb := create(t, p, sandbox.Limits{})
	tests := []struct {
		name, code     string
		exit           int
		stdout, stderr string
	}{
		{"reads workspace", "print(open('hello.txt').read())", 0, "hi\n", ""},
		{"scientific stack", "import numpy, pandas, sklearn; print(numpy.arange(4).sum())", 0, "6\n", ""},
		{"non-root user", "import os; print(os.getuid(), os.getgid())", 0, "1000 1000\n", ""},
		{"writes workspace", "open('out.txt','w').write('x'); open('hello.txt','a').write('!'); print(open('hello.txt').read())", 0, "hi!\n", ""},
		{"exit code", "import sys; sys.exit(3)", 3, "", ""},
		{"stderr", "raise ValueError('boom')", 1, "", "ValueError: boom"},
		{"no network", "import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)", 1, "", "Network is unreachable"},
		{"read-only root", "open('/usr/evil', 'w')", 1, "", "Read-only file system"},
		{"writable tmp", "open('/tmp/x', 'w').write('1'); print('ok')", 0, "ok\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := py(t, sb, tc.code, time.Minute)
			if res.ExitCode != tc.exit || res.Stdout != tc.stdout || !strings.Contains(res.Stderr, tc.stderr) {
				t.Errorf("got exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
			}
		})
	}
	// The server sees what the script wrote.
	if b, err := os.ReadFile(filepath.Join(sb.Workspace(), "out.txt")); err != nil || string(b) != "x" {
		t.Errorf("out.txt on the host: %q, %v", b, err)
	}
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"sh", "-c", "read x; echo got $x"}, Stdin: strings.NewReader("nonce\n")})
	if err != nil || res.Stdout != "got nonce\n" {
		t.Errorf("stdin: %+v, %v", res, err)
	}
}

// remaining lists the processes the next exec sees in the container, but
// init, its keeper and the lister itself, as "PID STATE COMMAND": zombies
// too, since /proc shows them until they are reaped, and one gone while it
// was being listed, since it was there. Exec returns only once what it
// started is killed and reaped, so one look is the whole check.
func remaining(t *testing.T, sb *Sandbox) []string {
	t.Helper()
	const list = `import os
me = os.getpid()
for pid in os.listdir('/proc'):
    if not pid.isdigit() or int(pid) in (1, me):
        continue
    try:
        cmd = open('/proc/%s/cmdline' % pid, 'rb').read().replace(b'\0', b' ').decode().strip()
        stat = open('/proc/%s/stat' % pid).read()
    except OSError:
        print(pid, 'gone while listed')
        continue
    if cmd != 'sleep infinity':
        print(pid, stat[stat.rindex(')') + 2], cmd or '[%s]' % stat[stat.index('(') + 1:stat.rindex(')')])
`
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"python3", "-c", list}, Timeout: time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("list the processes: %+v, %v", res, err)
	}
	var left []string
	for _, line := range strings.Split(res.Stdout, "\n") {
		if line != "" {
			left = append(left, line)
		}
	}
	return left
}

func TestFaults(t *testing.T) {
	p, _ := newProvider(t, Options{WorkspaceBytes: 64 << 20})
	sb := create(t, p, sandbox.Limits{MemoryBytes: 256 << 20, Processes: 64, OutputBytes: 4096})

	t.Run("timeout kills the tree", func(t *testing.T) {
		res := py(t, sb, "import subprocess, time\nsubprocess.Popen(['sleep', '1000'])\nprint('started', flush=True)\nwhile True: time.sleep(1)\n", 2*time.Second)
		if !res.TimedOut || res.Stdout != "started\n" {
			t.Fatalf("want a timeout with partial output: %+v", res)
		}
		if left := remaining(t, sb); len(left) > 0 {
			t.Errorf("processes left after timeout: %v", left)
		}
	})
	t.Run("background child of a finished script", func(t *testing.T) {
		res := py(t, sb, "import subprocess\nsubprocess.Popen(['sleep', '1000'])\nprint('bye')\n", time.Minute)
		// An exec that waited for the sleep would time out.
		if res.ExitCode != 0 || res.TimedOut {
			t.Fatalf("%+v", res)
		}
		if left := remaining(t, sb); len(left) > 0 {
			t.Errorf("processes left after exit: %v", left)
		}
	})
	t.Run("oom", func(t *testing.T) {
		res := py(t, sb, "b = bytearray(1 << 30)\nb[::4096] = b'x' * len(b[::4096])\nprint('survived')\n", time.Minute)
		if !res.OOM || res.ExitCode == 0 {
			t.Errorf("want OOM: %+v", res)
		}
	})
	t.Run("fork bomb", func(t *testing.T) {
		res := py(t, sb, "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n", 5*time.Second)
		if !res.TimedOut {
			t.Errorf("fork bomb not stopped by the timeout: %+v", res)
		}
		after := py(t, sb, "print('alive')", time.Minute)
		if after.Stdout != "alive\n" {
			t.Errorf("sandbox unusable after a fork bomb: %+v", after)
		}
	})
	t.Run("output flood", func(t *testing.T) {
		res := py(t, sb, "import sys\nfor i in range(500000): sys.stdout.write('line %d\\n' % i)\nprint('END')\n", time.Minute)
		if !res.Truncated || len(res.Stdout) > 5000 || !strings.HasSuffix(res.Stdout, "END\n") || res.StdoutBytes < 5<<20 {
			t.Errorf("flood not capped: truncated %v, kept %d of %d bytes", res.Truncated, len(res.Stdout), res.StdoutBytes)
		}
	})
	t.Run("workspace quota", func(t *testing.T) {
		if os.Geteuid() != 0 {
			testenv.Absent(t, "workspace quotas need root")
		}
		res := py(t, sb, "open('big.bin', 'wb').write(b'x' * (100 << 20))\n", time.Minute)
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, "No space left on device") {
			t.Errorf("write past the quota: %+v", res)
		}
		os.Remove(filepath.Join(sb.Workspace(), "big.bin"))
	})
}

// TestExecReturnsAfterReaping: a killed process is a zombie until its parent
// reaps it, and the orphans of an exec are reaped by the container's init,
// whenever it gets to run. Exec must not return before: the next exec would
// see them, and each holds a PID against the pids limit. Stopping init holds
// the zombie there for as long as the test needs, in both ways of finding an
// exec's processes.
func TestExecReturnsAfterReaping(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Absent(t, "stopping the container's init needs root")
	}
	p, _ := newProvider(t, Options{})
	for _, mode := range []string{"cgroup", "by user"} {
		t.Run(mode, func(t *testing.T) {
			sb := create(t, p, sandbox.Limits{})
			if mode == "by user" {
				sb.cgroup = ""
			} else if sb.cgroup == "" {
				t.Fatal("running as root, but the sandbox found no cgroup for its execs")
			}
			if err := syscall.Kill(sb.initPid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			cont := func() { syscall.Kill(sb.initPid, syscall.SIGCONT) }
			t.Cleanup(cont)
			os.WriteFile(filepath.Join(sb.Workspace(), "s.py"), []byte("import subprocess\nsubprocess.Popen(['sleep', '1000'])\nprint('bye')\n"), 0o644)
			type result struct {
				res sandbox.ExecResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := sb.Exec(context.Background(), sandbox.ExecRequest{Args: []string{"python3", "-u", "s.py"}, Timeout: 5 * time.Minute})
				done <- result{res, err}
			}()
			// The sleep, killed, waits for the stopped init as a zombie;
			// meanwhile Exec must not have returned.
			deadline := time.Now().Add(2 * time.Minute)
			for !zombieChild(sb.initPid) {
				select {
				case r := <-done:
					t.Fatalf("Exec returned before the orphan it left was killed and reaped: %+v, %v", r.res, r.err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the orphan never became a zombie of the container's init")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Exec has other work after the kill (the sweep's own exec, the
			// OOM check), so one that does not wait may still be busy now:
			// hold init a while longer. A correct Exec never returns during
			// this, however long it is, so it cannot make the test flaky.
			select {
			case r := <-done:
				t.Fatalf("Exec returned while the orphan it left was not reaped: %+v, %v", r.res, r.err)
			case <-time.After(2 * time.Second):
			}
			cont()
			select {
			case r := <-done:
				if r.err != nil || r.res.ExitCode != 0 || r.res.Stdout != "bye\n" {
					t.Fatalf("exec: %+v, %v", r.res, r.err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("Exec did not return once init could reap")
			}
			if left := remaining(t, sb); len(left) > 0 {
				t.Errorf("processes left after the exec: %v", left)
			}
		})
	}
}

// zombieChild reports whether process pid (a host PID) has a zombie child.
func zombieChild(pid int) bool {
	for _, kid := range childrenOf("/proc", pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", kid))
		if s := string(b); err == nil && strings.HasPrefix(s[strings.LastIndexByte(s, ')')+1:], " Z") {
			return true
		}
	}
	return false
}

func TestCloseAndReap(t *testing.T) {
	p, cli := newProvider(t, Options{})
	sb := create(t, p, sandbox.Limits{})
	id, ws := sb.ID(), sb.Workspace()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := cli.ContainerInspect(t.Context(), id); err == nil {
		t.Error("container still exists after Close")
	}
	if _, err := os.Stat(ws); !os.IsNotExist(err) {
		t.Errorf("workspace still exists after Close: %v", err)
	}
	if left := forktest.Mounts(t, ws); len(left) > 0 {
		t.Errorf("workspace still mounted after Close: %v", left)
	}

	// An orphan of a dead server, a container of this live server, and a
	// container mlab did not create.
	orphan := create(t, p, sandbox.Limits{})
	live := create(t, p, sandbox.Limits{})
	// Another live server: it holds its lock, whatever its pid means here.
	other, err := proc.Acquire(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	// Its pid names no process here (another PID namespace, say): the lock
	// decides.
	p.server, p.lock = "999999999:1", other.ID()
	otherLive := create(t, p, sandbox.Limits{})
	// A dead server: its lock is gone.
	dead, err := proc.Acquire(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dead.Release()
	p.server, p.lock = proc.Legacy(), dead.ID()
	orphan2 := create(t, p, sandbox.Limits{})
	// An old server's container, with only a "<pid>:<start>" ID, judged
	// by /proc.
	p.server, p.lock = "999999999:1", ""
	orphan3 := create(t, p, sandbox.Limits{})
	foreign, err := cli.ContainerCreate(t.Context(), &container.Config{Image: p.opts.Image, Cmd: []string{"true"},
		Labels: map[string]string{"mlab.session": "not-ours"}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), foreign.ID, container.RemoveOptions{Force: true}) })
	_ = orphan

	reaped, err := Reap(t.Context(), cli, false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range reaped {
		ids = append(ids, r.ID)
	}
	for _, gone := range []*Sandbox{orphan2, orphan3} {
		if !slices.Contains(ids, shortID(gone.ID())) {
			t.Errorf("orphan of a dead server not reaped: %v", ids)
		}
	}
	for _, keep := range []string{orphan.ID(), live.ID(), otherLive.ID(), foreign.ID} {
		if slices.Contains(ids, shortID(keep)) {
			t.Errorf("reaped %s, which belongs to a live server or not to mlab", shortID(keep))
		}
		if _, err := cli.ContainerInspect(t.Context(), keep); err != nil {
			t.Errorf("container %s gone: %v", shortID(keep), err)
		}
	}
	if _, err := os.Stat(orphan2.Workspace()); !os.IsNotExist(err) {
		t.Errorf("orphan workspace not removed: %v", err)
	}
}

// TestMain fails the package when a test leaves an mlab container behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err == nil {
		if left := leftovers(cli); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "containers left behind by this test binary: %v\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

func leftovers(cli *client.Client) []string {
	id := proc.Self()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelLock+"="+id))})
	if err != nil {
		return nil
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, shortID(c.ID))
	}
	return ids
}

func TestNamespacePid(t *testing.T) {
	if pid, ok := namespacePid(os.Getpid()); !ok || pid <= 0 {
		t.Errorf("namespacePid(self) = %d, %v", pid, ok)
	}
	for _, bad := range []int{0, -1, 1 << 30} {
		if _, ok := namespacePid(bad); ok {
			t.Errorf("namespacePid(%d) succeeded", bad)
		}
	}
}

// lostCreate is an engine whose create request is cut short after the
// engine made the container: the caller gets an error and no ID.
type lostCreate struct{ API }

func (l lostCreate) ContainerCreate(ctx context.Context, config *container.Config, host *container.HostConfig, net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error) {
	if _, err := l.API.ContainerCreate(ctx, config, host, net, platform, name); err != nil {
		return container.CreateResponse{}, err
	}
	return container.CreateResponse{}, context.Canceled
}

// TestCreateCutShort: a container made by a create request whose answer was
// lost (a shutdown cancelling it) is found and removed, not leaked.
func TestCreateCutShort(t *testing.T) {
	p, cli := newProvider(t, Options{})
	p.opts.Client = lostCreate{cli}
	if _, err := p.Create(t.Context(), sandbox.Spec{Run: "cut-short"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("create: %v, want the cancellation", err)
	}
	list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelRun+"=cut-short"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("%d containers of the cut-short create are left", len(list))
	}
}
