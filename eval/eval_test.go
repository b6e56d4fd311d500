package eval

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

func TestImprovement(t *testing.T) {
	tests := []struct {
		score, baseline float64
		dir             string
		want            float64
		ok              bool
	}{
		{0.9, 0.75, tasks.Higher, 0.2, true},
		{0.6, 0.75, tasks.Higher, -0.2, true},
		{0.5, 1.0, tasks.Lower, 0.5, true},
		{2.0, 1.0, tasks.Lower, -1.0, true},
		{-0.5, -1.0, tasks.Higher, 0.5, true},
		{1, 0, tasks.Higher, 0, false},
		{2.5, 2.5, tasks.Lower, 0, true},
		{2.5, 2.5, tasks.Higher, 0, true},
	}
	for _, tc := range tests {
		got, ok := Improvement(tc.score, tc.baseline, tc.dir)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 || math.Signbit(got) != math.Signbit(tc.want) {
			t.Errorf("Improvement(%v, %v, %s) = %v, %v; want %v, %v", tc.score, tc.baseline, tc.dir, got, ok, tc.want, tc.ok)
		}
	}
	if Success(0.10) || !Success(0.1001) {
		t.Error("success must need strictly more than 10%")
	}
}

func TestParseResult(t *testing.T) {
	tests := []struct {
		name, stdout string
		found        bool
		want         []float64
		wantErr      string
	}{
		{"plain", "MLAB_RESULT tok {\"scores\": [0.5]}\n", true, []float64{0.5}, ""},
		{"last wins", "MLAB_RESULT tok {\"scores\": [9]}\nMLAB_RESULT tok {\"scores\": [1.5]}\n", true, []float64{1.5}, ""},
		{"forged token ignored", "MLAB_RESULT tok {\"scores\": [2]}\nMLAB_RESULT bad {\"scores\": [99]}\n", true, []float64{2}, ""},
		{"missing", "no result\n", false, nil, ""},
		{"malformed", "MLAB_RESULT tok {score}\n", true, nil, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, found, err := parseResult(tc.stdout, "tok")
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || found != tc.found || !slices.Equal(r.Scores, tc.want) {
				t.Fatalf("got %v, %v, %v; want %v, %v", r.Scores, found, err, tc.want, tc.found)
			}
		})
	}
}

