package eval

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// DefaultAttempts bounds how often a baseline is measured again because
// other sandboxes ran execs during the measurement.
const DefaultAttempts = 3

// Baselines gives each task's baseline score: the one task.yaml states, or
// a measurement of the unmodified env/ (for a timed task, env/ as shipped;
// otherwise after running its train.py), repeated baseline_runs times while
// no other sandbox runs anything, and cached on disk under a key that covers
// the task, the interpreter, the sandbox settings and the machine.
type Baselines struct {
	// Scorer measures baselines. Its provider must not be counted by Meter:
	// the measurement's own execs are not competition.
	Scorer *Scorer
	// CacheDir holds computed baselines.
	CacheDir string
	// Meter counts the execs of every other sandbox of the server (the
	// sessions' and the submissions' evals); nil means none are checked.
	Meter *sandbox.Meter
	// Setting describes the sandbox settings that can change a score: the
	// backend's image, CPU and memory limits. It is part of the cache key,
	// with the backend's name and the machine.
	Setting string
	// Attempts bounds the measurements tried while other sandboxes compete;
	// 0 means DefaultAttempts. When every attempt competed, the last one is
	// used but not cached.
	Attempts int

	// mu serialises computations: a baseline is computed rarely, and two
	// sessions of one task must not both pay for it.
	mu sync.Mutex
}

// Measurement is a measured baseline.
type Measurement struct {
	// Score is the median of Runs.
	Score float64   `json:"score"`
	Runs  []float64 `json:"runs"`
	// Spread is max(Runs) - min(Runs).
	Spread float64 `json:"spread"`
	// Contended is set when other sandboxes ran execs during every attempt.
	Contended bool `json:"contended,omitempty"`
}

type cachedBaseline struct {
	Task string `json:"task"`
	Measurement
	Python     string    `json:"python"`
	Backend    string    `json:"backend"`
	Setting    string    `json:"setting,omitempty"`
	Machine    string    `json:"machine"`
	ComputedAt time.Time `json:"computed_at"`
	Seconds    float64   `json:"seconds"`
	Attempts   int       `json:"attempts"`
}

// Get returns the measured baseline of task, from the cache when it has one.
func (b *Baselines) Get(ctx context.Context, task *tasks.Task) (Measurement, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	machine := machineID()
	key, err := b.key(task, machine)
	if err != nil {
		return Measurement{}, fmt.Errorf("hash task %s: %w", task.Name, err)
	}
	path := filepath.Join(b.CacheDir, fmt.Sprintf("baseline-%s-%s.json", task.Name, key[:16]))
	if raw, err := os.ReadFile(path); err == nil {
		var c cachedBaseline
		if json.Unmarshal(raw, &c) == nil && c.valid() {
			return c.Measurement, nil
		}
	}
	start := time.Now()
	m, attempts, err := b.measureAlone(ctx, task)
	if err != nil {
		return Measurement{}, fmt.Errorf("compute baseline of %s: %w", task.Name, err)
	}
	if m.Contended {
		return m, nil
	}
	raw, _ := json.MarshalIndent(cachedBaseline{
		Task: task.Name, Measurement: m, Python: b.Scorer.Python, Backend: b.Scorer.Provider.Name(),
		Setting: b.Setting, Machine: machine, ComputedAt: time.Now().UTC(), Seconds: time.Since(start).Seconds(), Attempts: attempts,
	}, "", "  ")
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return m, fmt.Errorf("cache baseline: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return m, fmt.Errorf("cache baseline: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return m, fmt.Errorf("cache baseline: %w", err)
	}
	return m, nil
}

