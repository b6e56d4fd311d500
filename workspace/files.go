package workspace

import "context"

// Files is a workspace as the tools use it: every operation an agent's tool
// call performs on files. Paths are the agent's, relative to the workspace
// root; errors carry messages written for the agent.
//
// *Workspace implements Files for a directory on this host, which is where
// the local and docker sandboxes keep their workspaces. A sandbox whose
// files are not on this host (a Kubernetes pod) provides its own Files; the
// natural way is to run a *Workspace next to the files (mlab inside the pod,
// answering these calls over the pod's exec stream or a port) and forward
// each call to it, so that path checks, read-only files and undo history
// stay where the files are instead of being rebuilt over a network. Entry
// and ReadResult are JSON-ready for that. Such a backend must:
//   - keep the agent-readable error messages, and keep the kinds matchable
//     with errors.Is (ErrOutsideWorkspace, ErrReadOnly, fs.ErrNotExist), since
//     callers test for them;
//   - return ctx.Err() (or wrap it) when the call's context ends, and wrap
//     its own transport failures with context (fmt.Errorf("...: %w")), which
//     are then not the agent's fault;
//   - keep the limits of this package (MaxRead, MaxWrite, MaxInspectLines,
//     the history bounds), which the tool descriptions promise.
//
// Snapshots of the workspace for the run log are not part of Files: the
// episode takes them from the sandbox.
type Files interface {
	// List returns the entries of dir ("" is the root), sorted by name.
	List(ctx context.Context, dir string) ([]Entry, error)
	// Read returns at most limit bytes (MaxRead when limit <= 0) of a text
	// file from byte offset.
	Read(ctx context.Context, name string, offset, limit int64) (ReadResult, error)
	// Lines returns lines start..end (1-based, inclusive) of a text file,
	// numbered, and the file's line count.
	Lines(ctx context.Context, name string, start, end int) (text string, total int, err error)
	// Write creates or replaces a file; Undo restores what was there.
	Write(ctx context.Context, name, content string) error
	// Append adds content at the end of a file, creating it if missing.
	Append(ctx context.Context, name, content string) error
	// Copy copies the file src over dst.
	Copy(ctx context.Context, src, dst string) error
	// Edit replaces the one occurrence of old with new and returns a
	// unified diff of the change.
	Edit(ctx context.Context, name, old, new string) (diff string, err error)
	// ReplaceLines replaces lines start..end with text and returns a
	// unified diff; "" when nothing changed.
	ReplaceLines(ctx context.Context, name string, start, end int, text string) (diff string, err error)
	// Undo reverts the most recent change to name and returns a unified
	// diff of what it reverted.
	Undo(ctx context.Context, name string) (diff string, err error)
	// Close releases the workspace; later calls fail.
	Close() error
}
