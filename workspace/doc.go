// Package workspace owns the file operations on an episode's workspace:
// path safety (no path the agent gives reaches outside it), read-only files,
// reads, writes, edits, unified diffs and undo. It has no MCP import: the
// tools package turns these operations into MCP tools, and anything else
// (reports, re-scoring, tests) may use them directly.
package workspace
