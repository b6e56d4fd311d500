package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlab/mlab/internal/proc"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/server"
	"github.com/mlab/mlab/tasks"
)

type serveFlags struct {
	task            string
	transport       string
	addr            string
	token           string
	tokenFile       string
	origins         []string
	maxSessions     int
	memoryBudgetMiB int64
	idleTimeout     time.Duration
	shutdownTimeout time.Duration
	maxSteps        int
	maxTime         time.Duration
	execTimeout     time.Duration
	maxExec         time.Duration
	memoryMiB       int64
	pids            int64
	gpuWait         time.Duration
	progressEvery   time.Duration
	// maxRequestMiB, maxConns and maxConnsPerClient bound HTTP clients.
	maxRequestMiB     int64
	maxConns          int
	maxConnsPerClient int
	// resume is the run directory `mlab resume` continues.
	resume string
}

func newServeCmd(c *common) *cobra.Command {
	sf := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve tasks over MCP (stdio, streamable HTTP or SSE): one sandbox per session, hidden eval at final_answer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), c, sf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.task, "task", "", "pin every session to this task (see mlab tasks); without it a session picks one with the start_task tool")
	f.StringVar(&sf.transport, "transport", "stdio", "stdio, http (streamable HTTP at /mcp) or sse (SSE at /sse)")
	f.StringVar(&sf.addr, "addr", "127.0.0.1:8080", "listen address of the http and sse transports; anything but loopback needs a token")
	f.StringVar(&sf.token, "token", "", "bearer token HTTP clients must send (also MLAB_TOKEN or --token-file)")
	f.StringVar(&sf.tokenFile, "token-file", "", "file holding the bearer token")
	f.StringSliceVar(&sf.origins, "allowed-origin", nil, "browser origin allowed besides loopback ones (repeatable, * for any)")
	f.IntVar(&sf.maxSessions, "max-sessions", c.plan.Sessions, "concurrent sessions (each holds a sandbox); 0 for no limit (default derived from this machine: see README)")
	f.Int64Var(&sf.memoryBudgetMiB, "memory-budget", c.plan.BudgetBytes>>20, "MiB of memory sandboxes may reserve in all: a session reserves its --memory (plus its workspace when docker workspaces are tmpfs) and is refused when that does not fit; 0 for no check (default: this machine's memory less a reserve, see README)")
	f.DurationVar(&sf.idleTimeout, "idle-timeout", 30*time.Minute, "end a session that makes no tool call for this long; 0 never")
	f.DurationVar(&sf.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for sessions to close")
	f.IntVar(&sf.maxSteps, "max-steps", 0, "tool calls per episode (default: the task's, else 50)")
	f.DurationVar(&sf.maxTime, "max-time", 0, "wall time per episode (default: the task's, else 5h)")
	f.DurationVar(&sf.execTimeout, "exec-timeout", 0, "default timeout of one execute_script call (default: the task's, else 10m)")
	f.DurationVar(&sf.maxExec, "max-exec-timeout", 0, "largest timeout an agent may ask for (default: the task's, else 1h)")
	f.Int64Var(&sf.memoryMiB, "memory", c.plan.MemoryBytes>>20, "memory limit of agent scripts in MiB (default derived from this machine's memory: see README)")
	f.Int64Var(&sf.pids, "pids", 0, "process and thread limit of agent scripts (default 512)")
	f.DurationVar(&sf.gpuWait, "gpu-wait", 10*time.Minute, "how long a new session waits for GPUs leased to others")
	f.DurationVar(&sf.progressEvery, "progress-every", 5*time.Second, "interval of progress notifications while a script runs")
	f.Int64Var(&sf.maxRequestMiB, "max-request-size", server.DefaultMaxBodyBytes>>20,
		"largest HTTP request body in MiB; larger ones get 413 unread (the default fits the largest write_file)")
	f.IntVar(&sf.maxConns, "max-conns", server.DefaultMaxConns, "open HTTP connections of all clients together; more are closed at once")
	f.StringVar(&sf.resume, "resume", "", "continue the aborted run in this run directory (see mlab resume)")
	f.MarkHidden("resume")
	f.IntVar(&sf.maxConnsPerClient, "max-conns-per-client", server.DefaultMaxConnsPerClient, "open HTTP connections of one client IP address; more are closed at once")
	return cmd
}

