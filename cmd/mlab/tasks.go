package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/tasks"
)

func newTasksCmd(c *common) *cobra.Command {
	lf := &limitFlags{}
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List the available tasks: research problem, metric and direction (and where they come from), baseline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lf.validate(); err != nil {
				return err
			}
			e, err := c.env(cmd.Context())
			if err != nil {
				return err
			}
			defer e.cleanup()
			lf.apply(e)
			names, err := e.catalog.Names()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, n := range names {
				t, err := e.catalog.Load(cmd.Context(), n)
				if err != nil {
					fmt.Fprintf(out, "%s\n  broken:    %v\n", n, err)
					continue
				}
				describeTask(out, t, e.baselines)
			}
			return nil
		},
	}
	lf.add(cmd.Flags(), c)
	return cmd
}

// describeTask writes what mlab tasks shows of one task.
func describeTask(w io.Writer, t *tasks.Task, b *eval.Baselines) {
	fmt.Fprintf(w, "%s\n", t.Name)
	first, _, _ := strings.Cut(t.Problem, "\n")
	fmt.Fprintf(w, "  problem:   %s\n", first)
	fmt.Fprintf(w, "  metric:    %s\n", describeMetric(t))
	fmt.Fprintf(w, "  baseline:  %s\n", describeBaseline(t, b))
	for _, warning := range t.Warnings {
		fmt.Fprintf(w, "  warning:   %s\n", warning)
	}
}

// describeMetric says what the score is and where that comes from.
func describeMetric(t *tasks.Task) string {
	cfg := t.Config
	var from string
	switch t.MetricFrom {
	case tasks.FromTaskYAML:
		from = "from " + configName(t)
	case tasks.FromTaskConfig:
		from = "from --task-config " + t.ConfigFile
	case tasks.FromMLAgentBench:
		from = "from the MLAgentBench table"
	default:
		from = "default: no direction given, see the warning"
	}
	s := fmt.Sprintf("%s, %s is better (%s)", cfg.Metric, cfg.Direction, from)
	switch {
	case cfg.SameRunStarter():
		s += fmt.Sprintf("; a time eval.py measures: each eval also times the starter code, %d rounds each", cfg.BaselineRuns)
	case cfg.IsTimed():
		s += "; a time the task's own script measures"
	}
	return s
}

// describeBaseline says what a submission of t is compared with.
func describeBaseline(t *tasks.Task, b *eval.Baselines) string {
	if t.Config.Baseline != nil {
		return fmt.Sprintf("%.6g (stated in %s)", *t.Config.Baseline, configName(t))
	}
	var note string
	if t.Config.SameRunStarter() {
		note = "; submissions are compared with the starter code timed in their own eval"
	}
	m, ok, err := b.Cached(t)
	switch {
	case err != nil:
		return fmt.Sprintf("unknown: %v%s", err, note)
	case !ok:
		return fmt.Sprintf("not computed yet: run mlab baseline %s%s", t.Name, note)
	}
	return describeMeasurement(m) + note
}

// describeMeasurement shows a cached baseline.
func describeMeasurement(m eval.Measurement) string {
	var s string
	if len(m.Runs) == 1 {
		s = fmt.Sprintf("%.6g (1 run", m.Score)
	} else {
		s = fmt.Sprintf("%.6g (median of %d runs, spread %.3g", m.Score, len(m.Runs), m.Spread)
	}
	return s + "; cached in " + m.CacheFile + ")"
}

// configName names the task.yaml a task was read with; a built-in task's is
// in a scratch folder that is gone once the command ends.
func configName(t *tasks.Task) string {
	if t.Builtin && t.MetricFrom != tasks.FromTaskConfig {
		return "the built-in task.yaml"
	}
	return t.ConfigFile
}
