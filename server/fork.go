package server

import (
	"context"
	"fmt"

	"github.com/mlab/mlab/tools"
)

// Fork is fork_episode: a new episode whose workspace is the parent's after
// step (nil: as it is now), in its own sandbox and run log, with what is left
// of the parent's budgets. The parent may be running or over; it goes on
// untouched. The fork is bound to the calling session like start_task's
// episodes, and owned by the same token.
func (s *Server) Fork(ctx context.Context, handle string, step *int) (tools.Started, error) {
	parent, err := s.resolveAny(ctx, handle)
	if err != nil {
		return tools.Started{}, err
	}
	from, b, err := parent.ForkAt(step)
	if err != nil {
		return tools.Started{}, err
	}
	sid, _ := sessionOf(ctx)
	ep, err := s.create(ctx, createSpec{
		task: parent.Task(), session: sid, agent: clientInfo(ctx), budgets: &b,
		from: from,
	})
	if err != nil {
		return tools.Started{}, fmt.Errorf("could not fork episode %s: %w", parent.ID(), err)
	}
	return startedOf(ep, s.opts.IdleTimeout), nil
}
