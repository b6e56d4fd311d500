package runlog

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// parentRun is a run with a snapshot "step-0003" of buildTree's tree and a
// later one, "step-0004", with a file that step-0003 does not have.
func parentRun(t *testing.T) (parent *Log, src string) {
	t.Helper()
	parent = newCachingLog(t)
	src = t.TempDir()
	buildTree(t, src)
	snapshot(t, parent, src, "step-0003")
	writeFile(t, filepath.Join(src, "later.txt"), []byte("after the fork point"), 0o644)
	snapshot(t, parent, src, "step-0004")
	if err := os.Remove(filepath.Join(src, "later.txt")); err != nil {
		t.Fatal(err)
	}
	return parent, src
}

// sums lists the objects a manifest names.
func sums(m Manifest) map[string]bool {
	out := map[string]bool{}
	for _, e := range m.Entries {
		if e.Type == TypeFile && e.Skipped == "" {
			out[e.SHA256] = true
		}
	}
	return out
}

func sameInode(t *testing.T, a, b string) bool {
	t.Helper()
	ia, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(ia, ib)
}

// otherFilesystem returns a fresh directory on another filesystem than
// t.TempDir(), or skips the test where there is none.
func otherFilesystem(t *testing.T) string {
	t.Helper()
	var a, b syscall.Stat_t
	if syscall.Stat(t.TempDir(), &a) != nil || syscall.Stat("/dev/shm", &b) != nil || a.Dev == b.Dev {
		t.Skip("no second filesystem (/dev/shm) to copy across")
	}
	dir, err := os.MkdirTemp("/dev/shm", "mlab-runlog-test-")
	if err != nil {
		t.Skipf("cannot write /dev/shm: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestCreateFrom(t *testing.T) {
	tests := []struct {
		name   string
		root   func(t *testing.T) string
		linked bool // whether objects are shared inodes
	}{
		{"same filesystem", func(t *testing.T) string { return t.TempDir() }, true},
		{"across filesystems", otherFilesystem, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, src := parentRun(t)
			root := tt.root(t)
			child, err := CreateFrom(root, "child", parent.Dir(), "step-0003")
			if err != nil {
				t.Fatalf("CreateFrom: %v", err)
			}
			defer child.Close()
			if child.Dir() != filepath.Join(root, "child") || child.ID() != "child" {
				t.Errorf("child is %s (%s)", child.Dir(), child.ID())
			}

			want, err := parent.ReadManifest("step-0003")
			if err != nil {
				t.Fatal(err)
			}
			got, err := child.ReadManifest(ForkSnapshot)
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != ForkSnapshot || !got.Time.Equal(want.Time) || !reflect.DeepEqual(got.Entries, want.Entries) {
				t.Errorf("child's %s differs from the parent's step-0003:\n%+v\n%+v", ForkSnapshot, got, want)
			}
			// Exactly the objects of the fork point: not step-0004's.
			stored := objects(t, child)
			if !reflect.DeepEqual(stored, sums(want)) {
				t.Errorf("child stores %v, want %v", stored, sums(want))
			}
			for sum := range stored {
				if same := sameInode(t, child.objectPath(sum), parent.objectPath(sum)); same != tt.linked {
					t.Errorf("object %s shared with the parent: %v, want %v", sum[:8], same, tt.linked)
				}
				if info, err := os.Stat(child.objectPath(sum)); err != nil || info.Mode().Perm() != 0o444 {
					t.Errorf("object %s: %v %v, want read-only", sum[:8], info.Mode(), err)
				}
			}
			// The child is a run of its own: it restores, and records.
			dst := filepath.Join(t.TempDir(), "out")
			t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "ro"), 0o755) })
			if err := child.Restore(t.Context(), ForkSnapshot, dst); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got, want := treeState(t, dst), treeState(t, src); !reflect.DeepEqual(got, want) {
				t.Errorf("restored fork differs from the parent's tree:\n%v\n%v", got, want)
			}
			if err := child.Append(Step{Step: 1, Tool: "t"}); err != nil {
				t.Errorf("child trace: %v", err)
			}
			if _, err := os.Stat(filepath.Join(parent.Dir(), snapshotsDir, ForkSnapshot+".json")); err == nil {
				t.Error("the fork wrote into the parent")
			}
		})
	}
}

