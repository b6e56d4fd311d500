package eval

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

	"github.com/mlab/mlab/internal/atomicfile"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// DefaultAttempts bounds how often a baseline is measured again because
// other sandboxes ran execs during the measurement.
const DefaultAttempts = 3

// Baselines gives each task's baseline score: the one task.yaml states, or
// a measurement of the unmodified env/ (for a task timed by its eval, env/ as
// shipped; otherwise after running its train.py), repeated baseline_runs
// times while no other sandbox runs anything, and cached on disk under a key
// that covers the task, the interpreter, the sandbox settings and the
// machine.
//
// Measurements run in the background, on a context that lives as long as
// the Baselines (Close ends it), one computation per task at a time: a task
// whose baseline is being measured never holds up another task, and every
// caller that needs the same baseline waits for the one computation. A
// failed computation is logged and forgotten, so the next need tries again.
//
// The zero value is ready to use (with Scorer and CacheDir set); Close it to
// stop what runs in the background.
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
	// Log receives what happens in the background: computations that
	// failed or could not be measured alone. The zero Logger drops it.
	Log zerolog.Logger

	initOnce sync.Once
	// ctx is the Baselines' life: computations run on it, Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards inflight and closed. It is never held while measuring, so
	// one task's computation does not block another's.
	mu       sync.Mutex
	inflight map[string]*computation // by cache file
	closed   bool

	// act counts the measurements of this Baselines, which Meter does not
	// see, so that two running side by side know they competed.
	act activity
}

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("baselines: closed")

// Measurement is a measured baseline.
type Measurement struct {
	// Score is the baseline: Statistic of Runs, their mean, or for a timed
	// task their median, which one slow run (a machine busy for a moment)
	// does not move.
	Score float64   `json:"score"`
	Runs  []float64 `json:"runs"`
	// Spread is max(Runs) - min(Runs).
	Spread float64 `json:"spread"`
	// Mean and Median are those of Runs; Statistic names the one that is
	// Score, StatMean or StatMedian.
	Mean      float64 `json:"mean"`
	Median    float64 `json:"median"`
	Statistic string  `json:"statistic"`
	// Contended is set when other sandboxes ran execs during every attempt.
	Contended bool `json:"contended,omitempty"`
	// CacheFile is where the measurement is cached; "" when it is not (a
	// contended one).
	CacheFile string `json:"-"`
}

// Statistics a baseline can be of its runs.
const (
	StatMean   = "mean"
	StatMedian = "median"
)

// Summarize makes a measurement of runs, which must not be empty: their
// mean is the baseline, or for a timed task their median.
func Summarize(runs []float64, timed bool) Measurement {
	var sum float64
	for _, v := range runs {
		sum += v
	}
	m := Measurement{
		Runs: runs, Spread: slices.Max(runs) - slices.Min(runs),
		Mean: sum / float64(len(runs)), Median: median(runs), Statistic: StatMean,
	}
	m.Score = m.Mean
	if timed {
		m.Score, m.Statistic = m.Median, StatMedian
	}
	return m
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

// computation is one background measurement of a task's baseline; done is
// closed once m and err are set.
type computation struct {
	done chan struct{}
	m    Measurement
	err  error
}

func (c *computation) wait(ctx context.Context, task string) (Measurement, error) {
	select {
	case <-c.done:
		return c.m, c.err
	case <-ctx.Done():
		return Measurement{}, fmt.Errorf("wait for the baseline of %s: %w", task, ctx.Err())
	}
}

func (b *Baselines) init() {
	b.initOnce.Do(func() {
		b.ctx, b.cancel = context.WithCancel(context.Background())
		b.inflight = map[string]*computation{}
	})
}

// Get returns the measured baseline of task: from the cache, or from the
// computation under way, or from one it starts in the background. It waits
// for that computation as long as ctx allows; the computation goes on when
// ctx ends, for the next caller.
func (b *Baselines) Get(ctx context.Context, task *tasks.Task) (Measurement, error) {
	m, c, err := b.lookup(task)
	if err != nil || c == nil {
		return m, err
	}
	return c.wait(ctx, task.Name)
}

// Cached returns the cached baseline of task without measuring anything; ok
// is false when there is none yet.
func (b *Baselines) Cached(task *tasks.Task) (m Measurement, ok bool, err error) {
	path, err := b.cachePath(task)
	if err != nil {
		return Measurement{}, false, err
	}
	m, ok = readCache(path, task)
	return m, ok, nil
}

// Prefetch measures, in the background and one after the other, the
// baselines of the tasks that state none and have none cached, so that no
// submission waits for them later; tasks that have not been prepared are
// left for their first use. It returns at once.
func (b *Baselines) Prefetch(ts ...*tasks.Task) {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		// One at a time: side by side, the measurements would compete and
		// none would be cached.
		for _, t := range ts {
			// An unprepared task (tasks.Catalog.Describe's) has no data
			// to measure with yet: its baseline waits for its first use.
			// Nor does a task timed by its eval: each submission's eval
			// times the starter code beside it, and that is what it is
			// judged against, so a server need not spend a minute of CPU on
			// it at every start (mlab baseline measures it on demand).
			if t.Config.Baseline != nil || (t.Prepare != nil && !t.Prepare.Done) || t.Config.SameRunStarter() {
				continue
			}
			_, c, err := b.lookup(t)
			if err != nil {
				b.Log.Warn().Err(err).Str("task", t.Name).Msg("baseline not prefetched")
				continue
			}
			if c != nil {
				c.wait(b.ctx, t.Name) // failures are logged by the computation
			}
			if b.ctx.Err() != nil {
				return
			}
		}
	}()
}

