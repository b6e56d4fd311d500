package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mlab/mlab/internal/proc"
	"github.com/mlab/mlab/internal/testenv"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox/docker"
)

// httpServer is one `mlab serve --transport http|sse` process.
type httpServer struct {
	base, runsDir, tasksDir string
	cmd                     *exec.Cmd
	exited                  chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHTTP runs the server and waits until /healthz answers. runsDir may be
// "" for a fresh one.
func startHTTP(t *testing.T, backend, transport, runsDir string, extra ...string) *httpServer {
	t.Helper()
	if runsDir == "" {
		runsDir = t.TempDir()
	}
	s := &httpServer{runsDir: runsDir, tasksDir: t.TempDir(), exited: make(chan struct{})}
	writeTree(t, filepath.Join(s.tasksDir, "fixture"), fixtureTask)
	// The session limit derived from this machine is not what most tests
	// are about; those about limits set them.
	if indexOf(extra, "--max-sessions") < 0 {
		extra = append(extra, "--max-sessions", "64", "--memory-budget", "0")
	}
	addr := freeAddr(t)
	if i := indexOf(extra, "--addr"); i >= 0 {
		addr = extra[i+1]
	} else {
		extra = append(extra, "--addr", addr)
	}
	s.base = "http://" + addr
	args := append([]string{"serve", "--transport", transport, "--tasks-dir", s.tasksDir, "--runs-dir", runsDir,
		"--cache-dir", t.TempDir(), "--log-level", logLevel(), "--backend", backend, "--image", testImage()}, extra...)
	s.cmd = exec.Command(binary, args...)
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			t.Errorf("server did not stop within 30 s of SIGTERM")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited: %v", s.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not healthy after 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// connect opens an MCP session at path ("/mcp", "/sse", "/tasks/x/mcp").
func (s *httpServer) connect(t *testing.T, path, token string) (*harness, error) {
	t.Helper()
	client := &http.Client{}
	if token != "" {
		client.Transport = bearer{token}
	}
	var transport mcp.Transport = &mcp.StreamableClientTransport{Endpoint: s.base + path, HTTPClient: client, MaxRetries: -1}
	if strings.HasSuffix(path, "/sse") {
		transport = &mcp.SSEClientTransport{Endpoint: s.base + path, HTTPClient: client}
	}
	h := &harness{runsDir: s.runsDir, tasksDir: s.tasksDir, progress: make(chan string, 100)}
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-http", Version: "1"}, nil)
	// The SSE transport keeps the connect context for its event stream, so
	// it lives as long as the test.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cs, err := c.Connect(ctx, transport, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { cs.Close() })
	h.cs = cs
	return h, nil
}

func (s *httpServer) mustConnect(t *testing.T, path string) *harness {
	t.Helper()
	h, err := s.connect(t, path, "")
	if err != nil {
		t.Fatalf("connect %s: %v", path, err)
	}
	return h
}

// transports pairs each transport with the endpoint paths it serves.
var transports = []struct{ name, lobby, task string }{
	{"http", "/mcp", "/tasks/fixture/mcp"},
	{"sse", "/sse", "/tasks/fixture/sse"},
}

func TestHTTPTransports(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, backend string) {
				s := startHTTP(t, backend, tr.name, "")
				// A per-task URL pins the task.
				h := s.mustConnect(t, tr.task)
				if !strings.Contains(h.cs.InitializeResult().Instructions, "largest number") {
					t.Errorf("task endpoint instructions: %q", h.cs.InitializeResult().Instructions)
				}
				h.mustOK(t, "write_file", map[string]any{"file_name": "score.txt", "content": "0.7"}, "wrote")
				h.mustOK(t, "final_answer", map[string]any{"final_answer": "x"}, "score = 0.7")

				// The lobby lists tasks and starts one with start_task.
				l := s.mustConnect(t, tr.lobby)
				if ins := l.cs.InitializeResult().Instructions; !strings.Contains(ins, "start_task") || !strings.Contains(ins, "fixture") {
					t.Errorf("lobby instructions: %q", ins)
				}
				rr, err := l.cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "mlab://tasks"})
				if err != nil || !strings.Contains(rr.Contents[0].Text, "largest number") || !strings.Contains(rr.Contents[0].Text, "tabular-classification") {
					t.Errorf("tasks resource: %+v, %v", rr, err)
				}
				l.mustFail(t, "list_files", map[string]any{}, "call start_task")
				l.mustFail(t, "start_task", map[string]any{"task": "nope"}, "not found")
				l.mustOK(t, "start_task", map[string]any{"task": "fixture"}, "largest number")
				l.mustFail(t, "start_task", map[string]any{"task": "fixture"}, "already works on task")
				l.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "training")
				l.mustOK(t, "final_answer", map[string]any{"final_answer": "x"}, "score = 0.5")
			})
		})
	}
}