// evalTask makes a task whose eval.py is given, with a submission folder.
func evalTask(t *testing.T, evalPy string, submission map[string]string) (*tasks.Task, string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"env/train.py":                 "open('out.txt','w').write('0.25')\n",
		"scripts/eval.py":              evalPy,
		"scripts/research_problem.txt": "p",
		"scripts/answer.txt":           "0.25",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(dir, "t", filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "t", p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	task, err := tasks.NewCatalog(nil, dir, t.TempDir()).Load(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	task.Config.EvalTimeout = tasks.Duration(10 * time.Second)
	sub := t.TempDir()
	for p, c := range submission {
		if err := os.WriteFile(filepath.Join(sub, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return task, sub
}

func newScorer(t *testing.T) *Scorer {
	p, err := local.New(t.Context(), local.Options{Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return &Scorer{Provider: p, Python: "/usr/bin/python3"}
}

func TestScore(t *testing.T) {
	readOut := "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'out.txt')).read())\n"
	tests := []struct {
		name       string
		evalPy     string
		submission map[string]string
		want       float64
		wantErr    string
	}{
		{"score", readOut, map[string]string{"out.txt": "0.75"}, 0.75, ""},
		{"huge but finite", readOut, map[string]string{"out.txt": "1e308"}, 1e308, ""},
		{"hidden file next to eval", "def get_score(d):\n    return float(open('answer.txt').read())\n", nil, 0.25, ""},
		{"missing output", readOut, nil, 0, "get_score raised FileNotFoundError"},
		{"crash", "def get_score(d):\n    raise RuntimeError('bad submission')\n", nil, 0, "get_score raised RuntimeError"},
		{"exception of the task's own", "class Secret(Exception): pass\ndef get_score(d):\n    raise Secret('x')\n", nil, 0, "get_score raised an exception"},
		{"exit", "import sys\ndef get_score(d):\n    sys.exit(3)\n", nil, 0, "get_score raised SystemExit"},
		{"eval does not import", "raise ImportError('eval is broken')\n", nil, 0, "eval crashed (exit code 1)"},
		{"nan", "def get_score(d):\n    return float('nan')\n", nil, 0, "non-finite score (nan)"},
		{"inf", "def get_score(d):\n    return 1e308 * 10\n", nil, 0, "non-finite score (inf)"},
		{"not a number", "def get_score(d):\n    return 'high'\n", nil, 0, "get_score returned str, not a number"},
		{"timeout", "import time\ndef get_score(d):\n    time.sleep(60)\n", nil, 0, "timed out"},
		{"killed", "import os, signal\ndef get_score(d):\n    os.kill(os.getpid(), signal.SIGTERM)\n", nil, 0, "eval crashed"},
		{"submission not importable", "def get_score(d):\n    import solution\n    return solution.SCORE\n",
			map[string]string{"solution.py": "SCORE = 1.0\n"}, 0, "ModuleNotFoundError"},
		{"submission cannot shadow modules", "import json\ndef get_score(d):\n    return json.loads('3')\n",
			map[string]string{"json.py": "raise SystemExit('hijacked')\n"}, 3, ""},
		{"forged result line", "import subprocess, sys\ndef get_score(d):\n    subprocess.run([sys.executable, 'forge.py'], cwd=d)\n    raise RuntimeError('real eval failed')\n",
			map[string]string{"forge.py": "print('\\nMLAB_RESULT 00 {\"scores\": [100]}')\n"}, 0, "RuntimeError"},
		{"prints on stdout", "def get_score(d):\n    print('MLAB_RESULT x {}')\n    return 2\n", nil, 2, ""},
	}
	s := newScorer(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task, sub := evalTask(t, tc.evalPy, tc.submission)
			out, err := s.Score(t.Context(), task, Request{Submission: sub})
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid containing %q\n%s", err, tc.wantErr, out.Output)
				}
				return
			}
			if err != nil || out.Score != tc.want {
				t.Fatalf("got %v, %v; want %v (output %s)", out.Score, err, tc.want, out.Output)
			}
		})
	}
}

func TestBaselineComputedAndCached(t *testing.T) {
	task, _ := evalTask(t, "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'out.txt')).read())\n", nil)
	b := &Baselines{Scorer: newScorer(t), CacheDir: t.TempDir()}
	got, err := b.Get(t.Context(), task)
	if err != nil || got.Score != 0.25 || !slices.Equal(got.Runs, []float64{0.25}) {
		t.Fatalf("baseline = %+v, %v; want 0.25", got, err)
	}
	// A cached baseline is served without creating a sandbox.
	real := b.Scorer
	b.Scorer = &Scorer{Provider: failingProvider{}, Python: real.Python}
	if got, err := b.Get(t.Context(), task); err != nil || got.Score != 0.25 {
		t.Fatalf("cached baseline = %v, %v; want 0.25", got, err)
	}
	// Whatever can change a score changes the key: the sandbox settings,
	// the backend, the interpreter, the task.
	changes := []struct {
		name   string
		change func()
	}{
		{"setting", func() { b.Setting = "cpus=1" }},
		{"backend", func() { b.Scorer = &Scorer{Provider: failingProvider{name: "other"}, Python: real.Python} }},
		{"interpreter", func() { b.Scorer = &Scorer{Provider: failingProvider{}, Python: "/usr/bin/python3.11"} }},
		{"task", func() { os.WriteFile(filepath.Join(task.EnvDir(), "extra.txt"), []byte("x"), 0o644) }},
	}
	for _, c := range changes {
		saved, setting, runs := b.Scorer, b.Setting, task.Config.BaselineRuns
		b.Scorer = &Scorer{Provider: failingProvider{}, Python: real.Python}
		c.change()
		if _, err := b.Get(t.Context(), task); err == nil {
			t.Errorf("a changed %s was served from the cache", c.name)
		}
		b.Scorer, b.Setting, task.Config.BaselineRuns = saved, setting, runs
	}
	// The number of runs is not in the key: a measurement of any number
	// is the baseline until one is measured again.
	b.Scorer = &Scorer{Provider: failingProvider{}, Python: real.Python}
	os.Remove(filepath.Join(task.EnvDir(), "extra.txt"))
	task.Config.BaselineRuns = 2
	if got, err := b.Get(t.Context(), task); err != nil || got.Score != 0.25 {
		t.Errorf("baseline_runs 2 was not served the cached measurement: %+v, %v", got, err)
	}
	// A prepared task is keyed by the version of its folder that was
	// prepared, not by the data prepare.py made.
	task.Prepare = &tasks.Preparation{Key: "v1", Dir: task.Dir, Done: true}
	k1, err := b.key(task, "m")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(task.EnvDir(), "data.csv"), []byte("x"), 0o644)
	if k, _ := b.key(task, "m"); k != k1 {
		t.Error("a prepared task's key changed with a data file")
	}
	if task.Prepare.Key = "v2"; func() string { k, _ := b.key(task, "m"); return k }() == k1 {
		t.Error("a prepared task's key did not change with its version")
	}
}

// competingProvider runs an exec in a metered sandbox, as another session
// would, while each of the first n evals of the measurement runs.
type competingProvider struct {
	sandbox.Provider
	other sandbox.Sandbox
	n     *atomic.Int64
}

func (p competingProvider) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	if strings.HasPrefix(spec.Run, "eval-") && p.n.Add(-1) >= 0 {
		if _, err := p.other.Exec(ctx, sandbox.ExecRequest{Args: []string{"true"}}); err != nil {
			return nil, err
		}
	}
	return p.Provider.Create(ctx, spec)
}

func TestBaselineMeasuredAlone(t *testing.T) {
	tests := []struct {
		name          string
		competing     int64
		wantContended bool
		wantCreates   int64 // evals run
	}{
		{"alone", 0, false, 1},
		{"competed once", 1, false, 2},
		{"competed every time", 100, true, DefaultAttempts},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task, _ := evalTask(t, "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'out.txt')).read())\n", nil)
			s := newScorer(t)
			meter := &sandbox.Meter{}
			other, err := meter.Wrap(s.Provider).Create(t.Context(), sandbox.Spec{})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			n := &atomic.Int64{}
			n.Store(tc.competing)
			b := &Baselines{Scorer: &Scorer{Provider: competingProvider{s.Provider, other, n}, Python: s.Python}, CacheDir: t.TempDir(), Meter: meter}
			m, err := b.Get(t.Context(), task)
			if err != nil || m.Score != 0.25 || m.Contended != tc.wantContended {
				t.Fatalf("baseline = %+v, %v; want 0.25, contended %v", m, err, tc.wantContended)
			}
			if evals := tc.competing - n.Load(); evals != tc.wantCreates {
				t.Errorf("%d evals competed, want %d", evals, tc.wantCreates)
			}
			cached, _ := filepath.Glob(filepath.Join(b.CacheDir, "baseline-*.json"))
			if (len(cached) == 1) == tc.wantContended {
				t.Errorf("cache files %v: a contended baseline must not be cached, a clean one must", cached)
			}
		})
	}
}

