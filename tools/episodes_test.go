package tools

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/server"
)

// fakeEpisodes records what the tools ask and answers with fixed episodes.
type fakeEpisodes struct {
	mu    sync.Mutex
	calls []string
	steps []*int
	fail  error
}

func (f *fakeEpisodes) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.fail
}

func started(task string) Started {
	return Started{
		EpisodeID: "3q2+7w", RunID: "20260101T000000Z-" + task + "-abcd", Task: task,
		Problem: "Predict the largest number.\n", Metric: "accuracy", Direction: "higher",
		Budgets:      Budgets{MaxSteps: 50, MaxTimeS: 3600, ExecTimeoutS: 600, MaxExecTimeoutS: 1800, StepsLeft: 50, SecondsLeft: 3599.6},
		IdleTimeoutS: 900,
	}
}

func (f *fakeEpisodes) Start(_ context.Context, task string) (Started, error) {
	if err := f.record("start " + task); err != nil {
		return Started{}, err
	}
	return started(task), nil
}

func (f *fakeEpisodes) Status(_ context.Context, id string) (Status, error) {
	if err := f.record("status " + id); err != nil {
		return Status{}, err
	}
	score := 0.5
	return Status{EpisodeID: "3q2+7w", RunID: "run-1", Task: "fixture", Status: "scored", StepsUsed: 4, StepsLeft: 46,
		SecondsUsed: 30, SecondsLeft: 3570, Result: &Outcome{Status: "scored", Metric: "accuracy", Direction: "higher", Score: &score, Success: true}}, nil
}

func (f *fakeEpisodes) Fork(_ context.Context, id string, step *int) (Started, error) {
	if err := f.record("fork " + id); err != nil {
		return Started{}, err
	}
	f.mu.Lock()
	f.steps = append(f.steps, step)
	f.mu.Unlock()
	st := started("fixture")
	st.EpisodeID, st.ParentRunID, st.ForkedAtStep = "fork-1", "run-1", step
	return st, nil
}

func TestEpisodeTools(t *testing.T) {
	eps := &fakeEpisodes{}
	srv := server.NewMCPServer("test", "0")
	RegisterEpisodeTools(srv, eps)
	defs := listed(t, srv)
	structured := func(t *testing.T, name string, res wireResult, v any) {
		t.Helper()
		if res.IsError {
			t.Fatalf("%s failed: %s", name, res.text())
		}
		validate(t, name, defs[name]["outputSchema"], res.StructuredContent)
		decode(t, res.StructuredContent, v)
	}

	res := call(t, srv, StartTask, map[string]any{"task": "fixture"})
	var st Started
	structured(t, StartTask, res, &st)
	if st.EpisodeID != "3q2+7w" || st.Budgets.StepsLeft != 50 || st.ParentRunID != "" || st.ForkedAtStep != nil {
		t.Errorf("started = %+v", st)
	}
	if !strings.Contains(st.Expiry, "15m0s") {
		t.Errorf("expiry = %q, want the idle timeout in it", st.Expiry)
	}
	text := res.text()
	for _, want := range []string{
		"episode_id: 3q2+7w", "as the episode_id argument of every tool call", "no MCP session",
		"Predict the largest number.", "accuracy, higher is better",
		"50 tool calls (50 left)", "1h0m0s of wall time (1h0m0s left)", "after 10m0s by default (at most 30m0s)",
		"no tool call for 15m0s expires", "sandbox is freed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("start_task text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Forked") {
		t.Errorf("a new episode is described as a fork:\n%s", text)
	}

	// The task may be left out.
	call(t, srv, StartTask, map[string]any{})

	var status Status
	structured(t, EpisodeStatus, call(t, srv, EpisodeStatus, map[string]any{}), &status)
	if status.Result == nil || *status.Result.Score != 0.5 {
		t.Errorf("status = %+v", status)
	}
	res = call(t, srv, EpisodeStatus, map[string]any{"episode_id": "3q2+7w"})
	if !strings.Contains(res.text(), "scored; 4 steps used, 46 left") || !strings.Contains(res.text(), "accuracy = 0.5") {
		t.Errorf("status text = %q", res.text())
	}

	var fork Started
	res = call(t, srv, ForkEpisode, map[string]any{"episode_id": "3q2+7w", "step": 0})
	structured(t, ForkEpisode, res, &fork)
	if fork.ForkedAtStep == nil || *fork.ForkedAtStep != 0 || fork.ParentRunID != "run-1" {
		t.Errorf("fork at step 0 = %+v", fork)
	}
	if !strings.Contains(res.text(), "Forked episode fork-1 from run run-1: its workspace is the parent's after step 0") {
		t.Errorf("fork text = %q", res.text())
	}
	call(t, srv, ForkEpisode, map[string]any{})
	res = call(t, srv, ForkEpisode, map[string]any{"step": -1})
	if !res.IsError || !strings.Contains(res.text(), "step must be 0 or more") {
		t.Errorf("fork at step -1 = %+v", res)
	}
	res = call(t, srv, ForkEpisode, map[string]any{"step": "3"})
	if !res.IsError || !strings.Contains(res.text(), `argument "step" must be an integer`) {
		t.Errorf("fork at step \"3\" = %+v", res)
	}

	eps.mu.Lock()
	calls, steps := eps.calls, eps.steps
	eps.mu.Unlock()
	want := []string{"start fixture", "start ", "status ", "status 3q2+7w", "fork 3q2+7w", "fork "}
	if strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Errorf("Episodes got %q, want %q", calls, want)
	}
	if len(steps) != 2 || steps[0] == nil || *steps[0] != 0 || steps[1] != nil {
		t.Errorf("fork steps = %v, want [0, nil]", steps)
	}
}

// TestEpisodeToolErrors: what the server refuses reaches the agent as a
// tool error with the server's words, never a protocol error.
func TestEpisodeToolErrors(t *testing.T) {
	eps := &fakeEpisodes{fail: errors.New(`unknown episode_id "zz": it may have expired; start_task starts a new one`)}
	srv := server.NewMCPServer("test", "0")
	RegisterEpisodeTools(srv, eps)
	for _, name := range []string{StartTask, EpisodeStatus, ForkEpisode} {
		res := call(t, srv, name, map[string]any{})
		if !res.IsError || !strings.Contains(res.text(), `unknown episode_id "zz"`) {
			t.Errorf("%s = %+v, want the server's refusal as a tool error", name, res)
		}
		if len(res.StructuredContent) > 0 && string(res.StructuredContent) != "null" {
			t.Errorf("%s: a refusal carries structured content %s", name, res.StructuredContent)
		}
	}
	res := call(t, srv, StartTask, map[string]any{"task_name": "fixture"})
	if !res.IsError || !strings.Contains(res.text(), `unknown argument "task_name"; this tool takes task`) {
		t.Errorf("start_task with task_name = %+v", res)
	}
}

func TestExpiry(t *testing.T) {
	for _, tc := range []struct {
		st   Started
		want string
	}{
		{Started{IdleTimeoutS: 90}, "no tool call for 1m30s expires"},
		{Started{}, "does not expire"},
		{Started{IdleTimeoutS: 90, Expiry: "The server's own words."}, "The server's own words."},
	} {
		if got := withExpiry(tc.st).Expiry; !strings.Contains(got, tc.want) {
			t.Errorf("withExpiry(%+v) = %q, want %q in it", tc.st, got, tc.want)
		}
	}
}