func serve(ctx context.Context, c *common, sf *serveFlags) error {
	if err := sf.validate(); err != nil {
		return err
	}
	var stopped *runlog.Run
	if sf.resume != "" {
		if sf.transport != "stdio" {
			return fmt.Errorf("mlab resume serves stdio (the resumed episode belongs to that one connection), not --transport %s", sf.transport)
		}
		// A run its server left as running is judged before it is read.
		if _, err := runlog.Recover(filepath.Dir(filepath.Clean(sf.resume)), proc.Alive); err != nil {
			return fmt.Errorf("judge %s: %w", sf.resume, err)
		}
		var err error
		if stopped, err = resumable(sf.resume); err != nil {
			return err
		}
		sf.task = stopped.Result.Task
	}
	c.oneTask = sf.task
	e, err := c.env(ctx)
	if err != nil {
		return err
	}
	defer e.cleanup()
	if err := os.MkdirAll(c.runsDir, 0o755); err != nil {
		return fmt.Errorf("create runs dir: %w", err)
	}
	if marked, err := runlog.Recover(c.runsDir, proc.Alive); err != nil {
		e.log.Warn().Err(err).Msg("recover runs of stopped servers")
	} else if len(marked) > 0 {
		e.log.Info().Strs("runs", marked).Msg("marked runs of a server that stopped unexpectedly as aborted")
	}
	memory, _ := mib("memory", sf.memoryMiB) // checked by validate
	e.setEvalLimits(sandbox.Limits{MemoryBytes: memory, Processes: sf.pids})
	opts := server.Options{
		Catalog: e.catalog, Provider: e.provider, Scorer: e.scorer, Baselines: e.baselines,
		RunsDir: c.runsDir,
		Limits:  sandbox.Limits{MemoryBytes: memory, Processes: sf.pids},
		GPUs:    e.gpus, GPUWait: sf.gpuWait,
		Budgets: tasks.Budgets{
			MaxSteps: sf.maxSteps, MaxTime: tasks.Duration(sf.maxTime),
			ExecTimeout: tasks.Duration(sf.execTimeout), MaxExecTimeout: tasks.Duration(sf.maxExec),
		},
		Capacity:      server.NewCapacity(sf.maxSessions).WithMemory(sf.memoryBudgetMiB<<20, sessionReserve(c, sf, e)),
		IdleTimeout:   sf.idleTimeout,
		ProgressEvery: sf.progressEvery,
		Version:       version,
		Logger:        e.log,
	}
	if sf.task != "" {
		if opts.Task, err = e.catalog.Load(ctx, sf.task); err != nil {
			return err
		}
	}
	if stopped != nil {
		opts.Resume = resumeOf(stopped, opts.Task.Config.Budgets.Merge(opts.Budgets))
		e.log.Info().Str("run", stopped.Result.RunID).Str("snapshot", stopped.LastSnapshot).Int("steps_used", stopped.Steps).
			Dur("time_used", stopped.Elapsed).Msg("resuming a stopped run")
	}
	// Baselines are measured now, in the background, rather than when a
	// submission needs one.
	e.baselines.Prefetch(servedTasks(ctx, e, opts.Task)...)
	switch sf.transport {
	case "stdio":
		srv, err := server.New(opts)
		if err != nil {
			return err
		}
		e.log.Info().Str("task", sf.task).Str("backend", e.provider.Name()).Str("python", c.python).Msg("serving on stdio")
		return srv.ServeStdio(ctx, os.Stdin, os.Stdout)
	case "http", "sse":
		return serveHTTP(ctx, e, opts, sf)
	default:
		return fmt.Errorf("--transport %q: want stdio, http or sse", sf.transport)
	}
}

func serveHTTP(ctx context.Context, e *env, opts server.Options, sf *serveFlags) error {
	token, err := readToken(sf)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(sf.addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", sf.addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) && token == "" {
		return fmt.Errorf("--addr %s is not a loopback address: set a bearer token with --token, --token-file or MLAB_TOKEN", sf.addr)
	}
	opts.Metrics = server.NewMetrics(e.gpus)
	maxBody, conns := sf.httpLimits()
	gw, err := server.NewGateway(opts, server.HTTPOptions{Token: token, AllowedOrigins: sf.origins, MaxBodyBytes: maxBody})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", sf.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", sf.addr, err)
	}
	ln = server.LimitListener(ln, conns, e.log)
	hs := server.NewHTTPServer(gw)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	path := "/mcp"
	if sf.transport == "sse" {
		path = "/sse"
	}
	e.log.Info().Str("url", "http://"+ln.Addr().String()+path).Str("task", opts.TaskName()).
		Str("backend", e.provider.Name()).Bool("auth", token != "").Msg("serving")
	select {
	case err := <-served:
		gw.Close(context.Background())
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	e.log.Info().Msg("shutting down: stopping sessions")
	sctx, cancel := context.WithTimeout(context.Background(), sf.shutdownTimeout)
	defer cancel()
	cerr := gw.Close(sctx)
	if err := hs.Shutdown(sctx); err != nil {
		// Streams still open at the deadline are cut.
		hs.Close()
	}
	return cerr
}

// readToken takes the bearer token from the flag, the file or MLAB_TOKEN.
func readToken(sf *serveFlags) (string, error) {
	token := sf.token
	if sf.tokenFile != "" {
		b, err := os.ReadFile(sf.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		token = os.Getenv("MLAB_TOKEN")
	}
	if token != "" && len(token) < 16 {
		return "", errors.New("the bearer token is too short: use at least 16 characters")
	}
	return token, nil
}

// sessionReserve is the memory one session reserves of the host's budget:
// its sandbox's memory limit, plus its workspace where that is a tmpfs
// (docker as root), since tmpfs pages are memory too.
func sessionReserve(c *common, sf *serveFlags, e *env) int64 {
	per := sf.memoryMiB << 20
	if per <= 0 {
		per = sandbox.DefaultMemoryBytes
	}
	if e.provider.Name() == "docker" && os.Geteuid() == 0 {
		per += c.workspaceMiB << 20
	}
	return per
}

// servedTasks describes the tasks the server serves (the pinned one, or every
// task of the catalog) and logs their warnings; a broken task is logged and
// left out.
func servedTasks(ctx context.Context, e *env, pinned *tasks.Task) []*tasks.Task {
	served := []*tasks.Task{pinned}
	if pinned == nil {
		names, err := e.catalog.Names()
		if err != nil {
			e.log.Warn().Err(err).Msg("list tasks")
		}
		served = served[:0]
		for _, n := range names {
			// Described, not loaded: a task that needs preparing is
			// prepared on first use, not all at start.
			t, err := e.catalog.Describe(ctx, n)
			if err != nil {
				e.log.Warn().Err(err).Str("task", n).Msg("task cannot be loaded")
				continue
			}
			served = append(served, t)
		}
	}
	for _, t := range served {
		for _, w := range t.Warnings {
			e.log.Warn().Str("task", t.Name).Msg(w)
		}
	}
	return served
}
