package benchmarks_test

import (
	"encoding/json"
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

// levels are the score bands a task's three levels must land in
// (levels.json beside the task): the unchanged starter, the obvious first
// fix and the expert reference. A timed task's scores depend on the machine,
// so it gives no bands; its levels are checked by their ordering alone.
type levels struct {
	Baseline  []float64 `json:"baseline"`
	Obvious   []float64 `json:"obvious"`
	Reference []float64 `json:"reference"`
}

// minGrade is how much better than the obvious fix the reference must be,
// so that a task separates agents that try the obvious from those that do
// research.
const minGrade = 0.05

// TestLevels proves each built-in task has graded headroom: the hidden
// reference solution, run and scored exactly as an agent's workspace would
// be, improves on the baseline by more than the success threshold and on the
// obvious first fix by at least minGrade; each level scores within its band;
// a fixed baseline in task.yaml matches what the starter code really scores;
// and the eval is deterministic.
func TestLevels(t *testing.T) {
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
			timed := task.Config.IsTimed()
			if !timed {
				// Timed ones measure time: they run alone.
				t.Parallel()
			}
			var want levels
			raw, err := os.ReadFile(filepath.Join(name, "levels.json"))
			if err == nil {
				err = json.Unmarshal(raw, &want)
			}
			if err != nil {
				t.Fatalf("levels.json: %v", err)
			}
			score := func(level string) (eval.Outcome, string) {
				ws := runLevel(t, provider, task, level)
				out, err := scorer.Score(t.Context(), task, eval.Request{Submission: ws})
				if err != nil {
					t.Fatalf("score %s: %v", level, err)
				}
				return out, ws
			}
			base, _ := score("")
			obvious, _ := score("obvious")
			ref, refWS := score("reference")
			baseline := base.Score
			if same, ok := ref.StarterScore(task.Config.Direction); ok {
				baseline = same // as the server judges a timed task
			}
			if stated := task.Config.Baseline; stated != nil && math.Abs(*stated-base.Score) > 1e-9 {
				t.Errorf("task.yaml baseline %v, but the starter code scores %v", *stated, base.Score)
			}
			dir := task.Config.Direction
			refImp, _ := eval.Improvement(ref.Score, baseline, dir)
			obvImp, _ := eval.Improvement(obvious.Score, baseline, dir)
			grade, _ := eval.Improvement(ref.Score, obvious.Score, dir)
			t.Logf("%s (%s, %s is better): baseline %.5g, obvious %.5g (%+.1f%%), reference %.5g (%+.1f%%; %+.1f%% over obvious)",
				name, task.Config.Metric, dir, baseline, obvious.Score, 100*obvImp, ref.Score, 100*refImp, 100*grade)
			if !eval.Success(refImp) {
				t.Errorf("reference improvement %+.1f%% does not beat the %.0f%% threshold", 100*refImp, 100*eval.SuccessThreshold)
			}
			if obvImp <= 0 {
				t.Errorf("the obvious fix does not improve on the baseline (%+.1f%%)", 100*obvImp)
			}
			if grade < minGrade {
				t.Errorf("the reference beats the obvious fix by %+.1f%%, want at least %.0f%%", 100*grade, 100*minGrade)
			}
			if !timed {
				for _, c := range []struct {
					level string
					got   float64
					band  []float64
				}{{"baseline", base.Score, want.Baseline}, {"obvious", obvious.Score, want.Obvious}, {"reference", ref.Score, want.Reference}} {
					if len(c.band) != 2 || c.got < c.band[0] || c.got > c.band[1] {
						t.Errorf("%s scores %.6g, outside its band %v in levels.json", c.level, c.got, c.band)
					}
				}
				// The same submission gets the same score.
				again, err := scorer.Score(t.Context(), task, eval.Request{Submission: refWS})
				if err != nil || again.Score != ref.Score {
					t.Errorf("the reference scored %v, then %v (%v): the eval is not deterministic", ref.Score, again.Score, err)
				}
			}
		})
	}
}

// runLevel runs a level of a task in a sandbox and returns the workspace:
// env/ with the level's folder ("" for the unchanged starter) laid over it,
// after its train.py has run.
func runLevel(t *testing.T, provider sandbox.Provider, task *tasks.Task, level string) string {
	t.Helper()
	sb, err := provider.Create(t.Context(), sandbox.Spec{Files: task.EnvDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	if level != "" {
		if err := sandbox.CopyDir(t.Context(), filepath.Join(task.Name, level), sb.Workspace()); err != nil {
			t.Fatalf("copy %s: %v", level, err)
		}
	}
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"/usr/bin/python3", "-u", "train.py"}, Timeout: 10 * time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%s train.py: %v, %+v", level, err, res)
	}
	return sb.Workspace()
}
