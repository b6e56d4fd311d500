package main

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// mlabBenchDir lays out a tasks folder as MLAgentBench's benchmarks/ ships:
// a tasks.json alias, a task whose prepare.py makes its data, two whose
// prepare.py fetch theirs from the internet (Kaggle, a web download), and a
// task with nothing to prepare.
func mlabBenchDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	score := "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'score.txt')).read())\n"
	writeTree(t, filepath.Join(dir, "gen"), map[string]string{
		// Each run scores differently, so that a baseline's mean and
		// spread are those of several runs.
		"env/train.py": "import random\nrows = open('data.csv').read().splitlines()\n" +
			"open('score.txt', 'w').write(repr(len(rows) + random.random()))\n",
		"scripts/prepare.py": "import csv\nwith open('../env/data.csv', 'w') as f:\n    f.write('x\\n' + '\\n'.join(str(i) for i in range(9)) + '\\n')\n" +
			"with open('answer.csv', 'w') as f:\n    f.write('id,y\\n0,1\\n')\n",
		"scripts/eval.py":              score,
		"scripts/research_problem.txt": "Generate and fit.\n",
		"task.yaml":                    "metric: rows\ndirection: higher\n",
	})
	writeTree(t, filepath.Join(dir, "kaggle-task"), map[string]string{
		"env/train.py": "print(1)\n",
		"scripts/prepare.py": "import subprocess\n" +
			"subprocess.run(['kaggle', 'competitions', 'download', '-c', 'spaceship-titanic'], cwd='../env', check=True)\n",
		"scripts/eval.py":              score,
		"scripts/research_problem.txt": "Kaggle.\n",
	})
	writeTree(t, filepath.Join(dir, "web-task"), map[string]string{
		"env/train.py": "print(1)\n",
		// .invalid never resolves (RFC 2606), with or without internet.
		"scripts/prepare.py":           "import urllib.request\nurllib.request.urlopen('https://mlab-prepare-test.invalid/data.zip', timeout=20)\n",
		"scripts/eval.py":              score,
		"scripts/research_problem.txt": "Web.\n",
	})
	writeTree(t, filepath.Join(dir, "plain"), fixtureTask)
	writeTree(t, dir, map[string]string{"tasks.json": `{
    "debug": {
        "research_problem": "Given a training script on a dataset train.py, improve upon the current performance of the model with a simple change.",
        "benchmark_folder_name": "gen"
    }
}`})
	return dir
}

// mlabJSON runs the binary and decodes its standard output.
func mlabJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mlab %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("mlab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func listed(t *testing.T, list []taskListing, name string) taskListing {
	t.Helper()
	i := slices.IndexFunc(list, func(l taskListing) bool { return l.Name == name })
	if i < 0 {
		t.Fatalf("mlab tasks --json lists no %s", name)
	}
	return list[i]
}

