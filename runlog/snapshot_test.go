package runlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newCachingLog returns a Log whose cache accepts files however recently they
// changed, so tests can write a tree and immediately observe cache hits.
// Tests that change a file in place also move its mtime, so that a change can
// never hide inside one timestamp tick.
func newCachingLog(t testing.TB) *Log {
	t.Helper()
	l := newTestLog(t)
	l.racyWindow = 0
	return l
}

func randomBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func writeFile(t testing.TB, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// objects lists the stored objects by digest and fails on leftover temp files.
func objects(t testing.TB, l *Log) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	root := filepath.Join(l.Dir(), objectsDir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temp file left in objects: %s", p)
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		found[strings.ReplaceAll(rel, string(filepath.Separator), "")] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func entryMap(m Manifest) map[string]Entry {
	out := map[string]Entry{}
	for _, e := range m.Entries {
		out[e.Path] = e
	}
	return out
}

func snapshot(t testing.TB, l *Log, dir, name string) Manifest {
	t.Helper()
	got, err := l.Snapshot(context.Background(), dir, name)
	if err != nil {
		t.Fatalf("Snapshot %s: %v", name, err)
	}
	if got != name {
		t.Fatalf("Snapshot returned %q, want %q", got, name)
	}
	m, err := l.ReadManifest(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSnapshotCache(t *testing.T) {
	const bigSize = 10 << 20
	later := time.Now().Add(time.Hour)
	tests := []struct {
		name        string
		mutate      func(t *testing.T, big string)
		wantNew     int  // objects added by the snapshot after mutate
		checkRehash bool // whether to check the big file was re-read
		wantRehash  bool
		wantMode    fs.FileMode
	}{
		{"unchanged", func(*testing.T, string) {}, 0, true, false, 0o644},
		{"appended byte", func(t *testing.T, big string) {
			writeFile(t, big, randomBytes(2, bigSize+1), 0o644)
		}, 1, true, true, 0o644},
		{"same-size rewrite", func(t *testing.T, big string) {
			writeFile(t, big, randomBytes(3, bigSize), 0o644)
			if err := os.Chtimes(big, later, later); err != nil {
				t.Fatal(err)
			}
		}, 1, true, true, 0o644},
		{"touched only", func(t *testing.T, big string) {
			if err := os.Chtimes(big, later, later); err != nil {
				t.Fatal(err)
			}
		}, 0, true, true, 0o644},
		{"chmod only", func(t *testing.T, big string) {
			if err := os.Chmod(big, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 0, false, false, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newCachingLog(t)
			src := t.TempDir()
			big := filepath.Join(src, "model.bin")
			writeFile(t, big, randomBytes(1, bigSize), 0o644)
			writeFile(t, filepath.Join(src, "notes.txt"), []byte("notes"), 0o644)

			m1 := snapshot(t, l, src, "step-0001")
			if n := len(objects(t, l)); n != 2 {
				t.Fatalf("after first snapshot: %d objects, want 2", n)
			}
			if got := l.hashedBytes.Load(); got != bigSize+5 {
				t.Fatalf("first snapshot hashed %d bytes, want %d", got, bigSize+5)
			}

			// Unchanged tree: nothing stored, nothing re-read.
			hashed := l.hashedBytes.Load()
			m2 := snapshot(t, l, src, "step-0002")
			if n := len(objects(t, l)); n != 2 {
				t.Fatalf("after unchanged snapshot: %d objects, want 2", n)
			}
			if got := l.hashedBytes.Load(); got != hashed {
				t.Fatalf("unchanged snapshot re-read %d bytes", got-hashed)
			}
			if fmt.Sprint(m1.Entries) != fmt.Sprint(m2.Entries) {
				t.Fatalf("manifests differ:\n%v\n%v", m1.Entries, m2.Entries)
			}

			tt.mutate(t, big)
			hashed = l.hashedBytes.Load()
			m3 := snapshot(t, l, src, "step-0003")
			if n := len(objects(t, l)); n != 2+tt.wantNew {
				t.Errorf("after mutation: %d objects, want %d", n, 2+tt.wantNew)
			}
			if rehashed := l.hashedBytes.Load() > hashed; tt.checkRehash && rehashed != tt.wantRehash {
				t.Errorf("re-read big file = %v, want %v", rehashed, tt.wantRehash)
			}
			e := entryMap(m3)["model.bin"]
			data, err := os.ReadFile(big)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != int64(len(data)) || e.Mode != tt.wantMode {
				t.Errorf("entry = %+v, want sha %x size %d mode %v", e, sum, len(data), tt.wantMode)
			}
		})
	}
}

func TestSnapshotRecentFileNotCached(t *testing.T) {
	// Default racy window: a file written just now could change again within
	// the same timestamp tick, so the next snapshot must re-read it.
	l := newTestLog(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "fresh.txt"), []byte("0123456789"), 0o644)
	snapshot(t, l, src, "a")
	snapshot(t, l, src, "b")
	if got := l.hashedBytes.Load(); got != 20 {
		t.Fatalf("hashed %d bytes, want 20 (fresh file re-read)", got)
	}
}

func TestSnapshotSymlinksNotFollowed(t *testing.T) {
	l := newCachingLog(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	links := map[string]string{
		"passwd":   "/etc/passwd",
		"etc":      "/etc",
		"rel":      "a.txt",
		"dangling": "does-not-exist",
		"escape":   "../../..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	m := snapshot(t, l, src, "s")
	entries := entryMap(m)
	for name, target := range links {
		e, ok := entries[name]
		if !ok || e.Type != TypeSymlink || e.Target != target || e.SHA256 != "" {
			t.Errorf("entry %s = %+v, want symlink to %s", name, e, target)
		}
	}
	for p := range entries {
		if strings.HasPrefix(p, "etc/") || strings.HasPrefix(p, "escape/") {
			t.Errorf("walk followed a symlink: %s", p)
		}
	}
	objs := objects(t, l)
	if len(objs) != 1 {
		t.Errorf("%d objects, want 1 (a.txt only)", len(objs))
	}
	if data, err := os.ReadFile("/etc/passwd"); err == nil {
		sum := sha256.Sum256(data)
		if objs[hex.EncodeToString(sum[:])] {
			t.Error("/etc/passwd content was stored")
		}
	}
}

func TestSnapshotEntries(t *testing.T) {
	l := newCachingLog(t)
	l.SetSnapshotFileLimit(100)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "small.txt"), []byte("small"), 0o600)
	writeFile(t, filepath.Join(src, "big.bin"), randomBytes(4, 200), 0o644)
	writeFile(t, filepath.Join(src, "limit.bin"), randomBytes(5, 100), 0o644)
	if err := os.MkdirAll(filepath.Join(src, "empty", "nested"), 0o750); err != nil {
		t.Fatal(err)
	}
	m := snapshot(t, l, src, "s")
	tests := []struct {
		path string
		want Entry
	}{
		{"small.txt", Entry{Type: TypeFile, Mode: 0o600, Size: 5}},
		{"big.bin", Entry{Type: TypeFile, Mode: 0o644, Size: 200, Skipped: SkippedTooLarge}},
		{"limit.bin", Entry{Type: TypeFile, Mode: 0o644, Size: 100}},
		{"empty", Entry{Type: TypeDir, Mode: 0o750}},
		{"empty/nested", Entry{Type: TypeDir, Mode: 0o750}},
	}
	entries := entryMap(m)
	if len(entries) != len(tests) {
		t.Errorf("manifest has %d entries, want %d: %+v", len(entries), len(tests), m.Entries)
	}
	for _, tt := range tests {
		got := entries[tt.path]
		tt.want.Path = tt.path
		if got.SHA256 != "" != (tt.want.Type == TypeFile && tt.want.Skipped == "") {
			t.Errorf("%s: sha256 %q unexpected", tt.path, got.SHA256)
		}
		got.SHA256 = ""
		if got != tt.want {
			t.Errorf("%s = %+v, want %+v", tt.path, got, tt.want)
		}
	}
	if n := len(objects(t, l)); n != 2 {
		t.Errorf("%d objects, want 2 (too-large file not stored)", n)
	}
	if m.Name != "s" || m.Time.IsZero() {
		t.Errorf("manifest header = %q %v", m.Name, m.Time)
	}
}

func TestSnapshotErrors(t *testing.T) {
	l := newTestLog(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	snapshot(t, l, src, "taken")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		dir    string
		snap   string
		wantIs error
	}{
		{"duplicate name", context.Background(), src, "taken", fs.ErrExist},
		{"cancelled", cancelled, src, "c", context.Canceled},
		{"missing dir", context.Background(), filepath.Join(src, "nope"), "m", fs.ErrNotExist},
		{"bad name", context.Background(), src, "../x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Snapshot(tt.ctx, tt.dir, tt.snap)
			if err == nil {
				t.Fatal("Snapshot succeeded, want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("Snapshot = %v, want %v", err, tt.wantIs)
			}
			if tt.snap != "taken" && validName(tt.snap) == nil {
				if _, err := os.Stat(l.manifestPath(tt.snap)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("failed snapshot left a manifest: %v", err)
				}
			}
		})
	}
}

func TestSnapshotUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files regardless of permissions")
	}
	l := newTestLog(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "locked.txt"), []byte("x"), 0o000)
	if err := os.MkdirAll(filepath.Join(src, "lockeddir", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "lockeddir"), 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(src, "lockeddir"), 0o755) })
	entries := entryMap(snapshot(t, l, src, "s"))
	for _, p := range []string{"locked.txt", "lockeddir"} {
		if entries[p].Skipped != SkippedUnreadable {
			t.Errorf("%s = %+v, want skipped unreadable", p, entries[p])
		}
	}
}

