package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/workspace"
)

// Session is the episode a tool call acts on.
type Session struct {
	// Workspace holds the episode's files: a *workspace.Workspace on this
	// host, or a backend that reaches them elsewhere.
	Workspace workspace.Files
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
	spec := argSpecOf(reflect.TypeFor[T]())
	return server.ServerTool{Tool: def, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var args T
		if err := spec.bind(req, &args); err != nil {
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

// Bind decodes a tool call's arguments into target, a pointer to a struct
// whose json names are the arguments; fields without omitempty are
// required, as in the schema clients see. It names what is wrong: an
// unknown argument (a typo like "filename" must not be silently ignored), a
// missing one, or one of the wrong type. It stands in for validating against
// the JSON Schema, which costs several times more on every call.
func Bind(req mcp.CallToolRequest, target any) error {
	return argSpecOf(reflect.TypeOf(target).Elem()).bind(req, target)
}

// argSpec is what an argument struct accepts.
type argSpec struct {
	names    []string
	required []requiredField // the fields without omitempty
}

type requiredField struct {
	name  string
	index int
}

func argSpecOf(t reflect.Type) argSpec {
	var s argSpec
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		s.names = append(s.names, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			s.required = append(s.required, requiredField{name, i})
		}
	}
	return s
}

func (s argSpec) bind(req mcp.CallToolRequest, target any) error {
	raw := req.Params.RawArguments
	if len(raw) == 0 {
		b, err := json.Marshal(req.Params.Arguments)
		if err != nil {
			return err
		}
		raw = b
	}
	// The common case, well-formed arguments with every required one set,
	// costs one decode; the rest is for saying exactly what is wrong.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(target) == nil && s.requiredSet(target) {
		return nil
	}
	var given map[string]json.RawMessage
	if err := json.Unmarshal(raw, &given); err != nil {
		return errors.New("arguments must be a JSON object")
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if !slices.Contains(s.names, name) {
			return fmt.Errorf("unknown argument %q; this tool takes %s", name, strings.Join(s.names, ", "))
		}
	}
	for _, f := range s.required {
		if v, ok := given[f.name]; !ok || string(v) == "null" {
			return fmt.Errorf("missing required argument %q", f.name)
		}
	}
	if err := json.Unmarshal(raw, target); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("argument %q must be %s, not a JSON %s", te.Field, kindName(te.Type), te.Value)
		}
		return err
	}
	return nil
}

// requiredSet reports whether every required field of the decoded target
// is non-zero; a zero one may have been left out.
func (s argSpec) requiredSet(target any) bool {
	v := reflect.ValueOf(target).Elem()
	for _, f := range s.required {
		if v.Field(f.index).IsZero() {
			return false
		}
	}
	return true
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
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
