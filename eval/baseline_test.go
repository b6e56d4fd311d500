package eval

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// waitLimit bounds every wait of these tests for something that should
// happen promptly: generous, so that a loaded machine does not fail them.
const waitLimit = 2 * time.Minute

// namedTask makes a task called name whose train.py writes 0.25 and whose
// eval reads it, so that its baseline is 0.25.
func namedTask(t *testing.T, name string) *tasks.Task {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"env/train.py":                 "open('out.txt','w').write('0.25')\n",
		"scripts/eval.py":              "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'out.txt')).read())\n",
		"scripts/research_problem.txt": "p",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(dir, name, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	task, err := tasks.NewCatalog(nil, dir, t.TempDir()).Load(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// gatedProvider counts the sandboxes created per run name, and holds those
// of runs whose name contains gate until release is closed or their context
// ends; entered gets a value each time one is held.
type gatedProvider struct {
	sandbox.Provider
	gate    string
	entered chan string
	release chan struct{}

	mu        sync.Mutex
	creates   map[string]int
	cancelled atomic.Int64
}

func newGated(p sandbox.Provider, gate string) *gatedProvider {
	return &gatedProvider{Provider: p, gate: gate, entered: make(chan string, 16), release: make(chan struct{}), creates: map[string]int{}}
}

func (p *gatedProvider) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	p.mu.Lock()
	p.creates[spec.Run]++
	p.mu.Unlock()
	if p.gate != "" && strings.Contains(spec.Run, p.gate) {
		p.entered <- spec.Run
		select {
		case <-p.release:
		case <-ctx.Done():
			p.cancelled.Add(1)
			return nil, ctx.Err()
		}
	}
	return p.Provider.Create(ctx, spec)
}

func (p *gatedProvider) count(run string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.creates[run]
}

func waitEntered(t *testing.T, p *gatedProvider) string {
	t.Helper()
	select {
	case run := <-p.entered:
		return run
	case <-time.After(waitLimit):
		t.Fatal("no sandbox was asked for")
		return ""
	}
}

type getResult struct {
	m   Measurement
	err error
}

func getAsync(ctx context.Context, b *Baselines, task *tasks.Task) chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		m, err := b.Get(ctx, task)
		ch <- getResult{m, err}
	}()
	return ch
}

func receive(t *testing.T, ch chan getResult) getResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitLimit):
		t.Fatal("Get did not return")
		return getResult{}
	}
}

// TestBaselinePerTaskLock: while task A's baseline is held up, task B's is
// computed and returned.
func TestBaselinePerTaskLock(t *testing.T) {
	a, bTask := namedTask(t, "task-a"), namedTask(t, "task-b")
	p := newGated(newScorer(t).Provider, "task-a")
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}
	defer b.Close()

	aDone := getAsync(t.Context(), b, a)
	waitEntered(t, p)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	m, err := b.Get(ctx, bTask)
	if err != nil || m.Score != 0.25 {
		t.Fatalf("task B's baseline while A's is held up: %+v, %v", m, err)
	}
	select {
	case r := <-aDone:
		t.Fatalf("task A's Get returned while its computation was held up: %+v", r)
	default:
	}
	close(p.release)
	if r := receive(t, aDone); r.err != nil || r.m.Score != 0.25 {
		t.Fatalf("task A's baseline: %+v", r)
	}
	// B was measured beside A, so A's first attempt did not count as
	// alone; A was never computed twice at once, though.
	if p.count("baseline-task-a") < 1 || p.count("baseline-task-b") < 1 {
		t.Errorf("creates: %v", p.creates)
	}
}

// TestBaselinePrefetchShared: Get waits for the computation Prefetch
// started instead of starting a second one, and a waiter's context bounds
// only its own wait.
func TestBaselinePrefetchShared(t *testing.T) {
	task := namedTask(t, "shared")
	p := newGated(newScorer(t).Provider, "baseline-shared")
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}
	defer b.Close()

	b.Prefetch(task)
	waitEntered(t, p)
	// A waiter that gives up does not end the computation.
	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Get(short, task); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "wait for the baseline of shared") {
		t.Fatalf("Get with a context that ends: %v", err)
	}
	var waiters []chan getResult
	for range 4 {
		waiters = append(waiters, getAsync(t.Context(), b, task))
	}
	close(p.release)
	for _, w := range waiters {
		if r := receive(t, w); r.err != nil || r.m.Score != 0.25 || r.m.CacheFile == "" {
			t.Fatalf("waiter: %+v", r)
		}
	}
	if got := p.count("baseline-shared"); got != 1 {
		t.Errorf("%d computations of one baseline, want 1", got)
	}
	// Cached from now on.
	if m, ok, err := b.Cached(task); !ok || err != nil || m.Score != 0.25 {
		t.Errorf("Cached = %+v, %v, %v", m, ok, err)
	}
	if _, err := b.Get(t.Context(), task); err != nil || p.count("baseline-shared") != 1 {
		t.Errorf("a cached baseline was measured again: %v, %v", err, p.creates)
	}
}