func TestCreateFromErrors(t *testing.T) {
	tests := []struct {
		name    string
		snap    string
		prepare func(t *testing.T, parent *Log, root string)
		want    string
		keepDir bool // the child's directory existed before and must stay
	}{
		{"no such snapshot", "step-0009", nil, "no such file", false},
		{"invalid snapshot name", "../step-0003", nil, "invalid name", false},
		{"missing object", "step-0003", func(t *testing.T, parent *Log, _ string) {
			m, _ := parent.ReadManifest("step-0003")
			if err := os.Remove(parent.objectPath(entryMap(m)["secret.txt"].SHA256)); err != nil {
				t.Fatal(err)
			}
		}, "is missing", false},
		{"run exists", "step-0003", func(t *testing.T, _ *Log, root string) {
			writeFile(t, filepath.Join(root, "child", "mine.txt"), []byte("x"), 0o644)
		}, "file exists", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, _ := parentRun(t)
			root := t.TempDir()
			if tt.prepare != nil {
				tt.prepare(t, parent, root)
			}
			l, err := CreateFrom(root, "child", parent.Dir(), tt.snap)
			if err == nil {
				l.Close()
				t.Fatal("CreateFrom succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			_, statErr := os.Stat(filepath.Join(root, "child"))
			if exists := statErr == nil; exists != tt.keepDir {
				t.Errorf("child dir exists after the failure: %v, want %v", exists, tt.keepDir)
			}
		})
	}
}

// TestHostileForkTamperedManifest: a manifest edited to point outside the
// store or the tree is refused by CreateFrom and LinkTree, and nothing is
// created outside the destination.
func TestHostileForkTamperedManifest(t *testing.T) {
	tests := []struct {
		name   string
		entry  Entry
		create bool // CreateFrom refuses it (else only LinkTree does)
	}{
		{"sum escapes the store", Entry{Path: "a.txt", Type: TypeFile, Mode: 0o644, SHA256: "../../../../../../etc/passwd"}, true},
		{"path escapes the tree", Entry{Path: "../escaped.txt", Type: TypeFile, Mode: 0o644, SHA256: sha("x")}, false},
		{"absolute path", Entry{Path: "/tmp/escaped.txt", Type: TypeFile, Mode: 0o644, SHA256: sha("x")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := newCachingLog(t)
			src := t.TempDir()
			writeFile(t, filepath.Join(src, "x.txt"), []byte("x"), 0o644)
			snapshot(t, parent, src, "step-0001")
			m := Manifest{Name: "step-0001", Entries: []Entry{tt.entry}}
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, parent.manifestPath("step-0001"), data, 0o644)

			child, err := CreateFrom(t.TempDir(), "child", parent.Dir(), "step-0001")
			if tt.create {
				if err == nil || !strings.Contains(err.Error(), "invalid sha256") {
					t.Errorf("CreateFrom: %v, want an invalid sha256 error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateFrom: %v", err)
			}
			defer child.Close()
			out := t.TempDir()
			dst := filepath.Join(out, "inner", "tree")
			if _, err := child.LinkTree(t.Context(), ForkSnapshot, dst); err == nil {
				t.Error("LinkTree accepted the tampered manifest")
			}
			if _, err := os.Stat(filepath.Join(out, "inner", "escaped.txt")); err == nil {
				t.Error("LinkTree wrote outside its destination")
			}
		})
	}
}

func TestLinkTree(t *testing.T) {
	tests := []struct {
		name   string
		dst    func(t *testing.T) string
		linked bool
	}{
		{"same filesystem", func(t *testing.T) string { return filepath.Join(t.TempDir(), "lower") }, true},
		{"across filesystems", func(t *testing.T) string { return filepath.Join(otherFilesystem(t), "lower") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, src := parentRun(t)
			child, err := CreateFrom(filepath.Join(filepath.Dir(parent.Dir()), "runs"), "child", parent.Dir(), "step-0003")
			if err != nil {
				t.Fatal(err)
			}
			defer child.Close()
			dst := tt.dst(t)
			t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "ro"), 0o755) })
			modes, err := child.LinkTree(t.Context(), ForkSnapshot, dst)
			if err != nil {
				t.Fatalf("LinkTree: %v", err)
			}
			if info, err := os.Stat(dst); err != nil || info.Mode().Perm() != 0o700 {
				t.Errorf("tree root: %v %v, want 0700", info.Mode(), err)
			}
			m, _ := child.ReadManifest(ForkSnapshot)
			want := treeState(t, src)
			got := treeState(t, dst)
			files := 0
			for _, e := range m.Entries {
				if e.Type != TypeFile {
					continue
				}
				files++
				if modes[e.Path] != e.Mode.Perm() {
					t.Errorf("%s: mode %v, want %v", e.Path, modes[e.Path], e.Mode.Perm())
				}
				p := filepath.Join(dst, filepath.FromSlash(e.Path))
				if same := sameInode(t, p, child.objectPath(e.SHA256)); same != tt.linked {
					t.Errorf("%s is the object's inode: %v, want %v", e.Path, same, tt.linked)
				}
				// A link has the object's mode; the layer above applies
				// modes. A copy has its own.
				info, _ := os.Stat(p)
				wantMode := fs.FileMode(0o444)
				if !tt.linked {
					wantMode = e.Mode.Perm()
				}
				if info.Mode().Perm() != wantMode {
					t.Errorf("%s: inode mode %v, want %v", e.Path, info.Mode().Perm(), wantMode)
				}
				got[filepath.FromSlash(e.Path)] = strings.Replace(got[filepath.FromSlash(e.Path)], info.Mode().Perm().String(), e.Mode.Perm().String(), 1)
			}
			if len(modes) != files {
				t.Errorf("modes has %d files, the manifest %d", len(modes), files)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("linked tree differs from the source:\n%v\n%v", got, want)
			}
			if _, err := child.LinkTree(t.Context(), ForkSnapshot, dst); err == nil || !strings.Contains(err.Error(), "not empty") {
				t.Errorf("LinkTree into a full directory: %v", err)
			}
			if err := RemoveTree(dst); err != nil {
				t.Fatalf("RemoveTree: %v", err)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("tree left after RemoveTree: %v", err)
			}
			check := filepath.Join(t.TempDir(), "check")
			if err := child.Restore(t.Context(), ForkSnapshot, check); err != nil {
				t.Errorf("the objects did not survive RemoveTree: %v", err)
			}
			if err := RemoveTree(check); err != nil {
				t.Error(err)
			}
		})
	}
}

