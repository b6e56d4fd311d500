package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mlab/mlab/internal/testenv"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox/docker"
)

// binary is the mlab binary built once for all end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mlab-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mlab")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build mlab: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	// Every server these tests started has exited: any container of theirs
	// still there was leaked.
	if cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation()); err == nil {
		if left, err := docker.Orphans(context.Background(), cli); err == nil && len(left) > 0 {
			for _, c := range left {
				fmt.Fprintf(os.Stderr, "container %s of run %s left behind\n", c.ID[:12], c.Labels[docker.LabelRun])
			}
			code = 1
		}
	}
	os.Exit(code)
}

// fixtureTask is a small task whose eval reads score.txt from the submission,
// with a hidden file and a read-only data file.
var fixtureTask = map[string]string{
	"env/train.py":                 "print('training')\nopen('score.txt', 'w').write('0.5')\n",
	"env/data.csv":                 "a,b\n1,2\n",
	"env/lib/util.py":              "X = 1\n",
	"scripts/eval.py":              "import os\ndef get_score(d):\n    return float(open(os.path.join(d, 'score.txt')).read())\n",
	"scripts/research_problem.txt": "Make score.txt hold the largest number you can.",
	"scripts/read_only_files.txt":  "data.csv\n",
	"scripts/secret_answers.txt":   "the answer is 42\n",
	"task.yaml":                    "metric: score\ndirection: higher\nbaseline: 0.5\n",
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type harness struct {
	cs       *mcp.ClientSession
	runsDir  string
	tasksDir string
	progress chan string
	stdin    io.WriteCloser
	cmd      *exec.Cmd
	exited   chan struct{}
}

// start runs `mlab serve` with a sandbox backend on the fixture task (or
// task) and connects the go-sdk client to it over stdio.
func start(t *testing.T, backend, task string, extra ...string) *harness {
	t.Helper()
	h := &harness{runsDir: t.TempDir(), tasksDir: t.TempDir(), progress: make(chan string, 100)}
	writeTree(t, filepath.Join(h.tasksDir, "fixture"), fixtureTask)
	args := append([]string{"serve", "--task", task, "--tasks-dir", h.tasksDir, "--runs-dir", h.runsDir,
		"--cache-dir", t.TempDir(), "--log-level", logLevel(), "--backend", backend, "--image", testImage()}, extra...)
	h.launch(t, args)
	return h
}

// launch runs mlab with args, serving stdio, and connects the go-sdk
// client to it.
func (h *harness) launch(t *testing.T, args []string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stderr = os.Stderr
	// Own pipes rather than mcp.CommandTransport, so a test can drop the
	// connection the way a crashed client does.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.stdin, h.cmd = stdin, cmd
	exited := make(chan struct{})
	h.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("mlab serve did not exit within 20 s of its stdin closing")
		}
	})
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			select {
			case h.progress <- req.Params.Message:
			default:
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: stdout, Writer: stdin}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	h.cs = cs
}

// call invokes a tool and returns its text and error flag; protocol errors fail the test.
func (h *harness) call(t *testing.T, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n"), res.IsError
}

// mustOK calls a tool that must succeed and whose text must contain want.
func (h *harness) mustOK(t *testing.T, name string, args map[string]any, want string) string {
	t.Helper()
	text, isErr := h.call(t, name, args)
	if isErr || !strings.Contains(text, want) {
		t.Fatalf("%s(%v) = %q (isError %v), want success containing %q", name, args, text, isErr, want)
	}
	return text
}

// mustFail calls a tool that must return an isError result containing want.
func (h *harness) mustFail(t *testing.T, name string, args map[string]any, want string) {
	t.Helper()
	text, isErr := h.call(t, name, args)
	if !isErr || !strings.Contains(text, want) {
		t.Fatalf("%s(%v) = %q (isError %v), want an error containing %q", name, args, text, isErr, want)
	}
}

func (h *harness) runDir(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(h.runsDir, "*"))
	if len(dirs) != 1 {
		t.Fatalf("want one run dir, got %v", dirs)
	}
	return dirs[0]
}