// TestBaselineClose: Close cancels the computation under way and waits for
// it; nothing is cached and Get fails afterwards.
func TestBaselineClose(t *testing.T) {
	task := namedTask(t, "closing")
	p := newGated(newScorer(t).Provider, "closing")
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}

	b.Prefetch(task)
	waitEntered(t, p)
	waiter := getAsync(t.Context(), b, task)
	closed := make(chan struct{})
	go func() {
		b.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	if p.cancelled.Load() != 1 {
		t.Errorf("%d held sandboxes saw their context end, want 1", p.cancelled.Load())
	}
	if r := receive(t, waiter); r.err == nil {
		t.Errorf("a waiter got %+v from a cancelled computation", r.m)
	}
	if _, err := b.Get(t.Context(), task); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, ok, _ := b.Cached(task); ok {
		t.Error("a cancelled computation was cached")
	}
	b.Prefetch(task) // a no-op, not a panic or a leak
}

// TestBaselineFailureRetried: a failed computation is logged, not cached,
// and the next need starts another.
func TestBaselineFailureRetried(t *testing.T) {
	task := namedTask(t, "failing")
	p := newGated(failingProvider{}, "")
	var log syncBuffer
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir(), Log: zerolog.New(&log)}
	defer b.Close()
	for i := 1; i <= 2; i++ {
		if _, err := b.Get(t.Context(), task); err == nil || !strings.Contains(err.Error(), "no sandbox for you") {
			t.Fatalf("Get %d: %v", i, err)
		}
		if got := p.count("baseline-failing"); got != i {
			t.Errorf("after %d failures, %d computations", i, got)
		}
	}
	if n := strings.Count(log.String(), "baseline computation failed"); n != 2 {
		t.Errorf("%d failures logged, want 2:\n%s", n, log.String())
	}
}

// TestBaselinesCompete: two baselines measured side by side disturb each
// other like any other sandbox, so neither is cached as measured alone.
func TestBaselinesCompete(t *testing.T) {
	a, bTask := namedTask(t, "first"), namedTask(t, "second")
	p := newGated(newScorer(t).Provider, "baseline-first")
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir(), Attempts: 1}
	defer b.Close()
	aDone := getAsync(t.Context(), b, a)
	waitEntered(t, p)
	m, err := b.Get(t.Context(), bTask)
	if err != nil || !m.Contended || m.CacheFile != "" {
		t.Errorf("baseline measured beside another: %+v, %v; want contended and not cached", m, err)
	}
	close(p.release)
	if r := receive(t, aDone); r.err != nil || !r.m.Contended {
		t.Errorf("baseline that another was measured beside: %+v", r)
	}
	// Alone, it is cached.
	if m, err := b.Get(t.Context(), bTask); err != nil || m.Contended || m.CacheFile == "" {
		t.Errorf("baseline measured alone: %+v, %v", m, err)
	}
}

// TestJudgeWaitsInBackground: Judge waits for the background computation
// only as long as its context allows, never measures itself, and a later
// Judge gets the baseline that computation cached.
func TestJudgeWaitsInBackground(t *testing.T) {
	task := namedTask(t, "judged")
	p := newGated(newScorer(t).Provider, "baseline-judged")
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}
	defer b.Close()
	out := Outcome{Score: 0.5, Scores: []float64{0.5}}

	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	var r runlog.Result
	err := b.Judge(short, task, out, &r)
	if !errors.Is(err, context.DeadlineExceeded) || r.Status != runlog.StatusScored || r.Baseline != nil ||
		r.Error != "baseline unavailable (the operator's log has the details)" {
		t.Fatalf("Judge before the baseline is there: %+v, %v", r, err)
	}
	waitEntered(t, p) // Judge started it in the background
	close(p.release)
	if _, err := b.Get(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	r = runlog.Result{}
	if err := b.Judge(t.Context(), task, out, &r); err != nil {
		t.Fatal(err)
	}
	if r.Baseline == nil || *r.Baseline != 0.25 || r.Improvement == nil || *r.Improvement != 1 ||
		r.BaselineInfo.Source != runlog.BaselineMeasured || len(r.BaselineInfo.Runs) != 1 || r.BaselineInfo.Spread == nil {
		t.Errorf("Judge with the baseline cached: %+v %+v", r, r.BaselineInfo)
	}
	if got := p.count("baseline-judged"); got != 1 {
		t.Errorf("%d computations, want 1", got)
	}
}

