package benchmarks_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"index/suffixarray"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

const (
	lmName = "language-modelling"
	// lmStdlib holds the sources prepare.py draws its templates from, which
	// every sandbox can read.
	lmStdlib       = "/usr/lib/python3.11"
	lmContexts     = 4000
	lmContextChars = 512
	// lmMaxMatch bounds the suffixes the lookup attack searches for: longer
	// ones pin a place in the sources no better.
	lmMaxMatch = 64
)

// lmAlphabet is the task's ALPHABET: newline, form feed and printable ASCII.
var lmAlphabet = func() string {
	var b strings.Builder
	b.WriteString("\n\f")
	for c := byte(32); c < 127; c++ {
		b.WriteByte(c)
	}
	return b.String()
}()

// lmPrepared is a prepared copy of the task with its data read in.
type lmPrepared struct {
	task         *tasks.Task
	train, valid string
	contexts     []string
	answers      []string // the hidden next characters, from scripts/
}

func lmPrepare(t *testing.T) lmPrepared {
	t.Helper()
	if _, err := os.Stat(filepath.Join(lmStdlib, "os.py")); err != nil {
		t.Skipf("the Python 3.11 standard library is not installed: %v", err)
	}
	p := lmPrepared{task: tabularTask(t, lmName)}
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	p.train = read(filepath.Join(p.task.EnvDir(), "train.txt"))
	p.valid = read(filepath.Join(p.task.EnvDir(), "valid.txt"))
	if err := json.Unmarshal([]byte(read(filepath.Join(p.task.EnvDir(), "test_contexts.json"))), &p.contexts); err != nil {
		t.Fatalf("test_contexts.json: %v", err)
	}
	if err := json.Unmarshal([]byte(read(filepath.Join(p.task.ScriptsDir(), "answers.json"))), &p.answers); err != nil {
		t.Fatalf("answers.json: %v", err)
	}
	return p
}

// TestLanguageModellingData checks what prepare.py gives the agent (the
// starter code and the three data files, nothing else) and that the data is
// as the research problem describes it.
func TestLanguageModellingData(t *testing.T) {
	p := lmPrepare(t)
	entries, err := os.ReadDir(p.task.EnvDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"test_contexts.json", "train.py", "train.txt", "valid.txt"}; !slices.Equal(names, want) {
		t.Errorf("env/ holds %v, want exactly %v", names, want)
	}
	inAlphabet := func(s string) bool {
		return strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(lmAlphabet, r) }) < 0
	}
	for _, f := range []struct {
		name     string
		text     string
		minChars int
	}{{"train.txt", p.train, 3_900_000}, {"valid.txt", p.valid, 190_000}} {
		if len(f.text) < f.minChars || !strings.HasPrefix(f.text, "\f") || !inAlphabet(f.text) {
			t.Errorf("%s: %d characters, starts with %q, all in the alphabet: %v; want at least %d, a form feed, true",
				f.name, len(f.text), f.text[:min(len(f.text), 10)], inAlphabet(f.text), f.minChars)
		}
	}
	if len(p.contexts) != lmContexts || len(p.answers) != lmContexts {
		t.Fatalf("%d contexts and %d answers, want %d of each", len(p.contexts), len(p.answers), lmContexts)
	}
	atStart := 0
	for i, c := range p.contexts {
		a := p.answers[i]
		// A context is one module's text: a form feed only at its start,
		// where it reaches back to the module's start, and then at least
		// the 15 characters the research problem promises.
		ff := strings.LastIndexByte(c, '\f')
		switch {
		case len(c) == 0 || len(c) > lmContextChars || !inAlphabet(c):
			t.Errorf("context %d: %d characters (want 1..%d, all in the alphabet): %q", i, len(c), lmContextChars, c)
		case ff > 0 || (ff < 0 && len(c) < lmContextChars) || (ff == 0 && len(c) < 16):
			t.Errorf("context %d: a form feed at %d of %d characters", i, ff, len(c))
		case len(a) != 1 || !strings.Contains(lmAlphabet, a) || a == "\f":
			t.Errorf("answer %d is %q, want one character of the alphabet other than the form feed", i, a)
		}
		if ff == 0 {
			atStart++
		}
	}
	// Hidden positions are spread over whole modules, so most contexts are
	// full length and some reach back to the start.
	if atStart < lmContexts/20 || atStart > lmContexts/2 {
		t.Errorf("%d of %d contexts reach back to their module's start", atStart, lmContexts)
	}
}

// lmLookup predicts a context's next character the way an attacker who
// searches a corpus would: it finds the longest suffix of the context
// (up to lmMaxMatch characters) that occurs in the corpus and takes the
// character that most often follows it there.
type lmLookup struct {
	corpus []byte
	index  *suffixarray.Index
}

