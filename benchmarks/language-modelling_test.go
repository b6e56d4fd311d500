package benchmarks_test

import (
	"encoding/json"
	"errors"
	"hash/fnv"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

// The language-modelling task's text: the Python standard library's sources,
// which every sandbox can read.
const (
	lmStdlib   = "/usr/lib/python3.11"
	lmName     = "language-modelling"
	lmSegments = 64
	lmSegChars = 640
	lmWindow   = 32
	lmDistinct = 8
)

// lmKey is what prepare.py writes to scripts/key.json for these tests: the
// secret substitution and the files of each split.
type lmKey struct {
	Substitution map[string]string `json:"substitution"`
	TrainFiles   []string          `json:"train_files"`
	TestFiles    []string          `json:"test_files"`
}

// lmPrepared is a prepared copy of the task with its data read in.
type lmPrepared struct {
	task        *tasks.Task
	key         lmKey
	train, test string
	decode      map[byte]byte // the inverse substitution
}

func lmPrepare(t *testing.T) lmPrepared {
	t.Helper()
	if _, err := os.Stat(filepath.Join(lmStdlib, "os.py")); err != nil {
		t.Skipf("the Python 3.11 standard library is not installed: %v", err)
	}
	p := lmPrepared{task: tabularTask(t, lmName), decode: map[byte]byte{}}
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if err := json.Unmarshal([]byte(read(filepath.Join(p.task.ScriptsDir(), "key.json"))), &p.key); err != nil {
		t.Fatalf("key.json: %v", err)
	}
	for plain, coded := range p.key.Substitution {
		if len(plain) != 1 || len(coded) != 1 {
			t.Fatalf("key.json maps %q to %q", plain, coded)
		}
		p.decode[coded[0]] = plain[0]
	}
	p.train = read(filepath.Join(p.task.EnvDir(), "train.txt"))
	p.test = read(filepath.Join(p.task.ScriptsDir(), "test.txt"))
	return p
}

func (p lmPrepared) decoded(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = p.decode[c]
	}
	return string(b)
}

// lmRawCorpus is every .py file under the stdlib folder, as an attacker in
// the sandbox would read them, keyed by path relative to that folder.
func lmRawCorpus(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(lmStdlib, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".py") {
			return nil // unreadable corners do not matter
		}
		b, err := os.ReadFile(path)
		if err == nil {
			rel, _ := filepath.Rel(lmStdlib, path)
			files[rel] = string(b)
		}
		return nil
	})
	if err != nil || len(files) < 100 {
		t.Fatalf("read %s: %d files, %v", lmStdlib, len(files), err)
	}
	return files
}

func lmHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// lmWindowHits counts the windows of the held-out passages in text (every
// lmWindow characters long, at every offset within a passage) that occur
// verbatim somewhere in corpus. Only windows of at least lmDistinct
// different characters count: runs of indentation are found anywhere and
// tell nothing. (A substitution keeps the number of different characters,
// so every decoding of the text counts the same windows.)
func lmWindowHits(text string, corpus map[string]string) (hits, total int) {
	want := map[uint64]int{}
	for p := 0; p+lmSegChars <= len(text); p += lmSegChars {
		for i := p; i+lmWindow <= p+lmSegChars; i++ {
			w := text[i : i+lmWindow]
			var seen [256]bool
			distinct := 0
			for j := 0; j < len(w); j++ {
				if !seen[w[j]] {
					seen[w[j]] = true
					distinct++
				}
			}
			if distinct < lmDistinct {
				continue
			}
			want[lmHash(w)]++
			total++
		}
	}
	found := map[uint64]bool{}
	for _, src := range corpus {
		for i := 0; i+lmWindow <= len(src); i++ {
			if h := lmHash(src[i : i+lmWindow]); want[h] > 0 {
				found[h] = true
			}
		}
	}
	for h := range found {
		hits += want[h]
	}
	return hits, total
}

