package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/episode"
	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/internal/proc"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// fixtureWith is the fixture task with some files replaced or added.
func fixtureWith(tb testing.TB, files map[string]string) *tasks.Task {
	tb.Helper()
	dir := tb.TempDir()
	all := map[string]string{
		"t/env/train.py":                 "open('score.txt', 'w').write('1.0')\n",
		"t/env/small.txt":                "hello\n",
		"t/scripts/eval.py":              "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'score.txt')).read())\n",
		"t/scripts/research_problem.txt": "Write a big number.",
		"t/task.yaml":                    "baseline: 0.5\n",
	}
	maps.Copy(all, files)
	for p, c := range all {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	task, err := tasks.NewCatalog(nil, dir, tb.TempDir()).Load(context.Background(), "t")
	if err != nil {
		tb.Fatal(err)
	}
	return task
}

// lifecycleGateway serves task at /tasks/t/ with provider p and options
// adjusted by adjust.
func lifecycleGateway(tb testing.TB, task *tasks.Task, p sandbox.Provider, adjust func(*Options)) *Gateway {
	tb.Helper()
	scorer := &eval.Scorer{Provider: p, Python: "/usr/bin/python3"}
	opts := Options{
		Catalog:   tasks.NewCatalog(nil, taskRoot(task), tb.TempDir()),
		Provider:  p,
		Scorer:    scorer,
		Baselines: &eval.Baselines{Scorer: scorer, CacheDir: tb.TempDir()},
		RunsDir:   tb.TempDir(),
		TempDir:   tb.TempDir(),
		Budgets:   tasks.Budgets{MaxSteps: 1 << 30},
		Logger:    zerolog.Nop(),
	}
	if adjust != nil {
		adjust(&opts)
	}
	g, err := NewGateway(opts, HTTPOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close(context.Background()) })
	return g
}

// execGate holds the Exec of sandboxes made for runs whose name starts with
// prefix (eval-, baseline-) until release is closed, and says on entered
// when one is held.
type execGate struct {
	sandbox.Provider
	prefix  string
	entered chan struct{}
	release chan struct{}
}

func (p *execGate) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	sb, err := p.Provider.Create(ctx, spec)
	if err != nil || !strings.HasPrefix(spec.Run, p.prefix) {
		return sb, err
	}
	return &gatedSandbox{Sandbox: sb, p: p}, nil
}

type gatedSandbox struct {
	sandbox.Sandbox
	p *execGate
}

func (s *gatedSandbox) Exec(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	s.p.entered <- struct{}{}
	select {
	case <-s.p.release:
	case <-ctx.Done():
	}
	return s.Sandbox.Exec(ctx, req)
}

// poll calls cond until it holds or the deadline passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func onlyRun(t *testing.T, runs string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(runs, "*"))
	if len(dirs) != 1 {
		t.Fatalf("run dirs: %v", dirs)
	}
	return dirs[0]
}

func traceTools(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "trace.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var tools []string
	for line := range strings.Lines(string(b)) {
		var s runlog.Step
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("trace line %q: %v", line, err)
		}
		tools = append(tools, s.Tool)
	}
	return tools
}