// failingProvider refuses every sandbox; by default it has the name of the
// local backend, so that it finds what a local one cached.
type failingProvider struct{ name string }

func (p failingProvider) Name() string {
	if p.name == "" {
		return "local"
	}
	return p.name
}
func (failingProvider) Create(context.Context, sandbox.Spec) (sandbox.Sandbox, error) {
	return nil, errors.New("no sandbox for you")
}

// TestTimedInterleavesStarter: a timed task's eval scores the submission and
// the unchanged starter code in alternating rounds, and whatever one
// get_score call leaves running (a daemon that escaped its session) is gone
// before the next starts.
func TestTimedInterleavesStarter(t *testing.T) {
	evalPy := `import os, subprocess, sys, time
order = []
def others():
    me = os.getpid()
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != me:
            try:
                if b"mlab-straggler" in open("/proc/%s/cmdline" % p, "rb").read():
                    n += 1
            except OSError:
                pass
    return n
def get_score(d):
    order.append(os.path.basename(d))
    stragglers = others()
    if os.path.exists(os.path.join(d, "fast.txt")):
        # Leave a daemon behind that would slow down the next call.
        subprocess.Popen([sys.executable, "-c", "import sys, time; sys.argv.append('mlab-straggler'); time.sleep(60)", "mlab-straggler"],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while others() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        return 1.0 + stragglers
    print("order", order)
    return 10.0 + stragglers
`
	eachBackend(t, func(t *testing.T, p sandbox.Provider) {
		task, sub := evalTask(t, evalPy, map[string]string{"fast.txt": "x"})
		task.Config.Timed, task.Config.BaselineRuns, task.Config.Direction = true, 3, tasks.Lower
		var log syncBuffer
		out, err := (&Scorer{Provider: p, Python: "/usr/bin/python3"}).Score(t.Context(), task, Request{Submission: sub, Log: &log})
		if err != nil {
			t.Fatalf("score: %v\n%s", err, log.String())
		}
		// Any straggler seen by a later call adds 1 to its score.
		if !slices.Equal(out.Scores, []float64{1, 1, 1}) || !slices.Equal(out.Starter, []float64{10, 10, 10}) || out.Score != 1 {
			t.Errorf("scores %v, starter %v, score %v; want 1s and 10s with no stragglers seen\n%s", out.Scores, out.Starter, out.Score, log.String())
		}
		// ABBA order: submission, starter, starter, submission, submission, starter.
		if !strings.Contains(log.String(), "order ['submission', 'starter', 'starter', 'submission', 'submission', 'starter']") {
			t.Errorf("rounds do not alternate:\n%s", log.String())
		}
		if same, ok := out.StarterScore(task.Config.Direction); !ok || same != 10 {
			t.Errorf("starter score = %v, %v", same, ok)
		}
	})
}

