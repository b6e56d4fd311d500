package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mlab/mlab/episode"
	"github.com/mlab/mlab/tools"
)

type startTaskArgs struct {
	Task string `json:"task,omitempty" jsonschema:"Name of the task to work on, from the mlab://tasks resource or the server instructions. May be omitted when the server hosts a single task."`
}

func startTaskTool(idle time.Duration) mcp.Tool {
	f := false
	expiry := "Episodes do not expire while the server runs."
	if idle > 0 {
		expiry = fmt.Sprintf("An episode with no tool call for %s expires: its sandbox is freed and it is recorded as aborted.", idle)
	}
	return mcp.NewTool("start_task",
		mcp.WithDescription("Start an episode of one of this server's tasks: creates your sandboxed workspace with the task's files and returns its episode_id, the research problem, the tools and the budgets. "+
			"Pass the episode_id on every later tool call (it may be left out where the connection holds only this episode: stdio, or an MCP session of a 2025 revision). "+expiry),
		mcp.WithInputSchema[startTaskArgs](),
		mcp.WithToolAnnotation(mcp.ToolAnnotation{ReadOnlyHint: &f, DestructiveHint: &f, IdempotentHint: &f, OpenWorldHint: &f}),
	)
}

// startTask is start_task: it creates an episode, bound to the calling
// transport session if there is one, and returns its handle. It is not an
// episode step: the episode begins with it.
func (s *Server) startTask(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args startTaskArgs
	if err := tools.Bind(req, &args); err != nil {
		return mcp.NewToolResultError("invalid arguments for start_task: " + err.Error()), nil
	}
	if s.fixed != "" {
		return mcp.NewToolResultError("this endpoint serves episode " + s.fixed + " only: it needs no start_task"), nil
	}
	name := args.Task
	if name == "" && s.opts.Task != nil {
		name = s.opts.Task.Name
	}
	if name == "" {
		names, _ := s.opts.Catalog.Names()
		if len(names) != 1 {
			return mcp.NewToolResultError("start_task needs a task: one of " + strings.Join(names, ", ")), nil
		}
		name = names[0]
	}
	if s.opts.Task != nil && name != s.opts.Task.Name {
		return mcp.NewToolResultError(fmt.Sprintf("this endpoint serves task %q only", s.opts.Task.Name)), nil
	}
	task := s.opts.Task
	if task == nil {
		var err error
		if task, err = s.opts.Catalog.Load(ctx, name); err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
	}
	sid, _ := sessionOf(ctx)
	ep, err := s.create(ctx, createSpec{task: task, session: sid, agent: clientInfo(ctx)})
	if err != nil {
		return mcp.NewToolResultError("could not start the task: " + err.Error()), nil
	}
	return s.started(ep, sid != ""), nil
}

// started is start_task's (and fork_episode's) answer.
func (s *Server) started(ep *episode.Episode, bound bool) *mcp.CallToolResult {
	st := startedOf(ep, s.opts.IdleTimeout)
	var b strings.Builder
	fmt.Fprintf(&b, "episode_id: %s\n", ep.ID())
	if bound {
		b.WriteString("Pass it as episode_id on every tool call; it may be left out while this session holds only this episode.\n")
	} else {
		b.WriteString("Pass it as episode_id on every tool call: this connection has no session to remember it by.\n")
	}
	b.WriteString(st.Expiry + "\n\nYou are now working on " + taskBriefing(ep.Task(), ep.Budgets()))
	return mcp.NewToolResultStructured(st, b.String())
}

// Started describes a new episode to its client.
type Started struct {
	EpisodeID    string         `json:"episode_id"`
	Task         string         `json:"task"`
	RunID        string         `json:"run_id"`
	Problem      string         `json:"problem"`
	Budgets      StartedBudgets `json:"budgets"`
	IdleTimeoutS float64        `json:"idle_timeout_s"`
	Expiry       string         `json:"expiry"`
	Parent       string         `json:"parent_run_id,omitempty"`
	ForkedAtStep *int           `json:"forked_at_step,omitempty"`
}

// StartedBudgets are an episode's budgets, in seconds.
type StartedBudgets struct {
	MaxSteps        int     `json:"max_steps"`
	MaxTimeS        float64 `json:"max_time_s"`
	ExecTimeoutS    float64 `json:"exec_timeout_s"`
	MaxExecTimeoutS float64 `json:"max_exec_timeout_s"`
}

func startedOf(ep *episode.Episode, idle time.Duration) Started {
	b := ep.Budgets()
	st := Started{
		EpisodeID: ep.ID(), Task: ep.Task().Name, RunID: ep.RunID(), Problem: ep.Task().Problem,
		Budgets: StartedBudgets{
			MaxSteps: b.MaxSteps, MaxTimeS: time.Duration(b.MaxTime).Seconds(),
			ExecTimeoutS: time.Duration(b.ExecTimeout).Seconds(), MaxExecTimeoutS: time.Duration(b.MaxExecTimeout).Seconds(),
		},
		IdleTimeoutS: idle.Seconds(),
		Expiry:       "The episode does not expire while the server runs.",
	}
	if idle > 0 {
		st.Expiry = fmt.Sprintf("The episode expires after %s without a tool call: its sandbox is freed and it is recorded as aborted.", idle)
	}
	if p := ep.Status().Result.Parent; p != nil {
		st.Parent = p.RunID
		step := p.Step
		st.ForkedAtStep = &step
	}
	return st
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
