package runlog

import (
	"slices"
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
