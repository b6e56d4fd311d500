package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/sandbox"
)

// The attacks below run agent-style scripts against the jail. Their limits
// are small (64 processes, 64 MiB of memory, a 16 MiB workspace) so that a
// regression cannot hurt the machine running them.

const hostileWorkspace = 16 << 20

func hostileSandbox(t *testing.T, limits sandbox.Limits) *Sandbox {
	t.Helper()
	if _, err := probeBwrap(t.Context()); err != nil {
		t.Skipf("bubblewrap not usable on this host: %v", err)
	}
	p, err := New(t.Context(), Options{Root: t.TempDir(), Isolation: IsolationBwrap, WorkspaceBytes: hostileWorkspace, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	if limits.Processes == 0 {
		limits.Processes = 64
	}
	if limits.MemoryBytes == 0 {
		limits.MemoryBytes = 256 << 20
	}
	sb, err := p.Create(t.Context(), sandbox.Spec{Limits: limits})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb.(*Sandbox)
}

// hostUIDs maps the ids of a /proc/<pid>/status Uid line through uid_map.
func hostUIDs(t *testing.T, status, uidMap string) []int64 {
	t.Helper()
	var ids []int64
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			for _, f := range strings.Fields(v) {
				id, _ := strconv.ParseInt(f, 10, 64)
				ids = append(ids, id)
			}
		}
	}
	if len(ids) != 4 {
		t.Fatalf("no Uid line in %q", status)
	}
	var host []int64
	for _, id := range ids {
		mapped := int64(-1)
		for _, line := range strings.Split(strings.TrimSpace(uidMap), "\n") {
			var in, out, n int64
			if _, err := fmt.Sscan(line, &in, &out, &n); err == nil && id >= in && id < in+n {
				mapped = out + id - in
			}
		}
		host = append(host, mapped)
	}
	return host
}

// numericMarker is a unique command-line argument that sleep accepts as a
// number of seconds, so that a test can find its sleepers on the host.
func numericMarker() string {
	return fmt.Sprintf("%d.%d", time.Now().UnixNano()%1e9, os.Getpid())
}

func TestHostileUIDMap(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	res := runPy(t, sb, `print(open('/proc/self/status').read())
print('MAP')
print(open('/proc/self/uid_map').read())
`, 30*time.Second)
	status, uidMap, ok := strings.Cut(res.Stdout, "MAP\n")
	if !ok {
		t.Fatalf("probe failed: %+v", res)
	}
	if os.Geteuid() == 0 {
		// No user namespace: the map is the identity, and every id of
		// the script must be the sandbox's own.
		for _, id := range hostUIDs(t, status, uidMap) {
			if id == 0 || id == -1 {
				t.Errorf("script runs as host uid %d (status %q, uid_map %q)", id, status, uidMap)
			}
		}
	} else if want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", os.Getuid(), os.Getuid(), os.Getuid(), os.Getuid()); !strings.Contains(status, want) {
		// Unprivileged bubblewrap nests two user namespaces, so the map
		// read inside is one level of two; TestHostileUIDFromHost looks
		// from the host.
		t.Errorf("script does not run as the server's uid: %s", status)
	}
	if !strings.Contains(status, "CapEff:\t0000000000000000") {
		t.Errorf("script has capabilities: %s", status)
	}
	if uid, _ := sb.Owner(); os.Geteuid() == 0 && !strings.Contains(status, fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid)) {
		t.Errorf("script does not run as the sandbox's own uid %d: %s", uid, status)
	}
}

// TestHostileUIDFromHost looks at a script's process from the host side.
func TestHostileUIDFromHost(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	marker := numericMarker()
	done := make(chan sandbox.ExecResult, 1)
	go func() {
		res, _ := sb.Exec(context.Background(), sandbox.ExecRequest{Args: []string{"sleep", "30", marker}, Timeout: 60 * time.Second})
		done <- res
	}()
	var procs []string
	deadline := time.Now().Add(20 * time.Second)
	for len(procs) == 0 && time.Now().Before(deadline) {
		procs = processesWith(marker)
		time.Sleep(20 * time.Millisecond)
	}
	if len(procs) == 0 {
		t.Fatal("script process not found on the host")
	}
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				for _, f := range strings.Fields(v) {
					if f == "0" {
						t.Errorf("script process %s has host uid 0: %s", p, line)
					}
				}
			}
		}
	}
	sb.Close()
	<-done
}

