package tools

// Tool names, as clients call them.
const (
	ListFiles          = "list_files"
	ReadFile           = "read_file"
	WriteFile          = "write_file"
	AppendFile         = "append_file"
	CopyFile           = "copy_file"
	InspectScriptLines = "inspect_script_lines"
	EditScript         = "edit_script"
	UndoEditScript     = "undo_edit_script"
	ExecuteScript      = "execute_script"
	FinalAnswer        = "final_answer"

	// The episode-management tools (RegisterEpisodeTools).
	StartTask     = "start_task"
	EpisodeStatus = "episode_status"
	ForkEpisode   = "fork_episode"
)

// Kinds of tool, as MCP annotations describe them to clients.
const (
	readOnly = iota
	additive
	destructive
)

// class is what the server and clients need to know about one tool. It is
// the one place that says it: the annotations and ChangesFiles, Submits and
// CountsAsStep all come from here.
type class struct {
	known   bool
	kind    int  // readOnly, additive or destructive
	changes bool // may change the workspace
	step    bool // an episode step: budgeted, numbered, traced
	submits bool // ends the episode with a submission
}

func classOf(name string) class {
	switch name {
	case ListFiles, ReadFile, InspectScriptLines:
		return class{known: true, kind: readOnly, step: true}
	case AppendFile:
		return class{known: true, kind: additive, changes: true, step: true}
	case WriteFile, CopyFile, EditScript, UndoEditScript, ExecuteScript:
		return class{known: true, kind: destructive, changes: true, step: true}
	case FinalAnswer:
		// It changes nothing itself; the episode snapshots what it scores.
		return class{known: true, kind: destructive, step: true, submits: true}
	case EpisodeStatus:
		return class{known: true, kind: readOnly}
	case StartTask, ForkEpisode:
		// They create a new episode and change no existing one.
		return class{known: true, kind: additive}
	}
	return class{kind: destructive}
}

// ChangesFiles reports whether the tool may change the episode's workspace,
// so that a snapshot is needed after it. final_answer is not one: the
// episode takes its final snapshot itself.
func ChangesFiles(name string) bool { return classOf(name).changes }

// Submits reports whether the tool ends the episode with a submission. It
// counts as a step, but is admitted after the step and time budgets are
// spent, so that work can always be submitted.
func Submits(name string) bool { return classOf(name).submits }

// CountsAsStep reports whether a call of the tool is an episode step:
// it needs an episode, is numbered, counts against the step budget (unless
// it Submits) and is recorded in the trace. The episode-management tools
// (start_task, episode_status, fork_episode) are not steps.
func CountsAsStep(name string) bool { return classOf(name).step }

// Known reports whether name is one of the tools this package defines.
func Known(name string) bool { return classOf(name).known }
