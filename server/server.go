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
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
	"github.com/mlab/mlab/tools"
)

// Options configure a Server. Task, Provider, Scorer, Baselines and RunsDir
// are required.
type Options struct {
	// Task is the task every session works on.
	Task *tasks.Task
	// Provider creates one sandbox per session.
	Provider  sandbox.Provider
	Scorer    *eval.Scorer
	Baselines *eval.Baselines
	// RunsDir receives one run log directory per episode.
	RunsDir string
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
	// Version is reported in the server info.
	Version string
	Logger  zerolog.Logger
}

// Server is an MCP server for one task.
type Server struct {
	opts    Options
	budgets tasks.Budgets
	mcp     *mcpserver.MCPServer
	log     zerolog.Logger

	mu       sync.Mutex
	episodes map[string]*episode // by MCP session id
	closed   bool
}

// New builds the MCP server with every tool registered.
func New(opts Options) (*Server, error) {
	if opts.Task == nil || opts.Provider == nil || opts.Scorer == nil || opts.Baselines == nil || opts.RunsDir == "" {
		return nil, fmt.Errorf("server: Task, Provider, Scorer, Baselines and RunsDir are required")
	}
	s := &Server{
		opts:     opts,
		budgets:  mergeBudgets(opts.Task.Config.Budgets, opts.Budgets),
		log:      opts.Logger,
		episodes: map[string]*episode{},
	}
	hooks := &mcpserver.Hooks{}
	hooks.AddOnUnregisterSession(func(ctx context.Context, cs mcpserver.ClientSession) {
		reason := "the client disconnected before final_answer"
		if ctx.Err() != nil {
			reason = stoppedReason
		}
		s.endSession(cs.SessionID(), reason)
	})
	s.mcp = mcpserver.NewMCPServer("mlab", opts.Version,
		mcpserver.WithInstructions(s.instructions()),
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithResourceCapabilities(false, false),
		mcpserver.WithInputSchemaValidation(),
		mcpserver.WithRecovery(),
		mcpserver.WithHooks(hooks),
		mcpserver.WithToolHandlerMiddleware(s.record),
	)
	tools.Register(s.mcp, s.session)
	s.mcp.AddResource(mcp.NewResource("mlab://task/research_problem", "research_problem",
		mcp.WithResourceDescription("The research problem of task "+opts.Task.Name),
		mcp.WithMIMEType("text/plain")),
		func(context.Context, mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			return []mcp.ResourceContents{mcp.TextResourceContents{
				URI: "mlab://task/research_problem", MIMEType: "text/plain", Text: opts.Task.Problem,
			}}, nil
		})
	return s, nil
}

// MCP exposes the underlying server, for transports and in-process tests.
func (s *Server) MCP() *mcpserver.MCPServer { return s.mcp }

func (s *Server) instructions() string {
	b := s.budgets
	return fmt.Sprintf(`You are working on the ML research task %q in a sandboxed workspace.

Research problem:
%s

How this works: use list_files, read_file and inspect_script_lines to look around; write_file, append_file, copy_file and edit_script to change files (undo_edit_script reverts); execute_script to run Python scripts. When you are done, call final_answer: the workspace as it is then is scored by a hidden evaluation against the baseline (%s, %s is better). Budget: %d tool calls and %s of wall time; each script run times out after %s by default (at most %s).`,
		s.opts.Task.Name, s.opts.Task.Problem, s.opts.Task.Config.Metric, s.opts.Task.Config.Direction,
		b.MaxSteps, time.Duration(b.MaxTime), time.Duration(b.ExecTimeout), time.Duration(b.MaxExecTimeout))
}

// ServeStdio serves one session over in and out until in closes or ctx ends,
// then closes every episode.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	stdio := mcpserver.NewStdioServer(s.mcp)
	stdio.SetErrorLogger(log.New(zerologWriter{s.log}, "", 0))
	err := stdio.Listen(ctx, in, out)
	s.Close()
	if err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "EOF") {
		return fmt.Errorf("serve stdio: %w", err)
	}
	return nil
}

// Close ends every open episode as aborted and removes its sandbox.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	ids := make([]string, 0, len(s.episodes))
	for id := range s.episodes {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.endSession(id, stoppedReason)
	}
}

func (s *Server) endSession(id, reason string) {
	s.mu.Lock()
	ep := s.episodes[id]
	delete(s.episodes, id)
	s.mu.Unlock()
	if ep != nil {
		ep.close(reason)
	}
}

const stoppedReason = "the server stopped before final_answer"

func mergeBudgets(task, override tasks.Budgets) tasks.Budgets {
	if override.MaxSteps > 0 {
		task.MaxSteps = override.MaxSteps
	}
	if override.MaxTime > 0 {
		task.MaxTime = override.MaxTime
	}
	if override.ExecTimeout > 0 {
		task.ExecTimeout = override.ExecTimeout
	}
	if override.MaxExecTimeout > 0 {
		task.MaxExecTimeout = override.MaxExecTimeout
	}
	if task.ExecTimeout > task.MaxExecTimeout {
		task.ExecTimeout = task.MaxExecTimeout
	}
	return task.WithDefaults()
}

// zerologWriter sends the stdio transport's own error log to zerolog.
type zerologWriter struct{ log zerolog.Logger }

func (w zerologWriter) Write(p []byte) (int, error) {
	w.log.Error().Str("component", "stdio").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
