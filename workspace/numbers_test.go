package workspace

import (
	"math"
	"strings"
	"testing"
)

// TestHostileNumericArguments: every number a workspace operation takes, at
// the edges of its type and past them, gives a clear error or a bounded
// result; none panics, wraps around or turns a limit off.
func TestHostileNumericArguments(t *testing.T) {
	ctx := t.Context()
	w, _ := newWS(t, nil, map[string]string{"a.py": "one\ntwo\nthree\n"})
	const maxInt, minInt = math.MaxInt, math.MinInt
	tests := []struct {
		name    string
		run     func() error
		wantErr string // "" when the call must succeed
	}{
		{"read at the largest offset", func() error { _, err := w.Read(ctx, "a.py", math.MaxInt64, 1); return err }, "beyond the end"},
		{"read with the largest limit", func() error { _, err := w.Read(ctx, "a.py", 0, math.MaxInt64); return err }, ""},
		{"read at the largest offset and limit", func() error { _, err := w.Read(ctx, "a.py", math.MaxInt64, math.MaxInt64); return err }, "beyond the end"},
		{"read at a negative offset", func() error { _, err := w.Read(ctx, "a.py", math.MinInt64, 1); return err }, "offset must be >= 0"},
		{"lines to the largest end", func() error { _, _, err := w.Lines(ctx, "a.py", 1, maxInt); return err }, "inspect at most 100 lines"},
		{"lines from the largest start", func() error { _, _, err := w.Lines(ctx, "a.py", maxInt, maxInt); return err }, "beyond the end"},
		{"lines from the smallest start", func() error { _, _, err := w.Lines(ctx, "a.py", minInt, 1); return err }, "1 or more"},
		{"replace from the largest start", func() error { _, err := w.ReplaceLines(ctx, "a.py", maxInt, maxInt, "x"); return err }, "beyond the end"},
		{"replace to the largest end", func() error { _, err := w.ReplaceLines(ctx, "a.py", 1, maxInt, "x"); return err }, "beyond the end"},
		{"replace from the smallest start", func() error { _, err := w.ReplaceLines(ctx, "a.py", minInt, 1, "x"); return err }, "1 or more"},
		{"replace before the start", func() error { _, err := w.ReplaceLines(ctx, "a.py", 2, minInt, "x"); return err }, "is before start_line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