// writeRun records a run of three steps, the last line of whose trace is
// torn.
func writeRun(t *testing.T) (*Log, time.Time) {
	t.Helper()
	l := newCachingLog(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := l.WriteResult(Result{Task: "t", Status: StatusAborted, StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	snapshot(t, l, src, StepSnapshot(0))
	// Step 1 is read-only, 2 changes a.txt, 3's snapshot failed.
	for i, d := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second} {
		s := Step{Step: i + 1, Time: t0.Add(d), Tool: "t", DurationMS: 1500}
		if i+1 == 2 {
			writeFile(t, filepath.Join(src, "a.txt"), []byte("b"), 0o644)
			s.Snapshot = snapshot(t, l, src, StepSnapshot(2)).Name
		}
		if err := l.Append(s); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(filepath.Join(l.Dir(), traceFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"step":4,"time":"2026-01-02T03:`)
	f.Close()
	return l, t0
}

func TestOpenRun(t *testing.T) {
	l, t0 := writeRun(t)
	r, err := OpenRun(l.Dir())
	if err != nil {
		t.Fatalf("OpenRun: %v", err)
	}
	if r.Steps != 3 || r.LastStep != 3 || r.LastSnapshot != "step-0002" || r.Result.Task != "t" {
		t.Errorf("run: %d steps, last %d, snapshot %q, result %+v", r.Steps, r.LastStep, r.LastSnapshot, r.Result)
	}
	if want := 31500 * time.Millisecond; r.Elapsed != want {
		t.Errorf("Elapsed = %v, want %v (start to the end of the last step)", r.Elapsed, want)
	}
	if !r.FirstTime.Equal(t0.Add(10*time.Second)) || !r.LastTime.Equal(t0.Add(31500*time.Millisecond)) {
		t.Errorf("times %v .. %v", r.FirstTime, r.LastTime)
	}
	for _, tt := range []struct {
		step int
		want string // "" = error
	}{
		{-1, ""}, {0, "step-0000"}, {1, "step-0000"}, {2, "step-0002"}, {3, "step-0002"}, {4, ""},
	} {
		got, err := r.SnapshotAt(tt.step)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("Run.SnapshotAt(%d) = %q, %v; want %q", tt.step, got, err, tt.want)
		}
		// The live log knows no last step: only the upper bound differs.
		got, err = l.SnapshotAt(tt.step)
		want := tt.want
		if tt.step == 4 {
			want = "step-0002"
		}
		if (err != nil) != (want == "") || got != want {
			t.Errorf("Log.SnapshotAt(%d) = %q, %v; want %q", tt.step, got, err, want)
		}
	}

	// Submitted, and marked with its time.
	snapshot(t, l, t.TempDir(), FinalSnapshot)
	res, _ := ReadResult(l.Dir())
	res.Seconds = 42
	if err := l.WriteResult(res); err != nil {
		t.Fatal(err)
	}
	if r, err = OpenRun(l.Dir()); err != nil {
		t.Fatal(err)
	}
	if r.LastSnapshot != FinalSnapshot || r.Elapsed != 42*time.Second {
		t.Errorf("submitted run: snapshot %q, elapsed %v", r.LastSnapshot, r.Elapsed)
	}
}

func TestOpenRunErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    string
	}{
		{"no result", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, resultFile)) }, "read result"},
		{"no trace", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, traceFile)) }, "read trace"},
		{"corrupt line", func(t *testing.T, dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, traceFile))
			lines := strings.SplitAfter(string(data), "\n")
			lines[1] = "not json\n"
			os.WriteFile(filepath.Join(dir, traceFile), []byte(strings.Join(lines, "")), 0o644)
		}, "trace line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := writeRun(t)
			tt.prepare(t, l.Dir())
			if _, err := OpenRun(l.Dir()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenRun: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestStepNumber(t *testing.T) {
	for name, want := range map[string]int{"step-0000": 0, "step-0042": 42, "step-12345": 12345, "step-042": -1, "step-00042": -1, "step-+042": -1, "final": -1, "step-abcd": -1} {
		n, ok := stepNumber(name)
		if got := map[bool]int{true: n, false: -1}[ok]; got != want {
			t.Errorf("stepNumber(%q) = %d, %v; want %d", name, n, ok, want)
		}
	}
	if got := StepSnapshot(7); got != "step-0007" {
		t.Errorf("StepSnapshot(7) = %q", got)
	}
}
