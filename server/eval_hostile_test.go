package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/tasks"
)

// hiddenMarker is in the hidden eval.py only.
const hiddenMarker = "HIDDEN-EVAL-SOURCE-7f3a"

// leakyTask has an eval that runs the submission's train.py and, when it
// fails, raises with its stderr, as real evals do.
func leakyTask(tb testing.TB, yaml string) *tasks.Task {
	tb.Helper()
	return fixtureWith(tb, map[string]string{
		"t/scripts/eval.py": "# " + hiddenMarker + "\nimport os, subprocess, sys\n" +
			"def get_score(d):\n" +
			"    p = subprocess.run([sys.executable, 'train.py'], cwd=d, capture_output=True, text=True)\n" +
			"    if p.returncode:\n        raise RuntimeError('train.py failed: ' + p.stderr)\n" +
			"    return float(open(os.path.join(d, 'score.txt')).read())\n" +
			"# " + hiddenMarker + "\n", // at both ends, so that any part of a traceback has it
		"t/task.yaml": yaml,
	})
}

// TestHostileEvalLeak submits a train.py that prints the hidden eval.py to
// stderr and fails: the agent's reply and result.json say only that eval
// rejected the submission, and eval.log in the run directory has it all.
func TestHostileEvalLeak(t *testing.T) {
	srv, cs := connect(t, Options{Task: leakyTask(t, "baseline: 0.5\n")})
	callText(t, cs, "write_file", map[string]any{"file_name": "train.py",
		"content": "import sys\nsys.stderr.write(open('../scripts/eval.py').read())\nsys.exit(1)\n"})
	reply, _ := callText(t, cs, "final_answer", map[string]any{"final_answer": "done"})
	if strings.Contains(reply, hiddenMarker) || !strings.Contains(reply, "get_score raised RuntimeError") {
		t.Errorf("reply leaks the eval or lacks the reason: %s", reply)
	}
	runs, _ := filepath.Glob(filepath.Join(srv.opts.RunsDir, "*"))
	if len(runs) != 1 {
		t.Fatalf("run dirs %v", runs)
	}
	raw, err := os.ReadFile(filepath.Join(runs[0], "result.json"))
	if err != nil || strings.Contains(string(raw), hiddenMarker) || !strings.Contains(string(raw), `"status": "invalid"`) {
		t.Errorf("result.json leaks the eval or is not invalid (%v):\n%s", err, raw)
	}
	log, err := os.ReadFile(filepath.Join(runs[0], "outputs", "eval.log"))
	if err != nil || !strings.Contains(string(log), hiddenMarker) {
		t.Errorf("eval.log lacks the eval's output (%v):\n%s", err, log)
	}
}

// TestHostileHugeScore: a score of 1e308 against a baseline of 0.5 has no
// finite improvement; the submission is invalid with a reason, result.json
// is written and the agent gets a reply.
func TestHostileHugeScore(t *testing.T) {
	srv, cs := connect(t, Options{Task: leakyTask(t, "baseline: 0.5\n")})
	callText(t, cs, "write_file", map[string]any{"file_name": "score.txt", "content": "1e308"})
	callText(t, cs, "write_file", map[string]any{"file_name": "train.py", "content": "pass\n"})
	reply, _ := callText(t, cs, "final_answer", map[string]any{"final_answer": "done"})
	if !strings.Contains(reply, "no finite improvement") {
		t.Errorf("reply = %q", reply)
	}
	runs, _ := filepath.Glob(filepath.Join(srv.opts.RunsDir, "*"))
	if len(runs) != 1 {
		t.Fatalf("run dirs %v", runs)
	}
	r, err := runlog.ReadResult(runs[0])
	if err != nil || r.Status != runlog.StatusInvalid || r.Improvement != nil || r.Success || !strings.Contains(r.Error, "no finite improvement") {
		t.Errorf("result.json = %+v, %v", r, err)
	}
}
