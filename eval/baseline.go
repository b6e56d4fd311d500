package eval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// Baselines gives each task's baseline score: the one task.yaml states, or
// the score of the unmodified env/ after running its train.py, computed once
// and cached on disk keyed by the task's content and the interpreter.
type Baselines struct {
	Scorer *Scorer
	// CacheDir holds computed baselines.
	CacheDir string

	// mu serialises computations: a baseline is computed rarely, and two
	// sessions of one task must not both pay for it.
	mu sync.Mutex
}

type cachedBaseline struct {
	Task       string    `json:"task"`
	Score      float64   `json:"score"`
	Python     string    `json:"python"`
	ComputedAt time.Time `json:"computed_at"`
	Seconds    float64   `json:"seconds"`
}

// Get returns the baseline of task.
func (b *Baselines) Get(ctx context.Context, task *tasks.Task) (float64, error) {
	if task.Config.Baseline != nil {
		return *task.Config.Baseline, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key, err := taskHash(task, b.Scorer.Python)
	if err != nil {
		return 0, fmt.Errorf("hash task %s: %w", task.Name, err)
	}
	path := filepath.Join(b.CacheDir, fmt.Sprintf("baseline-%s-%s.json", task.Name, key[:16]))
	if raw, err := os.ReadFile(path); err == nil {
		var c cachedBaseline
		if json.Unmarshal(raw, &c) == nil {
			return c.Score, nil
		}
	}
	start := time.Now()
	score, err := b.compute(ctx, task)
	if err != nil {
		return 0, fmt.Errorf("compute baseline of %s: %w", task.Name, err)
	}
	raw, _ := json.MarshalIndent(cachedBaseline{task.Name, score, b.Scorer.Python, time.Now().UTC(), time.Since(start).Seconds()}, "", "  ")
	if err := os.MkdirAll(b.CacheDir, 0o755); err != nil {
		return score, fmt.Errorf("cache baseline: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return score, fmt.Errorf("cache baseline: %w", err)
	}
	return score, os.Rename(tmp, path)
}

func (b *Baselines) compute(ctx context.Context, task *tasks.Task) (float64, error) {
	sb, err := b.Scorer.Provider.Create(ctx, sandbox.Spec{Run: "baseline-" + task.Name, Files: task.EnvDir(), Image: task.Config.Image})
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
	out, err := b.Scorer.Score(ctx, task, sb.Workspace(), nil)
	if err != nil {
		return 0, err
	}
	return out.Score, nil
}

// taskHash covers everything that can change a baseline.
func taskHash(task *tasks.Task, python string) (string, error) {
	h := sha256.New()
	io.WriteString(h, python+"\x00")
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