// BenchmarkSnapshotUnchanged measures the steady-state cost of a per-step
// snapshot when nothing changed: it should be dominated by stat calls and
// the manifest write, not by the 50 MB file.
func BenchmarkSnapshotUnchanged(b *testing.B) {
	l := newCachingLog(b)
	src := b.TempDir()
	for i := range 200 {
		writeFile(b, filepath.Join(src, fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%03d.py", i)), randomBytes(uint64(i), 2048), 0o644)
	}
	writeFile(b, filepath.Join(src, "weights.bin"), randomBytes(999, 50<<20), 0o644)
	ctx := context.Background()
	if _, err := l.Snapshot(ctx, src, "warm"); err != nil {
		b.Fatal(err)
	}
	hashed := l.hashedBytes.Load()
	i := 0
	for b.Loop() {
		i++
		if _, err := l.Snapshot(ctx, src, fmt.Sprintf("step-%06d", i)); err != nil {
			b.Fatal(err)
		}
	}
	if got := l.hashedBytes.Load(); got != hashed {
		b.Fatalf("unchanged snapshots re-read %d bytes", got-hashed)
	}
}

// TestSnapshotKnownContentNotRewritten: content that is likely stored
// already (a small file, or one of the size of a file of the previous
// snapshot) is hashed first and not written again when it is; other
// files are read once, while they are stored.
func TestSnapshotKnownContentNotRewritten(t *testing.T) {
	const big = 1 << 20
	tests := []struct {
		name     string
		mutate   func(t *testing.T, src string)
		wantRead int64 // bytes read by the second snapshot
		wantNew  int   // objects it adds
	}{
		{"renamed big file", func(t *testing.T, src string) {
			os.Rename(filepath.Join(src, "a.bin"), filepath.Join(src, "b.bin"))
		}, big, 0},
		{"renamed small file", func(t *testing.T, src string) {
			os.Rename(filepath.Join(src, "s.txt"), filepath.Join(src, "t.txt"))
		}, 5, 0},
		{"new content of a known size", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "c.bin"), randomBytes(9, big), 0o644)
		}, 2 * big, 1},
		{"new content of a new size", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "c.bin"), randomBytes(9, big+1), 0o644)
		}, big + 1, 1},
		{"new small file", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "u.txt"), []byte("other"), 0o644)
		}, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newCachingLog(t)
			src := t.TempDir()
			writeFile(t, filepath.Join(src, "a.bin"), randomBytes(1, big), 0o644)
			writeFile(t, filepath.Join(src, "s.txt"), []byte("small"), 0o644)
			snapshot(t, l, src, "step-0001")
			n, read := len(objects(t, l)), l.hashedBytes.Load()
			tt.mutate(t, src)
			m := snapshot(t, l, src, "step-0002")
			if got := l.hashedBytes.Load() - read; got != tt.wantRead {
				t.Errorf("read %d bytes, want %d", got, tt.wantRead)
			}
			if got := len(objects(t, l)) - n; got != tt.wantNew {
				t.Errorf("stored %d objects, want %d", got, tt.wantNew)
			}
			dst := filepath.Join(t.TempDir(), "out")
			if err := l.Restore(t.Context(), m.Name, dst); err != nil {
				t.Fatal(err)
			}
			if got, want := treeState(t, dst), treeState(t, src); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("restored %v, want %v", got, want)
			}
		})
	}
}
