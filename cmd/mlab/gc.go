package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mlab/mlab/sandbox/docker"
)

func newGCCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove the sandbox containers and workspaces of mlab servers that are no longer running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli, err := dockerClient(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			reaped, err := docker.Reap(cmd.Context(), cli, all)
			for _, r := range reaped {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s (run %s, server %s)\n", r.ID, r.Run, r.Server)
			}
			if err == nil && len(reaped) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to remove")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "also remove the containers of servers that are still running")
	return cmd
}
