package tasks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyTree copies a fixture folder, so that a test can add a task.yaml.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

func TestDirection(t *testing.T) {
	fixtures := filepath.Join("testdata", "mlagentbench")
	tests := []struct {
		name     string
		task     string
		yaml     string // task.yaml added to the folder
		override string // task.yaml given with OverrideConfig
		metric   string
		dir      string
		from     string
		timedBy  string // "" for an untimed task
		runs     int
		warning  string
	}{
		{name: "vectorization is a runtime", task: "vectorization",
			metric: "seconds", dir: Lower, from: FromMLAgentBench, timedBy: TimedByScript, runs: DefaultTimedRuns},
		{name: "house-price is an error", task: "house-price",
			metric: "mae", dir: Lower, from: FromMLAgentBench, runs: 1},
		{name: "unknown folder", task: "my-task",
			metric: "score", dir: Higher, from: FromDefault, runs: 1, warning: "task my-task: it has no task.yaml and is not one of MLAgentBench's published tasks"},
		{name: "task.yaml without a metric keeps the table", task: "vectorization", yaml: "budgets:\n  max_steps: 9\n",
			metric: "seconds", dir: Lower, from: FromMLAgentBench, timedBy: TimedByScript, runs: DefaultTimedRuns},
		{name: "task.yaml's timing kept under the table's metric", task: "vectorization", yaml: "timed: true\ntimed_by: eval\n",
			metric: "seconds", dir: Lower, from: FromMLAgentBench, timedBy: TimedByEval, runs: DefaultTimedRuns},
		{name: "task.yaml overrides the table", task: "vectorization", yaml: "metric: ops_per_second\ndirection: higher\ntimed: true\n",
			metric: "ops_per_second", dir: Higher, from: FromTaskYAML, timedBy: TimedByEval, runs: DefaultTimedRuns},
		{name: "task.yaml without a direction", task: "my-task", yaml: "metric: loss\n",
			metric: "loss", dir: Higher, from: FromDefault, runs: 1, warning: "task.yaml names no direction"},
		{name: "task config overrides the table", task: "house-price", override: "metric: r2\ndirection: higher\n",
			metric: "r2", dir: Higher, from: FromTaskConfig, runs: 1},
		{name: "task config overrides task.yaml", task: "my-task", yaml: "metric: loss\ndirection: higher\n", override: "metric: loss\ndirection: lower\nbaseline_runs: 4\n",
			metric: "loss", dir: Lower, from: FromTaskConfig, runs: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			copyTree(t, fixtures, root)
			if tc.yaml != "" {
				if err := os.WriteFile(filepath.Join(root, tc.task, "task.yaml"), []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c := NewCatalog(nil, root, t.TempDir())
			configFile := ""
			if tc.yaml != "" {
				configFile = filepath.Join(root, tc.task, "task.yaml")
			}
			if tc.override != "" {
				// Somewhere else than the task folder, which the operator
				// may not be allowed to change.
				configFile = filepath.Join(t.TempDir(), "my.yaml")
				if err := os.WriteFile(configFile, []byte(tc.override), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := c.OverrideConfig(tc.task, configFile); err != nil {
					t.Fatal(err)
				}
			}
			task, err := c.Load(t.Context(), tc.task)
			if err != nil {
				t.Fatal(err)
			}
			cfg := task.Config
			timedBy := ""
			if cfg.IsTimed() {
				timedBy = cfg.TimedBy
			}
			if cfg.Metric != tc.metric || cfg.Direction != tc.dir || task.MetricFrom != tc.from || timedBy != tc.timedBy ||
				cfg.BaselineRuns != tc.runs || task.ConfigFile != configFile {
				t.Errorf("metric %q, direction %s from %s, timed by %q, %d baseline runs, config %q; want %q, %s from %s, %q, %d, %q",
					cfg.Metric, cfg.Direction, task.MetricFrom, timedBy, cfg.BaselineRuns, task.ConfigFile,
					tc.metric, tc.dir, tc.from, tc.timedBy, tc.runs, configFile)
			}
			if got := strings.Join(task.Warnings, "\n"); (tc.warning == "") != (got == "") || !strings.Contains(got, tc.warning) {
				t.Errorf("warnings %q, want one containing %q", got, tc.warning)
			}
		})
	}
}

// A timed-by-script task's eval cannot time the starter code as shipped,
// which has no figure for eval.py to read: the same-run comparison is only
// for tasks timed by their eval.
func TestSameRunStarter(t *testing.T) {
	tests := []struct {
		cfg  Config
		want bool
	}{
		{Config{Metric: "accuracy"}, false},
		{Config{Metric: "seconds"}, true},
		{Config{Metric: "ms", Timed: true, TimedBy: TimedByEval}, true},
		{Config{Metric: "seconds", TimedBy: TimedByScript}, false},
	}
	for _, tc := range tests {
		if got := tc.cfg.SameRunStarter(); got != tc.want {
			t.Errorf("%+v: SameRunStarter() = %v, want %v", tc.cfg, got, tc.want)
		}
	}
}

func TestMLAgentBenchTable(t *testing.T) {
	// The 13 tasks of the MLAgentBench paper, by folder name.
	if len(mlagentbench) != 13 {
		t.Errorf("%d entries, want MLAgentBench's 13 tasks", len(mlagentbench))
	}
	for name, m := range mlagentbench {
		cfg := Config{Metric: m.metric, Direction: m.direction}
		if m.timedBy != "" {
			cfg.Timed, cfg.TimedBy = true, m.timedBy
		}
		if err := cfg.validate(); err != nil || m.metric == "" || m.direction == "" || !validName.MatchString(name) {
			t.Errorf("entry %s %+v: %v", name, m, err)
		}
	}
}

func TestOverrideConfigErrors(t *testing.T) {
	root := t.TempDir()
	copyTree(t, filepath.Join("testdata", "mlagentbench"), root)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("direction: sideways\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(nil, root, t.TempDir())
	tests := []struct {
		task, file, wantErr string
	}{
		{"nosuch", bad, `task config for "nosuch": task not found (available: house-price, my-task, vectorization)`},
		{"my-task", filepath.Join(root, "missing.yaml"), "missing.yaml does not exist"},
		{"my-task", bad, `direction "sideways"`},
	}
	for _, tc := range tests {
		if err := c.OverrideConfig(tc.task, tc.file); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("OverrideConfig(%s, %s) = %v, want an error containing %q", tc.task, tc.file, err, tc.wantErr)
		}
	}
	// A config that goes bad after it was accepted fails the next Load.
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("direction: lower\n"), 0o644)
	if err := c.OverrideConfig("my-task", good); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(good, []byte("direction: down\n"), 0o644)
	if _, err := c.Load(t.Context(), "my-task"); err == nil || !strings.Contains(err.Error(), good) {
		t.Errorf("Load with a broken task config: %v", err)
	}
}
