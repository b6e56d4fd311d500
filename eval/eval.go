// Package eval scores submissions with a task's hidden scripts, in a sandbox
// of their own, and turns scores into improvement and success against the
// task's baseline.
package eval

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// SuccessThreshold is the improvement over baseline that counts as success,
// as in MLAgentBench.
const SuccessThreshold = 0.10

// ErrInvalid marks a submission that could not be scored: eval crashed,
// timed out or returned something that is not a finite number.
var ErrInvalid = errors.New("invalid submission")

// Scorer runs hidden evals.
type Scorer struct {
	// Provider creates the eval sandboxes; they never share one with an agent.
	Provider sandbox.Provider
	// Python is the interpreter that runs eval.py.
	Python string
}

// driver imports eval.py from its working directory (the scripts copy) and
// prints the score behind a nonce read from stdin. Python's -I keeps the
// submission folder, PYTHONPATH and user site-packages off sys.path, and the
// nonce stops a submission's code that eval runs from forging a result line.
const driver = `import json, math, os, sys
nonce = sys.stdin.readline().strip()
sys.stdin.close()
sys.path.insert(0, os.getcwd())
import eval as task_eval
score = float(task_eval.get_score(os.path.abspath(sys.argv[1])))
if not math.isfinite(score):
    raise ValueError("get_score returned %r, not a finite number" % score)
print("\nMLAB_RESULT " + nonce + " " + json.dumps({"score": float(score)}), flush=True)
`

const resultMarker = "MLAB_RESULT "

// Outcome is one run of the hidden eval.
type Outcome struct {
	Score    float64
	Output   string // capped stdout and stderr of eval
	Duration time.Duration
}

// Score copies submission and the task's hidden scripts into a fresh sandbox
// (with the given GPUs, the submitting session's) and calls get_score there. An error wrapping ErrInvalid means the
// submission could not be scored; other errors mean the machinery failed.
func (s *Scorer) Score(ctx context.Context, task *tasks.Task, submission string, gpus []string) (Outcome, error) {
	sb, err := s.Provider.Create(ctx, sandbox.Spec{Run: "eval-" + task.Name, GPUs: gpus, Image: task.Config.Image})
	if err != nil {
		return Outcome{}, fmt.Errorf("create eval sandbox: %w", err)
	}
	defer sb.Close()
	if err := sandbox.Import(ctx, sb, task.ScriptsDir(), "scripts"); err != nil {
		return Outcome{}, fmt.Errorf("copy scripts of %s: %w", task.Name, err)
	}
	if err := sandbox.Import(ctx, sb, submission, "submission"); err != nil {
		return Outcome{}, fmt.Errorf("copy submission: %w", err)
	}
	if err := os.WriteFile(filepath.Join(sb.Workspace(), "mlab_eval_driver.py"), []byte(driver), 0o644); err != nil {
		return Outcome{}, fmt.Errorf("write eval driver: %w", err)
	}

	nonce := make([]byte, 16)
	rand.Read(nonce)
	token := hex.EncodeToString(nonce)
	res, err := sb.Exec(ctx, sandbox.ExecRequest{
		Args:    []string{s.Python, "-I", "../mlab_eval_driver.py", "../submission"},
		Dir:     "scripts",
		Timeout: time.Duration(task.Config.EvalTimeout),
		Stdin:   strings.NewReader(token + "\n"),
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("run eval: %w", err)
	}
	out := Outcome{Duration: res.Duration, Output: joinOutput(res)}
	switch {
	case res.TimedOut:
		return out, fmt.Errorf("%w: eval timed out after %s", ErrInvalid, time.Duration(task.Config.EvalTimeout))
	case res.ExitCode != 0:
		return out, fmt.Errorf("%w: eval failed with exit code %d: %s", ErrInvalid, res.ExitCode, lastLines(res.Stderr, 5))
	}
	score, err := parseScore(res.Stdout, token)
	if err != nil {
		return out, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	out.Score = score
	return out, nil
}

func parseScore(stdout, token string) (float64, error) {
	prefix := resultMarker + token + " "
	lines := strings.Split(stdout, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		rest, ok := strings.CutPrefix(lines[i], prefix)
		if !ok {
			continue
		}
		var r struct {
			Score *float64 `json:"score"`
		}
		if err := json.Unmarshal([]byte(rest), &r); err != nil || r.Score == nil {
			return 0, fmt.Errorf("eval printed a malformed result %q", rest)
		}
		if math.IsNaN(*r.Score) || math.IsInf(*r.Score, 0) {
			return 0, fmt.Errorf("get_score returned %v", *r.Score)
		}
		return *r.Score, nil
	}
	return 0, errors.New("eval finished without reporting a score")
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

// Improvement is (score - baseline) / |baseline|, negated when lower is
// better, so a positive value always means better. It is undefined (ok is
// false) for a zero baseline.
func Improvement(score, baseline float64, direction string) (imp float64, ok bool) {
	if baseline == 0 {
		return 0, false
	}
	imp = (score - baseline) / math.Abs(baseline)
	if direction == tasks.Lower {
		imp = -imp
	}
	return imp, true
}

// Success reports whether an improvement beats SuccessThreshold.
func Success(improvement float64) bool { return improvement > SuccessThreshold }
