package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mlab/mlab/episode"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/tools"
)

type statusArgs struct {
	EpisodeID string `json:"episode_id,omitempty" jsonschema:"The episode to report on, as returned by start_task. May be omitted when this connection is bound to exactly one episode."`
}

func statusTool() mcp.Tool {
	t := true
	f := false
	return mcp.NewTool("episode_status",
		mcp.WithDescription("Report an episode's progress (steps and time used and left) and, once final_answer has been scored, its result: score, baseline, improvement and success. "+
			"Works after the episode has ended, so a client that lost its connection during final_answer can read its score."),
		mcp.WithInputSchema[statusArgs](),
		mcp.WithOutputSchema[StatusReport](),
		mcp.WithToolAnnotation(mcp.ToolAnnotation{ReadOnlyHint: &t, DestructiveHint: &f, IdempotentHint: &t, OpenWorldHint: &f}),
	)
}

// StatusReport is episode_status's answer.
type StatusReport struct {
	EpisodeID   string         `json:"episode_id"`
	Task        string         `json:"task"`
	RunID       string         `json:"run_id"`
	Status      string         `json:"status"`
	StepsUsed   int            `json:"steps_used"`
	StepsLeft   int            `json:"steps_left"`
	SecondsUsed float64        `json:"seconds_used"`
	SecondsLeft float64        `json:"seconds_left"`
	Ended       string         `json:"ended,omitempty"`
	Result      *runlog.Result `json:"result,omitempty"`
}

func reportOf(st episode.Status) StatusReport {
	r := StatusReport{
		EpisodeID: st.ID, Task: st.Task, RunID: st.RunID, Status: st.Status,
		StepsUsed: st.StepsUsed, StepsLeft: st.StepsLeft,
		SecondsUsed: st.Elapsed.Round(time.Millisecond).Seconds(), SecondsLeft: st.TimeLeft.Round(time.Millisecond).Seconds(),
		Ended: st.EndedReason,
	}
	if st.Status != runlog.StatusRunning {
		res := st.Result
		r.Result = &res
		r.SecondsUsed = res.Seconds
		r.StepsUsed = res.Steps
	}
	return r
}

func (rep StatusReport) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "episode %s (task %s): %s", rep.EpisodeID, rep.Task, rep.Status)
	if rep.Ended != "" {
		fmt.Fprintf(&b, " (%s)", rep.Ended)
	}
	fmt.Fprintf(&b, "; %d steps used, %d left; %.0f s used, %.0f s left", rep.StepsUsed, rep.StepsLeft, rep.SecondsUsed, rep.SecondsLeft)
	if r := rep.Result; r != nil {
		switch {
		case r.Score != nil:
			fmt.Fprintf(&b, "; score %s = %.6g", r.Metric, *r.Score)
			if r.Baseline != nil {
				fmt.Fprintf(&b, " (baseline %.6g, %s is better)", *r.Baseline, r.Direction)
			}
			if r.Improvement != nil {
				fmt.Fprintf(&b, ", improvement %+.2f%%", 100**r.Improvement)
			}
			fmt.Fprintf(&b, ", success: %v", r.Success)
		case r.Error != "":
			fmt.Fprintf(&b, "; %s", r.Error)
		}
	}
	return b.String()
}

// episodeStatus is episode_status. It is not an episode step, and answers
// for ended episodes too.
func (s *Server) episodeStatus(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args statusArgs
	if err := tools.Bind(req, &args); err != nil {
		return mcp.NewToolResultError("invalid arguments for episode_status: " + err.Error()), nil
	}
	ep, err := s.resolveAny(ctx, args.EpisodeID)
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	rep := reportOf(ep.Status())
	return mcp.NewToolResultStructured(rep, rep.text()), nil
}

// resolveAny is resolve for the calls that also serve ended episodes
// (status, fork), and that never start one.
func (s *Server) resolveAny(ctx context.Context, handle string) (*episode.Episode, error) {
	return s.resolveFor(ctx, handle, false)
}

// statusTemplate is the URI of an episode's status resource.
const statusTemplate = "mlab://episodes/{episode_id}/status"

// addStatusResource serves each episode's status, with its result once
// recorded, as JSON: the same as episode_status, for clients that read
// resources.
func (s *Server) addStatusResource() {
	s.mcp.AddResourceTemplate(mcp.NewResourceTemplate(statusTemplate, "episode_status",
		mcp.WithTemplateDescription("An episode's progress and, once scored, its result (score, baseline, improvement, success), as JSON"),
		mcp.WithTemplateMIMEType("application/json")),
		func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			id, ok := strings.CutPrefix(req.Params.URI, "mlab://episodes/")
			id, ok2 := strings.CutSuffix(id, "/status")
			if !ok || !ok2 || id == "" {
				return nil, fmt.Errorf("resource %q: want %s", req.Params.URI, statusTemplate)
			}
			ep, err := s.resolveAny(ctx, id)
			if err != nil {
				return nil, err
			}
			raw, err := json.MarshalIndent(reportOf(ep.Status()), "", "  ")
			if err != nil {
				return nil, err
			}
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "application/json", Text: string(raw)}}, nil
		})
}
