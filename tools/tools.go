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

// Lookup finds the session a tool call acts on: the episode named by
// episodeID, or, when episodeID is "", the one episode the request is bound
// to (stdio, an MCP session of a 2025 revision that started one episode, a
// per-episode URL). Its error is shown to the agent as a tool error, so it
// should say what to do: a missing, unknown, expired or foreign handle.
type Lookup func(ctx context.Context, episodeID string) (*Session, error)

// EpisodeIDDescription is the description of every episode tool's
// episode_id argument.
const EpisodeIDDescription = "The episode to act on, as returned by start_task. May be omitted when this connection is bound to exactly one episode (stdio, an MCP session of a 2025 revision that started one episode, or a per-episode URL)."

// Handle is embedded in the arguments of every tool that acts on an
// episode, so that each accepts episode_id.
type Handle struct {
	EpisodeID string `json:"episode_id,omitempty" jsonschema:"The episode to act on, as returned by start_task. May be omitted when this connection is bound to exactly one episode (stdio, an MCP session of a 2025 revision that started one episode, or a per-episode URL)."`
}

// episode returns the handle's episode ID ("" when left out).
func (h Handle) episode() string { return h.EpisodeID }

// EpisodeID returns the episode_id argument of a tool call, or "" when it
// has none (or one that is not a string, which the tool's own argument
// check then refuses). It is cheap enough for a middleware that runs on
// every call: the decoded argument map is looked up when the request has
// one, as requests read off the wire do, and only otherwise are the raw
// arguments decoded.
func EpisodeID(req mcp.CallToolRequest) string {
	if m, ok := req.Params.Arguments.(map[string]any); ok {
		id, _ := m["episode_id"].(string)
		return id
	}
	raw := req.Params.RawArguments
	if len(raw) == 0 {
		if r, ok := req.Params.Arguments.(json.RawMessage); ok {
			raw = r
		}
	}
	var h struct {
		EpisodeID any `json:"episode_id"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &h) != nil {
		return ""
	}
	id, _ := h.EpisodeID.(string)
	return id
}

// agentError is a failure the agent caused and can fix: it becomes a tool
// result with isError set rather than a protocol error.
type agentError struct{ err error }

func (e agentError) Error() string { return e.err.Error() }
func (e agentError) Unwrap() error { return e.err }

// textOnly is the result type of tools that return only text: what they
// return is text already (a file's content), and a structured copy would
// double it.
type textOnly struct{}

// handler is the shape of every episode tool: typed arguments in, text and
// a typed result out (sent as structured content unless Out is textOnly);
// errors become isError results.
type handler[In, Out any] func(ctx context.Context, s *Session, req mcp.CallToolRequest, args In) (text string, out Out, err error)

// Register adds every episode tool to srv. The episode-management tools
// (start_task, episode_status, fork_episode) are added by
// RegisterEpisodeTools.
func Register(srv *server.MCPServer, lookup Lookup) {
	for _, t := range definitions(lookup) {
		srv.AddTool(t.Tool, t.Handler)
	}
}

// episodeArgs is what every episode tool's arguments provide, through the
// embedded Handle.
type episodeArgs interface{ episode() string }

// tool builds one episode tool from a typed handler: this is the single
// place where arguments are bound, the episode is looked up, and errors are
// sorted into the agent's channel (isError results) and the protocol's (Go
// errors).
func tool[In episodeArgs, Out any](name, description string, lookup Lookup, h handler[In, Out]) server.ServerTool {
	_, noStructure := any(*new(Out)).(textOnly)
	def := newTool[In, Out](name, description, !noStructure)
	spec := argSpecOf(reflect.TypeFor[In]())
	return server.ServerTool{Tool: def, Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var args In
		if err := spec.bind(req, &args); err != nil {
			return mcp.NewToolResultError(fmt.Sprintf("invalid arguments for %s: %v", name, err)), nil
		}
		s, err := lookup(ctx, args.episode())
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		text, out, err := h(ctx, s, req, args)
		return result(ctx, text, out, !noStructure, err)
	}}
}

// newTool is the definition of a tool: its description, its input schema
// from In, its output schema from Out when it returns structured content,
// and annotations from what the tool does (see classOf).
func newTool[In, Out any](name, description string, structured bool) mcp.Tool {
	opts := []mcp.ToolOption{
		mcp.WithDescription(description),
		mcp.WithInputSchema[In](),
		mcp.WithToolAnnotation(annotations(classOf(name).kind)),
	}
	if structured {
		opts = append(opts, mcp.WithOutputSchema[Out]())
	}
	return mcp.NewTool(name, opts...)
}

// result turns a handler's outcome into a tool result.
func result[Out any](ctx context.Context, text string, out Out, structured bool, err error) (*mcp.CallToolResult, error) {
	var ae agentError
	switch {
	case errors.As(err, &ae):
		res := mcp.NewToolResultError(text + ae.Error())
		if structured {
			res.StructuredContent = out
		}
		return res, nil
	case err != nil && ctx.Err() != nil:
		return nil, err
	case err != nil:
		// Workspace errors are about the agent's paths and content.
		return mcp.NewToolResultError(err.Error()), nil
	case structured:
		return mcp.NewToolResultStructured(out, text), nil
	default:
		return mcp.NewToolResultText(text), nil
	}
}

// Bind decodes a tool call's arguments into target, a pointer to a struct
// whose json names are the arguments (fields of embedded structs, such as
// Handle, included); fields without omitempty are required, as in the
// schema clients see. It names what is wrong: an unknown argument (a typo
// like "filename" must not be silently ignored), a missing one, or one of
// the wrong type. It stands in for validating against the JSON Schema,
// which costs several times more on every call.
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
	index []int // for reflect.Value.FieldByIndex
}

func argSpecOf(t reflect.Type) argSpec {
	var s argSpec
	s.add(t, nil)
	return s
}

// add adds the arguments of struct type t, whose fields are reached through
// index, descending into embedded structs without a json name as
// encoding/json does. Their fields (episode_id) come after the tool's own,
// so that a list of the arguments starts with what is particular to it.
func (s *argSpec) add(t reflect.Type, index []int) {
	var embedded [][]int
	for i := range t.NumField() {
		f := t.Field(i)
		at := append(slices.Clip(index), i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			embedded = append(embedded, at)
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		s.names = append(s.names, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			s.required = append(s.required, requiredField{name, at})
		}
	}
	for _, at := range embedded {
		s.add(t.FieldByIndex(at[len(index):]).Type, at)
	}
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
			// encoding/json names a field of an embedded struct by its
			// Go path ("Handle.episode_id"); the agent knows the argument.
			field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
			return fmt.Errorf("argument %q must be %s, not a JSON %s", field, kindName(te.Type), te.Value)
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
		if v.FieldByIndex(f.index).IsZero() {
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
