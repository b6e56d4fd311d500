package benchmarks_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/benchmarks"
	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

// TestReferenceBeatsBaseline proves each built-in task is solvable: its
// hidden reference solution, run and scored exactly as an agent's workspace
// would be, improves on the baseline by more than the success threshold, and
// a fixed baseline in task.yaml matches what the starter code really scores.
func TestReferenceBeatsBaseline(t *testing.T) {
	provider, err := local.New(t.Context(), local.Options{Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	scorer := &eval.Scorer{Provider: provider, Python: "/usr/bin/python3"}
	catalog := tasks.NewCatalog(benchmarks.FS(), "", t.TempDir())
	names, err := catalog.Names()
	if err != nil || len(names) < 2 {
		t.Fatalf("built-in tasks: %v, %v", names, err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			task, err := catalog.Load(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			stated := task.Config.Baseline
			task.Config.Baseline = nil // measure it even when task.yaml states it
			m, err := (&eval.Baselines{Scorer: scorer, CacheDir: t.TempDir()}).Get(t.Context(), task)
			baseline := m.Score
			if err != nil {
				t.Fatalf("baseline: %v", err)
			}
			if stated != nil && math.Abs(*stated-baseline) > 1e-9 {
				t.Errorf("task.yaml baseline %v, but the starter code scores %v", *stated, baseline)
			}
			ref := runReference(t, provider, task)
			score, err := scorer.Score(t.Context(), task, eval.Request{Submission: ref})
			if err != nil {
				t.Fatalf("score reference: %v", err)
			}
			if same, ok := score.StarterScore(task.Config.Direction); ok {
				baseline = same // as the server judges a timed task
			}
			imp, ok := eval.Improvement(score.Score, baseline, task.Config.Direction)
			t.Logf("%s: baseline %.4g, reference %.4g, improvement %+.1f%%", name, baseline, score.Score, 100*imp)
			if !ok || !eval.Success(imp) {
				t.Errorf("reference improvement %.3f does not beat the %.0f%% threshold", imp, 100*eval.SuccessThreshold)
			}
		})
	}
}

// runReference lays the reference solution over a copy of env/, runs its
// train.py in a sandbox and returns the resulting workspace.
func runReference(t *testing.T, provider sandbox.Provider, task *tasks.Task) string {
	t.Helper()
	sb, err := provider.Create(t.Context(), sandbox.Spec{Files: task.EnvDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	if err := sandbox.CopyDir(t.Context(), filepath.Join(task.Name, "reference"), sb.Workspace()); err != nil {
		t.Fatalf("copy reference: %v", err)
	}
	os.Remove(filepath.Join(sb.Workspace(), "make_data.py"))
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"/usr/bin/python3", "-u", "train.py"}, Timeout: 5 * time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("reference train.py: %v, %+v", err, res)
	}
	return sb.Workspace()
}
