package benchmarks_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/benchmarks"
	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

// TestTabularRegressionData checks what prepare.py gives the agent: the
// starter code and the two tables as the research problem describes them,
// and nothing the hidden durations could be read or regenerated from (no
// duration column in test.csv, no answers or generator in env/).
func TestTabularRegressionData(t *testing.T) {
	task := tabularTask(t, "tabular-regression")
	columns := []string{"pickup_datetime", "vendor", "passengers", "pickup_x", "pickup_y",
		"dropoff_x", "dropoff_y", "weather", "payment"}
	checkTabularData(t, task, tabularLayout{
		trainHeader:  append(slices.Clone(columns), "duration"),
		testHeader:   append([]string{"id"}, columns...),
		answerHeader: []string{"id", "duration"},
		trainRows:    8000,
		testRows:     4000,
	})
}

// TestTabularRegressionEval scores a known submission against a mean
// absolute error computed here from the answers, and checks that each kind
// of malformed submission is rejected with a message that names the fault.
func TestTabularRegressionEval(t *testing.T) {
	task := tabularTask(t, "tabular-regression")
	ids := tabularTestIDs(t, task)
	_, answers := readTabularCSV(t, filepath.Join(task.ScriptsDir(), "answers.csv"))
	const guess = 30.0
	var sum float64
	for _, row := range answers {
		v, err := strconv.ParseFloat(row[1], 64)
		if err != nil {
			t.Fatalf("answers.csv: %v", err)
		}
		sum += math.Abs(guess - v)
	}
	checkTabularEval(t, task, tabularEvalCase{
		header: "id,duration",
		ids:    ids,
		value:  "30",
		want:   sum / float64(len(answers)),
		bad: map[string]string{
			"nan":          "is not a finite number",
			"inf":          "is not a finite number",
			"thirty":       "is not a number",
			"":             "is not a number",
			"30,1":         "expected 2 fields",
			"30.5e1000000": "is not a finite number",
		},
	})
}

// tabularLayout is what a prepared tabular task must hold.
type tabularLayout struct {
	trainHeader, testHeader, answerHeader []string
	trainRows, testRows                   int
}

