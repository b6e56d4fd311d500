package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/sandbox"
)

const python = "/usr/bin/python3"

func newSandbox(t *testing.T, iso Isolation, limits sandbox.Limits) sandbox.Sandbox {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is required: %v", python, err)
	}
	p, err := New(t.Context(), Options{Root: t.TempDir(), Isolation: iso, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}
	files := t.TempDir()
	if err := os.WriteFile(filepath.Join(files, "hello.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	sb, err := p.Create(t.Context(), sandbox.Spec{Files: files, Limits: limits})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

// isolations lists the modes this host supports; bwrap is only tested where it works.
func isolations(t *testing.T) []Isolation {
	modes := []Isolation{IsolationNone}
	if _, err := probeBwrap(t.Context()); err == nil {
		modes = append(modes, IsolationBwrap)
	} else {
		t.Logf("bubblewrap not usable here, testing unconfined mode only: %v", err)
	}
	return modes
}

// execCgroups reports whether sb puts each exec in a cgroup of its own.
func execCgroups(sb sandbox.Sandbox) bool {
	s, ok := sb.(*Sandbox)
	return ok && s.cg != nil && s.cg.execDir != ""
}

func runPy(t *testing.T, sb sandbox.Sandbox, code string, timeout time.Duration) sandbox.ExecResult {
	t.Helper()
	if err := os.WriteFile(filepath.Join(sb.Workspace(), "s.py"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{python, "-u", "s.py"}, Timeout: timeout})
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	return res
}

func TestExec(t *testing.T) {
	for _, iso := range isolations(t) {
		t.Run(string(iso), func(t *testing.T) {
			tests := []struct {
				name   string
				code   string
				exit   int
				stdout string
				stderr string
			}{
				{"reads workspace", "print(open('hello.txt').read())", 0, "hi\n", ""},
				{"imports numpy", "import numpy; print(numpy.arange(4).sum())", 0, "6\n", ""},
				{"exit code", "import sys; sys.exit(3)", 3, "", ""},
				{"traceback", "raise ValueError('boom')", 1, "", "ValueError: boom"},
				{"writes files", "open('out.txt','w').write('x'); print(open('out.txt').read())", 0, "x\n", ""},
				// psutil and friends read /proc/<getpid()>: it must be the script.
				{"own pid in /proc", "import os; print(os.readlink('/proc/self') == str(os.getpid()))", 0, "True\n", ""},
			}
			sb := newSandbox(t, iso, sandbox.Limits{})
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					if tc.name == "own pid in /proc" && iso == IsolationBwrap && !execCgroups(sb) {
						t.Skip("without cgroups, each script has a pid namespace of its own and is pid 1 in it")
					}
					res := runPy(t, sb, tc.code, 30*time.Second)
					if res.ExitCode != tc.exit || res.Stdout != tc.stdout || !strings.Contains(res.Stderr, tc.stderr) {
						t.Errorf("got exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
							res.ExitCode, res.Stdout, res.Stderr, tc.exit, tc.stdout, tc.stderr)
					}
				})
			}
		})
	}
}

func TestConfinement(t *testing.T) {
	if _, err := probeBwrap(t.Context()); err != nil {
		t.Skipf("bubblewrap not usable on this host: %v", err)
	}
	sb := newSandbox(t, IsolationBwrap, sandbox.Limits{})
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("hidden"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, code string }{
		{"host file", fmt.Sprintf("print(open(%q).read())", secret)},
		{"etc passwd", "print(open('/etc/passwd').read())"},
		{"network", "import socket; s=socket.create_connection(('1.1.1.1', 53), timeout=3); print('connected')"},
		{"write system", "open('/usr/evil','w').write('x'); print('wrote')"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runPy(t, sb, tc.code, 30*time.Second)
			if res.ExitCode == 0 {
				t.Errorf("escape succeeded: stdout %q", res.Stdout)
			}
		})
	}
}

// processesWith lists host processes whose command line contains marker.
func processesWith(marker string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), marker) {
			found = append(found, f)
		}
	}
	return found
}

