package tools

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/runlog"
)

// Episodes is what the episode-management tools ask of the server. Its
// errors are shown to the agent as tool errors, so they should say what to
// do (an unknown task names the tasks there are; a missing, unknown,
// expired or foreign handle says so).
type Episodes interface {
	// Start creates an episode of task for the caller; task is "" when the
	// client left it out, which is fine on a server that hosts one task.
	Start(ctx context.Context, task string) (Started, error)
	// Status reports on the episode named by episodeID, or on the one the
	// request is bound to when episodeID is "". It works after the episode
	// has ended, so that a client that lost its connection while its
	// submission was scored can read the result.
	Status(ctx context.Context, episodeID string) (Status, error)
	// Fork creates a new episode whose workspace is the one of episodeID
	// ("" as for Status) after step (nil: as it is now), with the parent's
	// remaining budgets.
	Fork(ctx context.Context, episodeID string, step *int) (Started, error)
}

// Budgets are an episode's limits and what is left of them.
type Budgets struct {
	MaxSteps        int     `json:"max_steps" jsonschema:"Tool calls the episode may make."`
	MaxTimeS        float64 `json:"max_time_s" jsonschema:"Wall time the episode may take, in seconds."`
	ExecTimeoutS    float64 `json:"exec_timeout_s" jsonschema:"Default timeout of one execute_script run, in seconds."`
	MaxExecTimeoutS float64 `json:"max_exec_timeout_s" jsonschema:"Largest timeout_s execute_script accepts."`
	StepsLeft       int     `json:"steps_left" jsonschema:"Tool calls left."`
	SecondsLeft     float64 `json:"seconds_left" jsonschema:"Wall time left, in seconds."`
}

// Started is the result of start_task and fork_episode: the new episode.
type Started struct {
	EpisodeID string  `json:"episode_id" jsonschema:"Pass this as episode_id on every tool call of this episode."`
	RunID     string  `json:"run_id" jsonschema:"The episode's run directory name in the run log."`
	Task      string  `json:"task"`
	Problem   string  `json:"problem" jsonschema:"The research problem."`
	Metric    string  `json:"metric,omitempty" jsonschema:"What the hidden evaluation measures."`
	Direction string  `json:"direction,omitempty" jsonschema:"higher or lower: which values of the metric are better."`
	Budgets   Budgets `json:"budgets"`
	// IdleTimeoutS is how long the episode may go without a tool call
	// before it expires; 0 when it does not.
	IdleTimeoutS float64 `json:"idle_timeout_s" jsonschema:"Seconds without a tool call after which the episode expires; 0 if it does not."`
	// Expiry says in a sentence what expiry means; when the server leaves
	// it empty it is written from IdleTimeoutS.
	Expiry string `json:"expiry"`
	// ParentRunID and ForkedAtStep are set for a fork only.
	ParentRunID  string `json:"parent_run_id,omitempty" jsonschema:"For a fork: the run it was forked from."`
	ForkedAtStep *int   `json:"forked_at_step,omitempty" jsonschema:"For a fork: the parent's step whose workspace it starts from."`
}

// Outcome is a submission's result as an agent sees it.
type Outcome struct {
	Status      string   `json:"status" jsonschema:"scored or invalid (aborted when the episode ended without a submission)."`
	Metric      string   `json:"metric,omitempty"`
	Direction   string   `json:"direction,omitempty"`
	Score       *float64 `json:"score,omitempty"`
	Baseline    *float64 `json:"baseline,omitempty"`
	Improvement *float64 `json:"improvement,omitempty" jsonschema:"Relative improvement over the baseline in the better direction: 0.1 is 10% better."`
	Success     bool     `json:"success"`
	Error       string   `json:"error,omitempty"`
}

// OutcomeOf is the part of a run's result an agent is shown.
func OutcomeOf(r runlog.Result) Outcome {
	return Outcome{
		Status: r.Status, Metric: r.Metric, Direction: r.Direction,
		Score: r.Score, Baseline: r.Baseline, Improvement: r.Improvement,
		Success: r.Success, Error: r.Error,
	}
}

// Submission is final_answer's result.
type Submission struct {
	RunID string `json:"run_id"`
	Task  string `json:"task"`
	Outcome
	// Scores are the submission's scores in each round of a timed task's
	// eval; BaselineInfo says where the baseline comes from.
	Scores       []float64            `json:"scores,omitempty"`
	BaselineInfo *runlog.BaselineInfo `json:"baseline_info,omitempty"`
	Steps        int                  `json:"steps"`
	Seconds      float64              `json:"seconds"`
}