func newLMLookup(corpus []byte) lmLookup {
	return lmLookup{corpus: corpus, index: suffixarray.New(corpus)}
}

func (l lmLookup) predict(ctx string) (byte, bool) {
	// A suffix that occurs has all its shorter suffixes occur too, so the
	// longest is found by bisection.
	lo, hi := 0, min(len(ctx), lmMaxMatch)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if len(l.index.Lookup([]byte(ctx[len(ctx)-mid:]), 1)) > 0 {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 {
		return 0, false
	}
	var votes [256]int
	for _, i := range l.index.Lookup([]byte(ctx[len(ctx)-lo:]), 1000) {
		if j := i + lo; j < len(l.corpus) {
			votes[l.corpus[j]]++
		}
	}
	best := 0
	for c := range votes {
		if votes[c] > votes[best] {
			best = c
		}
	}
	return byte(best), votes[best] > 0
}

// accuracy is the share of contexts whose next character the lookup names.
func (l lmLookup) accuracy(contexts, answers []string) float64 {
	right := 0
	for i, c := range contexts {
		if got, ok := l.predict(c); ok && string(got) == answers[i] {
			right++
		}
	}
	return float64(right) / float64(len(contexts))
}

// TestHostileLanguageModellingLookup plays an agent that looks the hidden
// characters up in the standard library's sources, which the sandbox can
// read and from which the text was made. It names no more of them than the
// same lookup in train.txt, the agent's own training text, does: the
// sources tell nothing about the hidden modules beyond what training on the
// task's data teaches. The same lookup names nearly every next character of
// contexts cut from the sources themselves, which shows it would catch held-
// out text that is on the system.
func TestHostileLanguageModellingLookup(t *testing.T) {
	p := lmPrepare(t)
	var corpus bytes.Buffer
	var files []string
	err := filepath.WalkDir(lmStdlib, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".py") {
			return nil // unreadable corners do not matter
		}
		b, err := os.ReadFile(path)
		if err == nil {
			corpus.Write(b)
			corpus.WriteByte(0) // no match runs across files
			files = append(files, string(b))
		}
		return nil
	})
	if err != nil || len(files) < 100 {
		t.Fatalf("read %s: %d files, %v", lmStdlib, len(files), err)
	}
	stdlib := newLMLookup(corpus.Bytes())
	train := newLMLookup([]byte(p.train))

	// The control: held-out text that is on the system.
	rng := rand.New(rand.NewPCG(1, 2))
	var leaked, leakedAnswers []string
	for len(leaked) < 1000 {
		f := files[rng.IntN(len(files))]
		if len(f) < 2*lmContextChars {
			continue
		}
		pos := lmContextChars + rng.IntN(len(f)-lmContextChars)
		leaked = append(leaked, f[pos-lmContextChars:pos])
		leakedAnswers = append(leakedAnswers, f[pos:pos+1])
	}
	control := stdlib.accuracy(leaked, leakedAnswers)

	fromStdlib := stdlib.accuracy(p.contexts, p.answers)
	fromTrain := train.accuracy(p.contexts, p.answers)
	t.Logf("lookup names %.1f%% of the hidden characters in the stdlib sources, %.1f%% in train.txt; %.1f%% of the next characters of text cut from the sources",
		100*fromStdlib, 100*fromTrain, 100*control)
	if control < 0.95 {
		t.Fatalf("the lookup names only %.1f%% of the next characters of text that is in the sources: the attack is broken", 100*control)
	}
	if fromStdlib > fromTrain+0.01 || fromStdlib > 0.8 {
		t.Errorf("the stdlib sources name %.1f%% of the hidden characters, more than train.txt's %.1f%%: they leak the held-out text",
			100*fromStdlib, 100*fromTrain)
	}
}

// lmNPY encodes a 2-D little-endian array in numpy's .npy format (version
// 1.0): the submission format, written without numpy.
func lmNPY(descr string, rows, cols int, data []byte) []byte {
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }", descr, rows, cols)
	// Magic (6), version (2), header length (2), then the header padded
	// with spaces to a multiple of 64 bytes, ending in a newline.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

// lmFloats is a rows x 97 float64 .npy whose entry (i, k) is value(i, k).
func lmFloats(rows int, value func(i, k int) float64) []byte {
	data := make([]byte, 0, rows*len(lmAlphabet)*8)
	for i := range rows {
		for k := range len(lmAlphabet) {
			data = binary.LittleEndian.AppendUint64(data, math.Float64bits(value(i, k)))
		}
	}
	return lmNPY("<f8", rows, len(lmAlphabet), data)
}