func TestInitializeAndToolList(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		init := h.cs.InitializeResult()
		if init.ServerInfo.Name != "mlab" || !strings.Contains(init.Instructions, "Make score.txt hold the largest number") {
			t.Errorf("initialize: server %q, instructions %q", init.ServerInfo.Name, init.Instructions)
		}
		res, err := h.cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*mcp.Tool{}
		for _, tool := range res.Tools {
			got[tool.Name] = tool
		}
		want := map[string]struct {
			required []string
			readOnly bool
		}{
			"list_files":           {nil, true},
			"read_file":            {[]string{"file_name"}, true},
			"write_file":           {[]string{"file_name", "content"}, false},
			"append_file":          {[]string{"file_name", "content"}, false},
			"copy_file":            {[]string{"source", "destination"}, false},
			"inspect_script_lines": {[]string{"script_name", "start_line_number", "end_line_number"}, true},
			"edit_script":          {[]string{"script_name", "new_text"}, false},
			"undo_edit_script":     {[]string{"script_name"}, false},
			"execute_script":       {[]string{"script_name"}, false},
			"final_answer":         {[]string{"final_answer"}, false},
		}
		for name, w := range want {
			tool, ok := got[name]
			if !ok {
				t.Errorf("tool %s missing", name)
				continue
			}
			if len(tool.Description) < 60 {
				t.Errorf("%s: description too thin for an LLM: %q", name, tool.Description)
			}
			if tool.Annotations == nil || tool.Annotations.ReadOnlyHint != w.readOnly {
				t.Errorf("%s: annotations %+v, want readOnlyHint %v", name, tool.Annotations, w.readOnly)
			}
			schema, _ := json.Marshal(tool.InputSchema)
			var s struct {
				Type       string         `json:"type"`
				Required   []string       `json:"required"`
				Properties map[string]any `json:"properties"`
			}
			json.Unmarshal(schema, &s)
			if s.Type != "object" || strings.Join(s.Required, ",") != strings.Join(w.required, ",") {
				t.Errorf("%s: schema %s, want required %v", name, schema, w.required)
			}
		}
		rr, err := h.cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "mlab://task/research_problem"})
		if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, "largest number") {
			t.Errorf("research problem resource: %+v, %v", rr, err)
		}
	})
}

func TestToolsHappyPath(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		h.mustOK(t, "list_files", map[string]any{}, "train.py")
		res, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{"dir_path": "lib"}})
		if err != nil {
			t.Fatal(err)
		}
		// Clients that read structured content get the same listing.
		if got, _ := json.Marshal(res.StructuredContent); string(got) != `{"dir_path":"lib","entries":[{"name":"util.py","size":6,"type":"file"}]}` {
			t.Errorf("list_files structured content = %s", got)
		}
		h.mustOK(t, "read_file", map[string]any{"file_name": "data.csv"}, "a,b\n1,2")
		h.mustOK(t, "write_file", map[string]any{"file_name": "new/model.py", "content": "A = 1\nB = 2\nC = 3\n"}, "wrote new/model.py")
		h.mustOK(t, "append_file", map[string]any{"file_name": "new/model.py", "content": "D = 4\n"}, "appended")
		h.mustOK(t, "copy_file", map[string]any{"source": "new/model.py", "destination": "copy.py"}, "copied")
		h.mustOK(t, "inspect_script_lines", map[string]any{"script_name": "copy.py", "start_line_number": 2, "end_line_number": 3}, "B = 2")
		diff := h.mustOK(t, "edit_script", map[string]any{"script_name": "copy.py", "old_text": "B = 2", "new_text": "B = 20"}, "+B = 20")
		if !strings.Contains(diff, "-B = 2") || !strings.Contains(diff, "@@") {
			t.Errorf("edit did not return a unified diff: %s", diff)
		}
		h.mustOK(t, "edit_script", map[string]any{"script_name": "copy.py", "start_line_number": 1, "end_line_number": 1, "new_text": "A = 10"}, "+A = 10")
		h.mustOK(t, "undo_edit_script", map[string]any{"script_name": "copy.py"}, "restored")
		h.mustOK(t, "read_file", map[string]any{"file_name": "copy.py"}, "A = 1\nB = 20\n")
		h.mustOK(t, "undo_edit_script", map[string]any{"script_name": "copy.py"}, "restored")
		h.mustOK(t, "read_file", map[string]any{"file_name": "copy.py"}, "A = 1\nB = 2\n")
		h.mustOK(t, "undo_edit_script", map[string]any{"script_name": "copy.py"}, "restored")
		h.mustFail(t, "read_file", map[string]any{"file_name": "copy.py"}, "does not exist")
		h.mustOK(t, "write_file", map[string]any{"file_name": "run.py", "content": "import sys\nfrom lib import util\nprint('args', sys.argv[1:], util.X)\n"}, "wrote")
		h.mustOK(t, "execute_script", map[string]any{"script_name": "run.py", "args": []string{"--lr", "0.1"}}, "args ['--lr', '0.1'] 1")
		h.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "training")
		h.mustOK(t, "final_answer", map[string]any{"final_answer": "done"}, "submission scored")
	})
}

