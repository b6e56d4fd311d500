package workspace

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSetOwner(t *testing.T) {
	ctx := t.Context()
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	dir := t.TempDir()
	w, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetOwner(1000, 1001)
	if err := w.Write(ctx, "a/b/c.py", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Edit(ctx, "a/b/c.py", "x", "y"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "a/b", "a/b/c.py"} {
		info, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != 1000 || st.Gid != 1001 {
			t.Errorf("%s owned by %d:%d, want 1000:1001", p, st.Uid, st.Gid)
		}
	}
}

// exactMatcher is a Matcher that knows nothing of directories: it matches
// only the paths it names. The workspace must still protect what is below a
// named directory, by asking about each directory above a path.
type exactMatcher map[string]bool

func (m exactMatcher) Match(rel string) bool { return m[rel] }

func TestMatcherCoversDirectories(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, f := range []string{"data/sub/x.csv", "data.txt", "train.py"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ro := exactMatcher{"data": true}
	w, err := Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, tc := range []struct {
		path string
		ro   bool
	}{
		{"data/sub/x.csv", true},
		{"data/new.csv", true},
		{"./data/sub/x.csv", true},
		{"data.txt", false},
		{"train.py", false},
	} {
		err := w.Write(ctx, tc.path, "2\n")
		if got := errors.Is(err, ErrReadOnly); got != tc.ro {
			t.Errorf("Write(%q) = %v; read-only: %v, want %v", tc.path, err, got, tc.ro)
		}
		if got := w.IsReadOnly(tc.path); got != tc.ro {
			t.Errorf("IsReadOnly(%q) = %v, want %v", tc.path, got, tc.ro)
		}
	}
}

// TestCancelledCallChangesNothing: a call whose context has ended (a client
// that gave up) fails with the context's error before touching any file.
func TestCancelledCallChangesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.py"), []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errs := map[string]error{
		"write":  w.Write(ctx, "a.py", "x = 2\n"),
		"append": w.Append(ctx, "a.py", "y = 2\n"),
		"copy":   w.Copy(ctx, "a.py", "b.py"),
	}
	_, errs["edit"] = w.Edit(ctx, "a.py", "1", "2")
	_, errs["replace"] = w.ReplaceLines(ctx, "a.py", 1, 1, "z")
	_, errs["read"] = w.Read(ctx, "a.py", 0, 0)
	_, errs["list"] = w.List(ctx, "")
	for op, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", op, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.py")); string(b) != "x = 1\n" {
		t.Errorf("a.py = %q after cancelled calls", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.py")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b.py exists after a cancelled copy: %v", err)
	}
}