// checkTabularData checks a prepared task's env/ and answers against layout.
func checkTabularData(t *testing.T, task *tasks.Task, want tabularLayout) {
	t.Helper()
	entries, err := os.ReadDir(task.EnvDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if wantNames := []string{"test.csv", "train.csv", "train.py"}; !slices.Equal(names, wantNames) {
		t.Errorf("env/ holds %v, want exactly %v", names, wantNames)
	}
	for _, f := range []struct {
		path   string
		header []string
		rows   int
	}{
		{filepath.Join(task.EnvDir(), "train.csv"), want.trainHeader, want.trainRows},
		{filepath.Join(task.EnvDir(), "test.csv"), want.testHeader, want.testRows},
		{filepath.Join(task.ScriptsDir(), "answers.csv"), want.answerHeader, want.testRows},
	} {
		header, rows := readTabularCSV(t, f.path)
		if !slices.Equal(header, f.header) {
			t.Errorf("%s: header %v, want %v", f.path, header, f.header)
		}
		if len(rows) != f.rows {
			t.Errorf("%s: %d rows, want %d", f.path, len(rows), f.rows)
		}
	}
	ids := tabularTestIDs(t, task)
	_, answers := readTabularCSV(t, filepath.Join(task.ScriptsDir(), "answers.csv"))
	for i, row := range answers {
		if i >= len(ids) || row[0] != ids[i] {
			t.Fatalf("answers.csv row %d has id %s, not test.csv's id at that row", i+1, row[0])
		}
	}
}

// tabularEvalCase describes a task's submission format for checkTabularEval.
type tabularEvalCase struct {
	header string   // the submission's header line
	ids    []string // test.csv's ids
	value  string   // a valid prediction, written for every id
	want   float64  // the score of that submission
	// bad maps an invalid prediction, written for the first id, to a part
	// of the message the eval must reject it with.
	bad map[string]string
}

// checkTabularEval scores a valid submission and many broken ones through
// the hidden eval, the way the server does.
func checkTabularEval(t *testing.T, task *tasks.Task, c tabularEvalCase) {
	t.Helper()
	provider, err := local.New(t.Context(), local.Options{Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	scorer := &eval.Scorer{Provider: provider, Python: "/usr/bin/python3"}

	valid := []string{c.header}
	for _, id := range c.ids {
		valid = append(valid, id+","+c.value)
	}
	withFirst := func(line string) []string {
		return slices.Concat(valid[:1], []string{line}, valid[2:])
	}
	lines := func(ls []string) string {
		if len(ls) == 0 {
			return ""
		}
		return strings.Join(ls, "\n") + "\n"
	}
	subs := []tabularSubmission{
		{name: "valid", text: lines(valid)},
		{name: "valid with CRLF and a trailing blank line", text: strings.Join(valid, "\r\n") + "\r\n\r\n"},
		{name: "no submission.csv", absent: true, raised: "FileNotFoundError", msg: "not found in the workspace"},
		{name: "empty file", raised: "ValueError", msg: "is empty"},
		{name: "wrong header", text: lines(slices.Concat([]string{"id,prediction"}, valid[1:])), raised: "ValueError", msg: "header must be exactly"},
		{name: "pandas index column", text: lines(tabularIndexColumn(valid)), raised: "ValueError", msg: "header must be exactly"},
		{name: "one id missing", text: lines(valid[:len(valid)-1]), raised: "ValueError", msg: "lacks predictions for 1 of"},
		{name: "id repeated", text: lines(append(slices.Clone(valid), valid[1])), raised: "ValueError", msg: "appears more than once"},
		{name: "unknown id", text: lines(append(slices.Clone(valid), "1000000,"+c.value)), raised: "ValueError", msg: "not in test.csv"},
		{name: "fractional id", text: lines(withFirst("0.5," + c.value)), raised: "ValueError", msg: "is not an integer"},
	}
	for _, value := range slices.Sorted(maps.Keys(c.bad)) {
		subs = append(subs, tabularSubmission{name: "prediction " + strconv.Quote(value), text: lines(withFirst(c.ids[0] + "," + value)), raised: "ValueError", msg: c.bad[value]})
	}
	for _, s := range subs {
		t.Run(strings.ReplaceAll(s.name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			if !s.absent {
				if err := os.WriteFile(filepath.Join(dir, "submission.csv"), []byte(s.text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var log tabularLog
			out, err := scorer.Score(t.Context(), task, eval.Request{Submission: dir, Log: &log})
			if s.raised == "" {
				if err != nil {
					t.Fatalf("valid submission: %v\n%s", err, log.String())
				}
				if math.Abs(out.Score-c.want) > 1e-9 {
					t.Errorf("score %v, want %v", out.Score, c.want)
				}
				return
			}
			if !errors.Is(err, eval.ErrInvalid) || !strings.Contains(err.Error(), s.raised) {
				t.Fatalf("got score %v, err %v; want the submission rejected by a %s", out.Score, err, s.raised)
			}
			if !strings.Contains(log.String(), s.msg) {
				t.Errorf("eval output does not say %q:\n%s", s.msg, log.String())
			}
		})
	}
}

// tabularSubmission is one submission checkTabularEval scores.
type tabularSubmission struct {
	name   string
	text   string // submission.csv
	absent bool   // no submission.csv at all
	raised string // the exception get_score must raise; "" for a valid submission
	msg    string // and a part of its message
}

// tabularIndexColumn is what pandas writes without index=False.
func tabularIndexColumn(lines []string) []string {
	out := []string{"," + lines[0]}
	for i, l := range lines[1:] {
		out = append(out, strconv.Itoa(i)+","+l)
	}
	return out
}

// tabularTask loads a built-in task through a catalog with its own cache,
// which runs the task's prepare.py.
func tabularTask(t *testing.T, name string) *tasks.Task {
	t.Helper()
	task, err := tasks.NewCatalog(benchmarks.FS(), "", t.TempDir()).Load(t.Context(), name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return task
}

// tabularTestIDs returns test.csv's id column, in order.
func tabularTestIDs(t *testing.T, task *tasks.Task) []string {
	t.Helper()
	header, rows := readTabularCSV(t, filepath.Join(task.EnvDir(), "test.csv"))
	if len(header) == 0 || header[0] != "id" {
		t.Fatalf("test.csv: first column %v, want id", header)
	}
	ids := make([]string, len(rows))
	for i, row := range rows {
		ids[i] = row[0]
	}
	return ids
}

// readTabularCSV returns a CSV file's header and rows.
func readTabularCSV(t *testing.T, path string) (header []string, rows [][]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(records) == 0 {
		t.Fatalf("%s: %d records, %v", path, len(records), err)
	}
	return records[0], records[1:]
}

// tabularLog collects an eval's output; eval.Request.Log must be safe for
// concurrent writes.
type tabularLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tabularLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *tabularLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