func TestPathEscapes(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		// A script can make a symlink inside the workspace; the tools must still
		// refuse to follow it out.
		h.mustOK(t, "write_file", map[string]any{"file_name": "mk.py", "content": "import os\nos.symlink('/etc', 'etc_link')\nos.symlink('/etc/hostname', 'host_link')\nos.symlink('data.csv', 'inner_link')\n"}, "wrote")
		h.mustOK(t, "execute_script", map[string]any{"script_name": "mk.py"}, "exit code 0")
		cases := []struct {
			tool string
			args map[string]any
		}{
			{"read_file", map[string]any{"file_name": "../../../../etc/passwd"}},
			{"read_file", map[string]any{"file_name": "/etc/passwd"}},
			{"read_file", map[string]any{"file_name": "lib/../../x"}},
			{"list_files", map[string]any{"dir_path": ".."}},
			{"list_files", map[string]any{"dir_path": "etc_link"}},
			{"read_file", map[string]any{"file_name": "etc_link/passwd"}},
			{"read_file", map[string]any{"file_name": "host_link"}},
			{"write_file", map[string]any{"file_name": "etc_link/evil", "content": "x"}},
			{"write_file", map[string]any{"file_name": "../escape.txt", "content": "x"}},
			{"copy_file", map[string]any{"source": "host_link", "destination": "stolen.txt"}},
			{"copy_file", map[string]any{"source": "train.py", "destination": "/tmp/out.py"}},
			{"execute_script", map[string]any{"script_name": "../train.py"}},
			{"inspect_script_lines", map[string]any{"script_name": "/etc/passwd", "start_line_number": 1, "end_line_number": 5}},
		}
		for _, c := range cases {
			h.mustFail(t, c.tool, c.args, "outside the workspace")
		}
		h.mustOK(t, "read_file", map[string]any{"file_name": "inner_link"}, "a,b")
	})
}

func TestReadOnlyFiles(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{"write_file", map[string]any{"file_name": "data.csv", "content": "x"}},
			{"append_file", map[string]any{"file_name": "data.csv", "content": "x"}},
			{"copy_file", map[string]any{"source": "train.py", "destination": "data.csv"}},
			{"edit_script", map[string]any{"script_name": "data.csv", "old_text": "a,b", "new_text": "c,d"}},
			{"undo_edit_script", map[string]any{"script_name": "data.csv"}},
		} {
			h.mustFail(t, c.tool, c.args, "read-only")
		}
		h.mustOK(t, "read_file", map[string]any{"file_name": "data.csv"}, "a,b\n1,2")
		h.mustOK(t, "copy_file", map[string]any{"source": "data.csv", "destination": "mine.csv"}, "copied")

		// Scripts cannot change, replace or delete the task's data either.
		tamper := `import os
for name, act in [("write", lambda: open("data.csv", "w").write("x")),
                  ("remove", lambda: os.remove("data.csv")),
                  ("rename", lambda: os.rename("mine.csv", "data.csv"))]:
    try:
        act()
        print(name, "ALLOWED")
    except OSError as e:
        print(name, "refused:", e.strerror)
print(open("data.csv").read())
`
		h.mustOK(t, "write_file", map[string]any{"file_name": "tamper.py", "content": tamper}, "wrote")
		out := h.mustOK(t, "execute_script", map[string]any{"script_name": "tamper.py"}, "write")
		if backend == "local" && !isolated() {
			t.Logf("without bubblewrap only the tools protect read-only files: %s", out)
			return
		}
		if strings.Contains(out, "ALLOWED") || !strings.Contains(out, "a,b\n1,2") {
			t.Errorf("a script changed a read-only file: %s", out)
		}
	})
}

