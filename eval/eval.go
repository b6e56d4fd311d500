// Package eval scores submissions with a task's hidden scripts, in a sandbox
// of their own, and turns scores into improvement and success against the
// task's baseline.
package eval

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// SuccessThreshold is the improvement over baseline that counts as success,
// as in MLAgentBench.
const SuccessThreshold = 0.10

// ErrInvalid marks a submission that could not be scored: eval crashed,
// timed out or returned something that is not a finite number. Its message
// is a short reason that is safe to show the agent: it never holds the
// eval's output, which may quote the hidden scripts.
var ErrInvalid = errors.New("invalid submission")

// Scorer runs hidden evals.
type Scorer struct {
	// Provider creates the eval sandboxes; they never share one with an agent.
	Provider sandbox.Provider
	// Python is the interpreter that runs eval.py.
	Python string
	// Limits bound the eval's (and a baseline run's) sandbox; an eval runs
	// in the capacity its session reserved, so the server passes the
	// sessions' limits. Zero fields take the sandbox defaults.
	Limits sandbox.Limits
}

// driver imports eval.py from its working directory (the scripts copy),
// calls get_score and writes the scores behind a nonce read from stdin; see
// driver.py for how it keeps the result out of the submission's reach.
//
//go:embed driver.py
var driver string

// Names inside the eval sandbox's workspace.
const (
	driverName    = "mlab_eval_driver.py"
	scriptsDir    = "scripts"
	submissionDir = "submission"
	starterDir    = "starter"
)

const resultMarker = "MLAB_RESULT "

// Request is one submission to score.
type Request struct {
	// Submission is a host folder holding the submitted workspace. Score
	// works on a copy and leaves it as it is.
	Submission string
	// GPUs are the submitting session's leased devices.
	GPUs []string
	// Log, when set, receives the eval's whole output, stdout and stderr,
	// for the operator; it must be safe for concurrent writes. The agent
	// never sees it: it may quote the hidden scripts.
	Log io.Writer
}

// Outcome is one run of the hidden eval.
type Outcome struct {
	// Score is the submission's figure: its one round's score, or for a
	// timed task its best round (see best).
	Score float64
	// Scores holds one score per round: several for a timed task.
	Scores []float64
	// Starter holds, for a timed task, the scores of the unchanged starter
	// code (env/ as shipped) in the same eval run, each round alternating
	// with the submission's.
	Starter  []float64
	Output   string // capped stdout and stderr of eval, for the operator
	Duration time.Duration
}

// StarterScore is the same-run starter code's figure, its best round in
// direction like the submission's; ok is false when the eval timed none.
func (o Outcome) StarterScore(direction string) (score float64, ok bool) {
	if len(o.Starter) == 0 {
		return 0, false
	}
	return best(o.Starter, direction), true
}

// best is the figure of a timed task's rounds: the best round in the task's
// direction. Noise (another process, a cold cache, a slower core) only ever
// makes a timed run worse, so the best round is the most faithful estimate
// of what the code can do, and the same estimator on both sides keeps the
// comparison fair. Medians are not: rounds of the unchanged numpy-speedup
// starter on a quiet 2-core machine took either 0.665 s or 0.716 s, and the
// medians of three put an unchanged submission 7% ahead of itself.
func best(v []float64, direction string) float64 {
	if direction == tasks.Lower {
		return slices.Min(v)
	}
	return slices.Max(v)
}

// Score copies the submission, the task's hidden scripts and, for a task
// timed by its eval, its starter code into a fresh sandbox (with the
// submitting session's GPUs) and calls get_score there: once, or for a task
// timed by its eval once per round on the submission and on the starter
// code, alternating. (A task timed by its own script has its figure written
// down by the submission's run; eval.py only reads it, once.) An error
// wrapping ErrInvalid means the submission could not be scored; other errors
// mean the machinery failed.
func (s *Scorer) Score(ctx context.Context, task *tasks.Task, req Request) (Outcome, error) {
	if task.Config.SameRunStarter() {
		return s.run(ctx, task, req, task.Config.BaselineRuns, true)
	}
	return s.run(ctx, task, req, 1, false)
}