// TestLanguageModellingData checks what prepare.py gives the agent (the
// starter code, train.txt and the alphabet, nothing else), that the
// held-out text is as the eval and the research problem describe it, and
// that the split is what it claims: with the secret key, train.txt decodes
// to exactly the training files, each held-out passage comes from a
// held-out file, and no file is on both sides.
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
	if want := []string{"alphabet.json", "predict.py", "train.py", "train.txt"}; !slices.Equal(names, want) {
		t.Errorf("env/ holds %v, want exactly %v", names, want)
	}
	var alphabet []string
	raw, err := os.ReadFile(filepath.Join(p.task.EnvDir(), "alphabet.json"))
	if err == nil {
		err = json.Unmarshal(raw, &alphabet)
	}
	if err != nil {
		t.Fatalf("alphabet.json: %v", err)
	}
	wantAlphabet := []string{"\t", "\n"}
	for c := 32; c < 127; c++ {
		wantAlphabet = append(wantAlphabet, string(rune(c)))
	}
	sort.Strings(wantAlphabet)
	if !slices.Equal(alphabet, wantAlphabet) {
		t.Errorf("alphabet.json is %q, want printable ASCII, tab and newline in order", alphabet)
	}
	// The substitution is a bijection of the alphabet that moves nearly
	// every character.
	images, fixed := map[string]bool{}, 0
	for plain, coded := range p.key.Substitution {
		images[coded] = true
		if plain == coded {
			fixed++
		}
	}
	if len(p.key.Substitution) != len(alphabet) || len(images) != len(alphabet) || fixed > 5 {
		t.Errorf("substitution: %d characters onto %d, %d left in place", len(p.key.Substitution), len(images), fixed)
	}
	if len(p.test) != lmSegments*lmSegChars {
		t.Fatalf("test.txt has %d characters, want %d", len(p.test), lmSegments*lmSegChars)
	}
	if len(p.train) < 4_000_000 {
		t.Errorf("train.txt has only %d characters", len(p.train))
	}

	for _, f := range p.key.TestFiles {
		if slices.Contains(p.key.TrainFiles, f) {
			t.Errorf("%s is in both splits", f)
		}
	}
	raw2 := lmRawCorpus(t)
	var plainTrain strings.Builder
	for _, f := range p.key.TrainFiles {
		plainTrain.WriteString(raw2[f])
	}
	if p.decoded(p.train) != plainTrain.String() {
		t.Fatal("train.txt does not decode to the training files, in order")
	}
	heldOut := map[string]string{}
	for _, f := range p.key.TestFiles {
		heldOut[f] = raw2[f]
	}
	for i := range lmSegments {
		passage := p.decoded(p.test[i*lmSegChars : (i+1)*lmSegChars])
		from := ""
		for f, src := range heldOut {
			if strings.Contains(src, passage) {
				from = f
				break
			}
		}
		if from == "" {
			t.Errorf("held-out passage %d is in no held-out file", i)
		}
		if strings.Contains(plainTrain.String(), passage) {
			t.Errorf("held-out passage %d (from %s) also occurs in the training text", i, from)
		}
	}
}

// TestHostileLanguageModellingLookup plays an agent that looks the held-out
// text up among the stdlib sources it can read: the passages do not occur
// in them as they are, nor after inverting the substitution as well as
// character frequencies allow (each character of train.txt taken for the
// stdlib character of the same frequency rank). Decoded with the true key,
// the same count finds every window, which shows the count would catch a
// leak.
func TestHostileLanguageModellingLookup(t *testing.T) {
	p := lmPrepare(t)
	corpus := lmRawCorpus(t)

	truth, total := lmWindowHits(p.decoded(p.test), corpus)
	if truth != total {
		t.Fatalf("decoded with the true key, only %d of %d windows are found in the stdlib: the count is broken", truth, total)
	}
	asIs, _ := lmWindowHits(p.test, corpus)

	rank := func(text func(yield func(string) bool)) []byte {
		var counts [256]int
		for s := range text {
			for i := 0; i < len(s); i++ {
				counts[s[i]]++
			}
		}
		var chars []byte
		for c := range 256 {
			if counts[c] > 0 {
				chars = append(chars, byte(c))
			}
		}
		sort.SliceStable(chars, func(i, j int) bool { return counts[chars[i]] > counts[chars[j]] })
		return chars
	}
	codedRank := rank(func(yield func(string) bool) { yield(p.train) })
	plainRank := rank(func(yield func(string) bool) {
		for _, s := range corpus {
			if !yield(s) {
				return
			}
		}
	})
	guess := map[byte]byte{}
	for i, c := range codedRank {
		if i < len(plainRank) {
			guess[c] = plainRank[i]
		}
	}
	b := []byte(p.test)
	right := 0
	for i, c := range b {
		b[i] = guess[c]
		if b[i] == p.decode[c] {
			right++
		}
	}
	byRank, _ := lmWindowHits(string(b), corpus)
	t.Logf("%d windows of %d characters: %d found as they are, %d after frequency-rank decoding (which gets %.0f%% of characters right), %d with the true key",
		total, lmWindow, asIs, byRank, 100*float64(right)/float64(len(b)), truth)
	// A handful could match by chance; a real leak finds most windows.
	if limit := total / 1000; asIs > limit || byRank > limit {
		t.Errorf("lookup finds %d (as they are) and %d (frequency-rank decoded) of %d held-out windows, want at most %d", asIs, byRank, total, limit)
	}
}