// SubmissionOf is final_answer's result for a run's result.
func SubmissionOf(r runlog.Result) Submission {
	return Submission{
		RunID: r.RunID, Task: r.Task, Outcome: OutcomeOf(r),
		Scores: r.Scores, BaselineInfo: r.BaselineInfo, Steps: r.Steps, Seconds: r.Seconds,
	}
}

// Status is episode_status' result.
type Status struct {
	EpisodeID string `json:"episode_id"`
	RunID     string `json:"run_id"`
	Task      string `json:"task"`
	// Status is runlog's: running, then scored, invalid or aborted; the
	// server may report a submission being scored as "scoring".
	Status      string  `json:"status" jsonschema:"running, scoring, scored, invalid or aborted."`
	StepsUsed   int     `json:"steps_used"`
	StepsLeft   int     `json:"steps_left"`
	SecondsUsed float64 `json:"seconds_used"`
	SecondsLeft float64 `json:"seconds_left"`
	// Result is set once the episode's result is recorded.
	Result *Outcome `json:"result,omitempty" jsonschema:"The submission's result, once it is recorded."`
}

type (
	startTaskArgs struct {
		Task string `json:"task,omitempty" jsonschema:"Name of the task to work on, from the mlab://tasks resource or the server instructions. May be omitted when the server hosts exactly one task."`
	}
	statusArgs struct {
		Handle
	}
	forkArgs struct {
		Handle
		Step *int `json:"step,omitempty" jsonschema:"The step whose workspace the fork starts from: 0 is the task's starter files, n the workspace after the episode's n-th tool call. Omit to fork the workspace as it is now."`
	}
)

// RegisterEpisodeTools adds start_task, episode_status and fork_episode to
// srv, backed by eps.
func RegisterEpisodeTools(srv *server.MCPServer, eps Episodes) {
	for _, t := range episodeDefinitions(eps) {
		srv.AddTool(t.Tool, t.Handler)
	}
}

func episodeDefinitions(eps Episodes) []server.ServerTool {
	return []server.ServerTool{
		manageTool(StartTask, "Start working on one of this server's tasks: creates an episode, with a sandboxed workspace holding "+
			"the task's files, and returns its episode_id, the research problem and the budgets. Pass the episode_id on every "+
			"tool call of the episode unless your connection is bound to it (stdio, or an MCP session of a 2025 revision). "+
			"An episode with no tool call for the server's idle timeout expires: it ends without a score and its sandbox is freed.",
			func(ctx context.Context, a startTaskArgs) (string, Started, error) {
				st, err := eps.Start(ctx, a.Task)
				if err != nil {
					return "", Started{}, err
				}
				st = withExpiry(st)
				return briefing(st), st, nil
			}),
		manageTool(EpisodeStatus, "Report on an episode: its status (running, scoring, scored, invalid or aborted), the steps and "+
			"time used and left, and, once the submission is scored, its result. It also works after the episode has ended, "+
			"for instance to read the score of a final_answer whose reply was lost.",
			func(ctx context.Context, a statusArgs) (string, Status, error) {
				st, err := eps.Status(ctx, a.EpisodeID)
				if err != nil {
					return "", Status{}, err
				}
				return statusText(st), st, nil
			}),
		manageTool(ForkEpisode, "Fork an episode: start a new episode, in its own sandbox, whose workspace is the episode's "+
			"workspace after the given step (default: as it is now), with the episode's remaining budgets. Both episodes go on "+
			"independently and can each be submitted. Returns the new episode_id.",
			func(ctx context.Context, a forkArgs) (string, Started, error) {
				if a.Step != nil && *a.Step < 0 {
					return "", Started{}, fmt.Errorf("step must be 0 or more (got %d); 0 is the task's starter files", *a.Step)
				}
				st, err := eps.Fork(ctx, a.EpisodeID, a.Step)
				if err != nil {
					return "", Started{}, err
				}
				st = withExpiry(st)
				return briefing(st), st, nil
			}),
	}
}

