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
			script:  "import subprocess, time\np = subprocess.Popen(['sleep', '300'])\nprint('waiting; child', p.pid, flush=True)\ntime.sleep(300)\n",
			timeout: 2 * time.Second,
			want:    []string{"timed out after 2s", "waiting; child "},
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
			// What prepare.py started ends with it.
			if _, after, ok := strings.Cut(pe.Tail, "waiting; child "); ok {
				pid, _, _ := strings.Cut(after, "\n")
				waitGone(t, pid)
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
		also                  []string
	}{
		{
			// The first lines of MLAgentBench's house-price/scripts/prepare.py.
			name: "kaggle consent",
			script: "import subprocess\ntaskname = 'home-data-for-ml-course'\n" +
				"input(f'Consent to the competition at https://www.kaggle.com/competitions/{taskname}/data; Press any key')\n" +
				"subprocess.run(['kaggle', 'competitions', 'download', '-c', taskname], cwd='../env')\n",
			missing: "an answer on standard input",
			also:    []string{"the kaggle command", "mlab prepare online --yes"},
		},
		{
			// As babylm's prepare.py runs wget: unchecked, so that prepare.py
			// itself exits 0 with no data.
			name: "unchecked download",
			script: "import urllib.request\ntry:\n    urllib.request.urlretrieve('https://mlab-prepare-test.invalid/babylm_data.zip', '../env/data.zip')\n" +
				"except Exception as e:\n    print('download failed:', e)\n",
			missing: "network access",
			also:    []string{"exited 0, but its output shows that a step failed"},
		},
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
			for _, w := range append([]string{tc.missing, "mlab prepare online", "--tasks-dir", "scripts/prepared"}, tc.also...) {
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

// TestAliases reads an MLAgentBench benchmarks/ folder's tasks.json: each
// alias is a task of its own, running its folder (prepared once for all its
// names) with its own research problem and the folder's metric.
func TestAliases(t *testing.T) {
	tasksDir, cache, counter := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "runs")
	writeTask(t, tasksDir, "house-price", map[string]string{
		"scripts/prepare.py":           preparePy(counter),
		"scripts/research_problem.txt": "Predict the sale price.\n",
	})
	writeTask(t, tasksDir, "plain", nil)
	aliases := `{
    "debug": {
        "research_problem": "Given a training script on a dataset train.py, improve upon the current performance of the model with a simple change.",
        "benchmark_folder_name": "house-price"
    },
    "house-price-again": {"benchmark_folder_name": "house-price"},
    "dangling": {"benchmark_folder_name": "nosuch"}
}`
	if err := os.WriteFile(filepath.Join(tasksDir, AliasFile), []byte(aliases), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(nil, tasksDir, cache)
	names, err := c.Names()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, ","); got != "dangling,debug,house-price,house-price-again,plain" {
		t.Errorf("Names() = %s", got)
	}

	// Described, the alias is not prepared.
	d, err := c.Describe(t.Context(), "debug")
	if err != nil {
		t.Fatal(err)
	}
	if d.Prepare == nil || d.Prepare.Done || d.Dir != filepath.Join(tasksDir, "house-price") || countRuns(t, counter) != 0 {
		t.Errorf("Describe prepared, or names the wrong folder: %+v, %+v", d, d.Prepare)
	}

	tests := []struct {
		name, aliasOf, problem string
	}{
		{"debug", "house-price", "Given a training script on a dataset train.py, improve upon the current performance of the model with a simple change."},
		{"house-price-again", "house-price", "Predict the sale price."},
		{"house-price", "", "Predict the sale price."},
	}
	var dirs []string
	for _, tc := range tests {
		task, err := c.Load(t.Context(), tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if task.Name != tc.name || task.AliasOf != tc.aliasOf || task.Problem != tc.problem || task.Source != filepath.Join(tasksDir, "house-price") {
			t.Errorf("%s: name %q, alias of %q, source %q, problem %q", tc.name, task.Name, task.AliasOf, task.Source, task.Problem)
		}
		// The MLAgentBench table is keyed by the folder.
		if task.Config.Metric != "mae" || task.Config.Direction != Lower || task.MetricFrom != FromMLAgentBench {
			t.Errorf("%s: metric %s %s from %s, want mae lower from the table", tc.name, task.Config.Metric, task.Config.Direction, task.MetricFrom)
		}
		dirs = append(dirs, task.Dir)
	}
	if n := countRuns(t, counter); n != 1 || dirs[0] != dirs[1] || dirs[1] != dirs[2] {
		t.Errorf("prepare.py ran %d times for one folder under three names (dirs %v)", n, dirs)
	}
	d, err = c.Describe(t.Context(), "debug")
	if err != nil || !d.Prepare.Done || d.Dir != dirs[0] {
		t.Errorf("Describe after Load: %+v, %v", d, err)
	}
	if _, err := c.Load(t.Context(), "dangling"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `alias of "nosuch"`) {
		t.Errorf("dangling alias: %v", err)
	}
}

func TestBadAliasFile(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"not json", "{", "want a JSON object"},
		{"a list", `["cifar10"]`, "want a JSON object"},
		{"no folder", `{"x": {"research_problem": "p"}}`, `alias "x" names no benchmark_folder_name`},
		{"null entry", `{"x": null}`, `alias "x" names no benchmark_folder_name`},
		{"bad alias name", `{"../x": {"benchmark_folder_name": "plain"}}`, `alias "../x"`},
		{"bad folder", `{"x": {"benchmark_folder_name": "../../etc"}}`, `is not a folder name`},
		{"chained", `{"x": {"benchmark_folder_name": "y"}, "y": {"benchmark_folder_name": "plain"}}`, "is an alias itself"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTask(t, dir, "plain", nil)
			if err := os.WriteFile(filepath.Join(dir, AliasFile), []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			c := NewCatalog(nil, dir, t.TempDir())
			_, nerr := c.Names()
			_, lerr := c.Load(t.Context(), "plain")
			for _, err := range []error{nerr, lerr} {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), AliasFile) {
					t.Errorf("error %v, want one about %s in %s", err, tc.want, AliasFile)
				}
			}
		})
	}
}

