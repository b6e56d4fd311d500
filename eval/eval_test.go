package eval

import (
	"context"
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
	}
	for _, tc := range tests {
		got, ok := Improvement(tc.score, tc.baseline, tc.dir)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
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
		{"runs", func() { task.Config.BaselineRuns = 2 }},
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
