package benchmarks_test

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

const (
	tsSeries  = 150
	tsHistory = 1064 // days of history per series
	tsHorizon = 28   // days to forecast
)

// TestTimeSeriesForecastingData checks what prepare.py gives the agent: the
// starter code and the three tables as the research problem describes them,
// and nothing the hidden sales could be read from: no sales column in
// test.csv, no answers or generator in env/, and no history on or after the
// first forecast day.
func TestTimeSeriesForecastingData(t *testing.T) {
	task := tabularTask(t, "time-series-forecasting")
	entries, err := os.ReadDir(task.EnvDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"calendar.csv", "test.csv", "train.csv", "train.py"}; !slices.Equal(names, want) {
		t.Errorf("env/ holds %v, want exactly %v", names, want)
	}
	tables := map[string][]string{
		"env/train.csv":       {"series_id", "date", "sales", "promo"},
		"env/test.csv":        {"id", "series_id", "date", "promo"},
		"env/calendar.csv":    {"date", "holiday", "temperature"},
		"scripts/answers.csv": {"id", "series_id", "sales"},
		"scripts/scales.csv":  {"series_id", "scale"},
	}
	rows := map[string][][]string{}
	for f, want := range tables {
		header, r := readTabularCSV(t, filepath.Join(task.Dir, f))
		if !slices.Equal(header, want) {
			t.Fatalf("%s: header %v, want %v", f, header, want)
		}
		rows[f] = r
	}
	for f, n := range map[string]int{
		"env/train.csv":       tsSeries * tsHistory,
		"env/test.csv":        tsSeries * tsHorizon,
		"env/calendar.csv":    tsHistory + tsHorizon,
		"scripts/answers.csv": tsSeries * tsHorizon,
		"scripts/scales.csv":  tsSeries,
	} {
		if len(rows[f]) != n {
			t.Errorf("%s: %d rows, want %d", f, len(rows[f]), n)
		}
	}

	// The history ends the day before the horizon starts, and the calendar
	// covers both, one row per day.
	trainFirst, trainLast, testFirst, testLast := "9999", "", "9999", ""
	for _, r := range rows["env/train.csv"] {
		trainFirst, trainLast = min(trainFirst, r[1]), max(trainLast, r[1])
	}
	for _, r := range rows["env/test.csv"] {
		testFirst, testLast = min(testFirst, r[2]), max(testLast, r[2])
	}
	if !dayBefore(t, trainLast, testFirst) {
		t.Errorf("train.csv ends on %s, test.csv starts on %s: want consecutive days", trainLast, testFirst)
	}
	calendar := rows["env/calendar.csv"]
	for i := 1; i < len(calendar); i++ {
		if !dayBefore(t, calendar[i-1][0], calendar[i][0]) {
			t.Fatalf("calendar.csv: %s follows %s", calendar[i][0], calendar[i-1][0])
		}
	}
	if n := len(calendar); n == 0 || calendar[0][0] != trainFirst || calendar[n-1][0] != testLast {
		t.Errorf("calendar.csv does not run from %s to %s, over train.csv and test.csv", trainFirst, testLast)
	}

	// The answers are test.csv's rows in order; every scale is positive.
	test := rows["env/test.csv"]
	for i, r := range rows["scripts/answers.csv"] {
		if i >= len(test) || r[0] != test[i][0] || r[1] != test[i][1] {
			t.Fatalf("answers.csv row %d is %v, not test.csv's row %v", i+1, r[:2], test[min(i, len(test)-1)][:2])
		}
	}
	for _, r := range rows["scripts/scales.csv"] {
		if v, err := strconv.ParseFloat(r[1], 64); err != nil || !(v > 0) {
			t.Errorf("scales.csv: series %s has scale %q", r[0], r[1])
		}
	}
}

// dayBefore reports whether ISO date a is the day before b.
func dayBefore(t *testing.T, a, b string) bool {
	t.Helper()
	da, errA := time.Parse(time.DateOnly, a)
	db, errB := time.Parse(time.DateOnly, b)
	if errA != nil || errB != nil {
		t.Fatalf("dates %q, %q: %v, %v", a, b, errA, errB)
	}
	return da.AddDate(0, 0, 1).Equal(db)
}

// TestTimeSeriesForecastingEval scores a known submission against a MASE
// computed here from the answers and scales, and checks that each kind of
// malformed submission is rejected with a message that names the fault.
func TestTimeSeriesForecastingEval(t *testing.T) {
	task := tabularTask(t, "time-series-forecasting")
	ids := tabularTestIDs(t, task)
	_, answers := readTabularCSV(t, filepath.Join(task.ScriptsDir(), "answers.csv"))
	_, scales := readTabularCSV(t, filepath.Join(task.ScriptsDir(), "scales.csv"))
	const guess = 10.0
	sums, counts := map[string]float64{}, map[string]int{}
	for _, row := range answers {
		v, err := strconv.ParseFloat(row[2], 64)
		if err != nil {
			t.Fatalf("answers.csv: %v", err)
		}
		sums[row[1]] += math.Abs(guess - v)
		counts[row[1]]++
	}
	var mase float64
	for _, row := range scales {
		scale, err := strconv.ParseFloat(row[1], 64)
		if err != nil {
			t.Fatalf("scales.csv: %v", err)
		}
		mase += sums[row[0]] / float64(counts[row[0]]) / scale
	}
	checkTabularEval(t, task, tabularEvalCase{
		header: "id,sales",
		ids:    ids,
		value:  "10",
		want:   mase / float64(len(scales)),
		bad: map[string]string{
			"nan":          "is not finite",
			"inf":          "is not finite",
			"-inf":         "is not finite",
			"10.5e1000000": "is not finite",
			"ten":          "is not a number",
			"":             "is not a number",
			"10,1":         "expected 2 fields",
		},
	})
}

// TestTimeSeriesForecastingPrepareIsReproducible prepares the task twice and
// checks that the data and the hidden answers come out byte for byte the
// same, so that the levels in levels.json hold on every machine.
func TestTimeSeriesForecastingPrepareIsReproducible(t *testing.T) {
	checkReproducible(t, "time-series-forecasting",
		"env/train.csv", "env/test.csv", "env/calendar.csv", "scripts/answers.csv", "scripts/scales.csv")
}
