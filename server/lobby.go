package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mlab/mlab/episode"
	"github.com/mlab/mlab/tools"
)

// Start is start_task: it creates an episode of task, bound to the calling
// transport session if there is one, and returns its handle. It is not an
// episode step: the episode begins with it.
func (s *Server) Start(ctx context.Context, name string) (tools.Started, error) {
	if s.fixed != "" {
		return tools.Started{}, errors.New("this endpoint serves episode " + s.fixed + " only: it needs no start_task")
	}
	if name == "" && s.opts.Task != nil {
		name = s.opts.Task.Name
	}
	if name == "" {
		names, _ := s.opts.Catalog.Names()
		if len(names) != 1 {
			return tools.Started{}, errors.New("start_task needs a task: one of " + strings.Join(names, ", "))
		}
		name = names[0]
	}
	if s.opts.Task != nil && name != s.opts.Task.Name {
		return tools.Started{}, fmt.Errorf("this endpoint serves task %q only", s.opts.Task.Name)
	}
	task := s.opts.Task
	if task == nil {
		var err error
		if task, err = s.opts.Catalog.Load(ctx, name); err != nil {
			return tools.Started{}, err
		}
	}
	sid, _ := sessionOf(ctx)
	ep, err := s.create(ctx, s.fresh(createSpec{task: task, session: sid, agent: clientInfo(ctx)}))
	if err != nil {
		return tools.Started{}, fmt.Errorf("could not start the task: %w", err)
	}
	return startedOf(ep, s.opts.IdleTimeout), nil
}

// startedOf describes a new episode to its client.
func startedOf(ep *episode.Episode, idle time.Duration) tools.Started {
	b := ep.Budgets()
	st := ep.Status()
	out := tools.Started{
		EpisodeID: ep.ID(), RunID: ep.RunID(), Task: ep.Task().Name, Problem: ep.Task().Problem,
		Metric: ep.Task().Config.Metric, Direction: ep.Task().Config.Direction,
		Budgets: tools.Budgets{
			MaxSteps: b.MaxSteps, MaxTimeS: time.Duration(b.MaxTime).Seconds(),
			ExecTimeoutS: time.Duration(b.ExecTimeout).Seconds(), MaxExecTimeoutS: time.Duration(b.MaxExecTimeout).Seconds(),
			StepsLeft: st.StepsLeft, SecondsLeft: st.TimeLeft.Round(time.Second).Seconds(),
		},
		IdleTimeoutS: idle.Seconds(),
	}
	if o := st.Result.Origin; o != nil {
		out.ParentRunID = o.Run
		step := o.Step
		out.ForkedAtStep = &step
	}
	return out
}

// taskList is the mlab://tasks resource.
func (s *Server) taskList(ctx context.Context) (string, error) {
	names, err := s.opts.Catalog.Names()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, n := range names {
		t, err := s.opts.Catalog.Load(ctx, n)
		if err != nil {
			fmt.Fprintf(&b, "# %s\n(cannot be loaded: %v)\n\n", n, err)
			continue
		}
		fmt.Fprintf(&b, "# %s\nmetric: %s (%s is better)\n\n%s\n\n", n, t.Config.Metric, t.Config.Direction, t.Problem)
	}
	return b.String(), nil
}
