// Package runlog owns the on-disk record of one episode (one MCP session):
// the step trace, full script outputs, content-addressed snapshots of the
// sandbox tree, and the final result. Everything lives under one run
// directory so that an episode can be audited, replayed or rescored from
// disk alone, even if the server process was killed part way through. A run
// can also start from another's snapshot (a fork, or the resumption of a
// stopped run): it then shares the other's objects by hard links, and its
// snapshot can be laid out as a tree of links for a copy-on-write workspace.
package runlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Names of the entries inside a run directory.
const (
	traceFile    = "trace.jsonl"
	resultFile   = "result.json"
	outputsDir   = "outputs"
	snapshotsDir = "snapshots"
	objectsDir   = "objects"
)

// maxResultBytes bounds Step.Result so that the trace stays readable and
// cheap to load; the full text belongs in an output file.
const maxResultBytes = 2000

// Log is the record of one episode. Safe for concurrent use.
type Log struct {
	id  string
	dir string

	// mu is held across each trace write so that Close cannot pull the file
	// out from under an Append in flight.
	mu     sync.Mutex
	trace  *os.File
	closed bool

	// snapMu serialises snapshots: they share the hash cache and write
	// objects, and steps are sequential anyway.
	snapMu sync.Mutex
	cache  map[cacheKey]string
	// sizes are those of the files of the last snapshot (for a run made by
	// CreateFrom, of its fork point): a file of one of these sizes is
	// hashed before it is stored (see hashAndStore).
	sizes map[int64]struct{}
	// racyWindow is how recently a file may have changed and still be
	// cached; see racy. Tests shorten it to exercise the cache
	// deterministically.
	racyWindow time.Duration
	limits     SnapshotLimits

	fileLimit atomic.Int64
	// hashedBytes counts bytes read from snapshot sources, so tests can prove
	// that unchanged files are not re-read.
	hashedBytes atomic.Int64
}

// Step is one line of trace.jsonl.
type Step struct {
	Step int       `json:"step"`
	Time time.Time `json:"time"`
	Tool string    `json:"tool"`
	// Arguments are the call's arguments; Append cuts them to about
	// MaxArgumentBytes and records in ArgumentsElided what it cut, by
	// argument name ("*" for the arguments as a whole).
	Arguments       json.RawMessage   `json:"arguments,omitempty"`
	ArgumentsElided map[string]Elided `json:"arguments_elided,omitempty"`
	// ArgumentsB64 holds the exact bytes of Arguments, in base64, when they
	// are not valid UTF-8 (and not cut); Arguments then has U+FFFD in place
	// of the odd bytes, so that every trace line is valid UTF-8 JSON. Set by
	// Append.
	ArgumentsB64 string `json:"arguments_b64,omitempty"`
	// Result is a short summary of the result text; Append truncates it to
	// maxResultBytes.
	Result     string  `json:"result"`
	IsError    bool    `json:"is_error"`
	DurationMS float64 `json:"duration_ms"`
	// Snapshot is the manifest name, e.g. "step-0003".
	Snapshot string `json:"snapshot,omitempty"`
	// Output is the path of the full output file, relative to the run dir.
	Output string `json:"output,omitempty"`
}

// Create makes <root>/<runID>/ with its subfolders and an empty trace.jsonl
// opened for appending. It fails if the run directory already exists, so two
// episodes can never write into one record.
func Create(root, runID string) (*Log, error) {
	if err := validName(runID); err != nil {
		return nil, fmt.Errorf("create run: %w", err)
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("create run %s: %w", runID, err)
	}
	if err := os.MkdirAll(absRoot, 0o755); err != nil {
		return nil, fmt.Errorf("create runs root %s: %w", absRoot, err)
	}
	dir := filepath.Join(absRoot, runID)
	// Mkdir, not MkdirAll: its EEXIST is the atomic "already exists" check.
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create run dir %s: %w", dir, err)
	}
	l, err := open(dir, runID)
	if err != nil {
		// The directory is ours and holds nothing yet; leaving it would make
		// a retry with the same ID fail.
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return l, nil
}