func TestHostileCorePattern(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	before, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); string(now) != string(before) {
			t.Errorf("host core_pattern changed to %q; restoring %q", now, before)
			_ = os.WriteFile("/proc/sys/kernel/core_pattern", before, 0)
		}
	})
	// Each attack writes back the value it reads, so that even a success
	// leaves the host as it was; the exit status tells success.
	tests := []struct{ name, code string }{
		{"direct", `v = open('/proc/sys/kernel/core_pattern').read()
open('/proc/sys/kernel/core_pattern', 'w').write(v)
print('WROTE')`},
		{"new user namespace", `import subprocess, sys
r = subprocess.run(['unshare', '--user', '--map-root-user', '--mount', '--pid', '--fork', '--mount-proc',
    'sh', '-c', 'cat /proc/sys/kernel/core_pattern > /tmp/v && cat /tmp/v > /proc/sys/kernel/core_pattern && echo WROTE'],
    capture_output=True, text=True)
print(r.stdout, r.stderr)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runPy(t, sb, tc.code, 30*time.Second)
			if strings.Contains(res.Stdout, "WROTE") {
				t.Errorf("script wrote kernel.core_pattern: %+v", res)
			}
		})
	}
}

func TestHostileMountinfo(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	if !sb.tmpfs {
		t.Skip("workspace is a bind mount of a host folder here (not root): its path shows in mountinfo")
	}
	res := runPy(t, sb, "print(open('/proc/self/mountinfo').read())", 30*time.Second)
	for _, leak := range []string{sb.Workspace(), sb.dir, sb.p.root} {
		if strings.Contains(res.Stdout, leak) {
			t.Errorf("mountinfo shows host path %s:\n%s", leak, res.Stdout)
		}
	}
}

// TestHostileWritableHost checks that no host filesystem but the workspace
// is writable inside the jail.
func TestHostileWritableHost(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	res := runPy(t, sb, "print(open('/proc/self/mountinfo').read())", 30*time.Second)
	virtual := map[string]bool{"tmpfs": true, "proc": true, "devtmpfs": true, "devpts": true, "mqueue": true, "sysfs": true}
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(pf) < 6 || len(sf) < 1 {
			continue
		}
		point, opts, fstype := pf[4], pf[5], sf[0]
		if virtual[fstype] || point == mountPoint || !strings.HasPrefix(opts, "rw") {
			continue
		}
		t.Errorf("host filesystem writable in the jail: %s", line)
	}
	for _, path := range []string{"/usr/x", "/etc/x", "/x", "/proc/sys/vm/drop_caches"} {
		res := runPy(t, sb, fmt.Sprintf("open(%q, 'w').write('3')\nprint('WROTE')", path), 30*time.Second)
		if strings.Contains(res.Stdout, "WROTE") {
			t.Errorf("script wrote %s", path)
		}
	}
}

func TestHostileForkBomb(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{Processes: 64})
	res := runPy(t, sb, `import os
while True:
    os.fork()
`, 60*time.Second)
	if res.TimedOut || res.ExitCode == 0 {
		t.Fatalf("fork bomb was not stopped by the process limit: %+v", res)
	}
	if !strings.Contains(res.Stderr, "Resource temporarily unavailable") {
		t.Errorf("no clear reason in stderr: %q", res.Stderr)
	}
	if sb.cg != nil {
		if pids, _ := sb.cg.procs(); len(pids) > 1 {
			t.Errorf("processes left in the cgroup besides init: %v", pids)
		}
	}
	// The sandbox still works afterwards.
	if res := runPy(t, sb, "print('ok')", 30*time.Second); res.Stdout != "ok\n" {
		t.Errorf("sandbox broken after the fork bomb: %+v", res)
	}
}

func TestHostileMemoryHog(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{MemoryBytes: 64 << 20})
	res := runPy(t, sb, "s = 'x' * (512 << 20)\nprint('allocated')", 60*time.Second)
	if !res.OOM || res.ExitCode == 0 || res.Stdout != "" {
		t.Fatalf("want OOM, got %+v", res)
	}
	if res := runPy(t, sb, "print('ok')", 30*time.Second); res.Stdout != "ok\n" {
		t.Errorf("sandbox broken after the memory hog: %+v", res)
	}
}

func TestHostileDiskFiller(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	if !sb.tmpfs {
		t.Skip("no workspace quota here (not root)")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(sb.Workspace(), &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("workspace is not a tmpfs: type %x, %v", st.Type, err)
	}
	for _, dir := range []string{".", "/tmp", "/dev/shm"} {
		t.Run(dir, func(t *testing.T) {
			res := runPy(t, sb, fmt.Sprintf(`import os, errno
n = 0
try:
    with open(os.path.join(%q, 'fill'), 'wb') as f:
        while True:
            f.write(b'x' * (1 << 20))
            f.flush()
            n += 1
except OSError as e:
    print(errno.errorcode[e.errno], n)
os.remove(os.path.join(%q, 'fill'))
`, dir, dir), 60*time.Second)
			var code string
			var mib int
			if _, err := fmt.Sscan(res.Stdout, &code, &mib); err != nil || code != "ENOSPC" {
				t.Fatalf("want ENOSPC, got %+v", res)
			}
			if mib > hostileWorkspace>>20 {
				t.Errorf("wrote %d MiB past a %d MiB quota", mib, hostileWorkspace>>20)
			}
		})
	}
}

func TestHostileEscapedChildren(t *testing.T) {
	tests := []struct {
		name    string
		tail    string // what the script does after starting its children
		timeout time.Duration
		cancel  bool
	}{
		{"exit", "print('started', flush=True)", 30 * time.Second, false},
		{"timeout", "print('started', flush=True)\nwhile True: time.sleep(1)", 2 * time.Second, false},
		{"cancel", "print('started', flush=True)\nwhile True: time.sleep(1)", 60 * time.Second, true},
	}
	sb := hostileSandbox(t, sandbox.Limits{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			marker := numericMarker()
			code := fmt.Sprintf(`import os, subprocess, time
subprocess.Popen(['setsid', 'sleep', '300', %[1]q], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', '301', %[1]q])
    os._exit(0)
# Both sleepers must be running before the script goes on.
def count():
    n = 0
    for pid in os.listdir('/proc'):
        try:
            n += pid.isdigit() and %[1]q.encode() in open('/proc/%%s/cmdline' %% pid, 'rb').read()
        except OSError:
            pass
    return n
while count() < 2:
    time.sleep(0.01)
%[2]s
`, marker, tc.tail)
			if err := os.WriteFile(filepath.Join(sb.Workspace(), "s.py"), []byte(code), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancel {
				go func() {
					deadline := time.Now().Add(20 * time.Second)
					for len(processesWith(marker)) < 2 && time.Now().Before(deadline) {
						time.Sleep(20 * time.Millisecond)
					}
					cancel()
				}()
			}
			res, err := sb.Exec(ctx, sandbox.ExecRequest{Args: []string{python, "-u", "s.py"}, Timeout: tc.timeout})
			if err != nil || (!tc.cancel && res.Stdout != "started\n") {
				t.Fatalf("exec: %v %+v", err, res)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(processesWith(marker)) > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if left := processesWith(marker); len(left) > 0 {
				t.Errorf("processes survived the exec: %v", left)
			}
		})
	}
}

// TestHostileInit attacks the jail's init, which runs as root (as root) or
// as the script's own uid (otherwise), through what the script can see of
// it in /proc.
func TestHostileInit(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	res := runPy(t, sb, `import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
found = []
for pid in os.listdir('/proc'):
    if not pid.isdigit():
        continue
    try:
        cmd = open('/proc/%s/cmdline' % pid, 'rb').read()
    except OSError:
        continue
    if b'`+initArg+`' not in cmd:
        continue
    found.append(pid)
    try:
        fd = os.open('/proc/' + pid, os.O_RDONLY | os.O_DIRECTORY)
        # pidfd_send_signal(fd, SIGKILL, NULL, 0)
        if libc.syscall(424, fd, signal.SIGKILL, None, 0) == 0:
            print('SIGNALED', pid)
    except OSError:
        pass
    for f in ('mem', 'environ', 'fd/3'):
        try:
            open('/proc/%s/%s' % (pid, f), 'rb').close()
            print('OPENED', pid, f)
        except OSError:
            pass
    # PTRACE_ATTACH by the pid the script sees.
    if libc.ptrace(16, int(pid), None, None) == 0:
        print('TRACED', pid)
    try:
        os.kill(int(pid), signal.SIGKILL)
    except OSError:
        pass
print('FOUND', len(found))
`, 30*time.Second)
	if !strings.Contains(res.Stdout, "FOUND 1") {
		t.Fatalf("the script should see exactly one init in /proc: %+v", res)
	}
	for _, bad := range []string{"SIGNALED", "OPENED", "TRACED"} {
		if strings.Contains(res.Stdout, bad) {
			t.Errorf("script reached init: %s", res.Stdout)
		}
	}
	// Init survived: the next exec runs in the same jail.
	if res := runPy(t, sb, "print('ok')", 30*time.Second); res.Stdout != "ok\n" {
		t.Errorf("jail broken after the attack: %+v", res)
	}
	if len(sb.jails) != 1 {
		t.Errorf("jail restarted: %d jails", len(sb.jails))
	}
}