func TestConcurrentSessionsIsolated(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := startHTTP(t, backend, "http", "", "--max-sessions", "40", "--memory-budget", "0")
		const n = 32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- session(t, s, i)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		runs, _ := filepath.Glob(filepath.Join(s.runsDir, "*", "result.json"))
		if len(runs) != n {
			t.Errorf("%d results for %d sessions", len(runs), n)
		}
		for _, p := range runs {
			r, err := runlog.ReadResult(filepath.Dir(p))
			if err != nil || r.Status != runlog.StatusScored {
				t.Errorf("%s: %+v, %v", p, r, err)
			}
		}
	})
}

// session is one agent of TestConcurrentSessionsIsolated: it leaves a secret
// in its workspace, checks no other session's secret is visible to it or its
// scripts, and submits its own number.
func session(t *testing.T, s *httpServer, i int) error {
	h, err := s.connect(t, "/tasks/fixture/mcp", "")
	if err != nil {
		return fmt.Errorf("session %d: connect: %v", i, err)
	}
	call := func(name string, args map[string]any) (string, error) {
		res, err := h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			return "", fmt.Errorf("session %d: %s: %v", i, name, err)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		if res.IsError {
			return text, fmt.Errorf("session %d: %s failed: %s", i, name, text)
		}
		return text, nil
	}
	secret := fmt.Sprintf("secret-of-session-%d", i)
	probe := fmt.Sprintf(`import os
mine = %q
seen = set()
for root, dirs, files in os.walk('/'):
    if root.startswith(('/proc', '/sys', '/dev', '/usr')):
        dirs[:] = []
        continue
    for f in files:
        if f.startswith('secret-of-session-') and f != mine:
            seen.add(os.path.join(root, f))
def cmdline(p):
    try:
        return open('/proc/%%s/cmdline' %% p, 'rb').read().decode(errors='ignore')
    except OSError:
        return ''
# The 32 probes run at the same time: any probe but this one (and the
# sandbox's init, which shows its command line) is another session's.
others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid(), os.getppid()) and 'probe.py' in cmdline(p)]
open('score.txt', 'w').write(str(%d))
print('SEEN', sorted(seen), 'OTHERS', others)
`, secret, i)
	steps := []struct {
		name string
		args map[string]any
		want string
	}{
		{"write_file", map[string]any{"file_name": secret, "content": secret}, "wrote"},
		{"write_file", map[string]any{"file_name": "probe.py", "content": probe}, "wrote"},
		{"execute_script", map[string]any{"script_name": "probe.py"}, "SEEN [] OTHERS []"},
		{"list_files", map[string]any{}, secret},
		{"final_answer", map[string]any{"final_answer": "done"}, fmt.Sprintf("score = %d", i)},
	}
	for _, st := range steps {
		text, err := call(st.name, st.args)
		if err != nil {
			return err
		}
		if !strings.Contains(text, st.want) || (st.name == "list_files" && strings.Count(text, "secret-of-session-") != 1) {
			return fmt.Errorf("session %d: %s = %q, want %q", i, st.name, text, st.want)
		}
	}
	return nil
}