// A DELETE of the session while final_answer is being scored must not free
// the session's slot, nor cut final_answer out of the trace: both are
// released when the submission is recorded.
func TestHostileDeleteDuringFinalAnswer(t *testing.T) {
	p := &execGate{Provider: localProvider(t), prefix: "eval-", entered: make(chan struct{}, 1), release: make(chan struct{})}
	var runs, tmp string
	g := lifecycleGateway(t, fixture(t), p, func(o *Options) { o.Capacity = NewCapacity(1); runs, tmp = o.RunsDir, o.TempDir })
	hs := httptest.NewServer(g)
	defer hs.Close()
	url := hs.URL + "/tasks/t/mcp"

	a, err := dialRaw(hs.Client(), url)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.call(callBody(sdk.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": "train.py"}})); err != nil {
		t.Fatal(err)
	}
	go a.call(callBody(sdk.CallToolParams{Name: "final_answer", Arguments: map[string]any{"final_answer": "done"}}))
	<-p.entered // the eval runs
	// The submission copy records its owner, so that a later server
	// removes it should this one die now.
	subs, _ := filepath.Glob(filepath.Join(tmp, episode.SubmissionPrefix+"*"))
	if len(subs) != 1 {
		t.Fatalf("submission copies: %v", subs)
	}
	if owner, err := proc.Owner(subs[0]); err != nil || owner != proc.Self() {
		t.Errorf("owner of the submission copy: %q, %v", owner, err)
	}
	resp, err := a.send(http.MethodDelete, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	b, err := dialRaw(hs.Client(), url)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.call(callBody(mlabCalls[0])); err == nil || !strings.Contains(err.Error(), "limit of 1 concurrent sessions") {
		t.Errorf("a second session got the slot of a submission still being scored: %v", err)
	}
	close(p.release)

	dir := onlyRun(t, runs)
	poll(t, "the submission to be recorded", func() bool {
		r, err := runlog.ReadResult(dir)
		return err == nil && r.Status != runlog.StatusRunning
	})
	if r, _ := runlog.ReadResult(dir); r.Status != runlog.StatusScored {
		t.Errorf("result %+v, want scored", r)
	}
	poll(t, "the slot to be freed", func() bool { return b.call(callBody(mlabCalls[0])) == nil })
	if tools := traceTools(t, dir); len(tools) != 2 || tools[1] != "final_answer" {
		t.Errorf("trace tools %v, want execute_script, final_answer", tools)
	}
}

// health reads /healthz.
func health(t *testing.T, g *Gateway) (sessions, transports int) {
	t.Helper()
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	var h struct {
		Sessions   int `json:"sessions"`
		Transports int `json:"transport_sessions"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	return h.Sessions, h.Transports
}

// A client that vanishes without a DELETE: once the idle reaper ends its
// episode, neither the episode nor its transport session is counted or
// kept, and the client, should it come back, is told why.
func TestHostileVanishedClientDropped(t *testing.T) {
	g := lifecycleGateway(t, fixture(t), localProvider(t), func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	hs := httptest.NewServer(g)
	defer hs.Close()
	a, err := dialRaw(hs.Client(), hs.URL+"/tasks/t/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.call(callBody(mlabCalls[0])); err != nil {
		t.Fatal(err)
	}
	if s, tr := health(t, g); s != 1 || tr != 1 {
		t.Errorf("healthz with one client: %d sessions, %d transport sessions", s, tr)
	}
	poll(t, "the idle session to be dropped", func() bool {
		s, tr := health(t, g)
		return s == 0 && tr == 0
	})
	if err := a.call(callBody(mlabCalls[0])); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Errorf("call after the idle timeout: %v, want the idle reason", err)
	}
	if s, _ := health(t, g); s != 0 {
		t.Errorf("the late call started a new episode: %d sessions", s)
	}
}

// A script that runs longer than the idle timeout keeps its episode alive:
// only a session with no call running for the timeout is idle.
func TestHostileIdleReaperSparesRunningCall(t *testing.T) {
	srv, cs := connect(t, Options{IdleTimeout: 300 * time.Millisecond})
	callText(t, cs, "write_file", map[string]any{"file_name": "long.py", "content": "import time\ntime.sleep(3)\nprint('finished')\n"})
	text, isErr := callText(t, cs, "execute_script", map[string]any{"script_name": "long.py"})
	if isErr || !strings.Contains(text, "finished") {
		t.Errorf("a script longer than the idle timeout was cut: %q", text)
	}
	if n := srv.episodeCount(); n != 1 {
		t.Errorf("%d episodes after the long call, want 1", n)
	}
	// And idleness still ends an episode once nothing runs.
	poll(t, "the idle episode to end", func() bool { return srv.episodeCount() == 0 })
}

// Shutdown while a submission is scored (its eval, or the baseline run it
// needs) stops and removes every sandbox, leaves no submission copy and
// records the episode as aborted.
func TestHostileShutdownDuringScoring(t *testing.T) {
	marker := func(name string) string { return fmt.Sprintf("%d%03d", 700000+os.Getpid()%100000, len(name)) }
	sleeper := func(name string) string {
		return "import subprocess\nsubprocess.run(['sleep', '" + marker(name) + "'])\n"
	}
	for _, tc := range []struct {
		name, prefix string
		files        map[string]string
	}{
		{"eval", "eval-", map[string]string{"t/scripts/eval.py": sleeper("eval") + "def get_score(d):\n    return 1.0\n"}},
		{"baseline", "baseline-", map[string]string{"t/env/train.py": sleeper("baseline"), "t/task.yaml": "{}\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			lp := localProvider(t)
			guard := sandbox.NewGuard(&execGate{Provider: lp, prefix: tc.prefix, entered: make(chan struct{}, 1), release: make(chan struct{})})
			gate := guard.Provider.(*execGate)
			close(gate.release) // only used to learn when the run starts
			var opts Options
			g := lifecycleGateway(t, fixtureWith(t, tc.files), guard, func(o *Options) { o.TempDir = root; opts = *o })
			hs := httptest.NewServer(g)
			defer hs.Close()
			a, err := dialRaw(hs.Client(), hs.URL+"/tasks/t/mcp")
			if err != nil {
				t.Fatal(err)
			}
			if err := a.call(callBody(sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{"file_name": "score.txt", "content": "2.0"}})); err != nil {
				t.Fatal(err)
			}
			var answered atomic.Bool
			go func() {
				a.call(callBody(sdk.CallToolParams{Name: "final_answer", Arguments: map[string]any{"final_answer": "done"}}))
				answered.Store(true)
			}()
			<-gate.entered
			poll(t, "the "+tc.name+" script to run", func() bool {
				return exec.Command("pgrep", "-f", "sleep "+marker(tc.name)).Run() == nil
			})

			// What serve does on SIGTERM: stop the gateway, then the provider.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			g.Close(ctx)
			guard.Close()

			dir := onlyRun(t, opts.RunsDir)
			r, err := runlog.ReadResult(dir)
			if err != nil || r.Status != runlog.StatusAborted || !strings.Contains(r.Error, "server stopped") {
				t.Errorf("result after shutdown: %+v, %v", r, err)
			}
			if n := guard.Open(); n != 0 {
				t.Errorf("%d sandboxes open after shutdown", n)
			}
			poll(t, "the "+tc.name+" script to die", func() bool {
				return exec.Command("pgrep", "-f", "sleep "+marker(tc.name)).Run() != nil
			})
			if left, _ := filepath.Glob(filepath.Join(root, episode.SubmissionPrefix+"*")); len(left) > 0 {
				t.Errorf("submission copies left: %v", left)
			}
			if sb, err := guard.Create(context.Background(), sandbox.Spec{}); err == nil {
				sb.Close()
				t.Error("a sandbox was created after shutdown")
			}
		})
	}
}

func TestCapacity(t *testing.T) {
	const gib = int64(1) << 30
	tests := []struct {
		name     string
		c        *Capacity
		admitted int
		refusal  string
	}{
		{"no bound", nil, 100, ""},
		{"session limit", NewCapacity(3), 3, "limit of 3 concurrent sessions"},
		{"memory budget below the limit", NewCapacity(64).WithMemory(21*gib, 8*gib), 2, "no memory for another session: 2 running sessions reserve 16.0 GiB of the 21.0 GiB"},
		{"session limit below the budget", NewCapacity(2).WithMemory(100*gib, gib), 2, "limit of 2"},
		{"a session larger than the budget", NewCapacity(4).WithMemory(gib, 2*gib), 0, "a session needs 2.0 GiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.admitted {
				if err := tc.c.acquire(); err != nil {
					t.Fatalf("session %d refused: %v", i+1, err)
				}
			}
			if tc.refusal == "" {
				return
			}
			err := tc.c.acquire()
			if err == nil || !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("session %d: %v, want %q", tc.admitted+1, err, tc.refusal)
			}
			if tc.admitted > 0 {
				tc.c.release()
				if err := tc.c.acquire(); err != nil {
					t.Errorf("after a release: %v", err)
				}
			}
		})
	}
}