func open(dir, runID string) (*Log, error) {
	for _, sub := range []string{outputsDir, snapshotsDir, objectsDir} {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", p, err)
		}
	}
	tracePath := filepath.Join(dir, traceFile)
	f, err := os.OpenFile(tracePath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create trace %s: %w", tracePath, err)
	}
	l := &Log{
		id:         runID,
		dir:        dir,
		trace:      f,
		cache:      map[cacheKey]string{},
		sizes:      map[int64]struct{}{},
		racyWindow: defaultRacyWindow,
		limits:     SnapshotLimits{}.withDefaults(),
	}
	l.fileLimit.Store(defaultSnapshotFileLimit)
	return l, nil
}

// Dir returns the absolute path of the run directory.
func (l *Log) Dir() string { return l.dir }

// ID returns the run ID.
func (l *Log) ID() string { return l.id }

// Append writes s as one JSON line. The line goes out in a single write(2) on
// an O_APPEND file, so a killed process loses at most the step in flight and
// lines never interleave, even with other writers of the same file. There is
// no fsync per step: a killed process keeps what it wrote in the page cache,
// and only a machine crash could lose the tail. A zero Time is set to now.
func (l *Log) Append(s Step) error {
	if s.Time.IsZero() {
		s.Time = time.Now().UTC()
	}
	s.Result = truncateSummary(s.Result, maxResultBytes)
	if !utf8.Valid(s.Arguments) {
		// A raw JSON message passes its bytes through unchecked, and a line
		// that is not UTF-8 fails strict decoders. Bytes that are not UTF-8
		// can only sit inside JSON strings, so replacing them keeps the
		// arguments valid JSON; the exact bytes are kept alongside, unless
		// they are too large to keep, where the cut below records a digest.
		if len(s.Arguments) <= MaxArgumentBytes {
			s.ArgumentsB64 = base64.StdEncoding.EncodeToString(s.Arguments)
		}
		s.Arguments = bytes.ToValidUTF8(s.Arguments, []byte("\uFFFD"))
	}
	var elided map[string]Elided
	s.Arguments, elided = capArguments(s.Arguments)
	if len(elided) > 0 {
		if s.ArgumentsElided == nil {
			s.ArgumentsElided = elided
		} else {
			maps.Copy(s.ArgumentsElided, elided)
		}
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Tool arguments and results are full of code; \u003c noise makes the
	// trace hard to read and buys nothing outside HTML.
	enc.SetEscapeHTML(false)
	// Encode compacts RawMessage and ends with '\n', so the record is exactly
	// one line whatever the caller's Arguments look like.
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("encode step %d: %w", s.Step, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("append step %d: %w", s.Step, os.ErrClosed)
	}
	if _, err := l.trace.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write trace %s: %w", l.trace.Name(), err)
	}
	return nil
}

// Close flushes and closes the trace; later Appends fail. It is idempotent.
// Snapshots, outputs and results keep working after Close because they open
// their files per call, which lets a caller close the trace and then write
// the final result.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	// One fsync per episode is cheap and makes the finished trace durable.
	syncErr := l.trace.Sync()
	if err := l.trace.Close(); err != nil {
		return fmt.Errorf("close trace %s: %w", l.trace.Name(), err)
	}
	if syncErr != nil {
		return fmt.Errorf("sync trace %s: %w", l.trace.Name(), syncErr)
	}
	return nil
}

// truncateSummary cuts s to at most limit bytes on a rune boundary and notes
// how many bytes were dropped, so a reader knows the summary is partial.
func truncateSummary(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…[truncated %d bytes]", s[:cut], len(s)-cut)
}

// validName accepts a single path element, so that caller-chosen names
// (run IDs, output and snapshot names) cannot escape their folder.
func validName(name string) error {
	if name == "" || name == "." || strings.Contains(name, "..") || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("invalid name %q: want a single path element without \"..\"", name)
	}
	return nil
}
