package eval

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/benchmarks"
	"github.com/mlab/mlab/internal/testenv"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/sandbox/docker"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

// eachBackend runs test with a local provider and, where a Docker engine and
// the runtime image are there, a docker one.
func eachBackend(t *testing.T, test func(t *testing.T, p sandbox.Provider)) {
	t.Run("local", func(t *testing.T) {
		p, err := local.New(t.Context(), local.Options{Root: t.TempDir(), Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		test(t, p)
	})
	t.Run("docker", func(t *testing.T) {
		cli := testenv.Docker(t)
		img := testenv.Image(t, cli, docker.ImageTag(docker.ImageSpec{Variant: "base"}))
		p, err := docker.New(t.Context(), docker.Options{Client: cli, Image: img, Root: t.TempDir(), Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		test(t, p)
	})
}

// builtinTask loads a task shipped in the binary.
func builtinTask(t *testing.T, name string) *tasks.Task {
	t.Helper()
	task, err := tasks.NewCatalog(benchmarks.FS(), "", t.TempDir()).Load(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// TestHostileForgedScore submits to numpy-speedup a train.py that, imported
// by the eval's child process, reads the nonce from the driver's memory,
// writes a forged result line to the driver's stdout and overwrites the
// nonce. The forged score must not be recorded.
func TestHostileForgedScore(t *testing.T) {
	attack, err := os.ReadFile(filepath.Join("testdata", "forge_train.py"))
	if err != nil {
		t.Fatal(err)
	}
	eachBackend(t, func(t *testing.T, p sandbox.Provider) {
		task := builtinTask(t, "numpy-speedup")
		sub := t.TempDir()
		if err := os.WriteFile(filepath.Join(sub, "train.py"), attack, 0o644); err != nil {
			t.Fatal(err)
		}
		task.Config.BaselineRuns = 1 // one round is enough here
		s := &Scorer{Provider: p, Python: "/usr/bin/python3"}
		var log syncBuffer
		out, err := s.Score(t.Context(), task, Request{Submission: sub, Log: &log})
		if err == nil || out.Score == 1e-06 || slices.Contains(out.Scores, 1e-06) {
			t.Fatalf("forged score recorded: %+v, %v\n%s", out, err, log.String())
		}
		t.Logf("%v\n%s", err, log.String())
		// The attack ran and failed at each step: the driver's memory and
		// its stdout are out of reach.
		want := "ATTACK FAILED: mem: PermissionError(13, 'Permission denied'); fd1: PermissionError(13, 'Permission denied')"
		if !errors.Is(err, ErrInvalid) || !strings.Contains(log.String(), want) {
			t.Fatalf("err %v; the attack did not fail as expected:\n%s", err, log.String())
		}
	})
}

// syncBuffer is a bytes.Buffer for concurrent writers, like the run log's
// output files.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHostileReadOnlyReplaced: whatever the snapshot holds at a read-only
// path (changed data under a renamed-and-recreated parent, a file or a link
// in place of the parent, a directory in place of the file, nothing), the
// eval sees the task's own file.
func TestHostileReadOnlyReplaced(t *testing.T) {
	tests := []struct {
		name  string
		setup func(sub string) error
	}{
		{"parent renamed and recreated", func(sub string) error {
			os.MkdirAll(filepath.Join(sub, "data_old"), 0o755)
			os.WriteFile(filepath.Join(sub, "data_old", "train.csv"), []byte("0.25"), 0o644)
			os.MkdirAll(filepath.Join(sub, "data"), 0o755)
			return os.WriteFile(filepath.Join(sub, "data", "train.csv"), []byte("0.99"), 0o644)
		}},
		{"parent is a file", func(sub string) error {
			return os.WriteFile(filepath.Join(sub, "data"), []byte("0.99"), 0o644)
		}},
		{"parent is a link", func(sub string) error {
			os.MkdirAll(filepath.Join(sub, "mine"), 0o755)
			os.WriteFile(filepath.Join(sub, "mine", "train.csv"), []byte("0.99"), 0o644)
			return os.Symlink("mine", filepath.Join(sub, "data"))
		}},
		{"file is a directory", func(sub string) error {
			return os.MkdirAll(filepath.Join(sub, "data", "train.csv", "x"), 0o755)
		}},
		{"file deleted", func(sub string) error { return nil }},
	}
	evalPy := "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'data', 'train.csv')).read())\n"
	s := newScorer(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task, sub := evalTask(t, evalPy, nil)
			os.MkdirAll(filepath.Join(task.EnvDir(), "data"), 0o755)
			os.WriteFile(filepath.Join(task.EnvDir(), "data", "train.csv"), []byte("0.25"), 0o644)
			task.ReadOnly = must(tasks.NewReadOnly("data/train.csv"))
			if err := tc.setup(sub); err != nil {
				t.Fatal(err)
			}
			out, err := s.Score(t.Context(), task, Request{Submission: sub})
			if err != nil || out.Score != 0.25 {
				t.Fatalf("score = %v, %v; want the task's own 0.25\n%s", out.Score, err, out.Output)
			}
		})
	}
}

// TestHostileScriptsReadOnly: the submission's code, run by the eval as a
// subprocess, tries to overwrite the hidden answers, to rename scripts/ away
// and put its own in place, and to change the driver. Every attempt fails and
// the score is the real one.
func TestHostileScriptsReadOnly(t *testing.T) {
	evalPy := `import os, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__))
def get_score(d):
    p = subprocess.run([sys.executable, "attack.py"], cwd=d, capture_output=True, text=True)
    print(p.stdout, p.stderr)
    return float(open(os.path.join(HERE, "answer.txt")).read())
`
	attack := `import os
def overwrite():
    open("../scripts/answer.txt", "w").write("99")
def replace():
    os.remove("../scripts/answer.txt")
    open("../scripts/answer.txt", "w").write("99")
def rename():
    os.rename("../scripts", "../old_scripts")
    os.mkdir("../scripts")
    open("../scripts/answer.txt", "w").write("99")
def driver():
    open("../mlab_eval_driver.py", "a").write("# changed\n")
def chmod():
    os.chmod("../scripts", 0o777)
for f in (overwrite, replace, rename, driver, chmod):
    try:
        f()
        print("ATTACK", f.__name__, "worked")
    except OSError as exc:
        print("ATTACK", f.__name__, "failed:", type(exc).__name__)
`
	eachBackend(t, func(t *testing.T, p sandbox.Provider) {
		task, sub := evalTask(t, evalPy, map[string]string{"attack.py": attack})
		var log syncBuffer
		s := &Scorer{Provider: p, Python: "/usr/bin/python3"}
		out, err := s.Score(t.Context(), task, Request{Submission: sub, Log: &log})
		if out.Score == 99 || slices.Contains(out.Scores, 99) {
			t.Fatalf("the submission's answers were scored: %+v, %v\n%s", out, err, log.String())
		}
		if !runsAsOtherUser(t, p) {
			// A backend whose scripts run as the server's own uid cannot be
			// kept from writing; the change must at least void the result.
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "changed the eval's own files") {
				t.Fatalf("score = %v, %v; want the tampering caught\n%s", out.Score, err, log.String())
			}
			t.Logf("this backend runs scripts as the server's uid: the tampering was caught, not prevented")
			return
		}
		if err != nil || out.Score != 0.25 {
			t.Fatalf("score = %v, %v; want the real 0.25\n%s", out.Score, err, log.String())
		}
		if strings.Contains(log.String(), "worked") || strings.Count(log.String(), "failed:") != 5 {
			t.Errorf("an attack on the scripts was not refused:\n%s", log.String())
		}
	})
}

// runsAsOtherUser reports whether the scripts of p's sandboxes run as a uid
// other than the server's, which is what keeps them from writing the
// server's files.
func runsAsOtherUser(t *testing.T, p sandbox.Provider) bool {
	sb, err := p.Create(t.Context(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"/usr/bin/python3", "-c",
		"import os\nos.stat('.')\ntry:\n    open('/proc/self/uid_map').read()\nexcept OSError: pass\nprint(os.getuid())"}})
	if err != nil {
		t.Fatal(err)
	}
	// Inside a user namespace the uid says little: what counts is whether
	// the script can write a file the server owns.
	probe := filepath.Join(sb.Workspace(), "probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sb.Workspace(), 0o755)
	res, err = sb.Exec(t.Context(), sandbox.ExecRequest{Args: []string{"/usr/bin/python3", "-c", "open('probe', 'w')"}})
	if err != nil {
		t.Fatal(err)
	}
	return res.ExitCode != 0
}