// TestLanguageModellingEval scores submissions through the hidden eval, the
// way the server does: valid ones with known scores, and malformed ones,
// each rejected with a message that names the fault.
func TestLanguageModellingEval(t *testing.T) {
	p := lmPrepare(t)
	provider, err := local.New(t.Context(), local.Options{Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	scorer := &eval.Scorer{Provider: provider, Python: "/usr/bin/python3"}
	n, v := lmContexts, len(lmAlphabet)
	answer := make([]int, n)
	for i, a := range p.answers {
		answer[i] = strings.Index(lmAlphabet, a)
	}
	zip1 := func() []byte {
		var b bytes.Buffer
		w := zip.NewWriter(&b)
		f, _ := w.Create("arr_0.npy")
		f.Write(lmFloats(n, func(int, int) float64 { return 0 }))
		w.Close()
		return b.Bytes()
	}
	float32s := make([]byte, 4*n*v) // all zeros: the uniform model
	cases := []struct {
		name   string
		npy    []byte // nil for no submission.npy
		want   float64
		raised string // "" for a valid submission
		msg    string
	}{
		{name: "uniform float32", npy: lmNPY("<f4", n, v, float32s), want: math.Log2(97)},
		// Unnormalised rows are normalised: any constant row is uniform.
		{name: "uniform unnormalised", npy: lmFloats(n, func(int, int) float64 { return -3 }), want: math.Log2(97)},
		// Row i is column answer[i] of the hidden characters, so a
		// submission that knows them scores (nearly) zero.
		{name: "knows the answers", npy: lmFloats(n, func(i, k int) float64 {
			if k == answer[i] {
				return 60
			}
			return 0
		}), want: 0},
		// A half-and-half model: each row gives its true character and one
		// other character half the probability each, so exactly one bit.
		{name: "one bit", npy: lmFloats(n, func(i, k int) float64 {
			if k == answer[i] || k == (answer[i]+1)%v {
				return 0
			}
			return -1000
		}), want: 1},
		{name: "no submission.npy", raised: "FileNotFoundError", msg: "not found in the workspace"},
		{name: "one row short", npy: lmFloats(n-1, func(int, int) float64 { return 0 }), raised: "ValueError", msg: "has shape (3999, 97), expected (4000, 97)"},
		{name: "integers", npy: lmNPY("<i8", n, v, make([]byte, 8*n*v)), raised: "ValueError", msg: "floating-point log-probabilities"},
		{name: "NaN", npy: lmFloats(n, func(i, k int) float64 {
			if i == 7 && k == 3 {
				return math.NaN()
			}
			return 0
		}), raised: "ValueError", msg: "1 NaN or infinite values"},
		{name: "log of zero", npy: lmFloats(n, func(i, k int) float64 {
			if k == 0 {
				return math.Inf(-1)
			}
			return 0
		}), raised: "ValueError", msg: "4000 NaN or infinite values"},
		{name: "probabilities", npy: lmFloats(n, func(int, int) float64 { return 1.0 / 97 }), raised: "ValueError", msg: "looks like probabilities"},
		{name: "npz archive", npy: zip1(), raised: "ValueError", msg: "not an archive"},
		{name: "pickled objects", npy: lmNPY("|O", n, v, []byte("\x80\x04N.")), raised: "ValueError", msg: "not a plain numpy array file"},
		{name: "not numpy", npy: []byte("id,label\n0,a\n"), raised: "ValueError", msg: "not a plain numpy array file"},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			if c.npy != nil {
				if err := os.WriteFile(filepath.Join(dir, "submission.npy"), c.npy, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var log tabularLog
			out, err := scorer.Score(t.Context(), p.task, eval.Request{Submission: dir, Log: &log})
			if c.raised == "" {
				if err != nil {
					t.Fatalf("%v\n%s", err, log.String())
				}
				if math.Abs(out.Score-c.want) > 1e-9 {
					t.Errorf("scored %v, want %v\n%s", out.Score, c.want, log.String())
				}
				return
			}
			if !errors.Is(err, eval.ErrInvalid) || !strings.Contains(err.Error(), c.raised) {
				t.Fatalf("got score %v, err %v; want the submission rejected by a %s\n%s", out.Score, err, c.raised, log.String())
			}
			if !strings.Contains(log.String(), c.msg) {
				t.Errorf("eval output does not say %q:\n%s", c.msg, log.String())
			}
		})
	}
}

// TestLanguageModellingPrepareIsReproducible prepares the task twice and
// compares the data byte for byte: the levels hold only if the same sources
// and seed always draw the same modules and hidden positions.
func TestLanguageModellingPrepareIsReproducible(t *testing.T) {
	if _, err := os.Stat(filepath.Join(lmStdlib, "os.py")); err != nil {
		t.Skipf("the Python 3.11 standard library is not installed: %v", err)
	}
	checkReproducible(t, lmName, "env/train.txt", "env/valid.txt", "env/test_contexts.json", "scripts/answers.json")
}
