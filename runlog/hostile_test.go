package runlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/dirtree"
	"github.com/mlab/mlab/internal/dirtree/dirtreetest"
)

// chain returns n directory names of the given length.
func chain(n, length int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = strings.Repeat(string(rune('a'+i%26)), length)
	}
	return names
}

// snapshotRestore snapshots src, restores it and checks that the restored
// tree is the same, byte for byte.
func snapshotRestore(t *testing.T, l *Log, src, name string) Manifest {
	t.Helper()
	m := snapshot(t, l, src, name)
	dst := filepath.Join(t.TempDir(), "out")
	if err := l.Restore(context.Background(), name, dst); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	dirtreetest.Equal(t, dirtreetest.State(t, dst), dirtreetest.State(t, src))
	return m
}

// TestHostileSnapshotDeepTree snapshots and restores trees whose paths are
// longer than PATH_MAX (4,096 bytes), which used to take time quadratic in
// the depth (12.8 s per step at 4,000 levels).
func TestHostileSnapshotDeepTree(t *testing.T) {
	tests := []struct {
		name          string
		depth, length int
	}{
		{"4000 levels", 4000, 1},
		{"long names", 40, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			dirtreetest.MakeChain(t, src, chain(tt.depth, tt.length), "leaf.txt", "bottom")
			l := newTestLog(t)
			m := snapshotRestore(t, l, src, "final")
			last := m.Entries[len(m.Entries)-1]
			// Each entry names its directory by index: the manifest grows
			// with the entries, not with their depths (by full paths, 4000
			// levels made 16 MB).
			if info, err := os.Stat(l.manifestPath("final")); err != nil || info.Size() > int64((tt.depth+1)*(tt.length+200)) {
				t.Errorf("manifest of %d levels of %d-byte names: %v bytes, %v", tt.depth, tt.length, info.Size(), err)
			}
			if len(m.Entries) != tt.depth+1 || len(last.Path) <= unix.PathMax || last.Type != TypeFile {
				t.Fatalf("%d entries, last %q (%d bytes), want %d entries ending in a file deeper than PATH_MAX",
					len(m.Entries), dirtree.ShortPath(last.Path), len(last.Path), tt.depth+1)
			}
		})
	}
}

// TestHostileSnapshotNonUTF8Names checks that names that are not UTF-8 are
// kept exactly: they used to become U+FFFD, so that two of them collided and
// one alone came back under another name.
func TestHostileSnapshotNonUTF8Names(t *testing.T) {
	src := t.TempDir()
	for _, name := range []string{"a\xff", "a\xfe", "\xc3\x28dir"} {
		writeFile(t, filepath.Join(src, name), []byte(name), 0o644)
	}
	writeFile(t, filepath.Join(src, "d\x80", "inner\xff.txt"), []byte("inner"), 0o600)
	if err := os.Symlink("target\xff", filepath.Join(src, "link\xfe")); err != nil {
		t.Fatal(err)
	}
	l := newTestLog(t)
	m := snapshotRestore(t, l, src, "final")
	if len(m.Entries) != 6 {
		t.Errorf("%d entries, want 6: %+v", len(m.Entries), m.Entries)
	}
	raw, err := os.ReadFile(l.manifestPath("final"))
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(raw) || !json.Valid(raw) {
		t.Fatal("manifest is not valid UTF-8 JSON")
	}
}

// TestManifestReadsOldFormat checks that manifests written before names
// could be base64 read as before.
func TestManifestReadsOldFormat(t *testing.T) {
	var m Manifest
	old := `{"name":"s","time":"2025-01-01T00:00:00Z","entries":[{"path":"a\ufffd","type":"symlink","mode":511,"target":"x"}]}`
	if err := json.Unmarshal([]byte(old), &m); err != nil {
		t.Fatal(err)
	}
	if e := m.Entries[0]; e.Path != "a\ufffd" || e.Target != "x" || e.PathB64 != "" {
		t.Fatalf("entry = %+v", e)
	}
}

// TestHostileTraceInvalidUTF8 checks that raw tool arguments that are not
// UTF-8 still make a trace line that strict decoders accept, with the exact
// bytes kept.
func TestHostileTraceInvalidUTF8(t *testing.T) {
	tests := []struct {
		name string
		args []byte
	}{
		{"in a string", []byte("{\"path\":\"a\xff\xfe.py\",\"content\":\"x\"}")},
		{"in a key", []byte("{\"pa\xc3th\":[\"\xed\xa0\x80\"]}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLog(t)
			if err := l.Append(Step{Step: 1, Tool: "write_file", Arguments: tt.args, Result: "ok \xff"}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(l.Dir(), traceFile))
			if err != nil {
				t.Fatal(err)
			}
			line, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
			if !utf8.Valid(line) {
				t.Fatalf("trace line is not UTF-8: %q", line)
			}
			var s Step
			if err := json.Unmarshal(line, &s); err != nil {
				t.Fatalf("trace line does not decode: %v", err)
			}
			got, err := base64.StdEncoding.DecodeString(s.ArgumentsB64)
			if err != nil || !bytes.Equal(got, tt.args) {
				t.Fatalf("arguments_b64 = %q (%v), want the raw arguments", got, err)
			}
		})
	}
}