// Close stops the computations under way and waits for them to end. Get
// fails with ErrClosed afterwards; Cached still reads the cache.
func (b *Baselines) Close() {
	b.init()
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}

// lookup returns the cached baseline of task, or else the computation of it
// under way, or else one it starts; c is nil for a cached one.
func (b *Baselines) lookup(task *tasks.Task) (m Measurement, c *computation, err error) {
	b.init()
	path, err := b.cachePath(task)
	if err != nil {
		return Measurement{}, nil, err
	}
	if m, ok := readCache(path, task); ok {
		return m, nil, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Measurement{}, nil, fmt.Errorf("baseline of %s: %w", task.Name, ErrClosed)
	}
	if c := b.inflight[path]; c != nil {
		return Measurement{}, c, nil
	}
	// A computation may have finished since the cache was read.
	if m, ok := readCache(path, task); ok {
		return m, nil, nil
	}
	c = &computation{done: make(chan struct{})}
	b.inflight[path] = c
	b.wg.Add(1)
	go b.compute(task, path, c)
	return Measurement{}, c, nil
}

// Measure measures task's baseline now, runs times (0 means the task's
// baseline_runs), whether or not one is cached, and caches it in place of
// the cached one: from then on it is the task's baseline, whatever its
// number of runs. A computation of the baseline under way is waited for
// first, then measured over.
func (b *Baselines) Measure(ctx context.Context, task *tasks.Task, runs int) (Measurement, error) {
	if runs < 0 || runs > tasks.MaxBaselineRuns {
		return Measurement{}, fmt.Errorf("baseline of %s: %d runs: want 1 to %d", task.Name, runs, tasks.MaxBaselineRuns)
	}
	if runs > 0 {
		copied := *task
		copied.Config.BaselineRuns = runs
		task = &copied
	}
	b.init()
	path, err := b.cachePath(task)
	if err != nil {
		return Measurement{}, err
	}
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return Measurement{}, fmt.Errorf("baseline of %s: %w", task.Name, ErrClosed)
		}
		if c := b.inflight[path]; c != nil {
			b.mu.Unlock()
			if _, err := c.wait(ctx, task.Name); ctx.Err() != nil {
				return Measurement{}, err
			}
			continue
		}
		c := &computation{done: make(chan struct{})}
		b.inflight[path] = c
		b.wg.Add(1)
		go b.compute(task, path, c)
		b.mu.Unlock()
		return c.wait(ctx, task.Name)
	}
}

// compute measures task's baseline on the Baselines' context and caches it.
func (b *Baselines) compute(task *tasks.Task, path string, c *computation) {
	defer b.wg.Done()
	start := time.Now()
	b.Log.Info().Str("task", task.Name).Int("runs", max(task.Config.BaselineRuns, 1)).Msg("measuring the baseline in the background")
	m, attempts, err := b.measureAlone(b.ctx, task)
	switch {
	case err != nil:
		err = fmt.Errorf("compute baseline of %s: %w", task.Name, err)
	case m.Contended:
		b.Log.Warn().Str("task", task.Name).Int("attempts", attempts).
			Msg("baseline measured while other sandboxes ran: used, but not cached")
	default:
		err = b.write(path, cachedBaseline{
			Task: task.Name, Measurement: m, Python: b.Scorer.Python, Backend: b.Scorer.Provider.Name(),
			Setting: b.Setting, Machine: machineID(), ComputedAt: time.Now().UTC(),
			Seconds: time.Since(start).Seconds(), Attempts: attempts,
		})
		if err == nil {
			m.CacheFile = path
			b.Log.Info().Str("task", task.Name).Float64("score", m.Score).Floats64("runs", m.Runs).Float64("spread", m.Spread).
				Str("file", path).Dur("took", time.Since(start)).Msg("baseline measured and cached")
		} else {
			// The measurement stands for those waiting; the next need
			// measures again.
			b.Log.Warn().Err(err).Str("task", task.Name).Msg("baseline measured but not cached")
			err = nil
		}
	}
	if err != nil {
		m = Measurement{}
		if b.ctx.Err() == nil {
			b.Log.Warn().Err(err).Str("task", task.Name).Msg("baseline computation failed; it is tried again when next needed")
		}
	}
	c.m, c.err = m, err
	// Forgotten before it is announced: whoever comes next reads the cache
	// or, after a failure, starts again.
	b.mu.Lock()
	delete(b.inflight, path)
	b.mu.Unlock()
	close(c.done)
}

