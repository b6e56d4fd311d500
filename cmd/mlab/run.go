package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/mlab/mlab/agent"
)

func newRunCmd(c *common) *cobra.Command {
	var task, agentName string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run an agent on a task through MCP: starts mlab serve and connects to it over stdio",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if agentName != "baseline" {
				return fmt.Errorf("unknown agent %q (available: baseline)", agentName)
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find mlab binary: %w", err)
			}
			serve := exec.Command(self, "serve", "--task", task,
				"--python", c.python, "--runs-dir", c.runsDir, "--cache-dir", c.cacheDir,
				"--isolation", c.isolation, "--log-level", c.logLevel, "--log-format", c.logFormat,
				"--backend", c.backend, "--image", c.image, "--gpus", c.gpus,
				"--workspace-size", fmt.Sprint(c.workspaceMiB), "--cpus", fmt.Sprint(c.cpus))
			if c.tasksDir != "" {
				serve.Args = append(serve.Args, "--tasks-dir", c.tasksDir)
			}
			for _, tc := range c.taskConfigs {
				serve.Args = append(serve.Args, "--task-config", tc)
			}
			serve.Stderr = os.Stderr
			client := mcp.NewClient(&mcp.Implementation{Name: "mlab-" + agentName, Version: version}, &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
					fmt.Fprintf(os.Stderr, "progress: %s\n", req.Params.Message)
				},
			})
			cs, err := client.Connect(cmd.Context(), &mcp.CommandTransport{Command: serve}, nil)
			if err != nil {
				return fmt.Errorf("connect to mlab serve: %w", err)
			}
			defer cs.Close()
			r, err := agent.Baseline(cmd.Context(), cs, os.Stderr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "task:        %s\n", r.Task)
			fmt.Fprintf(out, "status:      %s\n", r.Status)
			if r.Score != nil {
				fmt.Fprintf(out, "score:       %.6g (%s, %s is better)\n", *r.Score, r.Metric, r.Direction)
			}
			if r.Baseline != nil {
				fmt.Fprintf(out, "baseline:    %.6g\n", *r.Baseline)
			}
			if r.Improvement != nil {
				fmt.Fprintf(out, "improvement: %+.2f%%\n", 100**r.Improvement)
			}
			fmt.Fprintf(out, "success:     %v\n", r.Success)
			if r.Error != "" {
				fmt.Fprintf(out, "error:       %s\n", r.Error)
			}
			fmt.Fprintf(out, "run dir:     %s\n", filepath.Join(c.runsDir, r.RunID))
			if r.Status != "scored" {
				return fmt.Errorf("the submission was not scored: %s", r.Error)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&task, "task", "", "task to run (see mlab tasks)")
	cmd.Flags().StringVar(&agentName, "agent", "baseline", "agent to run: baseline (runs train.py unchanged and submits)")
	cmd.MarkFlagRequired("task")
	return cmd
}