func TestAuthAndOrigin(t *testing.T) {
	const token = "a-long-enough-test-token"
	// Binding beyond loopback without a token is refused.
	out, err := exec.Command(binary, "serve", "--transport", "http", "--addr", "0.0.0.0:0", "--runs-dir", t.TempDir(), "--backend", "local").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a loopback address: set a bearer token") {
		t.Errorf("non-loopback bind without a token: %v %s", err, out)
	}
	s := startHTTP(t, "local", "http", "", "--token", token)
	post := func(token, origin string) int {
		req, _ := http.NewRequest("POST", s.base+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, token, origin string
		want                int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"wrong token", "wrong-token-of-some-length", "", http.StatusUnauthorized},
		{"right token", token, "", http.StatusOK},
		{"loopback origin", token, "http://localhost:6274", http.StatusOK},
		{"foreign origin", token, "http://evil.example", http.StatusForbidden},
		{"rebinding origin", token, "http://attacker.test:8080", http.StatusForbidden},
	}
	for _, tc := range tests {
		if got := post(tc.token, tc.origin); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	if _, err := s.connect(t, "/mcp", ""); err == nil {
		t.Error("a client without the token connected")
	}
	h, err := s.connect(t, "/tasks/fixture/mcp", token)
	if err != nil {
		t.Fatalf("connect with token: %v", err)
	}
	h.mustOK(t, "list_files", map[string]any{}, "train.py")
	resp, err := http.Get(s.base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("healthz must not need the token: %v %v", resp, err)
	}
}