func (b *Baselines) write(path string, c cachedBaseline) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("cache baseline: %w", err)
	}
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return fmt.Errorf("cache baseline: %w", err)
	}
	if err := atomicfile.Write(path, raw, 0o644, false); err != nil {
		return fmt.Errorf("cache baseline: %w", err)
	}
	return nil
}

// cachePath names the file that holds task's baseline under the current
// settings.
func (b *Baselines) cachePath(task *tasks.Task) (string, error) {
	key, err := b.key(task, machineID())
	if err != nil {
		return "", fmt.Errorf("hash task %s: %w", task.Name, err)
	}
	// The aliases of a folder (tasks.json) run the same code on the same
	// data: they share its baseline.
	name := task.Name
	if task.AliasOf != "" {
		name = task.AliasOf
	}
	return filepath.Join(b.CacheDir, fmt.Sprintf("baseline-%s-%s.json", name, key[:16])), nil
}

// readCache reads a cached baseline of task; ok is false when there is no
// valid one. Its statistics are worked out again from its runs, so that a
// record written before they were kept, or under another rule, serves as
// today's rule says.
func readCache(path string, task *tasks.Task) (Measurement, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Measurement{}, false
	}
	var c cachedBaseline
	if json.Unmarshal(raw, &c) != nil || !c.valid() {
		return Measurement{}, false
	}
	m := Summarize(c.Runs, task.Config.IsTimed())
	m.CacheFile = path
	return m, true
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
// an exec and no other baseline was measured, at most Attempts times.
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
		others, changes := b.act.enter()
		m, err = b.measure(ctx, task)
		alone := b.act.leave(changes) && others == 0
		if err != nil {
			return m, attempts, err
		}
		if b.Meter != nil {
			_, after := b.Meter.Activity()
			alone = alone && running == 0 && after == before
		}
		if alone {
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
	return Summarize(scores, task.Config.IsTimed()), nil
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
// compared with (the same-run starter score for a task timed by its eval,
// else the task.yaml or measured baseline) and the improvement. A submission
// whose improvement is not a finite number is invalid. The returned error,
// for the operator's log, says why the measured baseline is missing; r.Error
// then says so without the details.
//
// Judge never measures on the submission's behalf. A measured baseline it
// needs comes from the cache or from the background computation (Prefetch's,
// or one Judge starts in the background when there is none), which it waits
// for as long as ctx allows: the submission's eval context bounds how long a
// result waits for its baseline. For a task timed by its eval, whose
// improvement is against the starter code timed in the same run, Judge only
// records the cached baseline when there is one, and neither waits nor
// starts a measurement.
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
	same, sameRun := out.StarterScore(task.Config.Direction)
	measured := func(m Measurement) {
		baseline, have = m.Score, true
		score, spread := m.Score, m.Spread
		info.Source, info.Measured, info.Runs, info.Spread, info.Contended = runlog.BaselineMeasured, &score, m.Runs, &spread, m.Contended
	}
	switch {
	case task.Config.Baseline != nil:
		baseline, have = *task.Config.Baseline, true
		info.Source = runlog.BaselineFromTask
	case sameRun:
		if m, ok, err := b.Cached(task); err == nil && ok {
			measured(m)
		}
	default:
		if m, err := b.Get(ctx, task); err != nil {
			berr = err
		} else {
			measured(m)
		}
	}
	if sameRun {
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
// The number of runs is not part of it: a measurement of any number is the
// task's baseline until one is measured again (mlab baseline --runs N).
// A prepared task's files are those of its folder before preparing, named
// by their hash: prepare.py makes the rest from them, and a listing finds
// the baseline of a task that has not been prepared yet without reading
// data it has not made.
func (b *Baselines) key(task *tasks.Task, machine string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "python=%s\x00backend=%s\x00setting=%s\x00machine=%s\x00image=%s\x00",
		b.Scorer.Python, b.Scorer.Provider.Name(), b.Setting, machine, task.Config.Image)
	if task.Prepare != nil {
		fmt.Fprintf(h, "prepared=%s\x00", task.Prepare.Key)
		return hex.EncodeToString(h.Sum(nil)), nil
	}
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

// activity counts the measurements running and the times one started or
// ended, so that a measurement can tell whether another ran beside it.
type activity struct {
	mu      sync.Mutex
	running int
	changes int64
}

// enter records a measurement's start: it returns how many others run and
// the count of changes that leave expects if none started or ended since.
func (a *activity) enter() (others int, changes int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running++
	a.changes++
	return a.running - 1, a.changes
}

// leave records a measurement's end and reports whether no other started or
// ended while it ran.
func (a *activity) leave(changes int64) (alone bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	alone = a.changes == changes
	a.running--
	a.changes++
	return alone
}