func TestJudge(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name        string
		baseline    *float64 // task.yaml
		direction   string
		out         Outcome
		wantStatus  string
		wantBase    float64
		wantSource  string
		wantImp     *float64
		wantErr     string
		wantSuccess bool
	}{
		{"task.yaml", f(0.5), tasks.Higher, Outcome{Score: 0.6, Scores: []float64{0.6}}, runlog.StatusScored, 0.5, runlog.BaselineFromTask, f(0.2), "", true},
		{"huge score", f(1e-3), tasks.Higher, Outcome{Score: 1e308, Scores: []float64{1e308}}, runlog.StatusInvalid, 1e-3, runlog.BaselineFromTask, nil, "no finite improvement", false},
		{"huge negative score", f(1e-300), tasks.Lower, Outcome{Score: -1e308, Scores: []float64{-1e308}}, runlog.StatusInvalid, 1e-300, runlog.BaselineFromTask, nil, "no finite improvement", false},
		{"zero baseline", f(0), tasks.Higher, Outcome{Score: 1, Scores: []float64{1}}, runlog.StatusScored, 0, runlog.BaselineFromTask, nil, "", false},
		{"same run wins, each side by its best round", f(5), tasks.Lower, Outcome{Score: 0.9, Scores: []float64{1, 1.2, 0.9}, Starter: []float64{2, 2.2, 1.8}},
			runlog.StatusScored, 1.8, runlog.BaselineFromSameRun, f(0.5), "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task, _ := evalTask(t, "def get_score(d): return 0\n", nil)
			task.Config.Baseline, task.Config.Direction = tc.baseline, tc.direction
			b := &Baselines{Scorer: &Scorer{Provider: failingProvider{}, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}
			var r runlog.Result
			if err := b.Judge(t.Context(), task, tc.out, &r); err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("result.json cannot be written: %v", err)
			}
			if r.Status != tc.wantStatus || r.Baseline == nil || *r.Baseline != tc.wantBase || r.BaselineInfo.Source != tc.wantSource ||
				!strings.Contains(r.Error, tc.wantErr) || r.Success != tc.wantSuccess || (r.Improvement == nil) != (tc.wantImp == nil) ||
				(tc.wantImp != nil && math.Abs(*r.Improvement-*tc.wantImp) > 1e-9) {
				t.Errorf("result %s", raw)
			}
			if r.Status == runlog.StatusInvalid && r.Score != nil {
				t.Errorf("an invalid result keeps a score: %s", raw)
			}
		})
	}
	// A missing measured baseline is reported, without details, and the
	// score stands.
	task, _ := evalTask(t, "def get_score(d): return 0\n", nil)
	b := &Baselines{Scorer: &Scorer{Provider: failingProvider{}, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}
	var r runlog.Result
	err := b.Judge(t.Context(), task, Outcome{Score: 1, Scores: []float64{1}}, &r)
	if err == nil || r.Status != runlog.StatusScored || r.Baseline != nil || r.Error != "baseline unavailable (the operator's log has the details)" {
		t.Errorf("judge without a baseline: %+v, %v", r, err)
	}
}

