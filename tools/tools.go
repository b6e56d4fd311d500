package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
)

// Session is the episode a tool call acts on.
type Session struct {
	Workspace *Workspace
	Sandbox   sandbox.Sandbox
	// Python runs scripts inside the sandbox.
	Python string
	// ExecTimeout is the default per-call timeout; MaxExecTimeout the largest
	// an agent may ask for.
	ExecTimeout, MaxExecTimeout time.Duration
	// MemoryBytes is the sandbox memory limit, named in OOM reports.
	MemoryBytes int64
	// ProgressEvery is the interval of progress notifications during a
	// script run; 0 means 5 s.
	ProgressEvery time.Duration
	// Output opens the run-log file that receives the full output of one
	// script run and returns its run-relative path.
	Output func() (w io.WriteCloser, path string, err error)
	// Submit ends the episode and scores the workspace.
	Submit func(ctx context.Context, answer string) (runlog.Result, error)
}

// Lookup finds (or starts) the session of the current MCP request.
type Lookup func(ctx context.Context) (*Session, error)

// agentError is a failure the agent caused and can fix: it becomes a tool
// result with isError set rather than a protocol error.
type agentError struct{ err error }

func (e agentError) Error() string { return e.err.Error() }
func (e agentError) Unwrap() error { return e.err }

// handler is the shape of every tool: typed arguments in, text and optional
// structured content out; errors become isError results.
type handler[T any] func(ctx context.Context, s *Session, req mcp.CallToolRequest, args T) (text string, structured any, err error)

// Register adds every tool to srv.
func Register(srv *server.MCPServer, lookup Lookup) {
	for _, t := range definitions(lookup) {
		srv.AddTool(t.Tool, t.Handler)
	}
}

// tool builds one server.ServerTool from a typed handler: this is the single
// place where arguments are bound and errors are sorted into the agent's
// channel (isError results) and the protocol's (Go errors).
func tool[T any](name, description string, kind int, lookup Lookup, h handler[T]) server.ServerTool {
	def := mcp.NewTool(name,
		mcp.WithDescription(description),
		mcp.WithInputSchema[T](),
		mcp.WithToolAnnotation(annotations(kind)),
	)
	return server.ServerTool{Tool: def, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var args T
		if err := Bind(req, &args); err != nil {
			return mcp.NewToolResultError(fmt.Sprintf("invalid arguments for %s: %v", name, err)), nil
		}
		s, err := lookup(ctx)
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		text, structured, err := h(ctx, s, req, args)
		var ae agentError
		switch {
		case errors.As(err, &ae):
			res := mcp.NewToolResultError(text + ae.Error())
			res.StructuredContent = structured
			return res, nil
		case err != nil && ctx.Err() != nil:
			return nil, err
		case err != nil:
			// Workspace errors are about the agent's paths and content.
			return mcp.NewToolResultError(err.Error()), nil
		case structured != nil:
			return mcp.NewToolResultStructured(structured, text), nil
		default:
			return mcp.NewToolResultText(text), nil
		}
	}}
}

// Bind decodes the arguments, refusing unknown names so that a typo
// like "filename" is reported instead of silently ignored.
func Bind(req mcp.CallToolRequest, target any) error {
	raw := req.Params.RawArguments
	if len(raw) == 0 {
		b, err := json.Marshal(req.Params.Arguments)
		if err != nil {
			return err
		}
		raw = b
	}
	if string(raw) == "null" {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(target)
}

// Kinds of tool, as MCP annotations describe them to clients.
const (
	readOnly = iota
	additive
	destructive
)

func annotations(kind int) mcp.ToolAnnotation {
	b := func(v bool) *bool { return &v }
	return mcp.ToolAnnotation{
		ReadOnlyHint:    b(kind == readOnly),
		DestructiveHint: b(kind == destructive),
		IdempotentHint:  b(kind == readOnly),
		// Everything happens inside the sandbox, never in the outside world.
		OpenWorldHint: b(false),
	}
}
