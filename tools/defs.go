package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/workspace"
)

// Argument types: their json names and jsonschema descriptions are the
// schema clients see. Fields without omitempty are required. Each embeds
// Handle, so every episode tool accepts episode_id.
type (
	listFilesArgs struct {
		Handle
		DirPath string `json:"dir_path,omitempty" jsonschema:"Directory to list, relative to the workspace root. Omit or use . for the root."`
	}
	readFileArgs struct {
		Handle
		FileName string `json:"file_name" jsonschema:"File to read, relative to the workspace root."`
		Offset   int64  `json:"offset,omitempty" jsonschema:"Byte offset to start reading at (default 0). Use the next_offset of a truncated read to continue."`
		Limit    int64  `json:"limit,omitempty" jsonschema:"Maximum number of bytes to return (default and maximum 65536)."`
	}
	writeFileArgs struct {
		Handle
		FileName string `json:"file_name" jsonschema:"File to create or overwrite, relative to the workspace root. Missing parent directories are created."`
		Content  string `json:"content" jsonschema:"The complete new content of the file."`
	}
	appendFileArgs struct {
		Handle
		FileName string `json:"file_name" jsonschema:"File to append to (created if missing), relative to the workspace root."`
		Content  string `json:"content" jsonschema:"Text to add at the end of the file. Include a leading newline if the file does not end with one."`
	}
	copyFileArgs struct {
		Handle
		Source      string `json:"source" jsonschema:"File to copy, relative to the workspace root."`
		Destination string `json:"destination" jsonschema:"Where to write the copy, relative to the workspace root. Overwritten if it exists."`
	}
	inspectArgs struct {
		Handle
		ScriptName string `json:"script_name" jsonschema:"File to show, relative to the workspace root."`
		Start      int    `json:"start_line_number" jsonschema:"First line to show (1-based)."`
		End        int    `json:"end_line_number" jsonschema:"Last line to show (inclusive); at most 100 lines per call."`
	}
	editArgs struct {
		Handle
		ScriptName string `json:"script_name" jsonschema:"File to edit, relative to the workspace root."`
		OldText    string `json:"old_text,omitempty" jsonschema:"Exact text to replace, including indentation; it must occur exactly once in the file. Omit to replace a line range instead."`
		NewText    string `json:"new_text" jsonschema:"Replacement text (may be empty to delete)."`
		Start      int    `json:"start_line_number,omitempty" jsonschema:"Line-range mode: first line to replace (1-based). Used only when old_text is omitted."`
		End        int    `json:"end_line_number,omitempty" jsonschema:"Line-range mode: last line to replace (inclusive). Use start_line_number - 1 to insert before start_line_number without replacing."`
	}
	undoArgs struct {
		Handle
		ScriptName string `json:"script_name" jsonschema:"File whose most recent change (by write_file, append_file, copy_file, edit_script) to revert."`
	}
	finalAnswerArgs struct {
		Handle
		FinalAnswer string `json:"final_answer" jsonschema:"A short summary of what you changed and the result you expect. The workspace as it is now is what gets scored."`
	}
)

// Result types: the structured content of the tools that return it, and
// the output schemas clients see. read_file and inspect_script_lines return
// text only: their result is a file's text, which a structured copy would
// send twice.
type (
	// Listing is list_files' result.
	Listing struct {
		DirPath string            `json:"dir_path"`
		Entries []workspace.Entry `json:"entries"`
	}
	// Written is the result of write_file and append_file: Bytes is how much
	// was written or appended.
	Written struct {
		FileName string `json:"file_name"`
		Bytes    int    `json:"bytes"`
	}
	// Copied is copy_file's result.
	Copied struct {
		Source      string `json:"source"`
		Destination string `json:"destination"`
	}
	// Edited is the result of edit_script and undo_edit_script: Diff is a
	// unified diff of the change (cut past 64 KiB), "" when nothing changed.
	Edited struct {
		FileName string `json:"file_name"`
		Changed  bool   `json:"changed"`
		Diff     string `json:"diff"`
	}
)