func TestHiddenScriptsUnreachable(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		h.mustFail(t, "read_file", map[string]any{"file_name": "scripts/eval.py"}, "does not exist")
		h.mustFail(t, "list_files", map[string]any{"dir_path": "scripts"}, "does not exist")
		text := h.mustOK(t, "list_files", map[string]any{}, "train.py")
		if strings.Contains(text, "eval.py") || strings.Contains(text, "secret") || strings.Contains(text, "research_problem") {
			t.Errorf("workspace lists hidden files: %s", text)
		}
		// From inside a script: import eval, look for the scripts folder near the
		// workspace and in the task folder, and search the filesystem.
		probe := fmt.Sprintf(`import os, sys
found = []
try:
    import eval
    found.append('imported eval from ' + eval.__file__)
except ImportError:
    pass
for p in ['../scripts/eval.py', '../../scripts/eval.py', %q]:
    if os.path.exists(p):
        found.append(p)
for root, dirs, files in os.walk('/'):
    if root.startswith(('/proc', '/sys', '/dev', '/usr')):
        dirs[:] = []
        continue
    if 'secret_answers.txt' in files:
        found.append(os.path.join(root, 'secret_answers.txt'))
print('FOUND', found)
`, filepath.Join(h.tasksDir, "fixture", "scripts", "secret_answers.txt"))
		h.mustOK(t, "write_file", map[string]any{"file_name": "probe.py", "content": probe}, "wrote")
		out := h.mustOK(t, "execute_script", map[string]any{"script_name": "probe.py"}, "FOUND")
		if !strings.Contains(out, "FOUND []") {
			if isolated() {
				t.Errorf("hidden scripts reachable from a script: %s", out)
			} else {
				t.Logf("without bubblewrap scripts are not jailed (the server warns); probe saw: %s", out)
			}
		}
	})
}

// isolated reports whether the local sandbox can use bubblewrap here.
func isolated() bool {
	return exec.Command("bwrap", "--unshare-all", "--ro-bind", "/", "/", "true").Run() == nil
}

func TestTimeoutKillsEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture", "--progress-every", "500ms")
		marker := fmt.Sprintf("%d", 400000+os.Getpid()%100000)
		script := fmt.Sprintf("import subprocess, time\nsubprocess.Popen(['sleep', '%s'])\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.1)\n", marker)
		h.mustOK(t, "write_file", map[string]any{"file_name": "loop.py", "content": script}, "wrote")
		params := &mcp.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": "loop.py", "timeout_s": 3}}
		params.SetProgressToken("tok")
		res, err := h.cs.CallTool(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		if !res.IsError || !strings.Contains(text, "killed after the 3s timeout") || !strings.Contains(text, "looping") {
			t.Fatalf("want a timeout error with the partial output, got %q", text)
		}
		// The client hands notifications to their handler on a goroutine of
		// their own, so one sent before the response may reach the channel
		// after CallTool has returned.
		select {
		case msg := <-h.progress:
			if !strings.Contains(msg, "loop.py running") {
				t.Errorf("progress message %q", msg)
			}
		case <-time.After(time.Minute):
			t.Error("no progress notification during a 3 s run with --progress-every 500ms")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, _ := exec.Command("pgrep", "-f", "sleep "+marker).Output()
			if len(out) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("processes left behind after timeout: %s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The session keeps working after the kill.
		h.mustOK(t, "list_files", map[string]any{}, "loop.py")
	})
}

func TestOutputFloodCapped(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		script := "import sys\nline = 'x' * 99 + '\\n'\nfor _ in range(1024 * 1024):\n    sys.stdout.write(line)\nprint('THE END')\n"
		h.mustOK(t, "write_file", map[string]any{"file_name": "flood.py", "content": script}, "wrote")
		res, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": "flood.py"}})
		if err != nil {
			t.Fatal(err)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		if res.IsError || len(text) > 100<<10 || !strings.Contains(text, "THE END") || !strings.Contains(text, "bytes of output omitted") {
			t.Fatalf("100 MB of output not capped: isError %v, %d bytes, tail %q", res.IsError, len(text), text[max(0, len(text)-200):])
		}
		// The full output is in the run log, bounded.
		logs, _ := filepath.Glob(filepath.Join(h.runDir(t), "outputs", "*.log"))
		if len(logs) != 1 {
			t.Fatalf("want one output log, got %v", logs)
		}
		info, _ := os.Stat(logs[0])
		if info.Size() < 32<<20 || info.Size() > 80<<20 {
			t.Errorf("output log has %d bytes, want the first 64 MiB", info.Size())
		}
	})
}

