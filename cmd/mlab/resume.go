package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mlab/mlab/episode"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/server"
	"github.com/mlab/mlab/tasks"
)

// newResumeCmd is `mlab resume RUN_DIR`: like MLAgentBench's --resume, a
// new episode that continues a stopped run from its last snapshot, with the
// rest of its budgets, served over stdio like `mlab serve --task`.
func newResumeCmd(c *common) *cobra.Command {
	cmd := newServeCmd(c)
	cmd.Use = "resume RUN_DIR"
	cmd.Short = "Continue an aborted run in a new episode: its last snapshot, the rest of its budgets, served over stdio"
	cmd.Long = "Starts a new episode from the last snapshot of RUN_DIR, a run that ended aborted (its client " +
		"went away, its server stopped or was killed), with the steps and time it had left, and serves it over " +
		"stdio like `mlab serve --task`. The new run's result.json names the run it resumes (origin)."
	cmd.Args = cobra.ExactArgs(1)
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if f := cmd.Flags().Lookup("task"); f.Changed {
			return fmt.Errorf("mlab resume takes the task from %s; --task does not apply", args[0])
		}
		if err := cmd.Flags().Set("resume", args[0]); err != nil {
			return err
		}
		return run(cmd, args[:0])
	}
	return cmd
}

// resumable reads the run in dir and checks that it can be resumed: it was
// aborted, and something of its workspace was recorded.
func resumable(dir string) (*runlog.Run, error) {
	run, err := runlog.OpenRun(dir)
	if err != nil {
		return nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	switch {
	case run.Result.Status == runlog.StatusRunning:
		return nil, fmt.Errorf("resume %s: the run is still running under a live server", dir)
	case run.Result.Status != runlog.StatusAborted:
		return nil, fmt.Errorf("resume %s: the run ended %s, not aborted; only an aborted run can be resumed (fork_episode branches any run)", dir, run.Result.Status)
	case run.LastSnapshot == "":
		return nil, fmt.Errorf("resume %s: the run recorded no snapshot of its workspace", dir)
	}
	return run, nil
}

// resumeOf is the server's Resume of a stopped run: its last snapshot, and
// budgets (the task's, merged with the server's) less what it used.
func resumeOf(run *runlog.Run, b tasks.Budgets) *server.Resume {
	from, left := episode.ResumeOf(run, b)
	return &server.Resume{From: *from, Budgets: left}
}