func TestTimeoutKillsTree(t *testing.T) {
	for _, iso := range isolations(t) {
		t.Run(string(iso), func(t *testing.T) {
			sb := newSandbox(t, iso, sandbox.Limits{})
			marker := fmt.Sprintf("%d.%d", time.Now().UnixNano()%100000, os.Getpid())
			code := fmt.Sprintf(`import subprocess, time
subprocess.Popen(['sleep', '%s'])
print('started', flush=True)
while True: time.sleep(1)
`, marker)
			res := runPy(t, sb, code, 2*time.Second)
			if !res.TimedOut || res.Stdout != "started\n" {
				t.Fatalf("want timeout with partial output, got %+v", res)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(processesWith(marker)) > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if left := processesWith(marker); len(left) > 0 {
				t.Errorf("processes left behind: %v", left)
			}
		})
	}
}

func TestCloseKillsRunning(t *testing.T) {
	sb := newSandbox(t, IsolationNone, sandbox.Limits{})
	// Close must kill a script that runs, so the test waits until it does:
	// on a loaded machine the exec may not even have begun after a fixed
	// wait, and Close would then refuse it instead.
	started := make(chan struct{})
	var once sync.Once
	done := make(chan sandbox.ExecResult, 1)
	go func() {
		res, _ := sb.Exec(t.Context(), sandbox.ExecRequest{
			Args:   []string{python, "-u", "-c", "import time; print('up', flush=True); time.sleep(60)"},
			Stdout: writerFunc(func([]byte) { once.Do(func() { close(started) }) }),
		})
		done <- res
	}()
	select {
	case <-started:
	case res := <-done:
		t.Fatalf("exec ended before Close: %+v", res)
	case <-time.After(time.Minute):
		t.Fatal("script did not start")
	}
	if err := sb.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case res := <-done:
		if res.ExitCode == 0 || res.OOM {
			t.Errorf("killed exec reported %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exec still running after Close")
	}
	if err := sb.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := os.Stat(sb.Workspace()); !os.IsNotExist(err) {
		t.Errorf("workspace still exists after close: %v", err)
	}
	if _, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"true"}}); err == nil {
		t.Error("exec on closed sandbox succeeded")
	}
}

func TestOutputCapped(t *testing.T) {
	sb := newSandbox(t, IsolationNone, sandbox.Limits{OutputBytes: 1000})
	res := runPy(t, sb, "import sys\nfor i in range(100000): sys.stdout.write('line %d\\n' % i)\nprint('END')", 30*time.Second)
	if !res.Truncated || len(res.Stdout) > 1200 {
		t.Fatalf("output not capped: truncated=%v len=%d", res.Truncated, len(res.Stdout))
	}
	if !strings.HasPrefix(res.Stdout, "line 0\n") || !strings.HasSuffix(res.Stdout, "END\n") {
		t.Errorf("head or tail lost: %q", res.Stdout)
	}
	if res.StdoutBytes < 1_000_000 {
		t.Errorf("StdoutBytes = %d, want the full count", res.StdoutBytes)
	}
}

func TestMemoryLimit(t *testing.T) {
	sb := newSandbox(t, IsolationNone, sandbox.Limits{MemoryBytes: 512 << 20})
	res := runPy(t, sb, "b = bytearray(2 << 30)\nprint('allocated')", 30*time.Second)
	if !res.OOM || res.ExitCode == 0 {
		t.Errorf("want OOM, got %+v", res)
	}
}

func TestGPUBinds(t *testing.T) {
	tests := []struct {
		gpus string
		want []string
	}{
		{"", nil},
		{"0", []string{"/dev/nvidia0", "/dev/nvidiactl", "/sys"}},
		{"1,3", []string{"/dev/nvidia1", "/dev/nvidia3", "/dev/nvidia-uvm"}},
	}
	for _, tc := range tests {
		got := strings.Join(gpuBinds(tc.gpus), " ")
		if tc.want == nil && got != "" {
			t.Errorf("gpuBinds(%q) = %s, want nothing", tc.gpus, got)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("gpuBinds(%q) = %s, missing %s", tc.gpus, got, w)
			}
		}
		if strings.Contains(got, "/dev/nvidia2") {
			t.Errorf("gpuBinds(%q) exposes an unleased GPU: %s", tc.gpus, got)
		}
	}
}