// TestHostileSnapshotLimits checks that each bound on a snapshot gives an
// error the agent can act on, naming workspace paths and no host path.
func TestHostileSnapshotLimits(t *testing.T) {
	src := t.TempDir()
	dirtreetest.MakeChain(t, src, chain(30, 3), "leaf.txt", "bottom")
	for i := range 20 {
		writeFile(t, filepath.Join(src, "flat", fmt.Sprintf("f%02d", i)), []byte("0123456789"), 0o644)
	}
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context
		lim  SnapshotLimits
		want string
	}{
		{"entries", context.Background(), SnapshotLimits{Entries: 40}, "more than 40 entries"},
		{"depth", context.Background(), SnapshotLimits{Depth: 10}, `more than 10 levels of directories (at "aaa/bbb/ccc/ddd/eee/fff/ggg/hhh/iii/jjj")`},
		{"path bytes", context.Background(), SnapshotLimits{PathBytes: 500}, "more than 500 bytes of path names"},
		{"file bytes", context.Background(), SnapshotLimits{FileBytes: 100}, `more than 100 bytes in files (at "flat/f`},
		{"deadline", expired, SnapshotLimits{}, "reading it took longer than allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLog(t)
			l.SetSnapshotLimits(tt.lim)
			_, err := l.Snapshot(tt.ctx, src, "s")
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Snapshot = %v, want ErrTooLarge", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "delete files") {
				t.Errorf("error %q, want it to contain %q and say what to do", msg, tt.want)
			}
			if strings.Contains(msg, src) || strings.Contains(msg, os.TempDir()) {
				t.Errorf("error %q shows a host path", msg)
			}
			if _, err := os.Stat(l.manifestPath("s")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed snapshot left a manifest: %v", err)
			}
		})
	}
}

// BenchmarkSnapshotDeep shows how a snapshot's cost grows with the depth of
// a chain of directories: compare depth 1000 and 4000 (it used to grow
// fourfold per doubling, 4.1 s to 67 s here). The walk itself is linear;
// what grows faster is the manifest, which names every entry by its full
// path, so its size (reported as manifest-MB) is the sum of the path
// lengths: quadratic in a chain's depth, and bounded by
// SnapshotLimits.PathBytes.
func BenchmarkSnapshotDeep(b *testing.B) {
	for _, depth := range []int{1000, 4000} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			src := b.TempDir()
			dirtreetest.MakeChain(b, src, chain(depth, 1), "leaf.txt", "bottom")
			l := newCachingLog(b)
			i := 0
			for b.Loop() {
				i++
				if _, err := l.Snapshot(context.Background(), src, fmt.Sprintf("s%d", i)); err != nil {
					b.Fatal(err)
				}
			}
			if fi, err := os.Stat(l.manifestPath("s1")); err == nil {
				b.ReportMetric(float64(fi.Size())/1e6, "manifest-MB")
			}
		})
	}
}

// TestManifestNesting checks the wire form's references to a directory
// listed earlier: they read back as full paths, and a hand-edited manifest
// cannot use them to name something outside its tree or a path through a
// file.
func TestManifestNesting(t *testing.T) {
	m := Manifest{Name: "s", Entries: []Entry{
		{Path: "a", Type: TypeDir}, {Path: "a/b\xff", Type: TypeDir}, {Path: "a/b\xff/c.txt", Type: TypeFile},
		{Path: "top.txt", Type: TypeFile}, {Path: "x/orphan.txt", Type: TypeFile},
	}}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Manifest
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	for i := range m.Entries {
		if back.Entries[i].Path != m.Entries[i].Path {
			t.Errorf("entry %d: %q read back as %q (wire %s)", i, m.Entries[i].Path, back.Entries[i].Path, raw)
		}
	}
	bad := []struct{ name, entries string }{
		{"forward reference", `[{"path":"a","type":"file","in":2},{"path":"d","type":"dir"}]`},
		{"not a directory", `[{"path":"f","type":"file"},{"path":"a","type":"file","in":1}]`},
		{"negative", `[{"path":"a","type":"file","in":-1}]`},
		{"dot dot", `[{"path":"d","type":"dir"},{"path":"..","type":"dir","in":1}]`},
		{"slash in a name", `[{"path":"d","type":"dir"},{"path":"../x","type":"file","in":1}]`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var m Manifest
			if err := json.Unmarshal([]byte(`{"name":"s","entries":`+tc.entries+`}`), &m); err == nil {
				t.Errorf("accepted %s as %+v", tc.entries, m.Entries)
			}
		})
	}
}
