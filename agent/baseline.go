// Package agent holds agents that solve mlab tasks through MCP, as any client
// would: they see only the tools, never the server's internals.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mlab/mlab/runlog"
)

// Baseline is MLAgentBench's trivial policy: run the starter train.py
// unchanged and submit. Its score is the task's baseline, measured through
// the same path every agent takes.
func Baseline(ctx context.Context, cs *mcp.ClientSession, progress io.Writer) (runlog.Result, error) {
	if _, err := call(ctx, cs, "list_files", map[string]any{}); err != nil {
		return runlog.Result{}, err
	}
	params := &mcp.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": "train.py"}}
	params.SetProgressToken("baseline-train")
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		return runlog.Result{}, fmt.Errorf("call execute_script: %w", err)
	}
	fmt.Fprintf(progress, "train.py:\n%s\n", text(res))
	if res.IsError {
		return runlog.Result{}, fmt.Errorf("train.py failed: %s", firstLine(text(res)))
	}
	res, err = call(ctx, cs, "final_answer", map[string]any{"final_answer": "Ran the provided train.py unchanged (baseline policy)."})
	if err != nil {
		return runlog.Result{}, err
	}
	var r runlog.Result
	raw, err := json.Marshal(res.StructuredContent)
	if err == nil {
		err = json.Unmarshal(raw, &r)
	}
	if err != nil {
		return r, fmt.Errorf("read final_answer result: %w", err)
	}
	return r, nil
}

func call(ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any) (*mcp.CallToolResult, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", name, err)
	}
	if res.IsError {
		return nil, fmt.Errorf("%s failed: %s", name, text(res))
	}
	return res, nil
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