// waitGone waits until process pid has exited (it is gone, or a zombie
// that nobody reaped).
func waitGone(t *testing.T, pid string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return
		}
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %s, started by prepare.py, outlived it: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPrepareAnswers: an operator who did what prepare.py asks (accept a
// competition's rules) answers its question through PrepareOptions.Answers.
func TestPrepareAnswers(t *testing.T) {
	tasksDir := t.TempDir()
	writeTask(t, tasksDir, "consent", map[string]string{"scripts/prepare.py": "input('Consent to the competition; Press any key')\n" +
		"open('../env/data.csv', 'w').write('x\\n')\n"})
	c := NewCatalog(nil, tasksDir, t.TempDir())
	c.SetPrepare(PrepareOptions{Answers: "\n"})
	task, err := c.Load(t.Context(), "consent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(task.EnvDir(), "data.csv")); err != nil {
		t.Errorf("prepared without its data: %v", err)
	}
}

func TestTail(t *testing.T) {
	long := strings.Repeat("12%|#   |\r", 2000) + "100%\n"
	tests := []struct {
		out, want string
	}{
		{"a\nb\nc\n", "b\nc"},
		{"c", "c"},
		{"x\n" + long, "..." + strings.TrimSuffix(long, "\n")[len(long)-1-4000:]},
	}
	for _, tc := range tests {
		if got := tail([]byte(tc.out), 2); got != tc.want {
			t.Errorf("tail(%.20q, 2) = %.40q (%d bytes), want %.40q (%d bytes)", tc.out, got, len(got), tc.want, len(tc.want))
		}
	}
}
