package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/tools"
)

// Snapshot deadlines. A step's snapshot is mostly cached stats; the final
// one may have to hash what changed in the last step, so it gets longer,
// but neither may hold an episode forever.
const (
	stepSnapshotTimeout  = time.Minute
	finalSnapshotTimeout = 5 * time.Minute
)

// record is the one middleware every tool call passes: it starts the
// session's episode on first use, enforces the end of the episode and its
// budgets, runs the tool, snapshots the workspace after tools that may change
// it, and appends the step to the trace.
func (s *Server) record(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		name := req.Params.Name
		if name == "start_task" {
			return next(ctx, req)
		}
		ep, err := s.episodeFor(ctx)
		if err != nil {
			s.opts.Metrics.toolCall(name, "refused", 0)
			return mcp.NewToolResultError(err.Error()), nil
		}
		step, refusal := ep.begin(name)
		if refusal != "" {
			s.opts.Metrics.toolCall(name, "refused", 0)
			return mcp.NewToolResultError(refusal), nil
		}
		defer ep.end()
		start := time.Now()
		res, err := next(ctx, req)
		took := time.Since(start)

		entry := runlog.Step{
			Step: step, Time: start.UTC(), Tool: name, Arguments: arguments(req),
			DurationMS: float64(took.Microseconds()) / 1000,
		}
		switch {
		case err != nil:
			entry.IsError, entry.Result = true, "protocol error: "+err.Error()
		case res != nil:
			entry.IsError, entry.Result = res.IsError, resultText(res)
			if o, ok := res.StructuredContent.(interface{ OutputPath() string }); ok {
				entry.Output = o.OutputPath()
			}
		}
		if !s.readOnly(name) && name != "final_answer" && !ep.isFinished() {
			// A step whose request was cancelled (a dropped client) still
			// changed the workspace and is still recorded.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepSnapshotTimeout)
			snap := fmt.Sprintf("step-%04d", step)
			_, serr := ep.log.Snapshot(sctx, ep.sb.Workspace(), snap)
			cancel()
			if serr != nil {
				ep.logger.Error().Err(serr).Int("step", step).Msg("snapshot")
				if errors.Is(serr, runlog.ErrTooLarge) && res != nil {
					// The agent made the tree too large to record; only it
					// can fix that, and final_answer would fail the same way.
					res.Content = append(res.Content, mcp.NewTextContent(
						"warning: the workspace could not be recorded after this step, and final_answer will fail until it can: "+serr.Error()))
				}
			} else {
				entry.Snapshot = snap
			}
		}
		outcome := "ok"
		if entry.IsError {
			outcome = "error"
		}
		s.opts.Metrics.toolCall(name, outcome, took)
		if aerr := ep.log.Append(entry); aerr != nil {
			ep.logger.Error().Err(aerr).Int("step", step).Msg("append trace")
		}
		ep.logger.Debug().Str("tool", name).Int("step", step).Bool("is_error", entry.IsError).
			Dur("took", took).Msg("tool call")
		return res, err
	}
}

// readOnly reports whether a tool is annotated as leaving the workspace
// unchanged, in which case no snapshot is needed after it.
func (s *Server) readOnly(name string) bool {
	t := s.mcp.GetTool(name)
	return t != nil && t.Tool.Annotations.ReadOnlyHint != nil && *t.Tool.Annotations.ReadOnlyHint
}

// session is the tools' view of the calling session's episode. The
// episode_id argument is not resolved yet: the request's session decides.
func (s *Server) session(ctx context.Context, _ string) (*tools.Session, error) {
	ep, err := s.episodeFor(ctx)
	if err != nil {
		return nil, err
	}
	return ep.tools, nil
}

func arguments(req mcp.CallToolRequest) json.RawMessage {
	if len(req.Params.RawArguments) > 0 {
		return req.Params.RawArguments
	}
	b, err := json.Marshal(req.Params.Arguments)
	if err != nil {
		return nil
	}
	return b
}

func resultText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if t, ok := c.(mcp.TextContent); ok {
			return t.Text
		}
	}
	return ""
}
