package tasks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/goccy/go-yaml"
)

// Directions of a metric.
const (
	Higher = "higher"
	Lower  = "lower"
)

// Config is task.yaml. Every field is optional.
type Config struct {
	// Metric names the score, e.g. "accuracy".
	Metric string `yaml:"metric"`
	// Direction is Higher (default) or Lower.
	Direction string `yaml:"direction"`
	// Baseline is the score of the unmodified env/; when absent it is
	// computed by running env/train.py and scoring it.
	Baseline *float64 `yaml:"baseline"`
	Budgets  Budgets  `yaml:"budgets"`
	// GPUs is how many GPUs a session of this task leases.
	GPUs int `yaml:"gpus"`
	// Image is the docker runtime image of this task's sandboxes, when it
	// needs more than the server's default (e.g. the full variant).
	Image string `yaml:"image"`
	// EvalTimeout bounds one run of the hidden eval.
	EvalTimeout Duration `yaml:"eval_timeout"`
}

// Budgets bound one episode.
type Budgets struct {
	// MaxSteps counts tool calls; final_answer is always allowed.
	MaxSteps int `yaml:"max_steps"`
	// MaxTime is the wall time from the first tool call.
	MaxTime Duration `yaml:"max_time"`
	// ExecTimeout is the default timeout of one execute_script call.
	ExecTimeout Duration `yaml:"exec_timeout"`
	// MaxExecTimeout is the largest timeout an agent may ask for.
	MaxExecTimeout Duration `yaml:"max_exec_timeout"`
}

// Defaults follow MLAgentBench's episode limits, with exec timeouts sized
// for CPU training runs.
const (
	DefaultMaxSteps       = 50
	DefaultMaxTime        = 5 * time.Hour
	DefaultExecTimeout    = 10 * time.Minute
	DefaultMaxExecTimeout = time.Hour
	DefaultEvalTimeout    = 30 * time.Minute
)

// WithDefaults fills the zero fields of b.
func (b Budgets) WithDefaults() Budgets {
	if b.MaxSteps <= 0 {
		b.MaxSteps = DefaultMaxSteps
	}
	if b.MaxTime <= 0 {
		b.MaxTime = Duration(DefaultMaxTime)
	}
	if b.MaxExecTimeout <= 0 {
		b.MaxExecTimeout = Duration(DefaultMaxExecTimeout)
	}
	if b.ExecTimeout <= 0 {
		b.ExecTimeout = Duration(min(DefaultExecTimeout, time.Duration(b.MaxExecTimeout)))
	}
	return b
}

// Duration reads Go duration strings ("90s", "2h") from YAML.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: use a Go duration like 90s, 10m or 2h", b)
	}
	*d = Duration(v)
	return nil
}

func readConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c.withDefaults(), nil
	}
	if err != nil {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	if err := yaml.UnmarshalWithOptions(b, &c, yaml.DisallowUnknownField()); err != nil {
		return c, fmt.Errorf("parse %s: %w", path, err)
	}
	switch c.Direction {
	case "", Higher, Lower:
	default:
		return c, fmt.Errorf("%s: direction %q must be %q or %q", path, c.Direction, Higher, Lower)
	}
	return c.withDefaults(), nil
}

func (c Config) withDefaults() Config {
	if c.Direction == "" {
		c.Direction = Higher
	}
	if c.Metric == "" {
		c.Metric = "score"
	}
	if c.EvalTimeout <= 0 {
		c.EvalTimeout = Duration(DefaultEvalTimeout)
	}
	c.Budgets = c.Budgets.WithDefaults()
	return c
}
