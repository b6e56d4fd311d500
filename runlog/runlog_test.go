package runlog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func newTestLog(t testing.TB) *Log {
	t.Helper()
	l, err := Create(t.TempDir(), "run-1")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func readTrace(t *testing.T, l *Log) []Step {
	t.Helper()
	f, err := os.Open(filepath.Join(l.Dir(), traceFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []Step
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s Step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("line %d is not valid JSON: %v\n%s", len(steps)+1, err, sc.Bytes())
		}
		steps = append(steps, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return steps
}

func TestCreate(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		runID   string
		wantErr bool
		wantIs  error // checked with errors.Is when set
	}{
		{"fresh", "run-a", false, nil},
		{"existing dir", "taken", true, fs.ErrExist},
		{"empty id", "", true, nil},
		{"slash", "a/b", true, nil},
		{"dotdot", "..", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Create(root, tt.runID)
			if tt.wantErr {
				if err == nil {
					l.Close()
					t.Fatalf("Create(%q) succeeded, want error", tt.runID)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Fatalf("Create(%q) = %v, want %v", tt.runID, err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			defer l.Close()
			if l.ID() != tt.runID || l.Dir() != filepath.Join(root, tt.runID) {
				t.Fatalf("ID/Dir = %q/%q", l.ID(), l.Dir())
			}
			for _, sub := range []string{outputsDir, snapshotsDir, objectsDir} {
				if fi, err := os.Stat(filepath.Join(l.Dir(), sub)); err != nil || !fi.IsDir() {
					t.Errorf("%s missing: %v", sub, err)
				}
			}
			if fi, err := os.Stat(filepath.Join(l.Dir(), traceFile)); err != nil || fi.Size() != 0 {
				t.Errorf("trace.jsonl not empty file: %v", err)
			}
			// A second Create of the same run must not reuse the record.
			if l2, err := Create(root, tt.runID); err == nil {
				l2.Close()
				t.Fatal("second Create of same run succeeded")
			}
		})
	}
}

func TestAppendLines(t *testing.T) {
	l := newTestLog(t)
	in := []Step{
		{Step: 1, Tool: "bash", Arguments: json.RawMessage("{\n  \"cmd\": \"echo <hi> && ls\"\n}"), Result: "hi\nthere"},
		{Step: 2, Tool: "write_file", Result: "ok", IsError: true, DurationMS: 1.5, Snapshot: "step-0002", Output: "outputs/step-0002.log"},
		{Step: 3, Tool: "submit"},
	}
	for _, s := range in {
		if err := l.Append(s); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(l.Dir(), traceFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(raw), "\n"); got != len(in) {
		t.Fatalf("trace has %d newlines, want %d:\n%s", got, len(in), raw)
	}
	if strings.Contains(string(raw), `\u003c`) {
		t.Errorf("trace escapes HTML: %s", raw)
	}
	got := readTrace(t, l)
	for i, s := range got {
		if s.Step != in[i].Step || s.Tool != in[i].Tool || s.Result != in[i].Result ||
			s.IsError != in[i].IsError || s.Snapshot != in[i].Snapshot || s.Output != in[i].Output {
			t.Errorf("step %d round-trip = %+v, want %+v", i, s, in[i])
		}
		if s.Time.IsZero() {
			t.Errorf("step %d has zero time", i)
		}
	}
	if err := l.Append(Step{Step: 9, Arguments: json.RawMessage("{not json")}); err == nil {
		t.Error("Append with invalid arguments succeeded")
	}
}

func TestAppendConcurrent(t *testing.T) {
	l := newTestLog(t)
	const writers, perWriter = 32, 50
	// Results near the cap make each line ~2 KB, larger than a pipe's atomic
	// write size, so interleaving would show up if it could happen.
	filler := strings.Repeat("x", 1900)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				s := Step{
					Step:      w*perWriter + i,
					Tool:      fmt.Sprintf("w%d", w),
					Arguments: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
					Result:    filler,
				}
				if err := l.Append(s); err != nil {
					t.Errorf("Append: %v", err)
				}
			}
		})
	}
	wg.Wait()
	steps := readTrace(t, l)
	if len(steps) != writers*perWriter {
		t.Fatalf("got %d lines, want %d", len(steps), writers*perWriter)
	}
	seen := map[int]bool{}
	for _, s := range steps {
		if seen[s.Step] {
			t.Fatalf("step %d appears twice", s.Step)
		}
		seen[s.Step] = true
		if s.Result != filler {
			t.Fatalf("step %d result corrupted", s.Step)
		}
	}
}

func TestTruncateSummary(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantKeep int // bytes of in kept
	}{
		{"empty", "", 0},
		{"short", "hello", 5},
		{"exactly limit", strings.Repeat("a", maxResultBytes), maxResultBytes},
		{"one over", strings.Repeat("a", maxResultBytes+1), maxResultBytes},
		{"rune straddles limit", strings.Repeat("a", maxResultBytes-1) + "é" + "tail", maxResultBytes - 1},
		{"four-byte runes", strings.Repeat("😀", 600), 2000},
		{"four-byte runes offset", "ab" + strings.Repeat("😀", 600), 1998},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncateSummary(tt.in, maxResultBytes)
			if !utf8.ValidString(got) {
				t.Fatalf("result is not valid UTF-8")
			}
			want := tt.in
			if tt.wantKeep < len(tt.in) {
				want = fmt.Sprintf("%s…[truncated %d bytes]", tt.in[:tt.wantKeep], len(tt.in)-tt.wantKeep)
			}
			if got != want {
				t.Fatalf("truncateSummary kept %q..., want %q...", tail(got), tail(want))
			}
		})
	}

	// Append applies the same truncation.
	l := newTestLog(t)
	if err := l.Append(Step{Step: 1, Result: strings.Repeat("z", 5000)}); err != nil {
		t.Fatal(err)
	}
	s := readTrace(t, l)[0]
	if !strings.HasSuffix(s.Result, "…[truncated 3000 bytes]") {
		t.Errorf("Append did not truncate: %q", tail(s.Result))
	}
}

func tail(s string) string {
	if len(s) > 40 {
		return s[len(s)-40:]
	}
	return s
}

func TestClose(t *testing.T) {
	l := newTestLog(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(Step{Step: 1}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	// The rest of the record stays writable after the trace is closed.
	if err := l.WriteResult(Result{Status: StatusAborted}); err != nil {
		t.Fatalf("WriteResult after Close: %v", err)
	}
}