func TestBadInputKeepsSessionAlive(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		cases := []struct {
			tool string
			args map[string]any
			want string
		}{
			{"read_file", map[string]any{"file_name": "nope.py"}, "does not exist"},
			{"read_file", map[string]any{}, `missing required argument "file_name"`},
			{"read_file", map[string]any{"file_name": 42}, `argument "file_name" must be a string`},
			{"read_file", map[string]any{"filename": "train.py"}, `unknown argument "filename"; this tool takes file_name, offset, limit`},
			{"edit_script", map[string]any{"script_name": "train.py", "old_text": "x"}, `missing required argument "new_text"`},
			{"inspect_script_lines", map[string]any{"script_name": "train.py", "start_line_number": "one", "end_line_number": 2}, `argument "start_line_number" must be an integer`},
			{"inspect_script_lines", map[string]any{"script_name": "train.py", "start_line_number": 1, "end_line_number": 500}, "100"},
			{"edit_script", map[string]any{"script_name": "train.py", "old_text": "not there", "new_text": "x"}, "not found"},
			{"edit_script", map[string]any{"script_name": "train.py", "new_text": "x"}, "old_text"},
			{"undo_edit_script", map[string]any{"script_name": "train.py"}, "no earlier version"},
			{"execute_script", map[string]any{"script_name": "missing.py"}, "does not exist"},
			{"execute_script", map[string]any{"script_name": "data.csv"}, "not a Python file"},
			{"execute_script", map[string]any{"script_name": "train.py", "timeout_s": 999999}, "exceeds"},
		}
		for _, c := range cases {
			h.mustFail(t, c.tool, c.args, c.want)
		}
		if _, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "rm_rf", Arguments: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "rm_rf") {
			t.Errorf("unknown tool: err = %v", err)
		}
		h.mustOK(t, "write_file", map[string]any{"file_name": "crash.py", "content": "raise SystemExit('bad things')\n"}, "wrote")
		h.mustFail(t, "execute_script", map[string]any{"script_name": "crash.py"}, "bad things")
		h.mustOK(t, "list_files", map[string]any{}, "train.py")
	})
}

func TestUnknownTask(t *testing.T) {
	out, err := exec.Command(binary, "serve", "--task", "no-such-task", "--runs-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `task "no-such-task": task not found (available:`) {
		t.Errorf("serve with an unknown task: %v, %s", err, out)
	}
}