func definitions(lookup Lookup) []server.ServerTool {
	return []server.ServerTool{
		tool(ListFiles, "List the files and directories in a workspace directory, with their type and size in bytes. "+
			"The workspace holds the task's starter files; hidden evaluation files are not part of it.",
			lookup, listFiles),
		tool(ReadFile, "Read a text file from the workspace. Returns at most 64 KiB per call; when the file is longer the "+
			"result says so and gives the offset to continue from. For source code, inspect_script_lines shows numbered lines.",
			lookup, readFile),
		tool(WriteFile, "Create a file or replace its whole content. The previous version is kept, so undo_edit_script can restore it. "+
			"Files the task marks read-only (such as provided data) cannot be written.",
			lookup, writeFile),
		tool(AppendFile, "Append text to the end of a file, creating it if it does not exist. Undo with undo_edit_script.",
			lookup, appendFile),
		tool(CopyFile, "Copy a file within the workspace, overwriting the destination. Undo with undo_edit_script on the destination.",
			lookup, copyFile),
		tool(InspectScriptLines, "Show lines start_line_number to end_line_number of a file, numbered, at most 100 lines per call, "+
			"plus the file's total line count. Use it before edit_script to see the exact text and line numbers.",
			lookup, inspectLines),
		tool(EditScript, "Edit a file in place and get back a unified diff of the change. Either give old_text (exact text that "+
			"occurs once in the file) and new_text, or omit old_text and give start_line_number, end_line_number and new_text "+
			"to replace that line range. Undo with undo_edit_script.",
			lookup, editScript),
		tool(UndoEditScript, "Revert the most recent change to a file made by write_file, append_file, copy_file or edit_script; "+
			"call it again to go further back. A file that did not exist before is removed. Returns a diff of what was reverted.",
			lookup, undoEdit),
		tool(ExecuteScript, "Run a Python script in the workspace (python -u SCRIPT ARGS, working directory = workspace root) "+
			"and wait for it. Returns the exit code, the run time, and stdout/stderr (long output keeps its beginning and end). "+
			"The script is killed at the timeout, and the output produced so far is returned. There is no network access. "+
			"Progress notifications are sent while it runs if you pass a progress token.",
			lookup, executeScript),
		tool(FinalAnswer, "Submit the workspace as it is now and end the episode. The hidden evaluation scores it against the "+
			"task's baseline and returns the score. No tool can be used after this, so call it only when you are done.",
			lookup, finalAnswer),
	}
}

func listFiles(ctx context.Context, s *Session, _ mcp.CallToolRequest, a listFilesArgs) (string, Listing, error) {
	entries, err := s.Workspace.List(ctx, a.DirPath)
	if err != nil {
		return "", Listing{}, err
	}
	var b strings.Builder
	dir := a.DirPath
	if dir == "" {
		dir = "."
	}
	fmt.Fprintf(&b, "%s: %d entries\n", dir, len(entries))
	for _, e := range entries {
		switch e.Type {
		case "dir":
			fmt.Fprintf(&b, "%s/\n", e.Name)
		case "file":
			fmt.Fprintf(&b, "%s (%d bytes)\n", e.Name, e.Size)
		default:
			fmt.Fprintf(&b, "%s (%s)\n", e.Name, e.Type)
		}
	}
	return b.String(), Listing{dir, entries}, nil
}

func readFile(ctx context.Context, s *Session, _ mcp.CallToolRequest, a readFileArgs) (string, textOnly, error) {
	if a.Offset < 0 || a.Limit < 0 {
		return "", textOnly{}, errors.New("offset and limit must not be negative")
	}
	r, err := s.Workspace.Read(ctx, a.FileName, a.Offset, a.Limit)
	if err != nil {
		return "", textOnly{}, err
	}
	return r.Text(), textOnly{}, nil
}

func writeFile(ctx context.Context, s *Session, _ mcp.CallToolRequest, a writeFileArgs) (string, Written, error) {
	if err := s.Workspace.Write(ctx, a.FileName, a.Content); err != nil {
		return "", Written{}, err
	}
	return fmt.Sprintf("wrote %s (%d bytes)", a.FileName, len(a.Content)), Written{a.FileName, len(a.Content)}, nil
}

