package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
	"github.com/mlab/mlab/workspace"
)

// fakeSandbox runs nothing: a script named fail.py exits 1, any other
// prints one line.
type fakeSandbox struct{ dir string }

func (f fakeSandbox) Workspace() string { return f.dir }
func (f fakeSandbox) Close() error      { return nil }
func (f fakeSandbox) Exec(_ context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	if slices.Contains(req.Args, "fail.py") {
		io.WriteString(req.Stderr, "Traceback: boom\n")
		return sandbox.ExecResult{ExitCode: 1, Stderr: "Traceback: boom\n", StderrBytes: 16, Duration: time.Second}, nil
	}
	io.WriteString(req.Stdout, "accuracy 0.9\n")
	return sandbox.ExecResult{Stdout: "accuracy 0.9\n", StdoutBytes: 13, Duration: 1500 * time.Millisecond}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// rig is a server with the episode tools on one session, whose lookup
// records the episode IDs it is asked for and knows only "ep-1" (and "").
type rig struct {
	srv *server.MCPServer
	dir string

	mu  sync.Mutex
	ids []string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"train.py": "print(1)\n", "fail.py": "raise SystemExit(1)\n", "data.csv": "a,b\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := tasks.NewReadOnly("data.csv")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := workspace.Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	score, baseline, improvement := 0.93, 0.9, 0.0333
	sess := &Session{
		Workspace: ws, Sandbox: fakeSandbox{dir}, Python: "python3",
		ExecTimeout: time.Minute, MaxExecTimeout: 10 * time.Minute, MemoryBytes: 1 << 30,
		Output: func() (io.WriteCloser, string, error) { return nopCloser{io.Discard}, "outputs/exec-0001.log", nil },
		Submit: func(context.Context, string) (runlog.Result, error) {
			return runlog.Result{RunID: "run-1", Task: "fixture", Status: runlog.StatusScored, Metric: "accuracy", Direction: "higher",
				Score: &score, Baseline: &baseline, Improvement: &improvement, Success: true, Steps: 9, Seconds: 12.5,
				BaselineInfo: &runlog.BaselineInfo{Source: runlog.BaselineFromTask}, ServerLock: "lock:secret"}, nil
		},
	}
	r := &rig{srv: server.NewMCPServer("test", "0"), dir: dir}
	Register(r.srv, func(_ context.Context, id string) (*Session, error) {
		r.mu.Lock()
		r.ids = append(r.ids, id)
		r.mu.Unlock()
		if id != "" && id != "ep-1" {
			return nil, fmt.Errorf("unknown episode_id %q: use the episode_id start_task returned", id)
		}
		return sess, nil
	})
	return r
}

// wireResult is a tools/call result as a client reads it off the wire.
type wireResult struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	IsError           bool            `json:"isError"`
}

func (w wireResult) text() string {
	var parts []string
	for _, c := range w.Content {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, "\n")
}

// rpc sends one JSON-RPC request to srv and returns the JSON of its result.
func rpc(t *testing.T, srv *server.MCPServer, method string, params any) json.RawMessage {
	t.Helper()
	req, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := json.Marshal(srv.HandleMessage(t.Context(), req))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatal(err)
	}
	if out.Error != nil {
		t.Fatalf("%s: protocol error %s", method, out.Error.Message)
	}
	return out.Result
}