// TestHostileLanguageModellingEval scores submissions through the hidden
// eval, the way the server does: one whose model tries to read the held-out
// text from the eval's own folder and would predict it perfectly if it
// could (it must get exactly the uniform model's score), and malformed ones,
// each rejected with a message that names the fault.
func TestHostileLanguageModellingEval(t *testing.T) {
	p := lmPrepare(t)
	provider, err := local.New(t.Context(), local.Options{Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	scorer := &eval.Scorer{Provider: provider, Python: "/usr/bin/python3"}
	const uniform = `
import numpy as np
class M:
    def start(self, n): self.n = n
    def predict(self): return np.full((self.n, 97), 1 / 97)
    def observe(self, chars): pass
`
	// The cheat tries every way to the eval's folder it knows; with the
	// text it would give the true next character probability 1.
	const cheat = `
import json, os
import numpy as np
ALPHABET = json.load(open("alphabet.json"))
def steal():
    here = os.getcwd()
    paths = ["../scripts/test.txt", os.path.join(os.path.dirname(here), "scripts", "test.txt"),
             "/proc/%d/cwd/test.txt" % os.getppid()]
    try:
        os.symlink("../scripts", "link")
        paths.append("link/test.txt")
    except OSError:
        pass
    for p in paths:
        try:
            with open(p) as f:
                return f.read()
        except OSError:
            pass
class M:
    def __init__(self): self.text = steal()
    def start(self, n): self.n, self.t = n, 0
    def predict(self):
        if self.text is None:
            return np.full((self.n, 97), 1 / 97)
        p = np.zeros((self.n, 97))
        for i in range(self.n):
            p[i, ALPHABET.index(self.text[i * 640 + self.t])] = 1
        return p
    def observe(self, chars): self.t += 1
def load(folder): return M()
`
	cases := []struct {
		name    string
		predict string // "" for no predict.py
		raised  string // "" for a valid submission
		msg     string
	}{
		{name: "uniform", predict: uniform + "def load(folder): return M()\n"},
		{name: "cheat", predict: cheat},
		{name: "no predict.py", raised: "FileNotFoundError", msg: "predict.py not found"},
		{name: "ones everywhere", predict: strings.Replace(uniform, "1 / 97", "1.0", 1) + "def load(folder): return M()\n",
			raised: "ValueError", msg: "sums to 97.000000, not 1"},
		{name: "negative", predict: uniform + "def load(folder):\n    m = M()\n    m.predict = lambda: np.tile(np.r_[-0.01, 1.01, np.zeros(95)], (m.n, 1))\n    return m\n",
			raised: "ValueError", msg: "negative probabilities"},
		{name: "nan", predict: strings.Replace(uniform, "1 / 97", "np.nan", 1) + "def load(folder): return M()\n",
			raised: "ValueError", msg: "NaN or infinite"},
		{name: "wrong shape", predict: strings.Replace(uniform, "(self.n, 97)", "(self.n, 96)", 1) + "def load(folder): return M()\n",
			raised: "RuntimeError", msg: "want (64, 97)"},
		{name: "no load", predict: uniform, raised: "RuntimeError", msg: "does not define a function load(folder)"},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			alphabet, err := os.ReadFile(filepath.Join(p.task.EnvDir(), "alphabet.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "alphabet.json"), alphabet, 0o644); err != nil {
				t.Fatal(err)
			}
			if c.predict != "" {
				if err := os.WriteFile(filepath.Join(dir, "predict.py"), []byte(c.predict), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var log tabularLog
			out, err := scorer.Score(t.Context(), p.task, eval.Request{Submission: dir, Log: &log})
			if c.raised == "" {
				if err != nil {
					t.Fatalf("%v\n%s", err, log.String())
				}
				if want := math.Log2(97); math.Abs(out.Score-want) > 1e-9 {
					t.Errorf("scored %v, want the uniform model's %v\n%s", out.Score, want, log.String())
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
// always give the same split, substitution and passages.
func TestLanguageModellingPrepareIsReproducible(t *testing.T) {
	if _, err := os.Stat(filepath.Join(lmStdlib, "os.py")); err != nil {
		t.Skipf("the Python 3.11 standard library is not installed: %v", err)
	}
	checkReproducible(t, lmName, "env/train.txt", "env/alphabet.json", "scripts/test.txt", "scripts/key.json")
}
