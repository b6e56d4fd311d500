package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/server"
	"github.com/mlab/mlab/tasks"
)

type serveFlags struct {
	task          string
	maxSteps      int
	maxTime       time.Duration
	execTimeout   time.Duration
	maxExec       time.Duration
	memoryMiB     int64
	progressEvery time.Duration
	gpuWait       time.Duration
	pids          int64
}

func newServeCmd(c *common) *cobra.Command {
	sf := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve one task over MCP on stdio: one sandbox per session, hidden eval at final_answer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			e, err := c.env(ctx)
			if err != nil {
				return err
			}
			defer e.cleanup()
			task, err := e.catalog.Load(ctx, sf.task)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(c.runsDir, 0o755); err != nil {
				return fmt.Errorf("create runs dir: %w", err)
			}
			srv, err := server.New(server.Options{
				Task: task, Provider: e.provider, Scorer: e.scorer, Baselines: e.baselines,
				RunsDir: c.runsDir,
				Limits:  sandbox.Limits{MemoryBytes: sf.memoryMiB << 20, Processes: sf.pids},
				GPUs:    e.gpus,
				GPUWait: sf.gpuWait,
				Budgets: tasks.Budgets{
					MaxSteps: sf.maxSteps, MaxTime: tasks.Duration(sf.maxTime),
					ExecTimeout: tasks.Duration(sf.execTimeout), MaxExecTimeout: tasks.Duration(sf.maxExec),
				},
				ProgressEvery: sf.progressEvery,
				Version:       version,
				Logger:        e.log,
			})
			if err != nil {
				return err
			}
			e.log.Info().Str("task", task.Name).Str("backend", e.provider.Name()).Str("python", c.python).
				Msg("serving on stdio")
			return srv.ServeStdio(ctx, os.Stdin, os.Stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.task, "task", "", "task to serve (see mlab tasks)")
	f.IntVar(&sf.maxSteps, "max-steps", 0, "tool calls per episode (default: the task's, else 50)")
	f.DurationVar(&sf.maxTime, "max-time", 0, "wall time per episode (default: the task's, else 5h)")
	f.DurationVar(&sf.execTimeout, "exec-timeout", 0, "default timeout of one execute_script call (default: the task's, else 10m)")
	f.DurationVar(&sf.maxExec, "max-exec-timeout", 0, "largest timeout an agent may ask for (default: the task's, else 1h)")
	f.Int64Var(&sf.memoryMiB, "memory", 0, "memory limit of agent scripts in MiB (default 8192)")
	f.Int64Var(&sf.pids, "pids", 0, "process and thread limit of agent scripts (default 512)")
	f.DurationVar(&sf.gpuWait, "gpu-wait", 10*time.Minute, "how long a new session waits for GPUs leased to others")
	f.DurationVar(&sf.progressEvery, "progress-every", 5*time.Second, "interval of progress notifications while a script runs")
	cmd.MarkFlagRequired("task")
	return cmd
}