// TestJudgeSameRunMeasuresNothing: a task timed by its eval is judged
// against the starter code of the same run; Judge neither waits for nor
// starts a measurement of its baseline.
func TestJudgeSameRunMeasuresNothing(t *testing.T) {
	task := namedTask(t, "timed")
	task.Config.Timed, task.Config.TimedBy, task.Config.Direction = true, tasks.TimedByEval, tasks.Lower
	p := newGated(failingProvider{}, "")
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}
	defer b.Close()
	var r runlog.Result
	out := Outcome{Score: 1, Scores: []float64{1, 1.1}, Starter: []float64{2, 2.1}}
	if err := b.Judge(t.Context(), task, out, &r); err != nil {
		t.Fatal(err)
	}
	if r.BaselineInfo.Source != runlog.BaselineFromSameRun || *r.Baseline != 2 || *r.Improvement != 0.5 || r.BaselineInfo.Measured != nil {
		t.Errorf("result %+v %+v", r, r.BaselineInfo)
	}
	b.Close() // waits for anything started in the background
	if n := p.count("baseline-timed") + p.count("eval-timed"); n != 0 {
		t.Errorf("Judge asked for %d sandboxes", n)
	}
}

// TestDirectionVectorizationImprovement is the case: MLAgentBench's
// vectorization folder, loaded without a task.yaml, scores a runtime that
// train.py measures. Its baseline is the median of three runs of the
// starter's train.py, and a solution 130 times faster gets a positive
// improvement (it was judged -99% when taken as higher-is-better).
func TestDirectionVectorizationImprovement(t *testing.T) {
	cat := tasks.NewCatalog(nil, filepath.Join("..", "tasks", "testdata", "mlagentbench"), t.TempDir())
	task, err := cat.Load(t.Context(), "vectorization")
	if err != nil {
		t.Fatal(err)
	}
	if task.Config.Direction != tasks.Lower || !task.Config.IsTimed() || task.Config.SameRunStarter() || task.Config.BaselineRuns != tasks.DefaultTimedRuns {
		t.Fatalf("vectorization loaded as %+v", task.Config)
	}
	b := &Baselines{Scorer: newScorer(t), CacheDir: t.TempDir()}
	defer b.Close()
	m, err := b.Get(t.Context(), task)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range m.Runs {
		lo, hi = min(lo, v), max(hi, v)
	}
	// Each run is train.py's own figure: a time, not eval.py's 1e10 for a
	// missing one.
	if len(m.Runs) != 3 || hi >= 1e9 || lo <= 0 || m.Spread != hi-lo || m.Score < lo || m.Score > hi {
		t.Fatalf("baseline %+v: want the median of 3 runs of train.py with their spread", m)
	}
	raw, err := os.ReadFile(m.CacheFile)
	if err != nil || !strings.Contains(string(raw), `"spread":`) || !strings.Contains(string(raw), `"runs": [`) {
		t.Errorf("cache file %s: %s, %v", m.CacheFile, raw, err)
	}

	sub := t.TempDir()
	fast := m.Score / 130
	if err := os.WriteFile(filepath.Join(sub, "submission.csv"), []byte(strconv.FormatFloat(fast, 'g', -1, 64)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := b.Scorer.Score(t.Context(), task, Request{Submission: sub})
	if err != nil || len(out.Starter) != 0 || math.Abs(out.Score-fast) > 1e-12*fast {
		t.Fatalf("score %+v, %v; want %v without a same-run starter", out, err, fast)
	}
	var r runlog.Result
	if err := b.Judge(t.Context(), task, out, &r); err != nil {
		t.Fatal(err)
	}
	want := 1 - 1.0/130
	if r.Improvement == nil || math.Abs(*r.Improvement-want) > 1e-6 || !r.Success || r.BaselineInfo.Source != runlog.BaselineMeasured ||
		len(r.BaselineInfo.Runs) != 3 || r.BaselineInfo.Spread == nil || *r.BaselineInfo.Spread != m.Spread {
		t.Errorf("result %+v %+v; want improvement %.4f against the measured baseline", r, r.BaselineInfo, want)
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		runs                []float64
		timed               bool
		score, mean, spread float64
		median              float64
		stat                string
	}{
		{[]float64{0.5}, false, 0.5, 0.5, 0, 0.5, StatMean},
		{[]float64{1, 2, 6}, false, 3, 3, 5, 2, StatMean},
		{[]float64{1, 2, 6}, true, 2, 3, 5, 2, StatMedian},
		{[]float64{4, 1, 3, 2}, false, 2.5, 2.5, 3, 2.5, StatMean},
		{[]float64{10, 1, 3, 2}, true, 2.5, 4, 9, 2.5, StatMedian},
	}
	for _, tc := range tests {
		m := Summarize(slices.Clone(tc.runs), tc.timed)
		if m.Score != tc.score || m.Mean != tc.mean || m.Median != tc.median || m.Spread != tc.spread || m.Statistic != tc.stat || len(m.Runs) != len(tc.runs) {
			t.Errorf("Summarize(%v, timed %v) = %+v", tc.runs, tc.timed, m)
		}
	}
}

// TestMeasureRuns: Measure runs the starter code the number of times asked,
// whatever task.yaml says, and caches the mean and spread as the task's
// baseline, which Cached and Get then give without measuring again.
func TestMeasureRuns(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		// A different score each run, so that mean and median differ from
		// any one run.
		"noisy/env/train.py":                 "import random\nopen('out.txt','w').write(repr(random.random()))\n",
		"noisy/scripts/eval.py":              "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'out.txt')).read())\n",
		"noisy/scripts/research_problem.txt": "p",
		"noisy/task.yaml":                    "metric: accuracy\nbaseline_runs: 1\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	task, err := tasks.NewCatalog(nil, dir, t.TempDir()).Load(t.Context(), "noisy")
	if err != nil {
		t.Fatal(err)
	}
	p := newGated(newScorer(t).Provider, "")
	b := &Baselines{Scorer: &Scorer{Provider: p, Python: "/usr/bin/python3"}, CacheDir: t.TempDir()}
	defer b.Close()
	if _, err := b.Measure(t.Context(), task, tasks.MaxBaselineRuns+1); err == nil {
		t.Error("Measure accepted more runs than MaxBaselineRuns")
	}
	m, err := b.Measure(t.Context(), task, 3)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range m.Runs {
		sum += v
	}
	if len(m.Runs) != 3 || m.Statistic != StatMean || math.Abs(m.Score-sum/3) > 1e-15 || m.Score != m.Mean ||
		m.Spread != slices.Max(m.Runs)-slices.Min(m.Runs) || m.Spread == 0 || m.CacheFile == "" {
		t.Fatalf("Measure(3) = %+v: want the mean and spread of 3 different runs, cached", m)
	}
	if got := p.count("baseline-noisy"); got != 3 {
		t.Errorf("%d sandboxes for 3 runs", got)
	}
	// The task's own baseline_runs (1) does not make it stale.
	cached, ok, err := b.Cached(task)
	if err != nil || !ok || !slices.Equal(cached.Runs, m.Runs) || cached.Score != m.Score {
		t.Errorf("Cached = %+v, %v, %v; want the measurement of 3 runs", cached, ok, err)
	}
	if got, err := b.Get(t.Context(), task); err != nil || got.Score != m.Score || p.count("baseline-noisy") != 3 {
		t.Errorf("Get = %+v, %v after %d sandboxes: want the cached measurement", got, err, p.count("baseline-noisy"))
	}
	// Measured again with another count, it replaces the cached one.
	again, err := b.Measure(t.Context(), task, 2)
	if err != nil || len(again.Runs) != 2 || again.CacheFile != m.CacheFile {
		t.Fatalf("Measure(2) = %+v, %v", again, err)
	}
	if cached, _, _ := b.Cached(task); !slices.Equal(cached.Runs, again.Runs) {
		t.Errorf("Cached after a new measurement = %+v, want %+v", cached, again)
	}
}
