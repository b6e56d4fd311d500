package runlog

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRecover(t *testing.T) {
	root := t.TempDir()
	runs := []struct {
		id, status, server string
		want               string // status after Recover
	}{
		{"dead-running", StatusRunning, "dead", StatusAborted},
		{"live-running", StatusRunning, "live", StatusRunning},
		{"dead-scored", StatusScored, "dead", StatusScored},
		{"old-running", StatusRunning, "", StatusAborted}, // written before servers were recorded
	}
	for _, r := range runs {
		l, err := Create(root, r.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.WriteResult(Result{Task: "t", Status: r.status, Server: r.server, StartedAt: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		l.Append(Step{Step: 1, Tool: "list_files"})
		l.Close()
	}
	marked, err := Recover(root, func(s string) bool { return s == "live" })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(marked)
	if !slices.Equal(marked, []string{"dead-running", "old-running"}) {
		t.Errorf("marked %v", marked)
	}
	for _, r := range runs {
		got, err := ReadResult(root + "/" + r.id)
		if err != nil || got.Status != r.want {
			t.Errorf("%s: status %q, %v; want %q", r.id, got.Status, err, r.want)
		}
		if r.want == StatusAborted && (got.EndedAt == nil || got.Seconds <= 0 || got.Error == "") {
			t.Errorf("%s: aborted without end time or reason: %+v", r.id, got)
		}
	}
	if again, _ := Recover(root, func(s string) bool { return s == "live" }); len(again) != 0 {
		t.Errorf("second Recover marked %v", again)
	}
}

// A server killed during a large trace write leaves a torn last line;
// recovery cuts it so that the trace is whole JSON lines again.
func TestHostileTornTraceLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail string // written after the whole lines
		want int    // whole lines left
	}{
		{"torn", `{"step":3,"tool":"write_file","arguments":{"content":"xxxxxxxx`, 2},
		{"whole", "", 2},
		{"torn large", `{"step":3,"result":"` + strings.Repeat("y", 200<<10), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			l, err := Create(root, "run")
			if err != nil {
				t.Fatal(err)
			}
			l.WriteResult(Result{Task: "t", Status: StatusRunning, Server: "dead", StartedAt: time.Now().Add(-time.Minute)})
			l.Append(Step{Step: 1, Tool: "list_files"})
			l.Append(Step{Step: 2, Tool: "read_file"})
			l.Close()
			path := filepath.Join(root, "run", traceFile)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.tail)
			f.Close()
			if _, err := Recover(root, func(string) bool { return false }); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != tc.want || !strings.HasSuffix(string(b), "\n") {
				t.Fatalf("trace after recovery: %q", b)
			}
			for _, line := range lines {
				var s Step
				if err := json.Unmarshal([]byte(line), &s); err != nil {
					t.Errorf("line %q: %v", line, err)
				}
			}
		})
	}
}