func TestCloseKillsRunningJail(t *testing.T) {
	for _, iso := range isolations(t) {
		t.Run(string(iso), func(t *testing.T) {
			sb := newSandbox(t, iso, sandbox.Limits{})
			started := make(chan struct{})
			var once sync.Once
			done := make(chan sandbox.ExecResult, 1)
			go func() {
				res, _ := sb.Exec(t.Context(), sandbox.ExecRequest{
					Args:   []string{python, "-u", "-c", "import time; print('up', flush=True); time.sleep(60)"},
					Stdout: writerFunc(func([]byte) { once.Do(func() { close(started) }) }),
				})
				done <- res
			}()
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				t.Fatal("script did not start")
			}
			if err := sb.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			select {
			case res := <-done:
				if res.ExitCode == 0 || res.OOM {
					t.Errorf("killed exec reported %+v", res)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("exec still running after Close")
			}
			if _, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"true"}}); err == nil {
				t.Error("exec on closed sandbox succeeded")
			}
		})
	}
}

// writerFunc calls f on every write.
type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) {
	if f != nil {
		f(p)
	}
	return len(p), nil
}

// TestConcurrentExecs checks that each exec is tracked on its own: a timeout
// kills one exec's processes and not those of another in the same sandbox.
func TestConcurrentExecs(t *testing.T) {
	for _, iso := range isolations(t) {
		t.Run(string(iso), func(t *testing.T) {
			sb := newSandbox(t, iso, sandbox.Limits{})
			long := make(chan sandbox.ExecResult, 1)
			go func() {
				res, _ := sb.Exec(t.Context(), sandbox.ExecRequest{
					Args: []string{python, "-u", "-c", "import time; time.sleep(3); print('long done')"}, Timeout: 60 * time.Second,
				})
				long <- res
			}()
			short, err := sb.Exec(t.Context(), sandbox.ExecRequest{
				Args: []string{python, "-u", "-c", "import time; time.sleep(60)"}, Timeout: time.Second,
			})
			if err != nil || !short.TimedOut {
				t.Fatalf("short exec: %v %+v", err, short)
			}
			if res := <-long; res.ExitCode != 0 || res.Stdout != "long done\n" {
				t.Errorf("the other exec was hurt by the timeout: %+v", res)
			}
		})
	}
}

// TestExecInput covers stdin from a reader and an argument list larger than
// one message to the jail's init.
func TestExecInput(t *testing.T) {
	for _, iso := range isolations(t) {
		t.Run(string(iso), func(t *testing.T) {
			sb := newSandbox(t, iso, sandbox.Limits{})
			res, err := sb.Exec(t.Context(), sandbox.ExecRequest{
				Args:  []string{python, "-c", "import sys; print(sys.stdin.read().upper())"},
				Stdin: strings.NewReader("piped"),
			})
			if err != nil || res.Stdout != "PIPED\n" {
				t.Errorf("stdin: %v %+v", err, res)
			}
			// Past one packet to init (64 KiB), within one argument's limit.
			big := strings.Repeat("x", 100<<10)
			res, err = sb.Exec(t.Context(), sandbox.ExecRequest{
				Args: []string{python, "-c", "import sys; print(sum(map(len, sys.argv[1:])))", big, big},
				Env:  []string{"BIG=" + big[:1000]},
			})
			if err != nil || res.Stdout != fmt.Sprintf("%d\n", 2*len(big)) {
				t.Errorf("large arguments: %v %+v", err, res)
			}
			res, err = sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"no-such-interpreter"}})
			// An error (the jail) or exit 127 (prlimit, unconfined).
			if err == nil && res.ExitCode != 127 {
				t.Errorf("missing command ran: %+v", res)
			}
		})
	}
}