func (c cachedBaseline) valid() bool {
	if len(c.Runs) == 0 || c.Contended {
		return false
	}
	for _, v := range append([]float64{c.Score, c.Spread}, c.Runs...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// measureAlone measures until a measurement ran while no other sandbox ran
// an exec, at most Attempts times.
func (b *Baselines) measureAlone(ctx context.Context, task *tasks.Task) (m Measurement, attempts int, err error) {
	limit := b.Attempts
	if limit <= 0 {
		limit = DefaultAttempts
	}
	for attempts = 1; ; attempts++ {
		var running, before int64
		if b.Meter != nil {
			running, before = b.Meter.Activity()
		}
		m, err = b.measure(ctx, task)
		if err != nil {
			return m, attempts, err
		}
		if b.Meter == nil {
			return m, attempts, nil
		}
		_, after := b.Meter.Activity()
		if running == 0 && after == before {
			return m, attempts, nil
		}
		if attempts == limit {
			m.Contended = true
			return m, attempts, nil
		}
	}
}

// measure scores the unmodified env/ baseline_runs times.
func (b *Baselines) measure(ctx context.Context, task *tasks.Task) (Measurement, error) {
	runs := max(task.Config.BaselineRuns, 1)
	var scores []float64
	if task.Config.SameRunStarter() {
		// The starter code as shipped, as the submissions' evals time it,
		// in rounds of one eval run.
		out, err := b.Scorer.run(ctx, task, Request{Submission: task.EnvDir()}, runs, false)
		if err != nil {
			return Measurement{}, err
		}
		scores = out.Scores
	} else {
		for range runs {
			score, err := b.trainAndScore(ctx, task)
			if err != nil {
				return Measurement{}, err
			}
			scores = append(scores, score)
		}
	}
	return Measurement{Score: median(scores), Runs: scores, Spread: slices.Max(scores) - slices.Min(scores)}, nil
}

// trainAndScore runs env/train.py in a fresh sandbox and scores the result.
func (b *Baselines) trainAndScore(ctx context.Context, task *tasks.Task) (float64, error) {
	sb, err := b.Scorer.Provider.Create(ctx, sandbox.Spec{Run: "baseline-" + task.Name, Files: task.EnvDir(), Image: task.Config.Image, Limits: b.Scorer.Limits})
	if err != nil {
		return 0, err
	}
	defer sb.Close()
	res, err := sb.Exec(ctx, sandbox.ExecRequest{
		Args:    []string{b.Scorer.Python, "-u", "train.py"},
		Timeout: time.Duration(task.Config.Budgets.MaxExecTimeout),
	})
	if err != nil {
		return 0, err
	}
	if res.ExitCode != 0 || res.TimedOut {
		return 0, fmt.Errorf("train.py failed (exit %d, timed out %v): %s", res.ExitCode, res.TimedOut, lastLines(res.Stderr, 5))
	}
	out, err := b.Scorer.run(ctx, task, Request{Submission: sb.Workspace()}, 1, false)
	if err != nil {
		return 0, err
	}
	return out.Score, nil
}

// Judge fills in r from a scored outcome: the score, the baseline it is
// compared with (the same-run starter score for a timed task, else the
// task.yaml or measured baseline) and the improvement. A submission whose
// improvement is not a finite number is invalid. The returned error, for the
// operator's log, says why the measured baseline is missing; r.Error then
// says so without the details.
func (b *Baselines) Judge(ctx context.Context, task *tasks.Task, out Outcome, r *runlog.Result) error {
	r.Status = runlog.StatusScored
	r.Score = &out.Score
	if len(out.Scores) > 1 {
		r.Scores = out.Scores
	}
	info := &runlog.BaselineInfo{}
	var baseline float64
	var have bool
	var berr error
	if task.Config.Baseline != nil {
		baseline, have = *task.Config.Baseline, true
		info.Source = runlog.BaselineFromTask
	} else if m, err := b.Get(ctx, task); err != nil {
		berr = err
	} else {
		baseline, have = m.Score, true
		spread := m.Spread
		info.Source, info.Measured, info.Runs, info.Spread, info.Contended = runlog.BaselineMeasured, &m.Score, m.Runs, &spread, m.Contended
	}
	if same, ok := out.StarterScore(task.Config.Direction); ok {
		baseline, have = same, true
		info.Source, info.StarterScores = runlog.BaselineFromSameRun, out.Starter
	}
	if !have {
		r.Error = "baseline unavailable (the operator's log has the details)"
		return berr
	}
	r.Baseline, r.BaselineInfo = &baseline, info
	if baseline == 0 {
		return berr // improvement is undefined, not invalid
	}
	imp, ok := Improvement(out.Score, baseline, task.Config.Direction)
	if !ok {
		// Invalid submissions have no score (the agent's reply keys on it).
		r.Status, r.Score, r.Scores = runlog.StatusInvalid, nil, nil
		r.Error = fmt.Sprintf("%v: score %g against baseline %g gives no finite improvement", ErrInvalid, out.Score, baseline)
		return berr
	}
	r.Improvement = &imp
	r.Success = Success(imp)
	return berr
}

// key covers everything that can change a baseline: the task's files and
// settings, the interpreter, the backend and its settings, and the machine.
func (b *Baselines) key(task *tasks.Task, machine string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "python=%s\x00backend=%s\x00setting=%s\x00machine=%s\x00runs=%d\x00image=%s\x00",
		b.Scorer.Python, b.Scorer.Provider.Name(), b.Setting, machine, task.Config.BaselineRuns, task.Config.Image)
	err := filepath.WalkDir(task.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(task.Dir, p)
		io.WriteString(h, rel+"\x00")
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// machineID names this machine for the cache key: host name, CPU model and
// count, and memory size. A baseline measured elsewhere is measured again.
func machineID() string {
	host, _ := os.Hostname()
	model, mem := "", ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				mem = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("host=%s cpu=%q cpus=%d mem=%s", host, model, runtime.NumCPU(), mem)
}
