package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newTasksCmd(c *common) *cobra.Command {
	return &cobra.Command{
		Use:   "tasks",
		Short: "List the available tasks with their metric and research problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scratch, err := os.MkdirTemp("", "mlab-tasks-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(scratch)
			cat := c.catalog(scratch)
			names, err := cat.Names()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, n := range names {
				t, err := cat.Load(cmd.Context(), n)
				if err != nil {
					fmt.Fprintf(out, "%s\t(broken: %v)\n", n, err)
					continue
				}
				first, _, _ := strings.Cut(t.Problem, "\n")
				fmt.Fprintf(out, "%s\t%s (%s is better)\t%s\n", n, t.Config.Metric, t.Config.Direction, first)
			}
			return nil
		},
	}
}