func TestEpisodeRecord(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture", "--max-steps", "5")
		h.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "training")
		h.mustOK(t, "write_file", map[string]any{"file_name": "score.txt", "content": "0.6"}, "wrote")
		h.mustFail(t, "read_file", map[string]any{"file_name": "nope"}, "does not exist")
		h.mustOK(t, "list_files", map[string]any{}, "score.txt")
		h.mustOK(t, "read_file", map[string]any{"file_name": "score.txt"}, "0.6")
		h.mustFail(t, "list_files", map[string]any{}, "step budget is spent (5 of 5")
		text := h.mustOK(t, "final_answer", map[string]any{"final_answer": "wrote 0.6"}, "score = 0.6")
		if !strings.Contains(text, "improvement +20.00%") || !strings.Contains(text, "success: true") {
			t.Errorf("final answer: %s", text)
		}
		h.mustFail(t, "list_files", map[string]any{}, "episode is over")
		h.mustFail(t, "final_answer", map[string]any{"final_answer": "again"}, "episode is over")

		dir := h.runDir(t)
		r, err := runlog.ReadResult(dir)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != runlog.StatusScored || r.Score == nil || *r.Score != 0.6 || r.Baseline == nil || *r.Baseline != 0.5 ||
			r.Improvement == nil || *r.Improvement < 0.1999 || *r.Improvement > 0.2001 || !r.Success || r.Steps != 6 ||
			r.Task != "fixture" || r.Agent != "e2e/1" || r.Backend != backend || r.EndedAt == nil || r.Seconds <= 0 {
			t.Errorf("result.json = %+v", r)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "trace.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		wantTools := []string{"execute_script", "write_file", "read_file", "list_files", "read_file", "final_answer"}
		if len(lines) != len(wantTools) {
			t.Fatalf("trace has %d lines, want %d:\n%s", len(lines), len(wantTools), raw)
		}
		for i, line := range lines {
			var s runlog.Step
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatalf("trace line %d: %v", i, err)
			}
			if s.Step != i+1 || s.Tool != wantTools[i] || s.Time.IsZero() || s.DurationMS <= 0 || len(s.Arguments) == 0 {
				t.Errorf("trace line %d = %+v", i, s)
			}
			if s.IsError != (i == 2) {
				t.Errorf("trace line %d is_error = %v", i, s.IsError)
			}
			mutating := s.Tool == "execute_script" || s.Tool == "write_file"
			if (s.Snapshot != "") != mutating {
				t.Errorf("trace line %d snapshot %q", i, s.Snapshot)
			}
		}
		var first runlog.Step
		json.Unmarshal([]byte(lines[0]), &first)
		if first.Output == "" || !strings.Contains(first.Result, "training") {
			t.Errorf("execute_script step lacks output log or result: %+v", first)
		}
		if b, err := os.ReadFile(filepath.Join(dir, first.Output)); err != nil || !strings.Contains(string(b), "training") {
			t.Errorf("output log %s: %q, %v", first.Output, b, err)
		}
	})
}

func TestInvalidSubmission(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		// No score.txt: eval crashes, which is an invalid submission, not a score.
		// The agent gets a short reason; the eval's own words, which may
		// quote the hidden scripts, are in eval.log for the operator.
		const reason = "get_score raised FileNotFoundError"
		text := h.mustOK(t, "final_answer", map[string]any{"final_answer": "nothing"}, "submission invalid")
		if !strings.Contains(text, reason) || strings.Contains(text, "score.txt") {
			t.Errorf("invalid submission does not say why in short: %s", text)
		}
		r, err := runlog.ReadResult(h.runDir(t))
		if err != nil || r.Status != runlog.StatusInvalid || r.Score != nil || r.Success || !strings.Contains(r.Error, reason) {
			t.Errorf("result.json = %+v, %v", r, err)
		}
		if b, err := os.ReadFile(filepath.Join(h.runDir(t), "outputs", "eval.log")); err != nil || !strings.Contains(string(b), "score.txt") {
			t.Errorf("eval.log = %q, %v", b, err)
		}
	})
}

func TestDisconnectAbortsAndCleansUp(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture")
		// A name no other process on this machine has, so that pgrep finds
		// this script only.
		script := fmt.Sprintf("sleep%d.py", os.Getpid())
		h.mustOK(t, "write_file", map[string]any{"file_name": script, "content": "import time\nprint('sleeping', flush=True)\ntime.sleep(40)\n"}, "wrote")
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": script}})
		}()
		// The client leaves while the script runs, not before it starts.
		waitFor(t, time.Minute, "the script to start", func() bool {
			out, _ := exec.Command("pgrep", "-f", script).Output()
			return len(out) > 0
		})
		h.stdin.Close() // the client goes away without a word
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := runlog.ReadResult(h.runDir(t))
			if err == nil && r.Status == runlog.StatusAborted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("result.json after disconnect = %+v, %v", r, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The run is recorded as aborted before its sandbox is closed.
		waitFor(t, time.Minute, "the script to be killed", func() bool {
			out, _ := exec.Command("pgrep", "-f", script).Output()
			return len(out) == 0
		})
	})
}

// waitFor polls cond until it holds, and fails the test, naming what it
// waited for, once timeout has passed.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLevel lets MLAB_E2E_LOG=debug show the servers' logs while debugging.
func logLevel() string {
	if l := os.Getenv("MLAB_E2E_LOG"); l != "" {
		return l
	}
	return "warn"
}

