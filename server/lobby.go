package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/tools"
)

type startTaskArgs struct {
	TaskName string `json:"task" jsonschema:"Name of the task to work on, from the mlab://tasks resource or the server instructions."`
}

func startTaskTool() mcp.Tool {
	f := false
	return mcp.NewTool("start_task",
		mcp.WithDescription("Start working on one of this server's tasks: creates your sandboxed workspace with the task's files and returns the research problem, the tools and the budgets. Call it once, before any other tool."),
		mcp.WithInputSchema[startTaskArgs](),
		mcp.WithToolAnnotation(mcp.ToolAnnotation{ReadOnlyHint: &f, DestructiveHint: &f, IdempotentHint: &f, OpenWorldHint: &f}),
	)
}

// startTask is start_task: it binds the session to a task and builds its
// sandbox. It is not an episode step: the episode begins with it.
func (s *Server) startTask(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args startTaskArgs
	if err := tools.Bind(req, &args); err != nil {
		return mcp.NewToolResultError("invalid arguments for start_task: " + err.Error()), nil
	}
	cs := mcpserver.ClientSessionFromContext(ctx)
	if cs != nil {
		s.mu.Lock()
		ep := s.episodes[cs.SessionID()]
		s.mu.Unlock()
		if ep != nil {
			return mcp.NewToolResultError(fmt.Sprintf("this session already works on task %q: one task per session; open a new session for another", ep.task.Name)), nil
		}
	}
	task, err := s.opts.Catalog.Load(ctx, args.TaskName)
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	ep, err := s.startEpisode(ctx, task)
	if err != nil {
		return mcp.NewToolResultError("could not start the task: " + err.Error()), nil
	}
	return mcp.NewToolResultText("You are now working on " + taskBriefing(task, ep.budgets)), nil
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
