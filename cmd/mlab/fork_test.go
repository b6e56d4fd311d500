package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mlab/mlab/runlog"
)

// structured decodes a tool result's structured content into v.
func structured(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	raw, err := json.Marshal(res.StructuredContent)
	if err == nil {
		err = json.Unmarshal(raw, v)
	}
	if err != nil {
		t.Fatalf("structured content %s: %v", raw, err)
	}
}

func (h *harness) callRes(t *testing.T, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("%s(%v): %v %+v", name, args, err, res)
	}
	return res
}

// TestForkEpisode: over stdio, fork_episode gives a second episode whose
// workspace is the first one's at the step asked for; after it the
// session holds two, so calls name theirs, and each is scored on its own.
func TestForkEpisode(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture", "--max-steps", "20")
		h.mustOK(t, "write_file", map[string]any{"file_name": "score.txt", "content": "0.6"}, "wrote")
		h.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "training") // score.txt = 0.5
		var parent struct {
			EpisodeID string `json:"episode_id"`
		}
		structured(t, h.callRes(t, "episode_status", nil), &parent)

		var child struct {
			EpisodeID    string `json:"episode_id"`
			ParentRunID  string `json:"parent_run_id"`
			ForkedAtStep *int   `json:"forked_at_step"`
			Budgets      struct {
				MaxSteps int `json:"max_steps"`
			} `json:"budgets"`
		}
		structured(t, h.callRes(t, "fork_episode", map[string]any{"step": 1}), &child)
		if child.EpisodeID == "" || child.EpisodeID == parent.EpisodeID || child.ForkedAtStep == nil || *child.ForkedAtStep != 1 || child.Budgets.MaxSteps != 18 {
			t.Fatalf("fork_episode gave %+v, want a new episode at step 1 with the parent's 18 steps left", child)
		}
		// Two episodes in the session: a call must say which.
		h.mustFail(t, "read_file", map[string]any{"file_name": "score.txt"}, "holds 2 episodes")
		h.mustOK(t, "read_file", map[string]any{"episode_id": child.EpisodeID, "file_name": "score.txt"}, "0.6")
		h.mustOK(t, "read_file", map[string]any{"episode_id": parent.EpisodeID, "file_name": "score.txt"}, "0.5")
		// Read-only task files stay read-only in the fork, for scripts too.
		h.mustOK(t, "write_file", map[string]any{"episode_id": child.EpisodeID, "file_name": "hack.py",
			"content": "open('data.csv', 'w').write('x')\n"}, "wrote")
		h.mustFail(t, "execute_script", map[string]any{"episode_id": child.EpisodeID, "script_name": "hack.py"}, "exit code 1")
		h.mustOK(t, "edit_script", map[string]any{"episode_id": child.EpisodeID, "script_name": "score.txt", "old_text": "0.6", "new_text": "0.8"}, "+0.8")

		h.mustOK(t, "final_answer", map[string]any{"episode_id": child.EpisodeID, "final_answer": "fork"}, "score = 0.8")
		h.mustOK(t, "final_answer", map[string]any{"episode_id": parent.EpisodeID, "final_answer": "parent"}, "score = 0.5")
		results, _ := filepath.Glob(filepath.Join(h.runsDir, "*", "result.json"))
		var origins int
		for _, p := range results {
			r, err := runlog.ReadResult(filepath.Dir(p))
			if err != nil || r.Status != runlog.StatusScored {
				t.Errorf("%s: %+v (%v), want scored", p, r, err)
			}
			if r.Origin != nil && r.Origin.Kind == runlog.OriginFork && r.Origin.Run == child.ParentRunID && r.Origin.Step == 1 {
				origins++
			}
		}
		if len(results) != 2 || origins != 1 {
			t.Errorf("%d results, %d naming the fork's parent and step, want 2 and 1", len(results), origins)
		}
	})
}

