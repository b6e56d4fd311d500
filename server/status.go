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

// Status is episode_status: it answers for ended episodes too, and is not
// an episode step.
func (s *Server) Status(ctx context.Context, handle string) (tools.Status, error) {
	ep, err := s.resolveAny(ctx, handle)
	if err != nil {
		return tools.Status{}, err
	}
	return statusOf(ep), nil
}

// statusOf is what episode_status, the status resource and the admin API
// report of an episode.
func statusOf(ep *episode.Episode) tools.Status {
	st := ep.Status()
	out := tools.Status{
		EpisodeID: st.ID, RunID: st.RunID, Task: st.Task, Status: st.Status,
		StepsUsed: st.StepsUsed, StepsLeft: st.StepsLeft,
		SecondsUsed: st.Elapsed.Round(time.Millisecond).Seconds(), SecondsLeft: st.TimeLeft.Round(time.Millisecond).Seconds(),
	}
	switch {
	case st.Scoring:
		out.Status = statusScoring
	case st.Status != runlog.StatusRunning:
		o := tools.OutcomeOf(st.Result)
		out.Result = &o
		out.SecondsUsed, out.StepsUsed = st.Result.Seconds, st.Result.Steps
	}
	return out
}

// statusScoring is the status of a submission being scored.
const statusScoring = "scoring"

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
			raw, err := json.MarshalIndent(statusOf(ep), "", "  ")
			if err != nil {
				return nil, err
			}
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "application/json", Text: string(raw)}}, nil
		})
}
