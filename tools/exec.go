package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mlab/mlab/sandbox"
)

type executeArgs struct {
	Handle
	ScriptName string   `json:"script_name" jsonschema:"Python file to run, relative to the workspace root, e.g. train.py."`
	Args       []string `json:"args,omitempty" jsonschema:"Command-line arguments passed to the script."`
	TimeoutS   int      `json:"timeout_s,omitempty" jsonschema:"Kill the script after this many seconds. Defaults to the task's exec timeout and cannot exceed the task's limit."`
}

// ScriptRun is execute_script's result: the sandbox's report of the run
// (exit code, captured output, whether it timed out or ran out of memory)
// and where the full output was logged.
type ScriptRun struct {
	sandbox.ExecResult
	Script  string  `json:"script"`
	Seconds float64 `json:"seconds"`
	// OutputLog is the run-relative path of the full output in the run log.
	OutputLog string `json:"output_log,omitempty"`
}

// OutputPath lets the step recorder link the full output log.
func (r ScriptRun) OutputPath() string { return r.OutputLog }

func executeScript(ctx context.Context, s *Session, req mcp.CallToolRequest, a executeArgs) (string, ScriptRun, error) {
	if !strings.HasSuffix(a.ScriptName, ".py") {
		return "", ScriptRun{}, fmt.Errorf("script_name %q is not a Python file: execute_script runs .py files", a.ScriptName)
	}
	// Resolving the script through the workspace gives the same path errors
	// as every other tool, before anything starts.
	if _, err := s.Workspace.Read(ctx, a.ScriptName, 0, 1); err != nil {
		return "", ScriptRun{}, err
	}
	timeout, err := execTimeout(a.TimeoutS, s.ExecTimeout, s.MaxExecTimeout)
	if err != nil {
		return "", ScriptRun{}, err
	}

	script := a.ScriptName
	if strings.HasPrefix(script, "-") {
		// Python would read a leading dash as an option.
		script = "./" + script
	}
	var sink io.Writer = io.Discard
	var logPath string
	if s.Output != nil {
		w, path, err := s.Output()
		if err != nil {
			return "", ScriptRun{}, fmt.Errorf("open output log: %w", err)
		}
		defer w.Close()
		sink, logPath = w, path
	}
	// Both streams go to the one log in the order they arrive.
	tracker := &lastLine{w: sink}
	stop := startProgress(ctx, req, s.ProgressEvery, a.ScriptName, tracker)
	res, err := s.Sandbox.Exec(ctx, sandbox.ExecRequest{
		Args:    append([]string{s.Python, "-u", script}, a.Args...),
		Timeout: timeout,
		Stdout:  tracker,
		Stderr:  tracker,
	})
	stop()
	if err != nil {
		return "", ScriptRun{}, fmt.Errorf("run %s: %w", a.ScriptName, err)
	}
	out := ScriptRun{ExecResult: res, Script: a.ScriptName, Seconds: res.Duration.Seconds(), OutputLog: logPath}
	text := formatExec(out, timeout, s.MemoryBytes)
	if res.ExitCode != 0 || res.TimedOut {
		return "", out, agentError{errors.New(text)}
	}
	return text, out, nil
}

// execTimeout is the timeout of one run: def when timeoutS is 0, else
// timeoutS seconds, which must not exceed limit. The bound is checked on the
// number of seconds before it is converted: a huge timeout_s times
// time.Second overflows int64 and wraps to zero or a negative duration,
// which sandboxes read as "no timeout".
func execTimeout(timeoutS int, def, limit time.Duration) (time.Duration, error) {
	switch {
	case timeoutS < 0:
		return 0, fmt.Errorf("timeout_s must be positive (got %d)", timeoutS)
	case timeoutS == 0:
		return def, nil
	case int64(timeoutS) > int64(limit/time.Second):
		return 0, fmt.Errorf("timeout_s %d exceeds this task's limit of %d seconds", timeoutS, int64(limit/time.Second))
	}
	return time.Duration(timeoutS) * time.Second, nil
}

func formatExec(r ScriptRun, timeout time.Duration, memory int64) string {
	var b strings.Builder
	switch {
	case r.TimedOut:
		fmt.Fprintf(&b, "%s was killed after the %s timeout; the output it produced until then is below.", r.Script, timeout)
	case r.OOM:
		fmt.Fprintf(&b, "%s ran out of memory (limit %d MiB) and was stopped (exit code %d after %.2f s).", r.Script, memory>>20, r.ExitCode, r.Seconds)
	case r.Signal != "":
		fmt.Fprintf(&b, "%s was killed by signal %s after %.2f s.", r.Script, r.Signal, r.Seconds)
	default:
		fmt.Fprintf(&b, "%s finished with exit code %d in %.2f s.", r.Script, r.ExitCode, r.Seconds)
	}
	if r.Truncated {
		fmt.Fprintf(&b, " Output was long (%d bytes stdout, %d bytes stderr), so only its beginning and end are shown.", r.StdoutBytes, r.StderrBytes)
	}
	b.WriteString("\n")
	if r.Stdout != "" {
		b.WriteString("[stdout]\n" + r.Stdout)
		if !strings.HasSuffix(r.Stdout, "\n") {
			b.WriteString("\n")
		}
	}
	if r.Stderr != "" {
		b.WriteString("[stderr]\n" + r.Stderr)
	}
	if r.Stdout == "" && r.Stderr == "" {
		b.WriteString("(no output)\n")
	}
	return b.String()
}

// lastLine forwards output and remembers its last complete line, which is
// what a progress message shows.
type lastLine struct {
	mu      sync.Mutex
	w       io.Writer
	line    []byte
	partial []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(p)
	buf := append(l.partial, p...)
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		start := bytes.LastIndexByte(buf[:i], '\n') + 1
		l.line = append(l.line[:0], buf[start:i]...)
		buf = buf[i+1:]
	}
	if len(buf) > 512 {
		buf = buf[len(buf)-512:]
	}
	l.partial = append(l.partial[:0], buf...)
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.line)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// startProgress sends notifications/progress at a fixed interval while a
// script runs, when the client asked for them with a progress token. Clients
// that time out silent requests keep waiting as long as these arrive.
func startProgress(ctx context.Context, req mcp.CallToolRequest, every time.Duration, script string, out *lastLine) (stop func()) {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return func() {}
	}
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return func() {}
	}
	if every <= 0 {
		every = 5 * time.Second
	}
	token := req.Params.Meta.ProgressToken
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				elapsed := now.Sub(start).Seconds()
				msg := fmt.Sprintf("%s running for %.0f s", script, elapsed)
				if last := out.String(); last != "" {
					msg += "; last output: " + last
				}
				_ = srv.SendNotificationToClient(ctx, "notifications/progress", map[string]any{
					"progressToken": token,
					"progress":      elapsed,
					"message":       msg,
				})
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