// TestResumeKilledRun: a server killed mid-episode leaves an aborted run;
// mlab resume continues it from its last snapshot with the budgets left.
func TestResumeKilledRun(t *testing.T) {
	h := start(t, "local", "fixture", "--max-steps", "10")
	h.mustOK(t, "write_file", map[string]any{"file_name": "score.txt", "content": "0.77"}, "wrote")
	h.mustOK(t, "list_files", map[string]any{}, "score.txt")
	dir := h.runDir(t)
	h.cmd.Process.Kill()
	select {
	case <-h.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the killed server did not exit")
	}

	r := &harness{runsDir: h.runsDir, tasksDir: h.tasksDir, progress: make(chan string, 100)}
	r.launch(t, []string{"resume", dir, "--tasks-dir", h.tasksDir, "--runs-dir", h.runsDir, "--cache-dir", t.TempDir(),
		"--log-level", logLevel(), "--backend", "local", "--max-steps", "10"})
	r.mustOK(t, "read_file", map[string]any{"file_name": "score.txt"}, "0.77")
	var st struct {
		StepsUsed int `json:"steps_used"`
		StepsLeft int `json:"steps_left"`
	}
	structured(t, r.callRes(t, "episode_status", nil), &st)
	if st.StepsUsed != 1 || st.StepsLeft != 7 {
		t.Errorf("resumed status %+v, want 1 step used of the 8 the killed run left", st)
	}
	r.mustOK(t, "final_answer", map[string]any{"final_answer": "resumed"}, "score = 0.77")
	old, err := runlog.ReadResult(dir)
	if err != nil || old.Status != runlog.StatusAborted {
		t.Errorf("the killed run: %+v (%v), want aborted", old, err)
	}
	results, _ := filepath.Glob(filepath.Join(h.runsDir, "*", "result.json"))
	var resumed int
	for _, p := range results {
		if res, err := runlog.ReadResult(filepath.Dir(p)); err == nil && res.Origin != nil && res.Origin.Kind == runlog.OriginResume &&
			res.Origin.Run == old.RunID && res.Status == runlog.StatusScored {
			resumed++
		}
	}
	if resumed != 1 {
		t.Errorf("%d scored runs resume %s, want 1", resumed, old.RunID)
	}
	// A run that was not aborted cannot be resumed.
	for _, p := range results {
		if res, _ := runlog.ReadResult(filepath.Dir(p)); res.Status == runlog.StatusScored {
			out := mlab(t, true, "resume", filepath.Dir(p), "--runs-dir", h.runsDir, "--tasks-dir", h.tasksDir)
			wantLines(t, out, "only an aborted run can be resumed")
			break
		}
	}
}

// TestEpisodeCommand: an orchestrator creates an episode with `mlab
// episode create` and hands its URL to an agent, a 2026-07-28 client that
// then needs no handle; status and close work on it, with the token only.
func TestEpisodeCommand(t *testing.T) {
	const token = "episode-cmd-token-0123456789"
	s := startHTTP(t, "local", "http", "", "--token", token)
	out := mlab(t, false, "episode", "create", "--server", s.base, "--token", token, "--task", "fixture")
	var id, url string
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch strings.TrimSpace(k) {
		case "episode_id":
			id = strings.TrimSpace(v)
		case "mcp_url":
			url = strings.TrimSpace(v)
		}
	}
	if len(id) != 32 || url != s.base+"/episodes/"+id+"/mcp" {
		t.Fatalf("mlab episode create printed:\n%s", out)
	}
	h, err := s.connectAt(t, strings.TrimPrefix(url, s.base), token, "")
	if err != nil {
		t.Fatal(err)
	}
	h.mustOK(t, "write_file", map[string]any{"file_name": "score.txt", "content": "0.9"}, "wrote")
	wantLines(t, mlab(t, false, "episode", "status", id, "--server", s.base, "--token", token), `"status": "running"`, `"steps_used": 1`)
	wantLines(t, mlab(t, true, "episode", "status", id, "--server", s.base, "--token", "another-token-0123456789"), "401")
	wantLines(t, mlab(t, false, "episode", "close", id, "--server", s.base, "--token", token), `"status": "aborted"`)
	h.mustFail(t, "list_files", map[string]any{}, "closed through the admin API")
	wantLines(t, mlab(t, true, "episode", "create", "--server", s.base, "--token", token, "--task", "nope"), "404", "nope")
}