func (s *Scorer) run(ctx context.Context, task *tasks.Task, req Request, rounds int, starter bool) (Outcome, error) {
	rounds = max(rounds, 1)
	sb, err := s.Provider.Create(ctx, sandbox.Spec{Run: "eval-" + task.Name, GPUs: req.GPUs, Image: task.Config.Image, Limits: s.Limits})
	if err != nil {
		return Outcome{}, fmt.Errorf("create eval sandbox: %w", err)
	}
	defer sb.Close()
	trusted, err := populate(ctx, sb, task, req.Submission, starter)
	if err != nil {
		return Outcome{}, err
	}
	before, err := fingerprint(sb.Workspace(), trusted)
	if err != nil {
		return Outcome{}, fmt.Errorf("fingerprint eval files: %w", err)
	}

	nonce := make([]byte, 16)
	rand.Read(nonce)
	token := hex.EncodeToString(nonce)
	// -B: -I ignores PYTHONDONTWRITEBYTECODE, and the eval must not write
	// its own folder.
	args := []string{s.Python, "-I", "-B", "../" + driverName, strconv.Itoa(rounds), "../" + submissionDir}
	calls := rounds
	if starter {
		args = append(args, "../"+starterDir)
		calls *= 2
	}
	// eval_timeout bounds one call of get_score; task.yaml bounds both
	// factors, so the product cannot overflow.
	timeout := time.Duration(task.Config.EvalTimeout) * time.Duration(calls)
	res, err := sb.Exec(ctx, sandbox.ExecRequest{
		Args:    args,
		Dir:     scriptsDir,
		Timeout: timeout,
		Stdin:   strings.NewReader(token + "\n"),
		Stdout:  req.Log,
		Stderr:  req.Log,
		// Code the submission runs must not plant a user site-packages
		// (HOME is writable /tmp) that every later Python of the eval,
		// the starter's included, would load.
		Env: []string{"PYTHONNOUSERSITE=1"},
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("run eval: %w", err)
	}
	out := Outcome{Duration: res.Duration, Output: joinOutput(res)}
	// Where the sandbox's user cannot be kept from writing them (a backend
	// that runs scripts as the server's own uid), a change to the eval's
	// files is at least caught: the result is void.
	if after, err := fingerprint(sb.Workspace(), trusted); err != nil || !maps.Equal(before, after) {
		return out, fmt.Errorf("%w: the submission's code changed the eval's own files", ErrInvalid)
	}
	switch {
	case res.TimedOut:
		return out, fmt.Errorf("%w: eval timed out after %s", ErrInvalid, timeout)
	case res.OOM:
		return out, fmt.Errorf("%w: eval ran out of memory", ErrInvalid)
	}
	r, found, err := parseResult(res.Stdout, token)
	switch {
	case err != nil:
		return out, err
	case !found && res.ExitCode != 0:
		return out, fmt.Errorf("%w: eval crashed (exit code %d)", ErrInvalid, res.ExitCode)
	case !found:
		return out, fmt.Errorf("%w: eval finished without reporting a score", ErrInvalid)
	}
	if err := r.check(rounds, starter); err != nil {
		return out, err
	}
	out.Scores, out.Starter = r.Scores, r.Starter
	out.Score = best(r.Scores, task.Config.Direction)
	return out, nil
}

// populate lays out the eval workspace. The hidden scripts, the driver and
// the starter code are the server's and only readable by the sandbox's
// user; the submission is the user's, since the code the eval runs may
// write in its own folder.
// It returns the trusted entries, relative to the workspace.
func populate(ctx context.Context, sb sandbox.Sandbox, task *tasks.Task, submission string, starter bool) (trusted []string, err error) {
	ws := sb.Workspace()
	if err := sandbox.CopyDir(ctx, task.ScriptsDir(), filepath.Join(ws, scriptsDir)); err != nil {
		return nil, fmt.Errorf("copy scripts of %s: %w", task.Name, err)
	}
	trusted = []string{scriptsDir, driverName}
	if starter {
		if err := sandbox.CopyDir(ctx, task.EnvDir(), filepath.Join(ws, starterDir)); err != nil {
			return nil, fmt.Errorf("copy starter code of %s: %w", task.Name, err)
		}
		trusted = append(trusted, starterDir)
	}
	if err := os.WriteFile(filepath.Join(ws, driverName), []byte(driver), 0o644); err != nil {
		return nil, fmt.Errorf("write eval driver: %w", err)
	}
	sub := filepath.Join(ws, submissionDir)
	if err := sandbox.CopyDir(ctx, submission, sub); err != nil {
		return nil, fmt.Errorf("copy submission: %w", err)
	}
	if err := restoreReadOnly(task, sub); err != nil {
		return nil, err
	}
	if uid, gid, ok := sandbox.OwnerOf(sb); ok {
		if err := sandbox.ChownTree(sub, uid, gid); err != nil {
			return nil, fmt.Errorf("hand the submission to the sandbox user: %w", err)
		}
	}
	return trusted, seal(sb, trusted)
}

// fileID tells a file from any changed or replaced version of it: a write,
// chmod, rename or replacement changes the inode or the change time, which
// no unprivileged process can set back.
type fileID struct {
	ino   uint64
	ctime int64
	size  int64
	mode  os.FileMode
}

// fingerprint identifies the workspace root and everything under the
// trusted entries.
func fingerprint(ws string, trusted []string) (map[string]fileID, error) {
	ids := map[string]fileID{}
	add := func(p string) error {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no inode", p)
		}
		ids[p] = fileID{st.Ino, st.Ctim.Nano(), fi.Size(), fi.Mode()}
		return nil
	}
	if err := add(ws); err != nil {
		return nil, err
	}
	for _, rel := range trusted {
		err := filepath.WalkDir(filepath.Join(ws, rel), func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return add(p)
		})
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// seal makes the eval workspace's root and the trusted entries in it
// readable but not writable by the sandbox's user: owned by the server,
// with the sandbox's group where the server may give it (as root), and no
// write bit for group or others. A root the sandbox user cannot write also
// keeps the submission's code from renaming scripts/ away and putting its
// own answers in its place.
func seal(sb sandbox.Sandbox, trusted []string) error {
	ws := sb.Workspace()
	uid, gid := os.Geteuid(), -1
	if _, owner, ok := sandbox.OwnerOf(sb); ok && uid == 0 {
		gid = owner
	}
	fix := func(p string, dir bool) error {
		mode := os.FileMode(0o644)
		if dir {
			mode = 0o755
		}
		if gid >= 0 {
			// Group access only: other host users learn nothing of the
			// answers.
			mode &^= 0o007
			if err := os.Lchown(p, uid, gid); err != nil {
				return fmt.Errorf("seal eval workspace: %w", err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("seal eval workspace: %w", err)
		}
		return nil
	}
	for _, rel := range trusted {
		err := filepath.WalkDir(filepath.Join(ws, rel), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return fix(p, d.IsDir())
		})
		if err != nil {
			return err
		}
	}
	return fix(ws, true)
}

// result is the driver's result line.
type result struct {
	Scores  []float64 `json:"scores"`
	Starter []float64 `json:"starter"`
	// Error is set when get_score failed: "raised", "not_a_number" or
	// "nonfinite"; Type names a built-in exception or value type and Value
	// is the repr of a non-finite float.
	Error string `json:"error"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// parseResult finds the result line behind token. found is false when
// there is none; err (wrapping ErrInvalid) when it is malformed.
func parseResult(stdout, token string) (r result, found bool, err error) {
	prefix := resultMarker + token + " "
	lines := strings.Split(stdout, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		rest, ok := strings.CutPrefix(lines[i], prefix)
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(rest), &r); err != nil {
			return r, true, fmt.Errorf("%w: eval reported a malformed result", ErrInvalid)
		}
		return r, true, nil
	}
	return r, false, nil
}

// safeName keeps type names that are plain identifiers; anything else is
// not repeated to the agent.
var safeName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// check turns a driver result into scores or a short reason.
func (r result) check(rounds int, starter bool) error {
	what := func(kind string) string {
		if safeName.MatchString(r.Type) {
			return r.Type
		}
		return kind
	}
	switch r.Error {
	case "":
	case "raised":
		return fmt.Errorf("%w: eval rejected the submission (get_score raised %s)", ErrInvalid, what("an exception"))
	case "not_a_number":
		return fmt.Errorf("%w: get_score returned %s, not a number", ErrInvalid, what("an object"))
	case "nonfinite":
		v := r.Value
		if !slices.Contains([]string{"nan", "inf", "-inf"}, v) {
			v = "not finite"
		}
		return fmt.Errorf("%w: get_score returned a non-finite score (%s)", ErrInvalid, v)
	default:
		return fmt.Errorf("%w: eval reported a malformed result", ErrInvalid)
	}
	wantStarter := 0
	if starter {
		wantStarter = rounds
	}
	if len(r.Scores) != rounds || len(r.Starter) != wantStarter {
		return fmt.Errorf("%w: eval reported a malformed result", ErrInvalid)
	}
	for _, v := range append(slices.Clone(r.Scores), r.Starter...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: get_score returned a non-finite score", ErrInvalid)
		}
	}
	return nil
}

// Reason is what the agent is told about a failed scoring: the short reason
// of an ErrInvalid, and nothing of the machinery's errors, which may hold
// host paths.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, ErrInvalid) {
		return err.Error()
	}
	return "the submission could not be scored because of an internal error (the operator's log has the details)"
}

func joinOutput(res sandbox.ExecResult) string {
	var b bytes.Buffer
	b.WriteString(res.Stdout)
	if res.Stderr != "" {
		b.WriteString("\n[stderr]\n")
		b.WriteString(res.Stderr)
	}
	return b.String()
}

// lastLines keeps the end of a traceback, where the reason is.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	// Halves first: the sum of two large finite scores could overflow.
	return s[n/2-1]/2 + s[n/2]/2
}

// Improvement is (score - baseline) / |baseline|, negated when lower is
// better, so a positive value always means better. It is undefined (ok is
// false) for a zero baseline, and for numbers so far apart that it is not
// finite.
func Improvement(score, baseline float64, direction string) (imp float64, ok bool) {
	if baseline == 0 || math.IsNaN(baseline) || math.IsInf(baseline, 0) {
		return 0, false
	}
	imp = (score - baseline) / math.Abs(baseline)
	if direction == tasks.Lower {
		// Subtracted the other way round rather than negated: an unchanged
		// score is +0, not -0 (shown as "-0.00%").
		imp = (baseline - score) / math.Abs(baseline)
	}
	if math.IsNaN(imp) || math.IsInf(imp, 0) {
		return 0, false
	}
	return imp, true
}

// Success reports whether an improvement beats SuccessThreshold.
func Success(improvement float64) bool { return improvement > SuccessThreshold }
