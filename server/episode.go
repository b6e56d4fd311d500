package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
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

	mu       sync.Mutex
	steps    int
	finished bool // final_answer called or session closed
	result   runlog.Result
}

// episodeFor returns the episode of the calling MCP session, creating it and
// its sandbox on the session's first tool call.
func (s *Server) episodeFor(ctx context.Context) (*episode, error) {
	cs := mcpserver.ClientSessionFromContext(ctx)
	if cs == nil {
		return nil, errors.New("no MCP session in this request")
	}
	key := cs.SessionID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("the server is shutting down")
	}
	if ep, ok := s.episodes[key]; ok {
		return ep, nil
	}
	agent := ""
	if ci, ok := cs.(mcpserver.SessionWithClientInfo); ok {
		info := ci.GetClientInfo()
		agent = info.Name
		if info.Version != "" {
			agent += "/" + info.Version
		}
	}
	// Creating under the lock keeps two concurrent first calls of one
	// session from building two sandboxes; creation takes milliseconds.
	ep, err := s.newEpisode(ctx, agent)
	if err != nil {
		return nil, err
	}
	s.episodes[key] = ep
	return ep, nil
}

func (s *Server) newEpisode(ctx context.Context, agent string) (*episode, error) {
	task := s.opts.Task
	sessionID := uuid.NewString()
	runID := fmt.Sprintf("%s-%s-%s", time.Now().UTC().Format("20060102T150405Z"), task.Name, sessionID[:8])
	logger := s.log.With().Str("session", sessionID).Str("run", runID).Logger()

	rl, err := runlog.Create(s.opts.RunsDir, runID)
	if err != nil {
		return nil, fmt.Errorf("create run log: %w", err)
	}
	limits := s.opts.Limits.WithDefaults()
	lease, err := s.opts.GPUs.Acquire(ctx, task.Config.GPUs, s.opts.GPUWait)
	if err != nil {
		rl.Close()
		return nil, fmt.Errorf("lease GPUs: %w", err)
	}
	sb, err := s.opts.Provider.Create(ctx, sandbox.Spec{
		Session: sessionID, Run: runID, Files: task.EnvDir(), Limits: limits, GPUs: lease.IDs(), Image: task.Config.Image,
	})
	if err != nil {
		lease.Release()
		rl.Close()
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	ws, err := tools.OpenWorkspace(sb.Workspace(), task.ReadOnly)
	if err == nil {
		if o, ok := sb.(sandbox.Owned); ok {
			ws.SetOwner(o.Owner())
		}
	} else {
		sb.Close()
		lease.Release()
		rl.Close()
		return nil, fmt.Errorf("open workspace: %w", err)
	}
	ep := &episode{
		srv: s, task: task, budgets: s.budgets, sb: sb, ws: ws, log: rl, gpus: lease, logger: logger, start: time.Now(),
		result: runlog.Result{
			RunID: runID, Task: task.Name, SessionID: sessionID, Agent: agent, Backend: s.opts.Provider.Name(),
			Status: runlog.StatusRunning, Metric: task.Config.Metric, Direction: task.Config.Direction,
			StartedAt: time.Now().UTC(),
		},
	}
	ep.tools = &tools.Session{
		Workspace:      ws,
		Sandbox:        sb,
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
	if ep.finished {
		return 0, "this episode is over: final_answer was already called (or the session was closed), so no more tools can be used"
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
	return ep.steps, ""
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
	steps := ep.steps
	ep.mu.Unlock()

	r := ep.result
	r.Steps = steps
	final, err := ep.log.Snapshot(ctx, ep.sb.Workspace(), "final")
	if err == nil {
		err = ep.sb.Close()
	}
	var outcome eval.Outcome
	var sub string
	if err == nil {
		sub, err = os.MkdirTemp("", "mlab-submission-")
	}
	if err == nil {
		defer os.RemoveAll(sub)
		sub = filepath.Join(sub, "submission")
		err = ep.log.Restore(ctx, final, sub)
	}
	if err == nil {
		outcome, err = ep.srv.opts.Scorer.Score(ctx, ep.task, sub, ep.gpus.IDs())
	}
	switch {
	case err != nil:
		r.Status = runlog.StatusInvalid
		r.Error = err.Error()
	default:
		r.Status = runlog.StatusScored
		r.Score = &outcome.Score
		baseline, berr := ep.srv.opts.Baselines.Get(ctx, ep.task)
		if berr != nil {
			r.Error = "baseline unavailable: " + berr.Error()
			break
		}
		r.Baseline = &baseline
		if imp, ok := eval.Improvement(outcome.Score, baseline, ep.task.Config.Direction); ok {
			r.Improvement = &imp
			r.Success = eval.Success(imp)
		}
	}
	ep.finish(r)
	ep.logger.Info().Str("status", r.Status).Any("score", r.Score).Any("baseline", r.Baseline).
		Str("error", r.Error).Str("answer", answer).Msg("episode submitted")
	return r, nil
}

// finish records the final result once.
func (ep *episode) finish(r runlog.Result) {
	now := time.Now().UTC()
	r.EndedAt = &now
	r.Seconds = time.Since(ep.start).Seconds()
	ep.mu.Lock()
	ep.result = r
	ep.finished = true
	ep.mu.Unlock()
	if err := ep.log.WriteResult(r); err != nil {
		ep.logger.Error().Err(err).Msg("write result.json")
	}
}

// close releases the episode; one that never submitted is recorded as aborted.
func (ep *episode) close(reason string) {
	ep.mu.Lock()
	submitted := ep.finished
	ep.finished = true
	r := ep.result
	r.Steps = ep.steps
	ep.mu.Unlock()
	if !submitted {
		r.Status = runlog.StatusAborted
		r.Error = reason
		ep.finish(r)
		ep.logger.Info().Str("reason", reason).Msg("episode aborted")
	}
	if err := ep.sb.Close(); err != nil {
		ep.logger.Error().Err(err).Msg("close sandbox")
	}
	ep.gpus.Release()
	ep.ws.Close()
	ep.log.Close()
}
