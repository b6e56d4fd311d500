package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/internal/proc"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
	"github.com/mlab/mlab/tools"
)

// episode is one MCP session's attempt at the task.
type episode struct {
	srv     *Server
	task    *tasks.Task
	budgets tasks.Budgets
	sb      sandbox.Sandbox
	ws      *tools.Workspace
	log     *runlog.Log
	tools   *tools.Session
	gpus    *sandbox.GPULease
	logger  zerolog.Logger
	start   time.Time
	outputs atomic.Int64
	// inflight counts admitted tool calls not yet recorded, so that close
	// can let them reach the trace before it is closed.
	inflight sync.WaitGroup

	mu sync.Mutex
	// active is when the last tool call started or ended, and calls how
	// many are running, for the idle reaper.
	active    time.Time
	calls     int
	steps     int
	finished  bool   // final_answer called or session closed
	ended     string // why, for the tools refused afterwards
	submitted bool   // final_answer was called: it owns the release
	released  bool   // close has released the sandbox and capacity
	recorded  bool   // the final result.json is written
	result    runlog.Result
}

// episodeFor returns the episode of the calling MCP session. On a server
// with a pinned task it creates it, and its sandbox, on the session's first
// tool call; elsewhere start_task does.
func (s *Server) episodeFor(ctx context.Context) (*episode, error) {
	if s.opts.Task != nil {
		return s.startEpisode(ctx, s.opts.Task)
	}
	cs := mcpserver.ClientSessionFromContext(ctx)
	if cs == nil {
		return nil, errors.New("no MCP session in this request")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ep, ok := s.episodes[cs.SessionID()]; ok {
		return ep, nil
	}
	if reason, ok := s.endedReason(cs.SessionID()); ok {
		return nil, endedError(reason)
	}
	names, _ := s.opts.Catalog.Names()
	return nil, fmt.Errorf("no task is running in this session: call start_task with one of %s", strings.Join(names, ", "))
}

// startEpisode returns the session's episode, creating one on task if it
// has none. Creation (a sandbox, maybe a wait for GPUs) runs outside the
// server's lock, so other sessions are not held up; concurrent first calls
// of one session wait for the one creation.
func (s *Server) startEpisode(ctx context.Context, task *tasks.Task) (*episode, error) {
	cs := mcpserver.ClientSessionFromContext(ctx)
	if cs == nil {
		return nil, errors.New("no MCP session in this request")
	}
	key := cs.SessionID()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("the server is shutting down")
		}
		if ep, ok := s.episodes[key]; ok {
			s.mu.Unlock()
			return ep, nil
		}
		if reason, ok := s.endedReason(key); ok {
			s.mu.Unlock()
			return nil, endedError(reason)
		}
		p, busy := s.starting[key]
		if !busy {
			break // and create it, still holding the lock
		}
		s.mu.Unlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := s.opts.Capacity.acquire(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	p := &pending{done: make(chan struct{})}
	s.starting[key] = p
	s.mu.Unlock()

	ep, err := s.newEpisode(ctx, clientName(cs), task)

	s.mu.Lock()
	delete(s.starting, key)
	close(p.done)
	if err != nil {
		s.mu.Unlock()
		s.opts.Capacity.release()
		return nil, err
	}
	s.opts.Metrics.sessionStarted()
	switch {
	case s.closed:
		s.mu.Unlock()
		ep.close(stoppedReason)
		return nil, errors.New("the server is shutting down")
	case p.ended != "":
		// The session ended while its sandbox was being made: nobody
		// will call again to find it, so it goes now.
		s.mu.Unlock()
		ep.close(p.ended)
		return nil, errors.New("the session ended before its sandbox was ready")
	}
	s.episodes[key] = ep
	s.mu.Unlock()
	return ep, nil
}

// endedError tells a client that calls again after its episode ended.
func endedError(reason string) error {
	return fmt.Errorf("this episode is over (%s), so no more tools can be used", reason)
}

// pending is an episode being created.
type pending struct {
	done  chan struct{} // closed when creation is over
	ended string        // why the session ended meanwhile, if it did
}

// clientName is the client's name/version from initialize, for result.json.
func clientName(cs mcpserver.ClientSession) string {
	ci, ok := cs.(mcpserver.SessionWithClientInfo)
	if !ok {
		return ""
	}
	info := ci.GetClientInfo()
	if info.Version == "" {
		return info.Name
	}
	return info.Name + "/" + info.Version
}

func (s *Server) newEpisode(ctx context.Context, agent string, task *tasks.Task) (*episode, error) {
	sessionID := uuid.NewString()
	runID := fmt.Sprintf("%s-%s-%s", time.Now().UTC().Format("20060102T150405Z"), task.Name, sessionID[:8])
	logger := s.log.With().Str("session", sessionID).Str("run", runID).Logger()

	rl, err := runlog.Create(s.opts.RunsDir, runID)
	if err != nil {
		return nil, fmt.Errorf("create run log: %w", err)
	}
	limits := s.opts.Limits.WithDefaults()
	protected, err := task.ReadOnly.Files(task.EnvDir())
	if err != nil {
		rl.Close()
		return nil, fmt.Errorf("read-only files of %s: %w", task.Name, err)
	}
	lease, err := s.opts.GPUs.Acquire(ctx, task.Config.GPUs, s.opts.GPUWait)
	if err != nil {
		rl.Close()
		return nil, fmt.Errorf("lease GPUs: %w", err)
	}
	sb, err := s.opts.Provider.Create(ctx, sandbox.Spec{
		Session: sessionID, Run: runID, Files: task.EnvDir(), Limits: limits, GPUs: lease.IDs(), Image: task.Config.Image,
		ReadOnly: protected,
	})
	if err != nil {
		lease.Release()
		rl.Close()
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	ws, err := tools.OpenWorkspace(sb.Workspace(), task.ReadOnly.Patterns())
	if err == nil {
		if uid, gid, ok := sandbox.OwnerOf(sb); ok {
			ws.SetOwner(uid, gid)
		}
	} else {
		sb.Close()
		lease.Release()
		rl.Close()
		return nil, fmt.Errorf("open workspace: %w", err)
	}
	ep := &episode{
		srv: s, task: task, budgets: s.budgetsFor(task), sb: sb, ws: ws, log: rl, gpus: lease, logger: logger, start: time.Now(), active: time.Now(),
		result: runlog.Result{
			RunID: runID, Task: task.Name, SessionID: sessionID, Agent: agent, Backend: s.opts.Provider.Name(), Server: proc.Legacy(), ServerLock: proc.Self(),
			Status: runlog.StatusRunning, Metric: task.Config.Metric, Direction: task.Config.Direction,
			StartedAt: time.Now().UTC(),
		},
	}
	s.mu.Lock()
	s.alive[ep] = struct{}{}
	s.mu.Unlock()
	ep.tools = &tools.Session{
		Workspace:      ws,
		Sandbox:        watched{sb, ep},
		Python:         s.opts.Scorer.Python,
		ExecTimeout:    time.Duration(ep.budgets.ExecTimeout),
		MaxExecTimeout: time.Duration(ep.budgets.MaxExecTimeout),
		MemoryBytes:    limits.MemoryBytes,
		ProgressEvery:  s.opts.ProgressEvery,
		Output:         ep.output,
		Submit:         ep.submit,
	}
	// A result.json marked running from the start lets a crash be told
	// from a run that never began.
	if err := rl.WriteResult(ep.result); err != nil {
		ep.close("could not write result.json")
		return nil, err
	}
	if _, err := rl.Snapshot(ctx, sb.Workspace(), "step-0000"); err != nil {
		logger.Error().Err(err).Msg("initial snapshot failed")
	}
	logger.Info().Str("task", task.Name).Str("agent", agent).Str("backend", s.opts.Provider.Name()).
		Str("run_dir", rl.Dir()).Msg("episode started")
	return ep, nil
}

func (ep *episode) output() (io.WriteCloser, string, error) {
	n := ep.outputs.Add(1)
	return ep.log.OutputFile(fmt.Sprintf("exec-%04d.log", n), 0)
}

// begin admits one tool call and numbers it, or says why it is refused.
func (ep *episode) begin(tool string) (step int, refusal string) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.active = time.Now()
	if ep.finished {
		return 0, endedError(ep.ended).Error()
	}
	if tool != "final_answer" {
		if ep.steps >= ep.budgets.MaxSteps {
			return 0, fmt.Sprintf("the step budget is spent (%d of %d tool calls used): call final_answer to submit your work", ep.steps, ep.budgets.MaxSteps)
		}
		if limit := time.Duration(ep.budgets.MaxTime); time.Since(ep.start) > limit {
			return 0, fmt.Sprintf("the time budget is spent (%s of %s used): call final_answer to submit your work", time.Since(ep.start).Round(time.Second), limit)
		}
	}
	ep.steps++
	ep.calls++
	ep.inflight.Add(1)
	return ep.steps, ""
}

// end is the end of a call begin admitted, once it is recorded.
func (ep *episode) end() {
	ep.mu.Lock()
	ep.calls--
	ep.active = time.Now()
	ep.mu.Unlock()
	ep.inflight.Done()
}

// idle reports whether no call has run for timeout: none is in progress and
// none started or ended since now-timeout.
func (ep *episode) idle(now time.Time, timeout time.Duration) bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.calls == 0 && now.Sub(ep.active) > timeout
}

