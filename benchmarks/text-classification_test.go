package benchmarks_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestTextClassificationData checks what prepare.py gives the agent: the
// starter code and the two tables as the research problem describes them,
// and nothing the hidden labels could be read from: no label column in
// test.csv, no answers or generator in env/, and no test review that also
// appears, with its label, in train.csv.
func TestTextClassificationData(t *testing.T) {
	task := tabularTask(t, "text-classification")
	checkTabularData(t, task, tabularLayout{
		trainHeader:  []string{"id", "text", "label"},
		testHeader:   []string{"id", "text"},
		answerHeader: []string{"id", "label"},
		trainRows:    6000,
		testRows:     3000,
	})
	_, train := readTabularCSV(t, filepath.Join(task.EnvDir(), "train.csv"))
	_, test := readTabularCSV(t, filepath.Join(task.EnvDir(), "test.csv"))
	labelled := make(map[string]bool, len(train))
	counts := make(map[string]int)
	for _, row := range train {
		labelled[row[1]] = true
		counts[row[2]]++
	}
	for _, row := range test {
		if labelled[row[1]] {
			t.Errorf("test review %s also appears in train.csv, with its label", row[0])
		}
	}
	// Six classes, none rare: the research problem promises labels 0..5.
	for label := range 6 {
		if n := counts[strconv.Itoa(label)]; n < len(train)/12 {
			t.Errorf("label %d: %d of %d training reviews", label, n, len(train))
		}
	}
	if len(counts) != 6 {
		t.Errorf("train.csv has labels %v, want 0..5", counts)
	}
}

// TestTextClassificationEval scores a known submission against an accuracy
// computed here from the answers, and checks that each kind of malformed
// submission is rejected with a message that names the fault.
func TestTextClassificationEval(t *testing.T) {
	task := tabularTask(t, "text-classification")
	ids := tabularTestIDs(t, task)
	_, answers := readTabularCSV(t, filepath.Join(task.ScriptsDir(), "answers.csv"))
	var right int
	for _, row := range answers {
		if row[1] == "1" {
			right++
		}
	}
	checkTabularEval(t, task, tabularEvalCase{
		header: "id,label",
		ids:    ids,
		value:  "1",
		want:   float64(right) / float64(len(answers)),
		bad: map[string]string{
			"6":   "is not a class label 0..5",
			"-1":  "is not a class label 0..5",
			"1.5": "is not an integer",
			"nan": "is not an integer",
			"inf": "is not an integer",
			"one": "is not an integer",
			"1,2": "expected 2 fields",
			"":    "is not an integer",
		},
	})
}

// TestTextClassificationPrepareIsReproducible prepares the task twice, in
// two caches, and checks that the data and the hidden answers come out byte
// for byte the same: the levels in levels.json hold only if every machine
// generates the same corpus.
func TestTextClassificationPrepareIsReproducible(t *testing.T) {
	checkReproducible(t, "text-classification", "env/train.csv", "env/test.csv", "scripts/answers.csv")
}

// checkReproducible prepares a built-in task in two fresh caches and
// compares the named files, relative to the prepared task's folder.
func checkReproducible(t *testing.T, name string, files ...string) {
	t.Helper()
	first, second := tabularTask(t, name), tabularTask(t, name)
	if first.Dir == second.Dir {
		t.Fatalf("both loads share %s: nothing was prepared twice", first.Dir)
	}
	for _, f := range files {
		a, errA := os.ReadFile(filepath.Join(first.Dir, f))
		b, errB := os.ReadFile(filepath.Join(second.Dir, f))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", f, errA, errB)
		}
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: %d and %d bytes, not the same data from two runs of prepare.py", f, len(a), len(b))
		}
	}
}
