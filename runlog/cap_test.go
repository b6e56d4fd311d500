package runlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileTraceArgumentsCapped: arguments of any size become a trace
// line of bounded size that still says what was asked, with the length and
// digest of what was cut.
func TestHostileTraceArgumentsCapped(t *testing.T) {
	big := strings.Repeat("x", 60<<20)
	// A 3-byte rune straddling the cut must not be split.
	runes := strings.Repeat("a", maxValueBytes-1) + strings.Repeat("€", 30000)
	manyKeys := map[string]string{}
	for i := range 20000 {
		manyKeys[fmt.Sprintf("k%05d", i)] = "v"
	}
	tests := []struct {
		name       string
		args       json.RawMessage
		wantArgs   map[string]string // argument -> exact kept value (strings only)
		wantElided map[string]Elided // SHA256 "" means: do not check it
	}{
		{
			name:     "small arguments are kept as they are",
			args:     mustJSON(t, map[string]any{"file_name": "a.py", "content": "print(1)\n"}),
			wantArgs: map[string]string{"file_name": "a.py", "content": "print(1)\n"},
		},
		{
			name:       "a 60 MiB write_file keeps the file name and the start of the content",
			args:       mustJSON(t, map[string]any{"file_name": "big.txt", "content": big}),
			wantArgs:   map[string]string{"file_name": "big.txt", "content": big[:maxValueBytes]},
			wantElided: map[string]Elided{"content": {Bytes: len(big), SHA256: sha(big), Kept: maxValueBytes}},
		},
		{
			name:     "two long strings keep the start of both",
			args:     mustJSON(t, map[string]any{"script_name": "t.py", "old_text": big[:1<<20], "new_text": big[:2<<20]}),
			wantArgs: map[string]string{"script_name": "t.py", "old_text": big[:maxValueBytes], "new_text": big[:maxValueBytes]},
			wantElided: map[string]Elided{
				"old_text": {Bytes: 1 << 20, SHA256: sha(big[:1<<20]), Kept: maxValueBytes},
				"new_text": {Bytes: 2 << 20, SHA256: sha(big[:2<<20]), Kept: maxValueBytes},
			},
		},
		{
			name:       "a cut never splits a UTF-8 sequence",
			args:       mustJSON(t, map[string]any{"content": runes}),
			wantArgs:   map[string]string{"content": runes[:maxValueBytes-1]},
			wantElided: map[string]Elided{"content": {Bytes: len(runes), SHA256: sha(runes), Kept: maxValueBytes - 1}},
		},
		{
			name:       "a long array is left out with its digest",
			args:       mustJSON(t, map[string]any{"script_name": "t.py", "args": strings.Split(big[:200000], "")}),
			wantArgs:   map[string]string{"script_name": "t.py"},
			wantElided: map[string]Elided{"args": {Bytes: len(mustJSON(t, strings.Split(big[:200000], ""))), Kept: 0}},
		},
		{
			name:       "arguments that are not an object are left out whole",
			args:       mustJSON(t, []string{big[:1<<20]}),
			wantElided: map[string]Elided{"*": {Bytes: len(mustJSON(t, []string{big[:1<<20]})), Kept: 0}},
		},
		{
			name:       "many short arguments are left out whole",
			args:       mustJSON(t, manyKeys),
			wantElided: map[string]Elided{"*": {Bytes: len(mustJSON(t, manyKeys)), Kept: 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t)
			if err := l.Append(Step{Step: 1, Tool: "write_file", Arguments: tc.args, Result: strings.Repeat("r", 1<<20)}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(l.Dir(), traceFile))
			if err != nil {
				t.Fatal(err)
			}
			// The bound: the arguments, the result summary, and room for
			// the digests and the rest of the step.
			if limit := int64(MaxArgumentBytes + maxResultBytes + 4<<10); fi.Size() > limit {
				t.Fatalf("trace line is %d bytes, want at most %d", fi.Size(), limit)
			}
			steps := readTrace(t, l)
			if len(steps) != 1 {
				t.Fatalf("%d steps", len(steps))
			}
			s := steps[0]
			var got map[string]any
			if len(s.Arguments) > 0 {
				if err := json.Unmarshal(s.Arguments, &got); err != nil {
					t.Fatalf("arguments %.200s: %v", s.Arguments, err)
				}
			}
			if len(got) != len(tc.wantArgs) {
				t.Errorf("kept %d arguments, want %d (%v)", len(got), len(tc.wantArgs), keys(got))
			}
			for k, want := range tc.wantArgs {
				if g, _ := got[k].(string); g != want {
					t.Errorf("argument %s kept as %d bytes %.40q, want %d bytes %.40q", k, len(g), g, len(want), want)
				}
			}
			if len(s.ArgumentsElided) != len(tc.wantElided) {
				t.Errorf("elided %v, want %v", s.ArgumentsElided, tc.wantElided)
			}
			for k, want := range tc.wantElided {
				g, ok := s.ArgumentsElided[k]
				if want.SHA256 == "" {
					g.SHA256 = ""
				}
				if !ok || g != want {
					t.Errorf("elided[%s] = %+v, want %+v", k, g, want)
				}
			}
		})
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestHostileTraceSizeBound: three refused 60 MiB write_file calls used to
// make a 181 MB trace.jsonl.
func TestHostileTraceSizeBound(t *testing.T) {
	l := newTestLog(t)
	args := mustJSON(t, map[string]any{"file_name": "big.bin", "content": strings.Repeat("x", 60<<20)})
	for i := range 3 {
		if err := l.Append(Step{Step: i + 1, Tool: "write_file", Arguments: args, IsError: true, Result: "too large"}); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(l.Dir(), traceFile))
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(3 * (MaxArgumentBytes + maxResultBytes + 4<<10)); fi.Size() > limit {
		t.Fatalf("trace.jsonl is %d bytes after three 60 MiB calls, want at most %d", fi.Size(), limit)
	}
	if steps := readTrace(t, l); len(steps) != 3 {
		t.Fatalf("%d steps, want 3", len(steps))
	}
}

func TestResultAgentCapped(t *testing.T) {
	l := newTestLog(t)
	if err := l.WriteResult(Result{Status: StatusRunning, Agent: strings.Repeat("a", 1<<20)}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(l.Dir(), resultFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 4<<10 {
		t.Fatalf("result.json is %d bytes with a 1 MiB client name", fi.Size())
	}
}
