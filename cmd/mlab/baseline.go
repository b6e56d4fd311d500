package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

func newBaselineCmd(c *common) *cobra.Command {
	lf := &limitFlags{}
	var runs int
	cmd := &cobra.Command{
		Use:   "baseline TASK...|all",
		Short: "Measure and cache the baselines of tasks that state none, as mlab serve uses them, or show the cached ones",
		Long: "For each task without a baseline in its task.yaml, run the unmodified starter code " +
			"--runs times (default: the task's baseline_runs, 1 unless it is timed) in a fresh sandbox each, score each run with the task's eval, " +
			"and cache the mean of the scores with their spread (max - min) where mlab serve looks for it, so that no submission waits for it. " +
			"A timed task's baseline is the median of its runs instead, which one run slowed by a busy moment does not move. " +
			"The cached measurement is the task's baseline whatever its number of runs: it is shown, not measured again, " +
			"unless --runs asks for another number, which measures anew and replaces it. " +
			"The cache key covers the task's files, the interpreter, the backend, its image, CPU and memory limits, and this machine. " +
			"A task that needs preparing is prepared first. TASK may be all.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lf.validate(); err != nil {
				return err
			}
			if runs < 0 || runs > tasks.MaxBaselineRuns {
				return fmt.Errorf("--runs %d: want 1 to %d", runs, tasks.MaxBaselineRuns)
			}
			if len(args) == 1 && args[0] != "all" {
				c.oneTask = args[0]
			}
			e, err := c.env(cmd.Context())
			if err != nil {
				return err
			}
			defer e.cleanup()
			lf.apply(e)
			names := args
			if slices.Contains(args, "all") {
				if len(args) > 1 {
					return errors.New("name tasks or all, not both")
				}
				if names, err = e.catalog.Names(); err != nil {
					return err
				}
			}
			var failed []string
			for i, name := range names {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				if err := showBaseline(cmd.Context(), cmd.OutOrStdout(), e, name, runs); err != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "error:     %v\n", err)
					failed = append(failed, name)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("no baseline for %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&runs, "runs", 0, "how many times to run the starter code, in place of the task's baseline_runs; a cached baseline of another number of runs is measured anew")
	lf.add(cmd.Flags(), c)
	return cmd
}

// showBaseline prints task's baseline, measuring it first when it is
// neither stated nor cached (with runs runs, when runs is not 0).
func showBaseline(ctx context.Context, out io.Writer, e *env, name string, runs int) error {
	fmt.Fprintf(out, "task:      %s\n", name)
	t, err := e.catalog.Load(ctx, name)
	if err != nil {
		return err
	}
	for _, w := range t.Warnings {
		e.log.Warn().Str("task", t.Name).Msg(w)
	}
	fmt.Fprintf(out, "metric:    %s\n", describeMetric(t))
	if t.Config.Baseline != nil {
		fmt.Fprintf(out, "baseline:  %.6g (stated in %s: nothing to measure)\n", *t.Config.Baseline, configName(t))
		return nil
	}
	m, cached, err := e.baselines.Cached(t)
	if err != nil {
		return err
	}
	how := "cached"
	if !cached || (runs > 0 && len(m.Runs) != runs) {
		start := time.Now()
		if m, err = e.baselines.Measure(ctx, t, runs); err != nil {
			return err
		}
		how = fmt.Sprintf("measured now, in %s", time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintf(out, "baseline:  %.6g (%s)\n", m.Score, how)
	stat := fmt.Sprintf("%s of %d runs", m.Statistic, len(m.Runs))
	if m.Statistic == eval.StatMedian {
		stat += " (a timed task: the median, which one run slowed by a busy moment does not move)"
	}
	fmt.Fprintf(out, "statistic: %s\n", stat)
	scores := make([]string, len(m.Runs))
	for i, v := range m.Runs {
		scores[i] = fmt.Sprintf("%.6g", v)
	}
	fmt.Fprintf(out, "runs:      %s\n", strings.Join(scores, " "))
	fmt.Fprintf(out, "spread:    %.6g\n", m.Spread)
	if m.CacheFile != "" {
		fmt.Fprintf(out, "cache:     %s\n", m.CacheFile)
	} else {
		fmt.Fprintf(out, "cache:     none (other sandboxes ran during every attempt, or see the log): it is measured again when next needed\n")
	}
	if t.Config.SameRunStarter() {
		fmt.Fprintf(out, "note:      submissions are compared with the starter code timed in their own eval; this figure is for reference\n")
	}
	return nil
}

// limitFlags are the sandbox limits of baseline measurements for commands
// other than serve. They are part of a cached baseline's key, so they must
// be mlab serve's for the server to find what was cached.
type limitFlags struct {
	memoryMiB int64
	pids      int64
}

func (lf *limitFlags) add(f *pflag.FlagSet, c *common) {
	f.Int64Var(&lf.memoryMiB, "memory", c.plan.MemoryBytes>>20,
		"memory limit of baseline sandboxes in MiB: mlab serve's --memory, which is part of a cached baseline's key (default: serve's default)")
	f.Int64Var(&lf.pids, "pids", 0, "process and thread limit of baseline sandboxes: mlab serve's --pids (default 512)")
}

func (lf *limitFlags) validate() error {
	_, err := mib("memory", lf.memoryMiB)
	return errors.Join(err, nonNegative("pids", lf.pids))
}

// apply sets the limits as serve does; validate has checked them.
func (lf *limitFlags) apply(e *env) {
	memory, _ := mib("memory", lf.memoryMiB)
	e.setEvalLimits(sandbox.Limits{MemoryBytes: memory, Processes: lf.pids})
}