// manageTool builds an episode-management tool: like tool, but it acts on
// Episodes, not on one Session.
func manageTool[In, Out any](name, description string, h func(ctx context.Context, args In) (string, Out, error)) server.ServerTool {
	def := newTool[In, Out](name, description, true)
	spec := argSpecOf(reflect.TypeFor[In]())
	return server.ServerTool{Tool: def, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var args In
		if err := spec.bind(req, &args); err != nil {
			return mcp.NewToolResultError(fmt.Sprintf("invalid arguments for %s: %v", name, err)), nil
		}
		text, out, err := h(ctx, args)
		if err != nil && ctx.Err() == nil {
			// Failures to start or find an episode are the agent's to
			// read, with nothing structured to show.
			return mcp.NewToolResultError(err.Error()), nil
		}
		return result(ctx, text, out, true, err)
	}}
}

// withExpiry fills in the expiry sentence when the server left it empty.
func withExpiry(st Started) Started {
	if st.Expiry != "" {
		return st
	}
	if st.IdleTimeoutS <= 0 {
		st.Expiry = "The episode does not expire while the server runs."
		return st
	}
	st.Expiry = fmt.Sprintf("An episode with no tool call for %s expires: it ends without a score and its sandbox is freed. "+
		"Call final_answer before then to have your work scored.", seconds(st.IdleTimeoutS))
	return st
}

// briefing is the text of start_task and fork_episode: everything an agent
// needs to work on the episode.
func briefing(st Started) string {
	var b strings.Builder
	if st.ParentRunID != "" {
		at := "as it was at the fork"
		if st.ForkedAtStep != nil {
			at = fmt.Sprintf("after step %d", *st.ForkedAtStep)
		}
		fmt.Fprintf(&b, "Forked episode %s from run %s: its workspace is the parent's %s.\n", st.EpisodeID, st.ParentRunID, at)
	} else {
		fmt.Fprintf(&b, "Started episode %s of the ML research task %q in a sandboxed workspace of its own.\n", st.EpisodeID, st.Task)
	}
	fmt.Fprintf(&b, "episode_id: %s\n", st.EpisodeID)
	b.WriteString("Pass this episode_id as the episode_id argument of every tool call for this episode if your client has no MCP " +
		"session (a 2026-07-28 client, for instance); a connection bound to this one episode may leave it out.\n\n")
	fmt.Fprintf(&b, "Research problem:\n%s\n\n", strings.TrimSpace(st.Problem))
	b.WriteString("How this works: use list_files, read_file and inspect_script_lines to look around; write_file, append_file, " +
		"copy_file and edit_script to change files (undo_edit_script reverts); execute_script to run Python scripts. When you " +
		"are done, call final_answer: the workspace as it is then is scored by a hidden evaluation against the baseline")
	if st.Metric != "" {
		fmt.Fprintf(&b, " (%s, %s is better)", st.Metric, st.Direction)
	}
	b.WriteString(". episode_status shows the budgets left and, after final_answer, the result; fork_episode branches the work.\n\n")
	bu := st.Budgets
	fmt.Fprintf(&b, "Budget: %d tool calls (%d left) and %s of wall time (%s left); each script run times out after %s by default (at most %s).\n",
		bu.MaxSteps, bu.StepsLeft, seconds(bu.MaxTimeS), seconds(bu.SecondsLeft), seconds(bu.ExecTimeoutS), seconds(bu.MaxExecTimeoutS))
	fmt.Fprintf(&b, "Expiry: %s\n", st.Expiry)
	fmt.Fprintf(&b, "Run: %s", st.RunID)
	return b.String()
}

func statusText(st Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "episode %s (task %s, run %s): %s; %d steps used, %d left; %s used, %s left.",
		st.EpisodeID, st.Task, st.RunID, st.Status, st.StepsUsed, st.StepsLeft, seconds(st.SecondsUsed), seconds(st.SecondsLeft))
	if r := st.Result; r != nil {
		switch {
		case r.Score != nil:
			fmt.Fprintf(&b, " Result: %s = %.6g", r.Metric, *r.Score)
			if r.Baseline != nil {
				fmt.Fprintf(&b, " (baseline %.6g, %s is better)", *r.Baseline, r.Direction)
			}
			if r.Improvement != nil {
				fmt.Fprintf(&b, "; improvement %+.2f%%", 100**r.Improvement)
			}
			fmt.Fprintf(&b, "; success: %v.", r.Success)
		case r.Error != "":
			fmt.Fprintf(&b, " Result: %s: %s.", r.Status, r.Error)
		default:
			fmt.Fprintf(&b, " Result: %s.", r.Status)
		}
	}
	return b.String()
}

// seconds formats a number of seconds as a duration ("1h30m0s").
func seconds(s float64) string {
	if math.Abs(s) > 1e9 { // past what a Duration holds
		return fmt.Sprintf("%.0fs", s)
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
