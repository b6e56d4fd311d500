package episode

import (
	"context"
	"fmt"

	"github.com/mlab/mlab/runlog"
)

// createLog makes the episode's run log; for a fork or a resume, one that
// starts from the origin's snapshot, and the tree the sandbox's workspace
// is built from.
func createLog(ctx context.Context, env *Env, runID string, from *Origin) (*runlog.Log, string, error) {
	if from == nil {
		rl, err := runlog.Create(env.RunsDir, runID)
		if err != nil {
			return nil, "", fmt.Errorf("create run log: %w", err)
		}
		return rl, "", nil
	}
	return nil, "", fmt.Errorf("fork: %w", errNoBase)
}
