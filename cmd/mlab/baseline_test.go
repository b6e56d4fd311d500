package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlab/mlab/runlog"
)

// mlabTasksDir lays out a tasks folder with the MLAgentBench-like fixtures
// (vectorization, house-price, my-task: none has a task.yaml) and the fixture
// task, whose task.yaml states its baseline.
func mlabTasksDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "tasks", "testdata", "mlagentbench"))); err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(dir, "fixture"), fixtureTask)
	return dir
}

// mlab runs the binary and returns its combined output.
func mlab(t *testing.T, wantErr bool, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	if (err != nil) != wantErr {
		t.Fatalf("mlab %s: err %v, want error %v; output:\n%s", strings.Join(args, " "), err, wantErr, out)
	}
	return string(out)
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestTasksAndBaselineCommands: mlab tasks says where each metric comes from
// and what each baseline is; mlab baseline measures and caches one, which
// mlab tasks then shows, and a serving server uses without measuring again.
func TestTasksAndBaselineCommands(t *testing.T) {
	tasksDir, cacheDir := mlabTasksDir(t), t.TempDir()
	common := []string{"--tasks-dir", tasksDir, "--cache-dir", cacheDir, "--backend", "local", "--log-level", "warn"}

	out := mlab(t, false, append([]string{"tasks"}, common...)...)
	wantLines(t, out,
		"vectorization\n",
		"  metric:    seconds, lower is better (from the MLAgentBench table); a time the task's own script measures\n",
		"  baseline:  not computed yet: run mlab baseline vectorization\n",
		"  metric:    mae, lower is better (from the MLAgentBench table)\n",
		"  metric:    score, higher is better (default: no direction given, see the warning)\n",
		"  warning:   task my-task: it has no task.yaml and is not one of MLAgentBench's published tasks, so its score is taken as higher-is-better",
		"  metric:    score, higher is better (from "+filepath.Join(tasksDir, "fixture", "task.yaml")+")\n",
		"  baseline:  0.5 (stated in "+filepath.Join(tasksDir, "fixture", "task.yaml")+")\n",
	)

	out = mlab(t, false, append([]string{"baseline", "vectorization", "fixture"}, common...)...)
	runs := regexp.MustCompile(`runs:      (\S+) (\S+) (\S+)\n`).FindStringSubmatch(out)
	file := regexp.MustCompile(`cache:     (\S+)\n`).FindStringSubmatch(out)
	score := regexp.MustCompile(`baseline:  (\S+) \(measured now`).FindStringSubmatch(out)
	if runs == nil || file == nil || score == nil || !strings.HasPrefix(file[1], filepath.Join(cacheDir, "baselines", "baseline-vectorization-")) {
		t.Fatalf("mlab baseline did not measure 3 runs and cache them:\n%s", out)
	}
	wantLines(t, out, "baseline:  0.5 (stated in "+filepath.Join(tasksDir, "fixture", "task.yaml")+": nothing to measure)\n")
	if _, err := os.Stat(file[1]); err != nil {
		t.Fatal(err)
	}
	cached, err := os.ReadFile(file[1])
	if err != nil {
		t.Fatal(err)
	}

	out = mlab(t, false, append([]string{"tasks"}, common...)...)
	wantLines(t, out, "  baseline:  "+score[1]+" (median of 3 runs, spread ")
	wantLines(t, out, "; cached in "+file[1]+")\n")
	out = mlab(t, false, append([]string{"baseline", "vectorization"}, common...)...)
	wantLines(t, out, "baseline:  "+score[1]+" (cached)\n", "cache:     "+file[1]+"\n")

	// The server finds that baseline under the same key: a submission 130
	// times faster than its median is judged against it, not against a new
	// measurement.
	h := start(t, "local", "vectorization", common...)
	base, err := strconv.ParseFloat(score[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	h.mustOK(t, "write_file", map[string]any{"file_name": "submission.csv", "content": strconv.FormatFloat(base/130, 'g', -1, 64) + "\n"}, "wrote")
	h.mustOK(t, "final_answer", map[string]any{"final_answer": "vectorised"}, "success: true")
	r, err := runlog.ReadResult(h.runDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.BaselineInfo == nil || r.BaselineInfo.Source != runlog.BaselineMeasured || r.BaselineInfo.Measured == nil ||
		strconv.FormatFloat(*r.BaselineInfo.Measured, 'g', 6, 64) != strconv.FormatFloat(base, 'g', 6, 64) ||
		len(r.BaselineInfo.Runs) != 3 || r.BaselineInfo.Spread == nil || r.Improvement == nil || math.Abs(*r.Improvement-(1-1.0/130)) > 1e-4 {
		t.Errorf("result.json %+v, baseline %+v; want the cached baseline %s and improvement %.4f", r, r.BaselineInfo, score[1], 1-1.0/130)
	}
	if again, err := os.ReadFile(file[1]); err != nil || string(again) != string(cached) {
		t.Errorf("the server measured the cached baseline again: %s", again)
	}

	out = mlab(t, true, append([]string{"baseline", "nosuch"}, common...)...)
	wantLines(t, out, `error:     task "nosuch": task not found`, "no baseline for nosuch")
}

func TestTaskConfigFlag(t *testing.T) {
	tasksDir := mlabTasksDir(t)
	common := []string{"--tasks-dir", tasksDir, "--cache-dir", t.TempDir(), "--backend", "local", "--log-level", "warn"}
	conf := filepath.Join(t.TempDir(), "vec.yaml")
	if err := os.WriteFile(conf, []byte("metric: speedup\ndirection: higher\nbaseline: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("direction: up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    []string
	}{
		{"TASK=FILE", []string{"tasks", "--task-config", "vectorization=" + conf}, false,
			[]string{"  metric:    speedup, higher is better (from --task-config " + conf + ")\n", "  baseline:  2 (stated in " + conf + ")\n"}},
		{"bare FILE for the one task named", []string{"baseline", "my-task", "--task-config", conf}, false,
			[]string{"metric:    speedup, higher is better (from --task-config " + conf + ")\n", "baseline:  2 (stated in " + conf + ": nothing to measure)\n"}},
		{"bare FILE without one task", []string{"tasks", "--task-config", conf}, true,
			[]string{"a bare FILE needs a command that names one task"}},
		{"bare FILE with two tasks", []string{"baseline", "my-task", "fixture", "--task-config", conf}, true,
			[]string{"a bare FILE needs a command that names one task"}},
		{"unknown task", []string{"tasks", "--task-config", "nosuch=" + conf}, true,
			[]string{`--task-config: task config for "nosuch": task not found`}},
		{"missing file", []string{"tasks", "--task-config", "my-task=" + conf + ".missing"}, true,
			[]string{"vec.yaml.missing does not exist"}},
		{"invalid file", []string{"tasks", "--task-config", "my-task=" + bad}, true,
			[]string{`direction "up"`}},
		{"twice for a task", []string{"tasks", "--task-config", "my-task=" + conf, "--task-config", "my-task=" + conf}, true,
			[]string{"task my-task is given two config files"}},
		{"no file", []string{"tasks", "--task-config", "my-task="}, true,
			[]string{`--task-config "my-task=": want TASK=FILE`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantLines(t, mlab(t, tc.wantErr, append(tc.args, common...)...), tc.want...)
		})
	}
}

// TestServePrefetchesBaseline: a server measures the baselines of the tasks
// it serves when it starts, before any submission needs one.
func TestServePrefetchesBaseline(t *testing.T) {
	tasksDir, cacheDir := mlabTasksDir(t), t.TempDir()
	h := start(t, "local", "house-price", "--tasks-dir", tasksDir, "--cache-dir", cacheDir)
	pattern := filepath.Join(cacheDir, "baselines", "baseline-house-price-*.json")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if found, _ := filepath.Glob(pattern); len(found) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s appeared after the server started", pattern)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The submission is judged against it: the starter's MAE.
	h.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "")
	h.mustOK(t, "final_answer", map[string]any{"final_answer": "unchanged"}, "improvement +0.00%")
}
