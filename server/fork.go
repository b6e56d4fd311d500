package server

import (
	"context"
	"errors"

	"github.com/mlab/mlab/tools"
)

// Fork is fork_episode.
func (s *Server) Fork(ctx context.Context, handle string, step *int) (tools.Started, error) {
	return tools.Started{}, errors.New("fork_episode is not available yet")
}
