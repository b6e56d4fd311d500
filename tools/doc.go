// Package tools owns the agent's tools: their MCP definitions (names,
// argument schemas from typed structs, descriptions, annotations), the
// traversal-safe workspace they act on, edit history with undo, diffs, and
// the running of scripts in the session's sandbox with capped output and
// progress notifications. Episode state (budgets, run log, scoring) belongs to
// the caller and reaches a tool through Session.
package tools
