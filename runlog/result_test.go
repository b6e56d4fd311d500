package runlog

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"
)

func TestWriteResult(t *testing.T) {
	score, baseline, improvement := 0.0, 0.71, -0.71
	ended := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   Result
	}{
		{"running", Result{Task: "cifar", SessionID: "s1", Backend: "local", Status: StatusRunning,
			StartedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}},
		{"scored zero", Result{RunID: "run-1", Task: "cifar", SessionID: "s1", Agent: "claude/1.0", Backend: "local",
			Status: StatusScored, Metric: "accuracy", Direction: "max", Score: &score, Baseline: &baseline,
			Improvement: &improvement, Steps: 12, Seconds: 1800.5,
			StartedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), EndedAt: &ended}},
		{"aborted", Result{Task: "t", Status: StatusAborted, Error: "agent disconnected"}},
	}
	l := newTestLog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.WriteResult(tt.in); err != nil {
				t.Fatalf("WriteResult: %v", err)
			}
			got, err := ReadResult(l.Dir())
			if err != nil {
				t.Fatalf("ReadResult: %v", err)
			}
			want := tt.in
			want.RunID = l.ID()
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("round trip:\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if tt.in.Score != nil && got.Score == nil {
				t.Error("zero score was dropped")
			}
			// Atomic write leaves nothing but the final file behind.
			entries, err := os.ReadDir(l.Dir())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			wantNames := []string{objectsDir, outputsDir, resultFile, snapshotsDir, traceFile}
			if !slices.Equal(names, wantNames) {
				t.Errorf("run dir holds %v, want %v", names, wantNames)
			}
		})
	}
	if _, err := ReadResult(t.TempDir()); err == nil {
		t.Error("ReadResult of a dir without result.json succeeded")
	}
}