func TestRunBaselineAgent(t *testing.T) {
	tasksDir, runsDir := t.TempDir(), t.TempDir()
	writeTree(t, filepath.Join(tasksDir, "fixture"), fixtureTask)
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    []string
	}{
		{"baseline", []string{"--task", "fixture"}, false,
			[]string{"status:      scored", "score:       0.5 (score, higher is better)", "baseline:    0.5", "improvement: +0.00%", "success:     false", "run dir:     " + runsDir}},
		{"unknown agent", []string{"--task", "fixture", "--agent", "gpt"}, true, []string{`unknown agent "gpt"`}},
		{"unknown task", []string{"--task", "nope"}, true, []string{`task "nope": task not found`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--tasks-dir", tasksDir, "--runs-dir", runsDir, "--cache-dir", t.TempDir(), "--log-level", "warn"}, tc.args...)
			out, err := exec.Command(binary, args...).CombinedOutput()
			if (err != nil) != tc.wantErr {
				t.Fatalf("mlab run: err %v, output:\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// testImage is the docker runtime image: MLAB_IMAGE or the default tag.
func testImage() string {
	if img := os.Getenv("MLAB_IMAGE"); img != "" {
		return img
	}
	return docker.ImageTag(docker.ImageSpec{Variant: "base"})
}

// eachBackend runs a test on the local backend and, where a Docker engine
// and the runtime image are there, on the docker backend.
func eachBackend(t *testing.T, test func(t *testing.T, backend string)) {
	t.Run("local", func(t *testing.T) { test(t, "local") })
	t.Run("docker", func(t *testing.T) {
		testenv.Image(t, testenv.Docker(t), testImage())
		test(t, "docker")
	})
}

func TestSignalStopsCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			eachBackend(t, func(t *testing.T, backend string) {
				h := start(t, backend, "fixture")
				marker := fmt.Sprintf("%d", 500000+os.Getpid()%100000+int(sig))
				h.mustOK(t, "write_file", map[string]any{"file_name": "sleep.py", "content": "import subprocess\nsubprocess.run(['sleep', '" + marker + "'])\n"}, "wrote")
				go h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": "sleep.py"}})
				// The signal comes while the script runs, not before it starts.
				waitFor(t, time.Minute, "the script to start", func() bool {
					out, _ := exec.Command("pgrep", "-f", "sleep "+marker).Output()
					return len(out) > 0
				})
				h.cmd.Process.Signal(sig)
				select {
				case <-h.exited:
				case <-time.After(30 * time.Second):
					t.Fatalf("server still running 30 s after %v", sig)
				}
				r, err := runlog.ReadResult(h.runDir(t))
				if err != nil || r.Status != runlog.StatusAborted || !strings.Contains(r.Error, "server stopped") {
					t.Errorf("result.json after %v = %+v, %v", sig, r, err)
				}
				if out, _ := exec.Command("pgrep", "-f", "sleep "+marker).Output(); len(out) > 0 {
					t.Errorf("script still running after %v: %s", sig, out)
				}
				if backend == "docker" {
					cli := testenv.Docker(t)
					list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true,
						Filters: filters.NewArgs(filters.Arg("label", docker.LabelRun+"="+r.RunID))})
					if err != nil || len(list) > 0 {
						t.Errorf("containers of run %s after %v: %d, %v", r.RunID, sig, len(list), err)
					}
				}
			})
		})
	}
}

func TestResourceFaults(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture", "--memory", "256", "--pids", "64")
		h.mustOK(t, "write_file", map[string]any{"file_name": "hog.py", "content": "b = bytearray(1 << 30)\nb[::4096] = b'x' * len(b[::4096])\nprint('survived')\n"}, "wrote")
		h.mustFail(t, "execute_script", map[string]any{"script_name": "hog.py"}, "ran out of memory (limit 256 MiB)")
		if backend == "docker" {
			// Only the container's pids limit makes a fork bomb safe to run.
			h.mustOK(t, "write_file", map[string]any{"file_name": "bomb.py", "content": "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"}, "wrote")
			h.mustFail(t, "execute_script", map[string]any{"script_name": "bomb.py", "timeout_s": 5}, "killed after the 5s timeout")
		}
		h.mustOK(t, "execute_script", map[string]any{"script_name": "train.py"}, "training")
		h.mustOK(t, "final_answer", map[string]any{"final_answer": "survived"}, "submission scored")
	})
}