// TestPrepareAndListMLAgentBenchFolder: a folder laid out as MLAgentBench
// ships is listed without preparing anything, prepared by mlab prepare (the
// tasks that need the internet fail at once, saying so, and leave nothing),
// and its baseline is the mean of the runs mlab baseline --runs asks for.
func TestPrepareAndListMLAgentBenchFolder(t *testing.T) {
	// No kaggle command, whatever this machine has installed.
	t.Setenv("PATH", "/usr/bin:/bin")
	tasksDir, cacheDir := mlabBenchDir(t), t.TempDir()
	common := []string{"--tasks-dir", tasksDir, "--cache-dir", cacheDir, "--backend", "local", "--log-level", "error"}
	prepared := filepath.Join(cacheDir, "prepared")

	var list []taskListing
	mlabJSON(t, &list, append([]string{"tasks", "--json"}, common...)...)
	if _, err := os.Stat(prepared); err == nil {
		t.Error("mlab tasks prepared tasks")
	}
	gen := listed(t, list, "gen")
	if gen.Source != filepath.Join(tasksDir, "gen") || gen.AliasOf != "" || gen.Metric != "rows" || gen.Direction != "higher" ||
		gen.MetricFrom != "task.yaml" || gen.ConfigFile != filepath.Join(tasksDir, "gen", "task.yaml") ||
		!gen.NeedsPrepare || gen.Prepared || gen.Baseline.Status != baselineNotComputed || gen.GPUs != 0 {
		t.Errorf("gen listed as %+v", gen)
	}
	debug := listed(t, list, "debug")
	if debug.AliasOf != "gen" || debug.Source != gen.Source || !strings.HasPrefix(debug.Problem, "Given a training script") ||
		debug.Metric != "rows" || !debug.NeedsPrepare || debug.Prepared {
		t.Errorf("debug listed as %+v", debug)
	}
	if plain := listed(t, list, "plain"); plain.NeedsPrepare || !plain.Prepared || plain.Baseline.Status != baselineStated ||
		plain.Baseline.Value == nil || *plain.Baseline.Value != 0.5 {
		t.Errorf("plain listed as %+v", plain)
	}
	if tc := listed(t, list, "tabular-classification"); tc.Source != "built-in" || tc.MetricFrom != "task.yaml" || tc.ConfigFile != "" {
		t.Errorf("built-in task listed as %+v", tc)
	}
	for _, l := range list {
		if l.Error != "" {
			t.Errorf("%s: %s", l.Name, l.Error)
		}
	}

	// mlab prepare all: the alias goes with its folder; the tasks that need
	// the internet fail, naming what they lack.
	out := mlab(t, true, append([]string{"prepare", "all"}, common...)...)
	wantLines(t, out,
		"plain: nothing to prepare",
		"gen: prepared in ",
		"kaggle-task: failed: prepare task kaggle-task: scripts/prepare.py failed: exit status 1; it needs the kaggle command",
		"No such file or directory: 'kaggle'",
		"web-task: failed: prepare task web-task: scripts/prepare.py failed: exit status 1; it needs network access",
		"Name or service not known",
		"run `mlab prepare web-task` there",
		"not prepared: kaggle-task, web-task",
	)
	if strings.Contains(out, "debug") {
		t.Errorf("mlab prepare all prepared the alias debug besides its folder gen:\n%s", out)
	}
	dir := regexp.MustCompile(`gen: prepared in \S+: (\S+) `).FindStringSubmatch(out)
	if dir == nil {
		t.Fatalf("no prepared folder in:\n%s", out)
	}
	entries, err := os.ReadDir(prepared)
	if err != nil {
		t.Fatal(err)
	}
	// The failed prepares left nothing (the built-in tasks, prepared by
	// "all" too, have folders of their own).
	for _, e := range entries {
		if e.IsDir() && (strings.HasPrefix(e.Name(), "kaggle-task") || strings.HasPrefix(e.Name(), "web-task")) {
			t.Errorf("%s left in the cache", e.Name())
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir[1], "scripts", "answer.csv")); err != nil || string(b) != "id,y\n0,1\n" {
		t.Errorf("prepared answer.csv = %q, %v", b, err)
	}
	out = mlab(t, false, append([]string{"prepare", "gen", "debug"}, common...)...)
	wantLines(t, out, "gen: already prepared: "+dir[1]+"\n", "debug (alias of gen): already prepared: "+dir[1]+"\n")

	// Three runs, stored as the baseline: their mean and spread, which
	// mlab tasks shows, for the alias too.
	out = mlab(t, false, append([]string{"baseline", "gen", "--runs", "3"}, common...)...)
	wantLines(t, out, "statistic: mean of 3 runs\n")
	mlabJSON(t, &list, append([]string{"tasks", "--json"}, common...)...)
	for _, name := range []string{"gen", "debug"} {
		l := listed(t, list, name)
		b := l.Baseline
		if !l.Prepared || l.PreparedDir != dir[1] || b.Status != baselineCached || b.N != 3 || len(b.Runs) != 3 || b.Statistic != "mean" ||
			b.Value == nil || b.Spread == nil {
			t.Fatalf("%s after mlab baseline --runs 3: %+v, baseline %+v", name, l, b)
		}
		var sum float64
		for _, v := range b.Runs {
			// train.py scores the 10 lines of the prepared data.csv.
			if v < 10 || v >= 11 {
				t.Errorf("%s: run scored %v, want 10 + a random fraction", name, v)
			}
			sum += v
		}
		if math.Abs(*b.Value-sum/3) > 1e-12 || *b.Spread != slices.Max(b.Runs)-slices.Min(b.Runs) || *b.Spread == 0 {
			t.Errorf("%s: baseline %v spread %v, want the mean and spread of %v", name, *b.Value, *b.Spread, b.Runs)
		}
		if mean := strconv.FormatFloat(*b.Value, 'g', 6, 64); !strings.Contains(out, "baseline:  "+mean+" (measured now") {
			t.Errorf("mlab baseline printed no %s:\n%s", mean, out)
		}
	}
	out = mlab(t, false, append([]string{"baseline", "debug"}, common...)...)
	wantLines(t, out, " (cached)\n", "statistic: mean of 3 runs\n")

	// The prepared folder, copied to another machine as its error
	// messages say, is used as it is there.
	elsewhere := t.TempDir()
	if err := os.CopyFS(filepath.Join(elsewhere, "gen"), os.DirFS(dir[1])); err != nil {
		t.Fatal(err)
	}
	other := []string{"--tasks-dir", elsewhere, "--cache-dir", t.TempDir(), "--backend", "local", "--log-level", "error"}
	out = mlab(t, false, append([]string{"prepare", "gen"}, other...)...)
	wantLines(t, out, "gen: nothing to prepare")
	mlabJSON(t, &list, append([]string{"tasks", "--json"}, other...)...)
	if l := listed(t, list, "gen"); l.NeedsPrepare || !l.Prepared || l.Source != filepath.Join(elsewhere, "gen") {
		t.Errorf("copied prepared folder listed as %+v", l)
	}
}