func call(t *testing.T, srv *server.MCPServer, name string, args map[string]any) wireResult {
	t.Helper()
	var res wireResult
	if err := json.Unmarshal(rpc(t, srv, "tools/call", map[string]any{"name": name, "arguments": args}), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// listed returns the tool definitions as clients see them, by name.
func listed(t *testing.T, srv *server.MCPServer) map[string]map[string]json.RawMessage {
	t.Helper()
	var res struct {
		Tools []map[string]json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(rpc(t, srv, "tools/list", map[string]any{}), &res); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]json.RawMessage{}
	for _, tl := range res.Tools {
		var name string
		json.Unmarshal(tl["name"], &name)
		out[name] = tl
	}
	return out
}

// validate checks structured content against a tool's declared output
// schema.
func validate(t *testing.T, name string, schema, content json.RawMessage) {
	t.Helper()
	var s jsonschema.Schema
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatalf("%s: output schema does not parse: %v\n%s", name, err, schema)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("%s: output schema does not resolve: %v", name, err)
	}
	var v any
	if err := json.Unmarshal(content, &v); err != nil {
		t.Fatalf("%s: structured content is not JSON: %v", name, err)
	}
	if err := rs.Validate(v); err != nil {
		t.Fatalf("%s: structured content does not match the output schema: %v\ncontent: %s\nschema: %s", name, err, content, schema)
	}
}

// TestInputSchemasTakeEpisodeID: every episode tool, and every management
// tool that acts on an existing episode, accepts an optional episode_id
// described the same way; start_task takes an optional task.
func TestInputSchemasTakeEpisodeID(t *testing.T) {
	srv := server.NewMCPServer("test", "0")
	Register(srv, nil)
	RegisterEpisodeTools(srv, &fakeEpisodes{})
	defs := listed(t, srv)
	for _, name := range []string{ListFiles, ReadFile, WriteFile, AppendFile, CopyFile, InspectScriptLines,
		EditScript, UndoEditScript, ExecuteScript, FinalAnswer, EpisodeStatus, ForkEpisode, StartTask} {
		def, ok := defs[name]
		if !ok {
			t.Errorf("%s is not listed", name)
			continue
		}
		var schema struct {
			Properties map[string]struct {
				Type        any    `json:"type"`
				Description string `json:"description"`
			} `json:"properties"`
			Required []string `json:"required"`
		}
		if err := json.Unmarshal(def["inputSchema"], &schema); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, has := schema.Properties["episode_id"]
		if name == StartTask {
			if has {
				t.Errorf("start_task takes episode_id; it creates the episode")
			}
			if tp := schema.Properties["task"]; tp.Type != "string" || slices.Contains(schema.Required, "task") || !strings.Contains(tp.Description, "May be omitted") {
				t.Errorf("start_task's task argument: %+v, required %v; want an optional string", tp, schema.Required)
			}
			continue
		}
		if !has || p.Type != "string" || p.Description != EpisodeIDDescription {
			t.Errorf("%s: episode_id = %+v (present %v); want a string described as %q", name, p, has, EpisodeIDDescription)
		}
		if slices.Contains(schema.Required, "episode_id") {
			t.Errorf("%s: episode_id is required; it may be omitted on a bound connection", name)
		}
	}
}

// TestToolClasses states, tool by tool, what the server asks of tools
// and what clients see in the annotations.
func TestToolClasses(t *testing.T) {
	tests := []struct {
		name                               string
		changes, submits, step, readOnlyHt bool
	}{
		{ListFiles, false, false, true, true},
		{ReadFile, false, false, true, true},
		{InspectScriptLines, false, false, true, true},
		{WriteFile, true, false, true, false},
		{AppendFile, true, false, true, false},
		{CopyFile, true, false, true, false},
		{EditScript, true, false, true, false},
		{UndoEditScript, true, false, true, false},
		{ExecuteScript, true, false, true, false},
		{FinalAnswer, false, true, true, false},
		{StartTask, false, false, false, false},
		{EpisodeStatus, false, false, false, true},
		{ForkEpisode, false, false, false, false},
	}
	srv := server.NewMCPServer("test", "0")
	Register(srv, nil)
	RegisterEpisodeTools(srv, &fakeEpisodes{})
	defs := listed(t, srv)
	if len(defs) != len(tests) {
		t.Errorf("%d tools registered, %d classified", len(defs), len(tests))
	}
	for _, tc := range tests {
		if got := ChangesFiles(tc.name); got != tc.changes {
			t.Errorf("ChangesFiles(%s) = %v", tc.name, got)
		}
		if got := Submits(tc.name); got != tc.submits {
			t.Errorf("Submits(%s) = %v", tc.name, got)
		}
		if got := CountsAsStep(tc.name); got != tc.step {
			t.Errorf("CountsAsStep(%s) = %v", tc.name, got)
		}
		if !Known(tc.name) {
			t.Errorf("Known(%s) = false", tc.name)
		}
		var ann mcp.ToolAnnotation
		if err := json.Unmarshal(defs[tc.name]["annotations"], &ann); err != nil || ann.ReadOnlyHint == nil {
			t.Fatalf("%s: annotations %s: %v", tc.name, defs[tc.name]["annotations"], err)
		}
		if *ann.ReadOnlyHint != tc.readOnlyHt || *ann.OpenWorldHint {
			t.Errorf("%s: readOnlyHint %v, openWorldHint %v", tc.name, *ann.ReadOnlyHint, *ann.OpenWorldHint)
		}
	}
	for _, name := range []string{"", "rm", "List_Files"} {
		if Known(name) || ChangesFiles(name) || Submits(name) || CountsAsStep(name) {
			t.Errorf("unknown tool %q is classified", name)
		}
	}
}

// TestStructuredContentMatchesSchema calls every episode tool through the
// server, as a client would, and checks that each tool that declares an
// output schema returns structured content that validates against it and
// holds what was done, and that the text-only tools declare none.
func TestStructuredContentMatchesSchema(t *testing.T) {
	r := newRig(t)
	defs := listed(t, r.srv)
	tests := []struct {
		name    string
		args    map[string]any
		isError bool
		check   func(t *testing.T, content json.RawMessage, text string)
	}{
		{ListFiles, map[string]any{"episode_id": "ep-1"}, false, func(t *testing.T, c json.RawMessage, _ string) {
			var l Listing
			decode(t, c, &l)
			if l.DirPath != "." || len(l.Entries) != 3 || l.Entries[0].Name != "data.csv" || l.Entries[0].Size != 4 {
				t.Errorf("listing = %+v", l)
			}
		}},
		{ReadFile, map[string]any{"file_name": "train.py"}, false, func(t *testing.T, _ json.RawMessage, text string) {
			if text != "print(1)\n" {
				t.Errorf("read_file text = %q", text)
			}
		}},
		{InspectScriptLines, map[string]any{"script_name": "train.py", "start_line_number": 1, "end_line_number": 1}, false,
			func(t *testing.T, _ json.RawMessage, text string) {
				if !strings.Contains(text, "1 | print(1)") {
					t.Errorf("inspect text = %q", text)
				}
			}},
		{WriteFile, map[string]any{"file_name": "new.py", "content": "x = 1\n"}, false, func(t *testing.T, c json.RawMessage, _ string) {
			var w Written
			decode(t, c, &w)
			if w != (Written{"new.py", 6}) {
				t.Errorf("written = %+v", w)
			}
		}},
		{AppendFile, map[string]any{"file_name": "new.py", "content": "y = 2\n", "episode_id": "ep-1"}, false, func(t *testing.T, c json.RawMessage, _ string) {
			var w Written
			decode(t, c, &w)
			if w != (Written{"new.py", 6}) {
				t.Errorf("appended = %+v", w)
			}
		}},
		{CopyFile, map[string]any{"source": "new.py", "destination": "copy.py"}, false, func(t *testing.T, c json.RawMessage, _ string) {
			var cp Copied
			decode(t, c, &cp)
			if cp != (Copied{"new.py", "copy.py"}) {
				t.Errorf("copied = %+v", cp)
			}
		}},
		{EditScript, map[string]any{"script_name": "copy.py", "old_text": "y = 2", "new_text": "y = 3"}, false, func(t *testing.T, c json.RawMessage, _ string) {
			var e Edited
			decode(t, c, &e)
			if !e.Changed || e.FileName != "copy.py" || !strings.Contains(e.Diff, "-y = 2\n+y = 3\n") {
				t.Errorf("edited = %+v", e)
			}
		}},
		{EditScript, map[string]any{"script_name": "copy.py", "start_line_number": 1, "end_line_number": 1, "new_text": "x = 1"}, false,
			func(t *testing.T, c json.RawMessage, text string) {
				var e Edited
				decode(t, c, &e)
				if e.Changed || e.Diff != "" || !strings.Contains(text, "unchanged") {
					t.Errorf("an edit that changes nothing: %+v, %q", e, text)
				}
			}},
		{UndoEditScript, map[string]any{"script_name": "copy.py"}, false, func(t *testing.T, c json.RawMessage, _ string) {
			var e Edited
			decode(t, c, &e)
			if !e.Changed || !strings.Contains(e.Diff, "-y = 3\n+y = 2\n") {
				t.Errorf("undone = %+v", e)
			}
		}},
		{ExecuteScript, map[string]any{"script_name": "train.py"}, false, func(t *testing.T, c json.RawMessage, _ string) {
			var run ScriptRun
			decode(t, c, &run)
			if run.Script != "train.py" || run.ExitCode != 0 || run.Stdout != "accuracy 0.9\n" || run.Seconds != 1.5 || run.OutputLog != "outputs/exec-0001.log" {
				t.Errorf("run = %+v", run)
			}
		}},
		{ExecuteScript, map[string]any{"script_name": "fail.py"}, true, func(t *testing.T, c json.RawMessage, text string) {
			var run ScriptRun
			decode(t, c, &run)
			if run.ExitCode != 1 || run.Stderr != "Traceback: boom\n" || !strings.Contains(text, "exit code 1") {
				t.Errorf("failed run = %+v, %q", run, text)
			}
		}},
		{FinalAnswer, map[string]any{"final_answer": "done"}, false, func(t *testing.T, c json.RawMessage, text string) {
			var s Submission
			decode(t, c, &s)
			if s.RunID != "run-1" || s.Status != "scored" || s.Score == nil || *s.Score != 0.93 || !s.Success || s.Steps != 9 ||
				s.BaselineInfo == nil || s.BaselineInfo.Source != runlog.BaselineFromTask {
				t.Errorf("submission = %+v", s)
			}
			if strings.Contains(string(c), "lock:secret") {
				t.Errorf("final_answer shows the server's internals: %s", c)
			}
			if !strings.Contains(text, "accuracy = 0.93") {
				t.Errorf("final_answer text = %q", text)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, r.srv, tc.name, tc.args)
			if res.IsError != tc.isError {
				t.Fatalf("isError = %v, want %v: %s", res.IsError, tc.isError, res.text())
			}
			schema, declared := defs[tc.name]["outputSchema"]
			structured := len(res.StructuredContent) > 0 && string(res.StructuredContent) != "null"
			if declared != structured {
				t.Fatalf("output schema declared: %v, structured content returned: %v", declared, structured)
			}
			if declared {
				validate(t, tc.name, schema, res.StructuredContent)
			}
			tc.check(t, res.StructuredContent, res.text())
		})
	}
}

func decode(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("structured content %s does not decode into %T: %v", raw, v, err)
	}
}

