// Package server wires mlab to MCP with mark3labs/mcp-go: the session
// lifecycle (one episode, sandbox and run log per MCP session), the middleware
// that enforces budgets and records every step, the task's instructions and
// resources, and the stdio transport.
package server

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/episode"
	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
	"github.com/mlab/mlab/tools"
)

// Options configure a Server. Provider, Scorer, Baselines, RunsDir and one
// of Task or Catalog are required.
type Options struct {
	// Task pins the task every session works on. Without it, a session
	// picks one from Catalog with the start_task tool.
	Task *tasks.Task
	// Catalog lists the tasks a session may start, as the mlab://tasks
	// resource and through start_task.
	Catalog *tasks.Catalog
	// Provider creates one sandbox per session.
	Provider  sandbox.Provider
	Scorer    *eval.Scorer
	Baselines *eval.Baselines
	// RunsDir receives one run log directory per episode.
	RunsDir string
	// TempDir receives the submission copies being scored, each in a
	// folder with an owner record so that a later server removes it if this
	// one dies; "" means the system temporary directory.
	TempDir string
	// Limits bound the processes of every sandbox; zero fields take the defaults.
	Limits sandbox.Limits
	// GPUs is the pool sessions lease the task's GPUs from; nil means none.
	GPUs *sandbox.GPUPool
	// GPUWait bounds how long a new session waits for GPUs to free up.
	GPUWait time.Duration
	// Budgets override the task's budgets field by field where non-zero.
	Budgets tasks.Budgets
	// ProgressEvery is the interval of progress notifications while a
	// script runs; 0 means 5 s.
	ProgressEvery time.Duration
	// Capacity bounds the concurrent episodes of every Server sharing it;
	// nil means no bound.
	Capacity *Capacity
	// IdleTimeout ends an episode whose session made no tool call for that
	// long; 0 means never.
	IdleTimeout time.Duration
	// Metrics, when set, receives tool call and session metrics.
	Metrics *Metrics
	// Version is reported in the server info.
	Version string
	Logger  zerolog.Logger

	// Resume starts the server's first episode from a stopped run instead
	// of the task's files: `mlab resume`. Task must be the run's task.
	Resume *Resume

	// registry is the gateway's table of episodes, shared by its
	// endpoints; nil makes one of the server's own.
	registry *registry
	// episode pins a per-episode endpoint to that handle.
	episode string
}

// Server is an MCP server: a pinned task, the start_task lobby, or one
// episode's own endpoint.
type Server struct {
	opts Options
	mcp  *mcpserver.MCPServer
	log  zerolog.Logger
	env  *episode.Env
	// reg holds the episodes by handle; a gateway's endpoints share it.
	reg *registry
	// fixed is the one episode a per-episode endpoint serves; "" elsewhere.
	fixed string
	stop  chan struct{} // closed by Close, ends the idle reaper
	// work is cancelled when the server shuts down: submissions (eval,
	// baseline) outlive their request, but not the server.
	work       context.Context
	cancelWork context.CancelFunc
	// transports counts the MCP sessions the transports have registered.
	transports atomic.Int64
	// dropTransport forgets a transport session whose episode the server
	// ended on its own (idle); the Gateway sets it for streamable HTTP.
	dropTransport func(id string)
	// stopping is set once the server shuts down, stdio when it serves stdio.
	stopping, stdio atomic.Bool
	// resumed is set once Options.Resume has been used.
	resumed atomic.Bool

	mu sync.Mutex
	// bound lists the handles of the episodes each transport session
	// started (stdio, 2025-revision sessions), by session id.
	bound    map[string][]string
	starting map[string]*pending // sessions whose first episode is being created
	// ended remembers why recently ended sessions ended, so that a client
	// calling again is told, rather than given a fresh episode.
	ended  map[string]tombstone
	closed bool
}

// New builds the MCP server with every tool registered.
func New(opts Options) (*Server, error) {
	if (opts.Task == nil && opts.Catalog == nil) || opts.Provider == nil || opts.Scorer == nil || opts.Baselines == nil || opts.RunsDir == "" {
		return nil, fmt.Errorf("server: Provider, Scorer, Baselines, RunsDir and Task or Catalog are required")
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		reg:      opts.registry,
		fixed:    opts.episode,
		stop:     make(chan struct{}),
		bound:    map[string][]string{},
		starting: map[string]*pending{},
		ended:    map[string]tombstone{},
	}
	if s.reg == nil {
		s.reg = newRegistry()
	}
	s.work, s.cancelWork = context.WithCancel(context.Background())
	s.env = &episode.Env{
		Provider: opts.Provider, Scorer: opts.Scorer, Baselines: opts.Baselines,
		RunsDir: opts.RunsDir, TempDir: opts.TempDir, Limits: opts.Limits.WithDefaults(),
		GPUs: opts.GPUs, GPUWait: opts.GPUWait,
		Work: s.work, Stopping: s.stopping.Load, Logger: opts.Logger,
	}
	s.dropTransport = func(id string) { s.mcp.UnregisterSession(context.Background(), id) }
	instructions, err := s.instructions()
	if err != nil {
		return nil, err
	}
	hooks := &mcpserver.Hooks{}
	hooks.AddOnRegisterSession(func(context.Context, mcpserver.ClientSession) { s.transports.Add(1) })
	hooks.AddOnUnregisterSession(func(ctx context.Context, cs mcpserver.ClientSession) {
		reason := "the client disconnected before final_answer"
		// A stdio session's context ends only when the server stops; on
		// HTTP it is the request's, so Close says when the server stops.
		if s.stopping.Load() || (s.stdio.Load() && ctx.Err() != nil) {
			reason = episode.StoppedReason
		}
		s.transports.Add(-1)
		s.endSession(cs.SessionID(), reason)
	})
	s.mcp = mcpserver.NewMCPServer("mlab", opts.Version,
		mcpserver.WithInstructions(instructions),
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithResourceCapabilities(false, false),
		mcpserver.WithRecovery(),
		mcpserver.WithHooks(hooks),
		mcpserver.WithToolHandlerMiddleware(s.record),
	)
	tools.Register(s.mcp, s.session)
	if opts.Task != nil {
		s.addTextResource("mlab://task/research_problem", "research_problem",
			"The research problem of task "+opts.Task.Name, func(context.Context) (string, error) { return opts.Task.Problem, nil })
	}
	// A per-episode endpoint has start_task too, to say it needs none.
	tools.RegisterEpisodeTools(s.mcp, s)
	s.addStatusResource()
	if opts.Catalog != nil {
		s.addTextResource("mlab://tasks", "tasks", "Every task this server hosts, with its metric and research problem", s.taskList)
	}
	if opts.IdleTimeout > 0 {
		go s.reapIdle(opts.IdleTimeout)
	}
	return s, nil
}