func appendFile(ctx context.Context, s *Session, _ mcp.CallToolRequest, a appendFileArgs) (string, Written, error) {
	if err := s.Workspace.Append(ctx, a.FileName, a.Content); err != nil {
		return "", Written{}, err
	}
	return fmt.Sprintf("appended %d bytes to %s", len(a.Content), a.FileName), Written{a.FileName, len(a.Content)}, nil
}

func copyFile(ctx context.Context, s *Session, _ mcp.CallToolRequest, a copyFileArgs) (string, Copied, error) {
	if err := s.Workspace.Copy(ctx, a.Source, a.Destination); err != nil {
		return "", Copied{}, err
	}
	return fmt.Sprintf("copied %s to %s", a.Source, a.Destination), Copied{a.Source, a.Destination}, nil
}

func inspectLines(ctx context.Context, s *Session, _ mcp.CallToolRequest, a inspectArgs) (string, textOnly, error) {
	text, total, err := s.Workspace.Lines(ctx, a.ScriptName, a.Start, a.End)
	if err != nil {
		return "", textOnly{}, err
	}
	return fmt.Sprintf("%s has %d lines; showing %d-%d:\n%s", a.ScriptName, total, a.Start, min(a.End, total), text), textOnly{}, nil
}

func editScript(ctx context.Context, s *Session, _ mcp.CallToolRequest, a editArgs) (string, Edited, error) {
	var diff string
	var err error
	switch {
	case a.OldText != "" && (a.Start != 0 || a.End != 0):
		return "", Edited{}, errors.New("give either old_text or start_line_number/end_line_number, not both")
	case a.OldText != "":
		diff, err = s.Workspace.Edit(ctx, a.ScriptName, a.OldText, a.NewText)
	case a.Start > 0:
		diff, err = s.Workspace.ReplaceLines(ctx, a.ScriptName, a.Start, a.End, a.NewText)
	default:
		return "", Edited{}, errors.New("give old_text (the exact text to replace) or start_line_number and end_line_number")
	}
	if err != nil {
		return "", Edited{}, err
	}
	out := Edited{FileName: a.ScriptName, Changed: diff != "", Diff: diff}
	if diff == "" {
		return fmt.Sprintf("%s unchanged: new_text is identical to the text it replaces", a.ScriptName), out, nil
	}
	return fmt.Sprintf("edited %s:\n%s", a.ScriptName, diff), out, nil
}

func undoEdit(ctx context.Context, s *Session, _ mcp.CallToolRequest, a undoArgs) (string, Edited, error) {
	diff, err := s.Workspace.Undo(ctx, a.ScriptName)
	if err != nil {
		return "", Edited{}, err
	}
	return fmt.Sprintf("restored the previous version of %s:\n%s", a.ScriptName, diff), Edited{a.ScriptName, diff != "", diff}, nil
}

func finalAnswer(ctx context.Context, s *Session, _ mcp.CallToolRequest, a finalAnswerArgs) (string, Submission, error) {
	r, err := s.Submit(ctx, a.FinalAnswer)
	if err != nil {
		return "", Submission{}, err
	}
	var b strings.Builder
	switch {
	case r.Score != nil:
		fmt.Fprintf(&b, "submission scored: %s = %.6g", r.Metric, *r.Score)
		if r.Baseline != nil {
			fmt.Fprintf(&b, " (baseline %.6g, %s is better)", *r.Baseline, r.Direction)
		}
		if r.Improvement != nil {
			fmt.Fprintf(&b, "; improvement %+.2f%%", 100**r.Improvement)
		}
		fmt.Fprintf(&b, "; success: %v", r.Success)
	default:
		fmt.Fprintf(&b, "submission invalid: %s", r.Error)
	}
	b.WriteString(". The episode is over.")
	return b.String(), SubmissionOf(r), nil
}
