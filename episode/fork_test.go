package episode

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// read is a file of the episode's workspace as the tools see it, "" if
// missing.
func read(t *testing.T, e *Episode, name string) string {
	t.Helper()
	r, err := e.Workspace().Read(context.Background(), name, 0, 0)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(r.Text())
}

func fork(t *testing.T, env *Env, parent *Episode, step *int) *Episode {
	t.Helper()
	from, b, err := parent.ForkAt(step)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Create(context.Background(), env, Spec{Task: parent.Task(), Budgets: b, From: from})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close("test over") })
	return e
}

// TestFork: a fork's workspace is its parent's at the fork point, then the
// two are independent, and each is scored on its own.
func TestFork(t *testing.T) {
	env := testEnv(t)
	parent := create(t, env, task(t, nil), tasks.Budgets{MaxSteps: 10})
	step(t, parent, "0.6") // step 1
	step(t, parent, "0.7") // step 2

	one := 1
	early := fork(t, env, parent, &one)
	now := fork(t, env, parent, nil)
	if got := read(t, early, "score.txt"); got != "0.6" {
		t.Errorf("fork at step 1 reads %q, want the parent's 0.6 of then", got)
	}
	if got := read(t, now, "score.txt"); got != "0.7" {
		t.Errorf("fork of now reads %q, want 0.7", got)
	}
	if got := read(t, now, "train.py"); !strings.Contains(got, "score.txt") {
		t.Errorf("fork lacks the task's train.py: %q", got)
	}
	// Budgets: what the parent had left when forked.
	if b := now.Budgets(); b.MaxSteps != 8 {
		t.Errorf("fork's step budget %d, want the parent's 8 left", b.MaxSteps)
	}
	// Isolation both ways.
	step(t, now, "0.9")
	step(t, parent, "0.65")
	if got := read(t, parent, "score.txt"); got != "0.65" {
		t.Errorf("parent reads %q after the fork wrote 0.9, want its own 0.65", got)
	}
	if got := read(t, now, "score.txt"); got != "0.9" {
		t.Errorf("fork reads %q after the parent wrote, want its own 0.9", got)
	}
	// A script in the fork changes the file in place: still only the fork's.
	res, err := now.Sandbox().Exec(context.Background(), execPython(t, "open('score.txt', 'a').write('1')"))
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("script in the fork: %v, %+v", err, res)
	}
	if got := read(t, now, "score.txt"); got != "0.91" {
		t.Errorf("fork reads %q after appending, want 0.91", got)
	}
	if got := read(t, early, "score.txt"); got != "0.6" {
		t.Errorf("the other fork reads %q, want its 0.6", got)
	}

	rp, err := parent.Submit(context.Background(), "parent")
	if err != nil || rp.Score == nil || *rp.Score != 0.65 {
		t.Fatalf("parent scored %+v (%v), want 0.65", rp, err)
	}
	rf, err := now.Submit(context.Background(), "fork")
	if err != nil || rf.Score == nil || *rf.Score != 0.91 {
		t.Fatalf("fork scored %+v (%v), want 0.91", rf, err)
	}
	r, err := runlog.ReadResult(now.RunDir())
	if err != nil || r.Origin == nil || r.Origin.Kind != runlog.OriginFork || r.Origin.Run != parent.RunID() || r.Origin.Step != 2 {
		t.Errorf("fork's result.json origin %+v (%v), want a fork of %s at step 2", r.Origin, err, parent.RunID())
	}
	// A finished parent can still be forked, at any step it made.
	zero := 0
	start := fork(t, env, parent, &zero)
	if got := read(t, start, "score.txt"); got != "" {
		t.Errorf("fork at step 0 has score.txt %q, want the starting workspace without it", got)
	}
	five := 5
	if _, _, err := parent.ForkAt(&five); err == nil || !strings.Contains(err.Error(), "no step 5") {
		t.Errorf("fork at a step not made: %v", err)
	}
	// The tree the fork was built on goes with its sandbox.
	select {
	case <-now.Released():
	case <-time.After(time.Minute):
		t.Fatal("the scored fork was not released")
	}
	if _, err := os.Stat(filepath.Join(now.RunDir(), baseDir)); !os.IsNotExist(err) {
		t.Errorf("the fork's base tree is still there after release: %v", err)
	}
}

// TestResume: a new episode continues a stopped run from its last
// snapshot with the budgets it had left.
func TestResume(t *testing.T) {
	env := testEnv(t)
	tk := task(t, nil)
	first := create(t, env, tk, tasks.Budgets{MaxSteps: 5})
	step(t, first, "0.55")
	step(t, first, "0.75")
	first.Close("the client went away")
	<-first.Released()

	run, err := runlog.OpenRun(first.RunDir())
	if err != nil {
		t.Fatal(err)
	}
	from, b := ResumeOf(run, tasks.Budgets{MaxSteps: 5}.Merge(tasks.Budgets{}))
	e, err := Create(context.Background(), env, Spec{Task: tk, Budgets: b, From: from})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close("test over")
	if got := read(t, e, "score.txt"); got != "0.75" {
		t.Errorf("resumed workspace reads %q, want the last snapshot's 0.75", got)
	}
	if e.Budgets().MaxSteps != 3 {
		t.Errorf("resumed step budget %d, want the 3 left", e.Budgets().MaxSteps)
	}
	r, _ := runlog.ReadResult(e.RunDir())
	if r.Origin == nil || r.Origin.Kind != runlog.OriginResume || r.Origin.Run != first.RunID() {
		t.Errorf("resumed result.json origin %+v, want a resume of %s", r.Origin, first.RunID())
	}
}

func execPython(t *testing.T, code string) sandbox.ExecRequest {
	t.Helper()
	return sandbox.ExecRequest{Args: []string{"/usr/bin/python3", "-c", code}, Timeout: time.Minute}
}