func TestMeasuredTimedBaseline(t *testing.T) {
	// A timed task's baseline scores env/ as shipped, in baseline_runs
	// rounds, and records their median and spread.
	task, _ := evalTask(t, "import random\ncalls = [3.0, 1.0, 2.0]\ndef get_score(d):\n    return calls.pop(0)\n", nil)
	task.Config.Timed, task.Config.BaselineRuns = true, 3
	b := &Baselines{Scorer: newScorer(t), CacheDir: t.TempDir()}
	m, err := b.Get(t.Context(), task)
	if err != nil || m.Score != 2 || m.Spread != 2 || !slices.Equal(m.Runs, []float64{3, 1, 2}) {
		t.Fatalf("baseline = %+v, %v; want median 2 of [3 1 2], spread 2", m, err)
	}
	raw, _ := os.ReadFile(must(filepath.Glob(filepath.Join(b.CacheDir, "baseline-*.json")))[0])
	for _, want := range []string{`"runs": [`, `"spread": 2`, `"machine": "host=`, `"backend": "local"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("cache file lacks %s:\n%s", want, raw)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The eval's sandbox takes the Scorer's limits, the sessions' own: an eval
// that needs more memory than a session may use fails as out of memory
// rather than taking memory no session reserved.
func TestScoreLimits(t *testing.T) {
	hog := "def get_score(d):\n    b = bytearray(400 << 20)\n    b[::4096] = b'x' * len(b[::4096])\n    return 1.0\n"
	tests := []struct {
		name    string
		memory  int64
		wantErr string
	}{
		{"within the limit", 1 << 30, ""},
		{"beyond the limit", 128 << 20, "ran out of memory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScorer(t)
			s.Limits = sandbox.Limits{MemoryBytes: tc.memory}
			task, sub := evalTask(t, hog, nil)
			out, err := s.Score(t.Context(), task, Request{Submission: sub})
			if tc.wantErr == "" {
				if err != nil || out.Score != 1 {
					t.Fatalf("got %v, %v; want 1 (output %s)", out.Score, err, out.Output)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalid containing %q\n%s", err, tc.wantErr, out.Output)
			}
		})
	}
}

// A timed task's figure is its best round in the task's direction, for the
// submission and the starter code alike: noise only makes a timed run worse.
func TestBest(t *testing.T) {
	tests := []struct {
		name      string
		rounds    []float64
		direction string
		want      float64
	}{
		{"seconds, lower is better", []float64{0.716, 0.665, 0.716}, tasks.Lower, 0.665},
		{"throughput, higher is better", []float64{90, 120, 100}, tasks.Higher, 120},
		{"one round", []float64{3}, tasks.Lower, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := best(tc.rounds, tc.direction); got != tc.want {
				t.Errorf("best(%v, %s) = %v, want %v", tc.rounds, tc.direction, got, tc.want)
			}
		})
	}
}
