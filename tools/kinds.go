package tools

import (
	"encoding/json"

	"github.com/mark3labs/mcp-go/mcp"
)

// Tool names the server needs to know.
const (
	FinalAnswer = "final_answer"
)

var fileTools = map[string]bool{
	"write_file": true, "append_file": true, "copy_file": true, "edit_script": true,
	"undo_edit_script": true, "execute_script": true, FinalAnswer: true,
}

var episodeTools = map[string]bool{
	"list_files": true, "read_file": true, "inspect_script_lines": true,
}

// OnEpisode reports whether a tool acts on an episode as one of its steps.
func OnEpisode(name string) bool { return fileTools[name] || episodeTools[name] }

// ChangesFiles reports whether a tool may change the workspace.
func ChangesFiles(name string) bool { return fileTools[name] }

// Submits reports whether a tool submits the episode.
func Submits(name string) bool { return name == FinalAnswer }

// EpisodeID is the episode_id argument of a call, "" if absent.
func EpisodeID(req mcp.CallToolRequest) string {
	if len(req.Params.RawArguments) > 0 {
		var a struct {
			EpisodeID string `json:"episode_id"`
		}
		_ = json.Unmarshal(req.Params.RawArguments, &a)
		return a.EpisodeID
	}
	if m, ok := req.Params.Arguments.(map[string]any); ok {
		id, _ := m["episode_id"].(string)
		return id
	}
	return ""
}
