// Package workspace owns the file operations on an episode's workspace:
// path safety (no path the agent gives reaches outside it), read-only files
// (asked of a Matcher the task parses once), reads, writes, edits, unified
// diffs and undo. It has no MCP import: the tools package turns these
// operations into MCP tools, and anything else (episodes, reports, tests)
// may use them directly.
//
// Files is the set of operations the tools use. *Workspace implements it
// for a directory on this host, as the local and docker sandboxes have. A
// sandbox whose files are elsewhere (a Kubernetes pod) provides Files
// itself, best by running a *Workspace next to the files and forwarding
// each call to it; the Files documentation says what such a backend must
// keep.
package workspace
