package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlab/mlab/tasks"
)

func newPrepareCmd(c *common) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "prepare TASK...|all",
		Short: "Run the scripts/prepare.py of tasks that have one, once, into mlab's cache",
		Long: "A task with a scripts/prepare.py (MLAgentBench's data downloads, the built-in tasks' data generators) is prepared " +
			"before its first use, as MLAgentBench does it (working directory scripts/, writing into env/ and scripts/), " +
			"but in a copy of the task folder under <cache-dir>/prepared, never in the folder itself; a failed prepare leaves nothing behind. " +
			"This command does it ahead of time. prepare.py runs with --python, standard input closed and a time limit (--prepare-timeout); " +
			"when it needs what this machine lacks (the kaggle command, network access, a download), the error says so; " +
			"--yes answers its questions (MLAgentBench's Kaggle tasks ask for consent to the competition's rules). " +
			"To prepare such a task elsewhere, run mlab prepare there and copy the folder it prints into a tasks folder here, named after the task: " +
			"a task folder with scripts/prepared (MLAgentBench's mark, which mlab writes too) is used as it is. " +
			"TASK may be all: every task, aliases of tasks.json once through their folder. It exits non-zero when any task failed.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] != "all" {
				c.oneTask = args[0]
			}
			log, err := c.logger()
			if err != nil {
				return err
			}
			scratch, err := os.MkdirTemp("", scratchPrefix+"prepare-")
			if err != nil {
				return fmt.Errorf("create scratch dir: %w", err)
			}
			defer os.RemoveAll(scratch)
			catalog, err := c.catalog(filepath.Join(scratch, "tasks"))
			if err != nil {
				return err
			}
			if yes {
				opts := c.prepareOptions()
				// One line per question is enough for MLAgentBench's
				// scripts, which ask one each.
				opts.Answers = strings.Repeat("\n", 16)
				catalog.SetPrepare(opts)
			}
			names, err := prepareTargets(cmd.Context(), catalog, args)
			if err != nil {
				return err
			}
			var failed []string
			out := cmd.OutOrStdout()
			for _, n := range names {
				if err := prepareOne(cmd.Context(), out, catalog, n); err != nil {
					failed = append(failed, n)
					log.Debug().Err(err).Str("task", n).Msg("prepare failed")
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("not prepared: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "answer prepare.py's questions with Enter: MLAgentBench's Kaggle tasks ask you to confirm that you accepted the competition's rules on kaggle.com (do that first); without --yes standard input is closed and such a question fails")
	return cmd
}

// prepareTargets expands the arguments of mlab prepare: all is every task,
// less the aliases whose folder is a task of its own (it is prepared once,
// under its own name).
func prepareTargets(ctx context.Context, catalog *tasks.Catalog, args []string) ([]string, error) {
	if !slices.Contains(args, "all") {
		return args, nil
	}
	if len(args) > 1 {
		return nil, errors.New("name tasks or all, not both")
	}
	names, err := catalog.Names()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if t, err := catalog.Describe(ctx, n); err == nil && t.AliasOf != "" && slices.Contains(names, t.AliasOf) {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// prepareOne prepares one task and says how that went: prepared now,
// already prepared, nothing to prepare, or failed and why.
func prepareOne(ctx context.Context, out io.Writer, catalog *tasks.Catalog, name string) error {
	d, err := catalog.Describe(ctx, name)
	if err != nil {
		fmt.Fprintf(out, "%s: failed: %v\n", name, err)
		return err
	}
	alias := ""
	if d.AliasOf != "" {
		alias = " (alias of " + d.AliasOf + ")"
	}
	switch {
	case d.Prepare == nil:
		fmt.Fprintf(out, "%s%s: nothing to prepare (no scripts/prepare.py, or a folder prepared already)\n", name, alias)
		return nil
	case d.Prepare.Done:
		fmt.Fprintf(out, "%s%s: already prepared: %s\n", name, alias, d.Prepare.Dir)
		return nil
	}
	start := time.Now()
	t, err := catalog.Load(ctx, name)
	if err != nil {
		fmt.Fprintf(out, "%s%s: failed: %v\n", name, alias, err)
		return err
	}
	if !t.Prepare.Ran {
		// Another process prepared it meanwhile.
		fmt.Fprintf(out, "%s%s: already prepared: %s\n", name, alias, t.Prepare.Dir)
		return nil
	}
	fmt.Fprintf(out, "%s%s: prepared in %s: %s (log %s)\n", name, alias, time.Since(start).Round(time.Millisecond), t.Prepare.Dir, t.Prepare.Log)
	return nil
}