func TestSessionLimitAndIdleTimeout(t *testing.T) {
	s := startHTTP(t, "local", "http", "", "--max-sessions", "1", "--idle-timeout", "2s")
	a := s.mustConnect(t, "/tasks/fixture/mcp")
	a.mustOK(t, "list_files", map[string]any{}, "train.py")
	b := s.mustConnect(t, "/tasks/fixture/mcp")
	b.mustFail(t, "list_files", map[string]any{}, "limit of 1 concurrent sessions")
	// Once the idle session's sandbox is released, another session fits.
	deadline := time.Now().Add(60 * time.Second)
	for {
		text, isErr := b.call(t, "list_files", map[string]any{})
		if !isErr && strings.Contains(text, "train.py") {
			break
		}
		if !strings.Contains(text, "limit of 1 concurrent sessions") || time.Now().After(deadline) {
			t.Fatalf("second session: %q (isError %v), want the limit until the first idles out, then a listing", text, isErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The idle session's transport session went with it: the protocol
	// tells its client that the session is gone.
	if _, err := a.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "session not found") {
		t.Errorf("call of the idled-out session: %v, want session not found", err)
	}
	var aborted int
	results, _ := filepath.Glob(filepath.Join(s.runsDir, "*", "result.json"))
	for _, p := range results {
		if r, err := runlog.ReadResult(filepath.Dir(p)); err == nil && r.Status == runlog.StatusAborted && strings.Contains(r.Error, "idle") {
			aborted++
		}
	}
	if aborted != 1 {
		t.Errorf("%d runs aborted for idleness, want 1", aborted)
	}
}

func TestMetrics(t *testing.T) {
	s := startHTTP(t, "local", "http", "")
	h := s.mustConnect(t, "/tasks/fixture/mcp")
	h.mustOK(t, "list_files", map[string]any{}, "train.py")
	h.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "training")
	h.mustFail(t, "read_file", map[string]any{"file_name": "nope"}, "does not exist")
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mlab_sessions 1`,
		`mlab_tool_calls_total{outcome="ok",tool="list_files"} 1`,
		`mlab_tool_calls_total{outcome="error",tool="read_file"} 1`,
		`mlab_tool_call_seconds_count{tool="execute_script"} 1`,
		`mlab_exec_seconds_count 1`,
		`mlab_gpu_leases 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	var health struct {
		OK       bool `json:"ok"`
		Sessions int  `json:"sessions"`
	}
	resp, err = http.Get(s.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if !health.OK || health.Sessions != 1 {
		t.Errorf("healthz = %+v", health)
	}
}

func TestHTTPShutdownAndCrashRecovery(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		runsDir := t.TempDir()
		// SIGTERM: running scripts stop, the episode is recorded as aborted.
		s := startHTTP(t, backend, "http", runsDir)
		h := s.mustConnect(t, "/tasks/fixture/mcp")
		h.mustOK(t, "write_file", map[string]any{"file_name": "sleep.py", "content": "import time\ntime.sleep(300)\n"}, "wrote")
		go h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": "sleep.py"}})
		time.Sleep(time.Second)
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			t.Fatal("server still running 30 s after SIGTERM")
		}
		results, _ := filepath.Glob(filepath.Join(runsDir, "*", "result.json"))
		if len(results) != 1 {
			t.Fatalf("results: %v", results)
		}
		if r, err := runlog.ReadResult(filepath.Dir(results[0])); err != nil || r.Status != runlog.StatusAborted || !strings.Contains(r.Error, "server stopped") {
			t.Errorf("after SIGTERM: %+v, %v", r, err)
		}

		// kill -9: the next server marks the run aborted and reaps its sandbox.
		s2 := startHTTP(t, backend, "http", runsDir)
		h2 := s2.mustConnect(t, "/tasks/fixture/mcp")
		h2.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "training")
		s2.cmd.Process.Kill()
		<-s2.exited
		var crashed string
		results, _ = filepath.Glob(filepath.Join(runsDir, "*", "result.json"))
		for _, p := range results {
			if r, _ := runlog.ReadResult(filepath.Dir(p)); r.Status == runlog.StatusRunning {
				crashed = filepath.Dir(p)
			}
		}
		if crashed == "" {
			t.Fatal("no run left running by kill -9")
		}
		scratch := scratchOf(s2.cmd.Process.Pid)
		if scratch == "" {
			t.Error("no scratch folder of the killed server found")
		}
		startHTTP(t, backend, "http", runsDir)
		if _, err := os.Stat(scratch); !os.IsNotExist(err) {
			t.Errorf("the killed server's scratch folder %s (local workspaces) survived the restart: %v", scratch, err)
		}
		r, err := runlog.ReadResult(crashed)
		if err != nil || r.Status != runlog.StatusAborted || !strings.Contains(r.Error, "stopped unexpectedly") {
			t.Errorf("after restart: %+v, %v", r, err)
		}
		if trace, err := os.ReadFile(filepath.Join(crashed, "trace.jsonl")); err != nil || !strings.Contains(string(trace), "execute_script") {
			t.Errorf("trace of the crashed run: %q, %v", trace, err)
		}
		if backend == "docker" {
			list, err := testenv.Docker(t).ContainerList(t.Context(), container.ListOptions{All: true,
				Filters: filters.NewArgs(filters.Arg("label", docker.LabelRun+"="+r.RunID))})
			if err != nil || len(list) > 0 {
				t.Errorf("container of the crashed run still there after restart: %d, %v", len(list), err)
			}
		}
	})
}

