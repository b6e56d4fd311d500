package eval

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"path/filepath"
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
		img := os.Getenv("MLAB_IMAGE")
		if img == "" {
			img = docker.ImageTag(docker.ImageSpec{Variant: "base"})
		}
		if _, err := cli.ImageInspect(t.Context(), img); err != nil {
			testenv.Absent(t, "runtime image %s not built (make image): %v", img, err)
		}
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
