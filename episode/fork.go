package episode

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// baseDir is where a forked or resumed run keeps the tree its workspace
// starts from: in the run directory, beside the objects its files link to
// (a hard link cannot cross filesystems), hidden and only the server's.
const baseDir = ".base"

// createLog makes the episode's run log; for a fork or a resume, one that
// starts from the origin's snapshot (sharing its objects), and the tree of
// links to them that the sandbox's workspace is built on, copy-on-write.
func createLog(ctx context.Context, env *Env, runID string, from *Origin) (*runlog.Log, *sandbox.Base, error) {
	if from == nil {
		rl, err := runlog.Create(env.RunsDir, runID)
		if err != nil {
			return nil, nil, fmt.Errorf("create run log: %w", err)
		}
		return rl, nil, nil
	}
	parent := from.Dir
	if from.Log != nil {
		parent = from.Log.Dir()
	}
	rl, err := runlog.CreateFrom(env.RunsDir, runID, parent, from.Snapshot)
	if err != nil {
		return nil, nil, fmt.Errorf("start a run from %s of %s: %w", from.Snapshot, filepath.Base(parent), err)
	}
	dir := filepath.Join(rl.Dir(), baseDir)
	modes, err := rl.LinkTree(ctx, runlog.ForkSnapshot, dir)
	if err != nil {
		runlog.RemoveTree(dir)
		rl.Close()
		return nil, nil, fmt.Errorf("lay out the snapshot to start from: %w", err)
	}
	return rl, &sandbox.Base{Dir: dir, Modes: modes}, nil
}

// removeBase removes the tree a forked workspace was built on, once its
// sandbox is closed (an overlay needs its lower layer until then).
func removeBase(b *sandbox.Base) error {
	if b == nil {
		return nil
	}
	return runlog.RemoveTree(b.Dir)
}

// ForkAt says where a fork of the episode after step (nil: now) starts and
// what budgets it gets: what the episode has left now. Spent budgets stay
// spent (zero admits only final_answer). The episode may be running or
// over; a step it has not reached yet is refused.
func (e *Episode) ForkAt(step *int) (*Origin, tasks.Budgets, error) {
	st := e.Status()
	at := st.StepsUsed
	if step != nil {
		if *step < 0 || *step > st.StepsUsed {
			return nil, tasks.Budgets{}, fmt.Errorf("no step %d to fork at: episode %s has made %d steps (0 is its starting workspace)", *step, e.id, st.StepsUsed)
		}
		at = *step
	}
	snap, err := e.log.SnapshotAt(at)
	if err != nil {
		return nil, tasks.Budgets{}, fmt.Errorf("no snapshot of the workspace at step %d: %w", at, err)
	}
	b := e.budgets
	b.MaxSteps = st.StepsLeft
	b.MaxTime = tasks.Duration(st.TimeLeft)
	return &Origin{Dir: e.log.Dir(), Snapshot: snap, Step: at}, b, nil
}

// ResumeOf says where a resume of the stopped run starts (its last
// snapshot) and what budgets it gets: b, the task's, less what the run used.
func ResumeOf(run *runlog.Run, b tasks.Budgets) (*Origin, tasks.Budgets) {
	b.MaxSteps = max(b.MaxSteps-run.Steps, 0)
	b.MaxTime = tasks.Duration(max(time.Duration(b.MaxTime)-run.Elapsed, 0))
	return &Origin{Dir: run.Dir, Snapshot: run.LastSnapshot, Step: run.LastStep, Resume: true}, b
}
