package benchmarks_test

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox/local"
)

const imageName = "image-classification"

// imageNPY reads a .npy file (format version 1) and returns its header
// and its data.
func imageNPY(t *testing.T, path string) (header string, data []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:8]) != "\x93NUMPY\x01\x00" {
		t.Fatalf("%s is not a version 1 .npy file", path)
	}
	n := int(binary.LittleEndian.Uint16(b[8:10]))
	if len(b) < 10+n {
		t.Fatalf("%s: header of %d bytes, file of %d", path, n, len(b))
	}
	return string(b[10 : 10+n]), b[10+n:]
}

// TestImageClassificationData checks what prepare.py gives the agent: the
// starter code and the three arrays as the research problem describes
// them, and nothing else (no labels of the test images, no generator), and
// that the hidden labels cover the ten classes.
func TestImageClassificationData(t *testing.T) {
	task := tabularTask(t, imageName)
	entries, err := os.ReadDir(task.EnvDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"test_images.npy", "train.py", "train_images.npy", "train_labels.npy"}; !slices.Equal(names, want) {
		t.Errorf("env/ holds %v, want exactly %v", names, want)
	}
	for _, f := range []struct{ name, descr, shape string }{
		{"train_images.npy", "'|u1'", "(6000, 16, 16, 3)"},
		{"train_labels.npy", "'<i8'", "(6000,)"},
		{"test_images.npy", "'|u1'", "(2000, 16, 16, 3)"},
	} {
		header, _ := imageNPY(t, filepath.Join(task.EnvDir(), f.name))
		if !strings.Contains(header, "'descr': "+f.descr) || !strings.Contains(header, "'shape': "+f.shape) {
			t.Errorf("%s: header %q, want dtype %s and shape %s", f.name, header, f.descr, f.shape)
		}
	}
	count := func(what string, labels []int) {
		counts := make([]int, 10)
		for i, l := range labels {
			if l < 0 || l > 9 {
				t.Fatalf("%s: label %d of item %d is not a class 0..9", what, l, i)
			}
			counts[l]++
		}
		// Ten classes, none rare.
		for c, n := range counts {
			if n < len(labels)/20 {
				t.Errorf("%s: class %d has %d of %d items", what, c, n, len(labels))
			}
		}
	}
	_, data := imageNPY(t, filepath.Join(task.EnvDir(), "train_labels.npy"))
	train := make([]int, len(data)/8)
	for i := range train {
		train[i] = int(int64(binary.LittleEndian.Uint64(data[8*i:])))
	}
	count("train_labels.npy", train)
	header, rows := readTabularCSV(t, filepath.Join(task.ScriptsDir(), "answers.csv"))
	if !slices.Equal(header, []string{"id", "label"}) || len(rows) != 2000 {
		t.Fatalf("answers.csv: header %v and %d rows, want id,label and 2000", header, len(rows))
	}
	test := make([]int, len(rows))
	for i, row := range rows {
		if row[0] != strconv.Itoa(i) {
			t.Fatalf("answers.csv row %d has id %s, want %d (the index of the test image)", i+1, row[0], i)
		}
		test[i], err = strconv.Atoi(row[1])
		if err != nil {
			t.Fatalf("answers.csv row %d: %v", i+1, err)
		}
	}
	count("answers.csv", test)
}

// TestImageClassificationEval scores a known submission against an accuracy
// computed here from the answers, and checks that each kind of malformed
// submission is rejected with a message that names the fault.
func TestImageClassificationEval(t *testing.T) {
	task := tabularTask(t, imageName)
	_, answers := readTabularCSV(t, filepath.Join(task.ScriptsDir(), "answers.csv"))
	right := 0
	valid := []string{"id,label"}
	for i, row := range answers {
		if row[1] == "3" {
			right++
		}
		valid = append(valid, strconv.Itoa(i)+",3")
	}
	lines := func(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
	withFirst := func(line string) string { return lines(slices.Concat(valid[:1], []string{line}, valid[2:])...) }
	provider, err := local.New(t.Context(), local.Options{Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	scorer := &eval.Scorer{Provider: provider, Python: "/usr/bin/python3"}
	subs := []tabularSubmission{
		{name: "valid", text: lines(valid...)},
		{name: "valid with CRLF and a trailing blank line", text: strings.Join(valid, "\r\n") + "\r\n\r\n"},
		{name: "labels written as floats", text: withFirst("0,3.0")},
		{name: "no submission.csv", absent: true, raised: "FileNotFoundError", msg: "not found in the workspace"},
		{name: "empty file", raised: "ValueError", msg: "is empty"},
		{name: "wrong header", text: lines(slices.Concat([]string{"image,label"}, valid[1:])...), raised: "ValueError", msg: "header must be exactly"},
		{name: "pandas index column", text: lines(tabularIndexColumn(valid)...), raised: "ValueError", msg: "header must be exactly"},
		{name: "one id missing", text: lines(valid[:len(valid)-1]...), raised: "ValueError", msg: "lacks predictions for 1 of 2000"},
		{name: "id repeated", text: lines(append(slices.Clone(valid), valid[1])...), raised: "ValueError", msg: "appears more than once"},
		{name: "unknown id", text: lines(append(slices.Clone(valid), "2000,3")...), raised: "ValueError", msg: "not test image indices (0..1999)"},
		{name: "label 10", text: withFirst("0,10"), raised: "ValueError", msg: "is not a class label 0..9"},
		{name: "label -1", text: withFirst("0,-1"), raised: "ValueError", msg: "is not a class label 0..9"},
		{name: "fractional label", text: withFirst("0,2.5"), raised: "ValueError", msg: "is not an integer"},
		{name: "label name", text: withFirst("0,disc"), raised: "ValueError", msg: "is not an integer"},
		{name: "three fields", text: withFirst("0,3,1"), raised: "ValueError", msg: "expected 2 fields"},
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
				if want := float64(right) / float64(len(answers)); math.Abs(out.Score-want) > 1e-12 {
					t.Errorf("score %v, want %v", out.Score, want)
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

// TestImageClassificationPrepareIsReproducible prepares the task twice and
// compares the images and hidden labels byte for byte: the levels hold only
// if the same seed always draws the same images.
func TestImageClassificationPrepareIsReproducible(t *testing.T) {
	checkReproducible(t, imageName, "env/train_images.npy", "env/train_labels.npy", "env/test_images.npy", "scripts/answers.csv")
}
