package tasks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// preparePy is a prepare.py in MLAgentBench's manner: run in scripts/, it
// writes the agent's data into ../env and the answers next to itself, and
// appends a line to counter so that tests can count its runs.
func preparePy(counter string) string {
	return fmt.Sprintf(`import os
with open(%q, "a") as f:
    f.write("ran in %%s\n" %% os.getcwd())
with open("../env/data.csv", "w") as f:
    f.write("x,y\n1,2\n")
with open("answers.csv", "w") as f:
    f.write("id,y\n0,1\n")
`, counter)
}

func countRuns(t *testing.T, counter string) int {
	t.Helper()
	b, err := os.ReadFile(counter)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// cacheEntries lists what the prepared folder holds, without lock files
// and logs.
func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") && !strings.HasSuffix(e.Name(), ".log") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPrepareFolderTask(t *testing.T) {
	tasksDir, cache, counter := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "runs")
	writeTask(t, tasksDir, "prep", map[string]string{"scripts/prepare.py": preparePy(counter)})
	c := NewCatalog(nil, tasksDir, cache)

	task, err := c.Load(t.Context(), "prep")
	if err != nil {
		t.Fatal(err)
	}
	p := task.Prepare
	if p == nil || !p.Done || !p.Ran || task.Dir != p.Dir {
		t.Fatalf("first load: Prepare = %+v, Dir %s", p, task.Dir)
	}
	if want := filepath.Join(cache, "prepared", "prep-"+p.Key[:16]); p.Dir != want {
		t.Errorf("prepared copy in %s, want %s", p.Dir, want)
	}
	for file, want := range map[string]string{
		"env/data.csv":        "x,y\n1,2\n",
		"scripts/answers.csv": "id,y\n0,1\n",
		"scripts/prepared":    "success",
		"env/train.py":        "print('hi')\n",
	} {
		if b, err := os.ReadFile(filepath.Join(task.Dir, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	// prepare.py ran in the copy's scripts/, and the operator's folder is
	// as it was.
	// (The copy is prepared under a temporary name, renamed once done.)
	b, _ := os.ReadFile(counter)
	cwd := strings.TrimSpace(strings.TrimPrefix(string(b), "ran in "))
	if !strings.HasPrefix(cwd, filepath.Join(cache, "prepared", ".prep-")) || filepath.Base(cwd) != "scripts" {
		t.Errorf("prepare.py ran in %q, not in the scripts/ of a copy in the cache", cwd)
	}
	for _, f := range []string{"env/data.csv", "scripts/answers.csv", "scripts/prepared"} {
		if _, err := os.Stat(filepath.Join(tasksDir, "prep", f)); err == nil {
			t.Errorf("prepare wrote %s into the task folder itself", f)
		}
	}
	if _, err := os.Stat(p.Log); err != nil {
		t.Errorf("no prepare log: %v", err)
	}

	// Reused by this catalog and by another one on the same cache, as by
	// another process.
	for i, cat := range []*Catalog{c, NewCatalog(nil, tasksDir, cache)} {
		again, err := cat.Load(t.Context(), "prep")
		if err != nil {
			t.Fatal(err)
		}
		if again.Prepare.Ran || again.Dir != task.Dir {
			t.Errorf("load %d: prepared again: %+v", i+2, again.Prepare)
		}
	}
	if n := countRuns(t, counter); n != 1 {
		t.Errorf("prepare.py ran %d times, want 1", n)
	}

	// An edited task is a new version, prepared again.
	if err := os.WriteFile(filepath.Join(tasksDir, "prep", "env", "train.py"), []byte("print('changed')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	edited, err := c.Load(t.Context(), "prep")
	if err != nil {
		t.Fatal(err)
	}
	if !edited.Prepare.Ran || edited.Dir == task.Dir {
		t.Errorf("edited task not prepared again: %+v", edited.Prepare)
	}
	if n := countRuns(t, counter); n != 2 {
		t.Errorf("prepare.py ran %d times, want 2", n)
	}
}

func TestPrepareBuiltinTask(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "runs")
	builtin := fstest.MapFS{
		"gen/env/train.py":                   {Data: []byte("x=1\n")},
		"gen/scripts/eval.py":                {Data: []byte("def get_score(s): return 0\n")},
		"gen/scripts/research_problem.txt":   {Data: []byte("Generate.")},
		"gen/scripts/prepare.py":             {Data: []byte(preparePy(counter))},
		"plain/env/train.py":                 {Data: []byte("x=1\n")},
		"plain/scripts/eval.py":              {Data: []byte("def get_score(s): return 0\n")},
		"plain/scripts/research_problem.txt": {Data: []byte("Plain.")},
	}
	cache := t.TempDir()
	c := NewCatalog(builtin, "", cache)
	task, err := c.Load(t.Context(), "gen")
	if err != nil {
		t.Fatal(err)
	}
	if !task.Builtin || task.Prepare == nil || !task.Prepare.Ran {
		t.Fatalf("built-in task not prepared: %+v", task)
	}
	if b, err := os.ReadFile(filepath.Join(task.EnvDir(), "data.csv")); err != nil || string(b) != "x,y\n1,2\n" {
		t.Errorf("env/data.csv = %q, %v", b, err)
	}
	plain, err := c.Load(t.Context(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Prepare != nil {
		t.Errorf("a task without prepare.py was prepared: %+v", plain.Prepare)
	}
	if got := cacheEntries(t, filepath.Join(cache, "prepared")); len(got) != 1 {
		t.Errorf("prepared folder holds %v, want gen's copy alone", got)
	}
}

func TestPrepareConcurrentLoadsPrepareOnce(t *testing.T) {
	tasksDir, cache, counter := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "runs")
	// The pause widens the window in which a second prepare could start.
	slow := "import time\ntime.sleep(0.3)\n" + preparePy(counter)
	writeTask(t, tasksDir, "slow", map[string]string{"scripts/prepare.py": slow})
	// Two catalogs on one cache: the lock file excludes them as it
	// excludes two processes (flock locks belong to the open file).
	cats := []*Catalog{NewCatalog(nil, tasksDir, cache), NewCatalog(nil, tasksDir, cache)}
	const loads = 6
	dirs := make([]string, loads)
	ran := make([]bool, loads)
	errs := make([]error, loads)
	var wg sync.WaitGroup
	for i := range loads {
		wg.Go(func() {
			task, err := cats[i%2].Load(t.Context(), "slow")
			if err != nil {
				errs[i] = err
				return
			}
			dirs[i], ran[i] = task.Dir, task.Prepare.Ran
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := countRuns(t, counter); n != 1 {
		t.Errorf("prepare.py ran %d times for %d concurrent loads, want 1", n, loads)
	}
	slices.Sort(dirs)
	if len(slices.Compact(slices.Clone(dirs))) != 1 {
		t.Errorf("loads got different folders: %v", dirs)
	}
	if n := len(slices.DeleteFunc(ran, func(r bool) bool { return !r })); n != 1 {
		t.Errorf("%d loads say they ran prepare.py, want 1", n)
	}
}

func TestPrepareFailureLeavesNothing(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		want    []string
	}{
		{
			name: "exit status",
			script: "import sys\nopen('../env/half.csv', 'w').write('1')\n" +
				"print('generating part 1')\nprint('disk on fire', file=sys.stderr)\nsys.exit(3)\n",
			want: []string{"exit status 3", "disk on fire", "generating part 1"},
		},
		{
			name:   "syntax error",
			script: "def (:\n",
			want:   []string{"SyntaxError"},
		},
		{
			name: "timeout",
			// The child would outlive a kill of prepare.py alone.
			script:  "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\nprint('waiting', flush=True)\ntime.sleep(300)\n",
			timeout: 2 * time.Second,
			want:    []string{"timed out after 2s", "waiting"},
		},
		{
			name:   "a question on standard input",
			script: "input('Consent to the competition; Press any key')\n",
			want:   []string{"an answer on standard input", "EOFError"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tasksDir, cache := t.TempDir(), t.TempDir()
			writeTask(t, tasksDir, "bad", map[string]string{"scripts/prepare.py": tc.script})
			c := NewCatalog(nil, tasksDir, cache)
			c.SetPrepare(PrepareOptions{Timeout: tc.timeout})
			_, err := c.Load(t.Context(), "bad")
			var pe *PrepareError
			if !errors.As(err, &pe) {
				t.Fatalf("Load error %v is not a PrepareError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if log, rerr := os.ReadFile(pe.Log); rerr != nil || !strings.Contains(string(log), pe.Tail) {
				t.Errorf("log %s: %v; it should hold the tail %q", pe.Log, rerr, pe.Tail)
			}
			if got := cacheEntries(t, filepath.Join(cache, "prepared")); len(got) != 0 {
				t.Errorf("a failed prepare left %v", got)
			}
			if _, err := os.Stat(filepath.Join(tasksDir, "bad", "env", "half.csv")); err == nil {
				t.Error("prepare.py wrote into the task folder itself")
			}
		})
	}
}

// TestPrepareNeedsNetwork runs prepare.py scripts that fetch their data as
// MLAgentBench's do: each must fail by itself (not by the timeout), saying
// what was missing and how to prepare the task elsewhere.
func TestPrepareNeedsNetwork(t *testing.T) {
	// No kaggle command, whatever this machine has installed.
	t.Setenv("PATH", "/usr/bin:/bin")
	tests := []struct {
		name, script, missing string
	}{
		{
			name:    "kaggle",
			script:  "import subprocess\nsubprocess.run(['kaggle', 'competitions', 'download', '-c', 'home-data-for-ml-course'], cwd='../env', check=True)\n",
			missing: "the kaggle command",
		},
		{
			name: "kaggle through a shell",
			script: "import subprocess, sys\nr = subprocess.run('kaggle competitions download -c x', shell=True, cwd='../env')\n" +
				"sys.exit(r.returncode)\n",
			missing: "the kaggle command",
		},
		{
			// .invalid never resolves (RFC 2606), with or without internet.
			name:    "urlopen",
			script:  "import urllib.request\nurllib.request.urlopen('https://mlab-prepare-test.invalid/data.zip', timeout=20)\n",
			missing: "network access",
		},
		{
			name:    "socket",
			script:  "import socket\nsocket.create_connection(('mlab-prepare-test.invalid', 443), timeout=20)\n",
			missing: "network access",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tasksDir, cache := t.TempDir(), t.TempDir()
			writeTask(t, tasksDir, "online", map[string]string{"scripts/prepare.py": tc.script})
			c := NewCatalog(nil, tasksDir, cache)
			c.SetPrepare(PrepareOptions{Timeout: 2 * time.Minute})
			_, err := c.Load(t.Context(), "online")
			var pe *PrepareError
			if !errors.As(err, &pe) {
				t.Fatalf("Load error %v is not a PrepareError", err)
			}
			if strings.Contains(err.Error(), "timed out") {
				t.Fatalf("prepare did not fail by itself: %v", err)
			}
			if !slices.ContainsFunc(pe.Missing, func(m string) bool { return strings.HasPrefix(m, tc.missing) }) {
				t.Errorf("Missing = %q, want %q", pe.Missing, tc.missing)
			}
			for _, w := range []string{tc.missing, "mlab prepare online", "--tasks-dir", "scripts/prepared"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if got := cacheEntries(t, filepath.Join(cache, "prepared")); len(got) != 0 {
				t.Errorf("a failed prepare left %v", got)
			}
		})
	}
}

// TestPreparedFolderUsedAsIs: a folder with MLAgentBench's scripts/prepared
// mark (prepared in place by MLAgentBench, or copied from mlab's cache) is
// not prepared again.
func TestPreparedFolderUsedAsIs(t *testing.T) {
	tasksDir, counter := t.TempDir(), filepath.Join(t.TempDir(), "runs")
	writeTask(t, tasksDir, "done", map[string]string{
		"scripts/prepare.py": preparePy(counter),
		"scripts/prepared":   "success",
		"env/data.csv":       "x,y\n",
	})
	task, err := NewCatalog(nil, tasksDir, t.TempDir()).Load(t.Context(), "done")
	if err != nil {
		t.Fatal(err)
	}
	if task.Prepare != nil || task.Dir != filepath.Join(tasksDir, "done") || countRuns(t, counter) != 0 {
		t.Errorf("a prepared folder was prepared again: %+v", task)
	}
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		log  string
		want []string
	}{
		{"/bin/sh: 1: kaggle: not found\n", []string{"the kaggle command"}},
		{"FileNotFoundError: [Errno 2] No such file or directory: 'kaggle'\n", []string{"the kaggle command"}},
		{"OSError: Could not find kaggle.json. Make sure it's located in /root/.kaggle.\n", []string{"the kaggle command"}},
		{"socket.gaierror: [Errno -3] Temporary failure in name resolution\n", []string{"network access"}},
		{"requests.exceptions.ConnectionError: HTTPSConnectionPool(host='x', port=443)\n", []string{"network access"}},
		{"OSError: We couldn't connect to 'https://huggingface.co' to load this file\n", []string{"a Hugging Face download"}},
		{"  File \"/usr/lib/python3/dist-packages/torchvision/datasets/utils.py\", line 1\nurllib.error.URLError: <urlopen error [Errno -2] Name or service not known>\n",
			[]string{"a torchvision dataset download", "network access"}},
		{"ModuleNotFoundError: No module named 'ogb'\n", []string{"the Python module 'ogb'"}},
		{"wget: unable to resolve host address 'github.com'\n", []string{"network access"}},
		{"ValueError: bad data\n", nil},
	}
	for _, tc := range tests {
		got := diagnose([]byte(tc.log))
		if len(got) != len(tc.want) {
			t.Errorf("diagnose(%q) = %q, want %q", tc.log, got, tc.want)
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tc.want[i]) {
				t.Errorf("diagnose(%q) = %q, want %q", tc.log, got, tc.want)
			}
		}
	}
}
