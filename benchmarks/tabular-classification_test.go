package benchmarks_test

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestTabularClassificationData checks what prepare.py gives the agent: the
// starter code and the two tables as the research problem describes them,
// and nothing the hidden labels could be read or regenerated from (no label
// column in test.csv, no answers or generator in env/).
func TestTabularClassificationData(t *testing.T) {
	task := tabularTask(t, "tabular-classification")
	var features []string
	for i := range 22 {
		features = append(features, fmt.Sprintf("f%02d", i))
	}
	checkTabularData(t, task, tabularLayout{
		trainHeader:  append(append([]string{}, features...), "label"),
		testHeader:   append([]string{"id"}, features...),
		answerHeader: []string{"id", "label"},
		trainRows:    4000,
		testRows:     2000,
	})
}

// TestTabularClassificationEval scores a known submission against an
// accuracy computed here from the answers, and checks that each kind of
// malformed submission is rejected with a message that names the fault.
func TestTabularClassificationEval(t *testing.T) {
	task := tabularTask(t, "tabular-classification")
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
			"4":   "is not a class label 0..3",
			"-1":  "is not a class label 0..3",
			"1.5": "is not an integer",
			"nan": "is not an integer",
			"inf": "is not an integer",
			"one": "is not an integer",
			"1,2": "expected 2 fields",
			"":    "is not an integer",
		},
	})
}