// TestLookupGetsEpisodeID: the episode_id argument reaches the lookup, and
// a handle the lookup refuses is a tool error naming the problem, never a
// protocol error; so is a handle of the wrong type.
func TestLookupGetsEpisodeID(t *testing.T) {
	r := newRig(t)
	call(t, r.srv, ListFiles, map[string]any{})
	call(t, r.srv, ReadFile, map[string]any{"file_name": "train.py", "episode_id": "ep-1"})
	res := call(t, r.srv, WriteFile, map[string]any{"file_name": "x.py", "content": "1", "episode_id": "ep-2"})
	if !res.IsError || !strings.Contains(res.text(), `unknown episode_id "ep-2"`) {
		t.Errorf("write_file with an unknown handle = %+v", res)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "x.py")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a call with an unknown handle wrote a file: %v", err)
	}
	res = call(t, r.srv, ListFiles, map[string]any{"episode_id": 7})
	if !res.IsError || !strings.Contains(res.text(), `argument "episode_id" must be a string`) {
		t.Errorf("list_files with a numeric handle = %+v", res)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := []string{"", "ep-1", "ep-2"}; !slices.Equal(r.ids, want) {
		t.Errorf("lookup was asked for %q, want %q", r.ids, want)
	}
}

func TestEpisodeID(t *testing.T) {
	tests := []struct {
		name string
		req  func() mcp.CallToolRequest
		want string
	}{
		{"map", func() mcp.CallToolRequest {
			var r mcp.CallToolRequest
			r.Params.Arguments = map[string]any{"episode_id": "abc", "file_name": "x"}
			return r
		}, "abc"},
		{"raw only", func() mcp.CallToolRequest {
			var r mcp.CallToolRequest
			r.Params.RawArguments = json.RawMessage(`{"file_name":"x","episode_id":"def"}`)
			return r
		}, "def"},
		{"raw message as arguments", func() mcp.CallToolRequest {
			var r mcp.CallToolRequest
			r.Params.Arguments = json.RawMessage(`{"episode_id":"ghi"}`)
			return r
		}, "ghi"},
		{"off the wire", func() mcp.CallToolRequest {
			var r mcp.CallToolRequest
			if err := json.Unmarshal([]byte(`{"params":{"name":"list_files","arguments":{"episode_id":"jkl"}}}`), &r); err != nil {
				panic(err)
			}
			return r
		}, "jkl"},
		{"absent", func() mcp.CallToolRequest {
			var r mcp.CallToolRequest
			r.Params.Arguments = map[string]any{"file_name": "x"}
			return r
		}, ""},
		{"not a string", func() mcp.CallToolRequest {
			var r mcp.CallToolRequest
			r.Params.RawArguments = json.RawMessage(`{"episode_id":12}`)
			return r
		}, ""},
		{"no arguments", func() mcp.CallToolRequest { return mcp.CallToolRequest{} }, ""},
		{"malformed", func() mcp.CallToolRequest {
			var r mcp.CallToolRequest
			r.Params.RawArguments = json.RawMessage(`[1,2`)
			return r
		}, ""},
	}
	for _, tc := range tests {
		if got := EpisodeID(tc.req()); got != tc.want {
			t.Errorf("%s: EpisodeID = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// BenchmarkEpisodeID measures the per-call cost of reading the handle of a
// request carrying a large write_file, as read off the wire.
func BenchmarkEpisodeID(b *testing.B) {
	var r mcp.CallToolRequest
	body, _ := json.Marshal(map[string]any{"name": WriteFile, "arguments": map[string]any{
		"file_name": "big.txt", "content": strings.Repeat("x", 1<<20), "episode_id": "abc"}})
	if err := json.Unmarshal(body, &r.Params); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if EpisodeID(r) != "abc" {
			b.Fatal("wrong id")
		}
	}
}
