package eval

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
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

func TestParseScore(t *testing.T) {
	tests := []struct {
		name, stdout string
		want         float64
		wantErr      string
	}{
		{"plain", "hello\nMLAB_RESULT tok {\"score\": 0.5}\n", 0.5, ""},
		{"last wins", "MLAB_RESULT tok {\"score\": 9}\nMLAB_RESULT tok {\"score\": 1.5}\n", 1.5, ""},
		{"forged token ignored", "MLAB_RESULT tok {\"score\": 2}\nMLAB_RESULT bad {\"score\": 99}\n", 2, ""},
		{"missing", "no result\n", 0, "without reporting"},
		{"malformed", "MLAB_RESULT tok {score}\n", 0, "malformed"},
		{"nan", "MLAB_RESULT tok {\"score\": null}\n", 0, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseScore(tc.stdout, "tok")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
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
	task.Config.EvalTimeout = tasks.Duration(5 * time.Second)
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
		{"hidden file next to eval", "def get_score(d):\n    return float(open('answer.txt').read())\n", nil, 0.25, ""},
		{"missing output", readOut, nil, 0, "No such file"},
		{"crash", "def get_score(d):\n    raise RuntimeError('bad submission')\n", nil, 0, "bad submission"},
		{"nan", "def get_score(d):\n    return float('nan')\n", nil, 0, "returned nan"},
		{"timeout", "import time\ndef get_score(d):\n    time.sleep(60)\n", nil, 0, "timed out"},
		{"submission not importable", "def get_score(d):\n    import solution\n    return solution.SCORE\n",
			map[string]string{"solution.py": "SCORE = 1.0\n"}, 0, "No module named 'solution'"},
		{"submission cannot shadow modules", "import json\ndef get_score(d):\n    return json.loads('3')\n",
			map[string]string{"json.py": "raise SystemExit('hijacked')\n"}, 3, ""},
		{"forged result line", "import subprocess, sys\ndef get_score(d):\n    subprocess.run([sys.executable, 'forge.py'], cwd=d)\n    raise RuntimeError('real eval failed')\n",
			map[string]string{"forge.py": "print('\\nMLAB_RESULT 00 {\"score\": 100}')\n"}, 0, "real eval failed"},
	}
	s := newScorer(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task, sub := evalTask(t, tc.evalPy, tc.submission)
			out, err := s.Score(t.Context(), task, sub, nil)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid containing %q", err, tc.wantErr)
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
	if err != nil || got != 0.25 {
		t.Fatalf("baseline = %v, %v; want 0.25", got, err)
	}
	// A cached baseline is served without creating a sandbox.
	b.Scorer = &Scorer{Provider: failingProvider{}, Python: b.Scorer.Python}
	if got, err := b.Get(t.Context(), task); err != nil || got != 0.25 {
		t.Fatalf("cached baseline = %v, %v; want 0.25", got, err)
	}
	// Changing the task invalidates the cache.
	os.WriteFile(filepath.Join(task.EnvDir(), "extra.txt"), []byte("x"), 0o644)
	if _, err := b.Get(t.Context(), task); err == nil {
		t.Error("changed task served from cache")
	}
	fixed := 0.5
	task.Config.Baseline = &fixed
	if got, err := b.Get(t.Context(), task); err != nil || got != 0.5 {
		t.Errorf("task.yaml baseline must win: %v, %v", got, err)
	}
}

type failingProvider struct{}

func (failingProvider) Name() string { return "failing" }
func (failingProvider) Create(context.Context, sandbox.Spec) (sandbox.Sandbox, error) {
	return nil, errors.New("no sandbox for you")
}