func (s *Server) addTextResource(uri, name, description string, text func(context.Context) (string, error)) {
	s.mcp.AddResource(mcp.NewResource(uri, name, mcp.WithResourceDescription(description), mcp.WithMIMEType("text/plain")),
		func(ctx context.Context, _ mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			t, err := text(ctx)
			if err != nil {
				return nil, err
			}
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: uri, MIMEType: "text/plain", Text: t}}, nil
		})
}

// MCP exposes the underlying server, for transports and in-process tests.
func (s *Server) MCP() *mcpserver.MCPServer { return s.mcp }

func (s *Server) instructions() (string, error) {
	if s.opts.Task == nil {
		names, err := s.opts.Catalog.Names()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf(`This mlab server hosts ML research tasks, each solved in a sandboxed workspace of your own. Start by calling start_task with one of these task names: %s. The mlab://tasks resource describes each task. start_task returns the research problem and how the tools, budgets and scoring work.`,
			strings.Join(names, ", ")), nil
	}
	return "You are working on " + taskBriefing(s.opts.Task, s.budgetsFor(s.opts.Task)), nil
}

// taskBriefing tells an agent what a task asks and how the episode works.
func taskBriefing(t *tasks.Task, b tasks.Budgets) string {
	return fmt.Sprintf(`the ML research task %q in a sandboxed workspace.

Research problem:
%s

How this works: use list_files, read_file and inspect_script_lines to look around; write_file, append_file, copy_file and edit_script to change files (undo_edit_script reverts); execute_script to run Python scripts. When you are done, call final_answer: the workspace as it is then is scored by a hidden evaluation against the baseline (%s, %s is better). Budget: %d tool calls and %s of wall time; each script run times out after %s by default (at most %s).`,
		t.Name, t.Problem, t.Config.Metric, t.Config.Direction,
		b.MaxSteps, time.Duration(b.MaxTime), time.Duration(b.ExecTimeout), time.Duration(b.MaxExecTimeout))
}

// budgetsFor is a task's budgets with the server's overrides.
func (s *Server) budgetsFor(t *tasks.Task) tasks.Budgets {
	return t.Config.Budgets.Merge(s.opts.Budgets)
}

// ServeStdio serves one session over in and out until in closes or ctx ends,
// then closes every episode.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	s.stdio.Store(true)
	stdio := mcpserver.NewStdioServer(s.mcp)
	stdio.SetErrorLogger(log.New(zerologWriter{s.log}, "", 0))
	err := stdio.Listen(ctx, in, out)
	s.Close()
	if err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "EOF") {
		return fmt.Errorf("serve stdio: %w", err)
	}
	return nil
}

// Close ends every open episode as aborted and removes its sandbox, waiting
// up to shutdownGrace for submissions being scored to be recorded.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	s.Shutdown(ctx)
}

// shutdownGrace bounds how long Close waits for episodes to be recorded.
const shutdownGrace = 30 * time.Second

// Shutdown stops the server: no episode starts any more, running scripts,
// evals and baseline runs are cancelled, and every episode it created is
// recorded and released. Episodes still not released when ctx ends are
// recorded as aborted there and then; their sandboxes are the provider's to
// remove.
func (s *Server) Shutdown(ctx context.Context) {
	s.stopping.Store(true)
	s.mu.Lock()
	if !s.closed {
		close(s.stop)
	}
	s.closed = true
	s.mu.Unlock()
	s.cancelWork()
	held := s.reg.of(s)
	var wg sync.WaitGroup
	for _, e := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.ep.Close(episode.StoppedReason)
		}()
	}
	wg.Wait()
	for _, e := range held {
		select {
		case <-e.ep.Released():
		case <-ctx.Done():
			e.ep.AbortUnrecorded(episode.StoppedReason)
		}
	}
}

// zerologWriter sends the stdio transport's own error log to zerolog.
type zerologWriter struct{ log zerolog.Logger }

func (w zerologWriter) Write(p []byte) (int, error) {
	w.log.Error().Str("component", "stdio").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// episodeCount is the number of episodes the server created and holds.
func (s *Server) episodeCount() int { return s.reg.held(s) }

// TaskName is the pinned task, or "" for a start_task lobby.
func (o Options) TaskName() string {
	if o.Task == nil {
		return ""
	}
	return o.Task.Name
}