func TestInspectorCLI(t *testing.T) {
	npx, err := exec.LookPath("npx")
	if err != nil {
		t.Skip("npx not installed: the official inspector check needs Node.js")
	}
	s := startHTTP(t, "local", "http", "")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) string {
		cmd := exec.CommandContext(ctx, npx, append([]string{"-y", "@modelcontextprotocol/inspector", "--cli", s.base + "/tasks/fixture/mcp", "--transport", "http"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			// npm being unreachable means the inspector is not available here.
			for _, netErr := range []string{"ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "ECONNREFUSED", "ENETUNREACH"} {
				if strings.Contains(string(out), netErr) {
					t.Skipf("the inspector package cannot be fetched from npm here (%s): %s", netErr, out)
				}
			}
			t.Fatalf("inspector %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("--method", "tools/list"); !strings.Contains(out, "execute_script") || !strings.Contains(out, "final_answer") {
		t.Errorf("inspector tools/list: %s", out)
	}
	if out := run("--method", "tools/call", "--tool-name", "list_files"); !strings.Contains(out, "train.py") {
		t.Errorf("inspector tools/call list_files: %s", out)
	}
}

// scratchOf finds the scratch folder the server with pid made.
func scratchOf(pid int) string {
	owners, _ := filepath.Glob(filepath.Join(os.TempDir(), scratchPrefix+"*", proc.OwnerFile))
	for _, f := range owners {
		if owner, err := proc.Owner(filepath.Dir(f)); err == nil && proc.PID(owner) == pid && !strings.Contains(f, "submission") {
			return filepath.Dir(f)
		}
	}
	return ""
}

// A session whose memory would not fit in what the machine sets aside for
// sandboxes is refused with a clear message, below the session limit.
func TestHostileMemoryBudget(t *testing.T) {
	s := startHTTP(t, "local", "http", "", "--max-sessions", "8", "--memory", "1024", "--memory-budget", "1536")
	a := s.mustConnect(t, "/tasks/fixture/mcp")
	a.mustOK(t, "list_files", map[string]any{}, "train.py")
	b := s.mustConnect(t, "/tasks/fixture/mcp")
	b.mustFail(t, "list_files", map[string]any{}, "no memory for another session")
}

// SIGTERM while final_answer's eval runs: the eval stops, its sandbox (a
// container on docker) and the submission copy are removed, and the episode
// is recorded as aborted, not left running.
func TestHostileSignalDuringEval(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := startHTTP(t, backend, "http", "")
		marker := fmt.Sprintf("%d", 800000+os.Getpid()%100000+len(backend))
		slow := maps.Clone(fixtureTask)
		slow["scripts/eval.py"] = "import subprocess\nsubprocess.run(['sleep', '" + marker + "'])\ndef get_score(d):\n    return 1.0\n"
		writeTree(t, filepath.Join(s.tasksDir, "sloweval"), slow)
		h := s.mustConnect(t, "/tasks/sloweval/mcp")
		h.mustOK(t, "list_files", map[string]any{}, "train.py")
		go h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "final_answer", Arguments: map[string]any{"final_answer": "x"}})
		running := func() bool { return exec.Command("pgrep", "-f", "sleep "+marker).Run() == nil }
		deadline := time.Now().Add(60 * time.Second)
		for !running() {
			if time.Now().After(deadline) {
				t.Fatal("the eval never started")
			}
			time.Sleep(50 * time.Millisecond)
		}
		pid := s.cmd.Process.Pid
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(60 * time.Second):
			t.Fatal("server still running 60 s after SIGTERM")
		}
		results, _ := filepath.Glob(filepath.Join(s.runsDir, "*", "result.json"))
		if len(results) != 1 {
			t.Fatalf("results: %v", results)
		}
		r, err := runlog.ReadResult(filepath.Dir(results[0]))
		if err != nil || r.Status != runlog.StatusAborted || !strings.Contains(r.Error, "server stopped") {
			t.Errorf("result after SIGTERM during eval: %+v, %v", r, err)
		}
		if running() {
			t.Error("the eval still runs after the server exited")
		}
		owners, _ := filepath.Glob(filepath.Join(os.TempDir(), "mlab-submission-*", proc.OwnerFile))
		for _, f := range owners {
			if o, err := proc.Owner(filepath.Dir(f)); err == nil && proc.PID(o) == pid {
				t.Errorf("submission copy left: %s", filepath.Dir(f))
			}
		}
		if backend == "docker" {
			list, err := testenv.Docker(t).ContainerList(t.Context(), container.ListOptions{All: true,
				Filters: filters.NewArgs(filters.Arg("label", docker.LabelLock+"="+r.ServerLock))})
			if err != nil || len(list) > 0 {
				t.Errorf("containers of the stopped server: %d, %v", len(list), err)
			}
		}
	})
}
