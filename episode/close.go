package episode

import (
	"context"
	"errors"
	"time"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
)

// BrokenReason ends an episode whose sandbox died under it.
const BrokenReason = "sandbox broken"

// ErrBroken is what the agent is told when its sandbox has died.
var ErrBroken = errors.New("the sandbox is gone: it stopped under this episode, which has ended as invalid (" + BrokenReason + "); no more tools can be used")

// watched is the episode's sandbox as the tools see it: when it turns out to
// be gone, the episode ends as invalid at once.
type watched struct {
	sandbox.Sandbox
	e *Episode
}

func (w watched) Exec(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	res, err := w.Sandbox.Exec(ctx, req)
	if errors.Is(err, sandbox.ErrGone) {
		w.e.broken(err)
		return res, ErrBroken
	}
	return res, err
}

// Unwrap exposes the sandbox, for sandbox.OwnerOf.
func (w watched) Unwrap() sandbox.Sandbox { return w.Sandbox }

// broken ends the episode as invalid because its sandbox died. Its work
// cannot be trusted to score (a script may have killed the sandbox on
// purpose), so it is never scored; its last snapshot stays in the run log.
// What is left of the sandbox goes now; the rest is released by Close.
func (e *Episode) broken(cause error) {
	e.mu.Lock()
	if e.finished {
		e.mu.Unlock()
		return
	}
	e.finished, e.ended = true, BrokenReason
	r := e.result
	r.Steps = e.steps
	e.mu.Unlock()
	r.Status, r.Error = runlog.StatusInvalid, BrokenReason
	e.finish(r)
	e.logger.Error().Err(cause).Msg("the sandbox died: episode ended as invalid")
	if err := e.sb.Close(); err != nil {
		e.logger.Error().Err(err).Msg("close dead sandbox")
	}
}

// AbortUnrecorded records the episode as aborted if nothing final has been
// recorded yet: the last resort of a shutdown that cannot wait any longer.
func (e *Episode) AbortUnrecorded(reason string) {
	e.mu.Lock()
	r := e.result
	r.Steps = e.steps
	e.mu.Unlock()
	r.Status, r.Score, r.Error = runlog.StatusAborted, nil, reason
	e.finish(r)
}

// inflightGrace bounds how long Close waits for the calls in flight to be
// recorded once the sandbox is gone (they return at once then).
const inflightGrace = 5 * time.Second

// Close ends the episode; one that never submitted is recorded as aborted
// with reason, its sandbox removed and everything released. A submission
// keeps the episode's trace, GPUs and capacity until it is scored and
// recorded, so after Submit, Close leaves the release to the submission.
// Close is idempotent.
func (e *Episode) Close(reason string) {
	e.mu.Lock()
	over := e.finished
	if !over {
		e.finished, e.ended = true, reason
	}
	again := e.closed
	e.closed = true
	submitted := e.submitted
	r := e.result
	r.Steps = e.steps
	e.mu.Unlock()
	if !over {
		r.Status, r.Error = runlog.StatusAborted, reason
		e.finish(r)
		e.logger.Info().Str("reason", reason).Msg("episode aborted")
	}
	if again || submitted {
		return
	}
	if err := e.sb.Close(); err != nil {
		e.logger.Error().Err(err).Msg("close sandbox")
	}
	waited := make(chan struct{})
	go func() { e.inflight.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(inflightGrace):
	}
	e.release()
}

// release frees what the episode holds, once.
func (e *Episode) release() {
	e.mu.Lock()
	if e.freed {
		e.mu.Unlock()
		return
	}
	e.freed = true
	e.mu.Unlock()
	if err := e.sb.Close(); err != nil {
		e.logger.Error().Err(err).Msg("close sandbox")
	}
	if err := removeBase(e.base); err != nil {
		e.logger.Error().Err(err).Msg("remove the tree the workspace was built on")
	}
	e.gpus.Release()
	e.ws.Close()
	e.log.Close()
	if e.onFree != nil {
		e.onFree()
	}
	close(e.released)
}