// submit ends the episode and scores its final workspace: snapshot it into
// the run log, stop the sandbox so nothing can change it further, rebuild the
// snapshot as the submission and run the hidden eval on it.
func (ep *episode) submit(ctx context.Context, answer string) (runlog.Result, error) {
	ep.mu.Lock()
	if ep.finished {
		ep.mu.Unlock()
		return runlog.Result{}, errors.New("final_answer was already called")
	}
	ep.finished = true
	ep.submitted = true
	ep.ended = "final_answer was called"
	steps := ep.steps
	ep.mu.Unlock()

	// The submission is scored and recorded even if its client goes away
	// meanwhile, but a server shutting down cancels it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ep.srv.work, cancel)()

	r := ep.result
	r.Steps = steps
	sctx, cancel := context.WithTimeout(ctx, finalSnapshotTimeout)
	final, err := ep.log.Snapshot(sctx, ep.sb.Workspace(), "final")
	cancel()
	if err == nil {
		err = ep.sb.Close()
	}
	var outcome eval.Outcome
	var sub string
	if err == nil {
		sub, err = proc.MkdirOwned(ep.srv.opts.TempDir, submissionPrefix)
	}
	if err == nil {
		defer os.RemoveAll(sub)
		sub = filepath.Join(sub, "submission")
		err = ep.log.Restore(ctx, final, sub)
	}
	if err == nil {
		// The eval's whole output is the operator's: the agent gets a
		// short reason, since the output may quote the hidden scripts.
		evalLog, _, lerr := ep.log.OutputFile("eval.log", 0)
		if lerr != nil {
			ep.logger.Error().Err(lerr).Msg("create eval.log")
			evalLog = nopWriteCloser{io.Discard}
		}
		outcome, err = ep.srv.opts.Scorer.Score(ctx, ep.task, eval.Request{Submission: sub, GPUs: ep.gpus.IDs(), Log: evalLog})
		evalLog.Close()
	}
	switch {
	case err != nil && ep.srv.stopping.Load():
		r.Status = runlog.StatusAborted
		r.Error = stoppedReason
	case err != nil:
		r.Status = runlog.StatusInvalid
		r.Error = eval.Reason(err)
		ep.logger.Warn().Err(err).Msg("submission not scored")
	default:
		unjudged := r
		berr := ep.srv.opts.Baselines.Judge(ctx, ep.task, outcome, &r)
		if berr != nil && ep.srv.stopping.Load() {
			// Nothing of a judgement cut short is kept.
			r = unjudged
			r.Status, r.Error = runlog.StatusAborted, stoppedReason
			break
		}
		if berr != nil {
			ep.logger.Error().Err(berr).Msg("baseline unavailable")
		}
	}
	ep.finish(r)
	ep.logger.Info().Str("status", r.Status).Any("score", r.Score).Any("baseline", r.Baseline).
		Str("error", r.Error).Str("answer", answer).Msg("episode submitted")
	return r, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// brokenReason ends an episode whose sandbox died under it.
const brokenReason = "sandbox broken"

// errBroken is what the agent is told when its sandbox has died.
var errBroken = errors.New("the sandbox is gone: it stopped under this episode, which has ended as invalid (" + brokenReason + "); no more tools can be used")

// watched is the episode's sandbox as the tools see it: when it turns out to
// be gone, the episode ends as invalid at once.
type watched struct {
	sandbox.Sandbox
	ep *episode
}

func (w watched) Exec(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	res, err := w.Sandbox.Exec(ctx, req)
	if errors.Is(err, sandbox.ErrGone) {
		w.ep.broken(err)
		return res, errBroken
	}
	return res, err
}

// broken ends the episode as invalid because its sandbox died. Its work
// cannot be trusted to score (a script may have killed the sandbox on
// purpose), so it is never scored; its last snapshot stays in the run log.
func (ep *episode) broken(cause error) {
	ep.mu.Lock()
	if ep.finished {
		ep.mu.Unlock()
		return
	}
	ep.finished, ep.ended = true, brokenReason
	r := ep.result
	r.Steps = ep.steps
	ep.mu.Unlock()
	r.Status, r.Error = runlog.StatusInvalid, brokenReason
	ep.finish(r)
	ep.logger.Error().Err(cause).Msg("the sandbox died: episode ended as invalid")
	// What is left of it (a workspace, a stopped container) goes now;
	// releasing the episode's capacity waits for its session to end.
	if err := ep.sb.Close(); err != nil {
		ep.logger.Error().Err(err).Msg("close dead sandbox")
	}
}

// finish records the final result once: a later call (a shutdown that
// gave up waiting) does not overwrite it.
func (ep *episode) finish(r runlog.Result) {
	now := time.Now().UTC()
	r.EndedAt = &now
	r.Seconds = time.Since(ep.start).Seconds()
	ep.mu.Lock()
	if ep.recorded {
		ep.mu.Unlock()
		return
	}
	ep.recorded = true
	ep.result = r
	ep.finished = true
	// Written under the lock, so that two finishes cannot race on the file.
	if err := ep.log.WriteResult(r); err != nil {
		ep.logger.Error().Err(err).Msg("write result.json")
	}
	ep.mu.Unlock()
}

// abortUnrecorded records the episode as aborted if nothing final has been
// recorded yet: the last resort of a shutdown that cannot wait any longer.
func (ep *episode) abortUnrecorded(reason string) {
	ep.mu.Lock()
	r := ep.result
	r.Steps = ep.steps
	ep.mu.Unlock()
	r.Status, r.Score, r.Error = runlog.StatusAborted, nil, reason
	ep.finish(r)
}

// close ends the episode; one that never submitted is recorded as aborted.
// A submission keeps the episode's trace, GPUs and capacity until
// final_answer is scored and recorded in the trace, so after final_answer
// close leaves the release to the end of that call.
func (ep *episode) close(reason string) {
	ep.mu.Lock()
	over := ep.finished
	if !over {
		ep.finished, ep.ended = true, reason
	}
	released := ep.released
	ep.released = true
	submitted := ep.submitted
	r := ep.result
	r.Steps = ep.steps
	ep.mu.Unlock()
	if !over {
		r.Status = runlog.StatusAborted
		r.Error = reason
		ep.finish(r)
		ep.logger.Info().Str("reason", reason).Msg("episode aborted")
	}
	if released {
		return
	}
	if submitted {
		go func() {
			ep.inflight.Wait()
			ep.release()
		}()
		return
	}
	if err := ep.sb.Close(); err != nil {
		ep.logger.Error().Err(err).Msg("close sandbox")
	}
	// With the sandbox gone, calls in flight return at once; give them a
	// moment to be recorded.
	waited := make(chan struct{})
	go func() { ep.inflight.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
	}
	ep.release()
}

// release frees what the episode holds, once its last call is recorded.
func (ep *episode) release() {
	if err := ep.sb.Close(); err != nil {
		ep.logger.Error().Err(err).Msg("close sandbox")
	}
	ep.gpus.Release()
	ep.ws.Close()
	ep.log.Close()
	ep.srv.opts.Capacity.release()
	ep.srv.opts.Metrics.sessionEnded()
	ep.srv.mu.Lock()
	delete(ep.srv.alive, ep)
	ep.srv.mu.Unlock()
}

func (ep *episode) isFinished() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.finished
}
