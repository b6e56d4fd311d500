// Package tools owns the MCP definitions of the agent's tools: their names,
// typed argument and result structs (from which the input and output schemas
// clients see are generated), descriptions and annotations, and what the
// server needs to know about each (whether it changes files, submits, counts
// as a step). The file operations themselves belong to package workspace;
// scripts run in the session's sandbox with capped output and progress
// notifications. Episode state (budgets, run log, scoring) belongs to the
// caller and reaches a tool through Session.
package tools
