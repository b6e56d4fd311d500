package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mlab/mlab/tasks"
)

const trivialScript = "print('ok')\n"

// BenchmarkToolCall measures one tool call through MCP (go-sdk client, stdio
// framing over in-memory pipes), including step recording and snapshots.
// The baseline in the same run is a plain os/exec of the same trivial script:
// execute_script's overhead is its ratio to raw_exec.
func BenchmarkToolCall(b *testing.B) {
	task := fixture(b)
	if err := os.WriteFile(filepath.Join(task.EnvDir(), "trivial.py"), []byte(trivialScript), 0o644); err != nil {
		b.Fatal(err)
	}
	_, cs := connect(b, Options{Task: task, Budgets: tasks.Budgets{MaxSteps: 1 << 30}})
	calls := []struct {
		name string
		args map[string]any
	}{
		{"list_files", map[string]any{}},
		{"read_file", map[string]any{"file_name": "small.txt"}},
		{"execute_script", map[string]any{"script_name": "trivial.py"}},
	}
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: c.name, Arguments: c.args})
				if err != nil || res.IsError {
					b.Fatalf("%s: %v %+v", c.name, err, res)
				}
			}
		})
	}
	b.Run("raw_exec", func(b *testing.B) {
		dir := b.TempDir()
		script := filepath.Join(dir, "trivial.py")
		os.WriteFile(script, []byte(trivialScript), 0o644)
		for b.Loop() {
			cmd := exec.Command("/usr/bin/python3", "-u", script)
			cmd.Dir = dir
			if out, err := cmd.Output(); err != nil || string(out) != "ok\n" {
				b.Fatalf("raw exec: %v %q", err, out)
			}
		}
	})
}
