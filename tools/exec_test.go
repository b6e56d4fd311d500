package tools

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mlab/mlab/sandbox"
)

func TestFormatExec(t *testing.T) {
	tests := []struct {
		name string
		res  ScriptRun
		want []string
	}{
		{"success", ScriptRun{ExecResult: sandbox.ExecResult{Stdout: "acc 0.9\n"}, Script: "train.py", Seconds: 1.5},
			[]string{"train.py finished with exit code 0 in 1.50 s.", "[stdout]\nacc 0.9\n"}},
		{"failure keeps stderr", ScriptRun{ExecResult: sandbox.ExecResult{ExitCode: 1, Stderr: "Traceback\nValueError: x\n"}, Script: "t.py"},
			[]string{"exit code 1", "[stderr]\nTraceback\nValueError: x"}},
		{"timeout", ScriptRun{ExecResult: sandbox.ExecResult{TimedOut: true, ExitCode: 137, Signal: "killed", Stdout: "epoch 1"}, Script: "t.py"},
			[]string{"killed after the 1m0s timeout", "[stdout]\nepoch 1\n"}},
		{"oom", ScriptRun{ExecResult: sandbox.ExecResult{OOM: true, ExitCode: 1}, Script: "t.py"},
			[]string{"ran out of memory (limit 512 MiB)"}},
		{"signal", ScriptRun{ExecResult: sandbox.ExecResult{Signal: "segmentation fault", ExitCode: 139}, Script: "t.py"},
			[]string{"killed by signal segmentation fault"}},
		{"truncated", ScriptRun{ExecResult: sandbox.ExecResult{Truncated: true, StdoutBytes: 5 << 20, Stdout: "a...z"}, Script: "t.py"},
			[]string{"only its beginning and end are shown", "5242880 bytes stdout"}},
		{"silent", ScriptRun{Script: "t.py"}, []string{"(no output)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := formatExec(tc.res, time.Minute, 512<<20)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("formatExec() = %q, missing %q", got, w)
				}
			}
		})
	}
}

func TestLastLine(t *testing.T) {
	tests := []struct {
		writes []string
		want   string
	}{
		{[]string{"a\nb\n"}, "b"},
		{[]string{"epoch 1\nepo", "ch 2\npartial"}, "epoch 2"},
		{[]string{"no newline yet"}, ""},
		{[]string{"x\n", "\n"}, ""},
		{[]string{strings.Repeat("y", 300) + "\n"}, strings.Repeat("y", 200) + "…"},
	}
	for _, tc := range tests {
		var sink strings.Builder
		l := &lastLine{w: &sink}
		for _, w := range tc.writes {
			l.Write([]byte(w))
		}
		if got := l.String(); got != tc.want {
			t.Errorf("writes %q: last line %q, want %q", tc.writes, got, tc.want)
		}
		if sink.String() != strings.Join(tc.writes, "") {
			t.Errorf("writes %q were not all forwarded", tc.writes)
		}
	}
}

func TestBind(t *testing.T) {
	tests := []struct {
		name    string
		args    any
		wantErr string
	}{
		{"ok", map[string]any{"script_name": "a.py", "timeout_s": 5}, ""},
		{"no arguments", nil, `missing required argument "script_name"`},
		{"unknown argument", map[string]any{"script": "a.py"}, `unknown argument "script"; this tool takes script_name, args, timeout_s, episode_id`},
		{"missing", map[string]any{"timeout_s": 5}, `missing required argument "script_name"`},
		{"null", map[string]any{"script_name": nil}, `missing required argument "script_name"`},
		{"wrong type", map[string]any{"script_name": 3}, `argument "script_name" must be a string, not a JSON number`},
		{"fraction", map[string]any{"script_name": "a.py", "timeout_s": 1.5}, `argument "timeout_s" must be an integer, not a JSON number 1.5`},
		{"not an object", []int{1}, "arguments must be a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args executeArgs
			req := mcp.CallToolRequest{}
			req.Params.Arguments = tc.args
			err := Bind(req, &args)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Bind(%v) = %v, want error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
	// A tool whose arguments are all optional may be called without any.
	var args listFilesArgs
	if err := Bind(mcp.CallToolRequest{}, &args); err != nil {
		t.Errorf("Bind(nil) for list_files: %v", err)
	}
}

// TestHostileTimeoutOverflow: timeout_s is bounded as a number of seconds
// before it becomes a time.Duration. 4611686018427387904 s times 1e9 wraps
// to exactly 0 and 9223372037 s to a negative duration; both used to slip
// past the limit check and turn the timeout off.
func TestHostileTimeoutOverflow(t *testing.T) {
	const def, limit = 10 * time.Second, 3 * time.Second
	tests := []struct {
		timeoutS int
		want     time.Duration
		wantErr  string
	}{
		{0, def, ""},
		{1, time.Second, ""},
		{3, limit, ""},
		{4, 0, "timeout_s 4 exceeds this task's limit of 3 seconds"},
		{9223372037, 0, "exceeds this task's limit of 3 seconds"},
		{4611686018427387904, 0, "exceeds this task's limit of 3 seconds"},
		{math.MaxInt, 0, "exceeds this task's limit"},
		{-1, 0, "timeout_s must be positive"},
		{math.MinInt, 0, "timeout_s must be positive"},
	}
	for _, tc := range tests {
		got, err := execTimeout(tc.timeoutS, def, limit)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("execTimeout(%d) = %v, %v; want error containing %q", tc.timeoutS, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("execTimeout(%d) = %v, %v; want %v", tc.timeoutS, got, err, tc.want)
		}
	}
	// A limit too large to hold in seconds' worth of int is no problem
	// either: the largest Duration is still a bound.
	if got, err := execTimeout(math.MaxInt, def, math.MaxInt64); err == nil && got <= 0 {
		t.Errorf("execTimeout(MaxInt, limit MaxInt64) = %v, want an error or a positive timeout", got)
	}
}

// TestHostileBindNumbers: numbers beyond what an argument's Go type holds
// are refused when the arguments are bound, never wrapped or clamped.
func TestHostileBindNumbers(t *testing.T) {
	for _, raw := range []string{
		`{"file_name":"a.py","offset":9223372036854775808}`,
		`{"file_name":"a.py","limit":1e30}`,
		`{"file_name":"a.py","offset":-9223372036854775809}`,
	} {
		var args readFileArgs
		req := mcp.CallToolRequest{}
		req.Params.RawArguments = json.RawMessage(raw)
		if err := Bind(req, &args); err == nil || !strings.Contains(err.Error(), "must be an integer") {
			t.Errorf("Bind(%s) = %v, want an integer error", raw, err)
		}
	}
	var args executeArgs
	req := mcp.CallToolRequest{}
	req.Params.RawArguments = json.RawMessage(`{"script_name":"a.py","timeout_s":1e400}`)
	if err := Bind(req, &args); err == nil {
		t.Errorf("Bind(timeout_s 1e400) = nil, want an error")
	}
}
