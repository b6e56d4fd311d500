package dirtree_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/dirtree"
)

func mkdirs(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCursorUpAfterMove checks that climbing out of a directory that was
// moved elsewhere while the cursor was inside it lands in the parent it
// came from, reopened from the root, not in the directory's new parent.
func TestCursorUpAfterMove(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/b", "c")
	c, err := dirtree.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.MoveTo([]string{"a", "b"}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "a", "b"), filepath.Join(root, "c", "b")); err != nil {
		t.Fatal(err)
	}
	if err := c.Up(); err != nil {
		t.Fatal(err)
	}
	var got, want unix.Stat_t
	if err := unix.Fstat(c.Fd(), &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Join(root, "a"), &want); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino || c.Depth() != 1 {
		t.Fatalf("after Up: inode %d depth %d, want a (inode %d) at depth 1", got.Ino, c.Depth(), want.Ino)
	}
}

// TestWalkOrderAndSkips checks the walk order (parents first, names in
// byte order), that links are not followed and that Leave pairs with Enter.
func TestWalkOrderAndSkips(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "b/y", "a-b", "a/x")
	if err := os.Symlink("b", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	var seen, events []string
	w := dirtree.Walker{
		Visit: func(_ *dirtree.Cursor, e *dirtree.Entry) (bool, error) {
			seen = append(seen, e.Rel)
			return true, nil
		},
		Enter: func(e *dirtree.Entry) error { events = append(events, "+"+e.Rel); return nil },
		Leave: func(e *dirtree.Entry) error { events = append(events, "-"+e.Rel); return nil },
	}
	if err := w.Walk(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "a/x", "a-b", "b", "b/y", "link"}; !slices.Equal(seen, want) {
		t.Errorf("visited %q, want %q", seen, want)
	}
	if want := []string{"+a", "+a/x", "-a/x", "-a", "+a-b", "-a-b", "+b", "+b/y", "-b/y", "-b"}; !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
}

func TestWalkLimits(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/b/c/d", "e", "f")
	tests := []struct {
		name string
		w    dirtree.Walker
		want string
	}{
		{"depth", dirtree.Walker{MaxDepth: 2}, `more than 2 levels of directories (at "a/b")`},
		{"entries", dirtree.Walker{MaxEntries: 4}, `more than 4 entries (at "a/b")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.w.Visit = func(*dirtree.Cursor, *dirtree.Entry) (bool, error) { return true, nil }
			err := tt.w.Walk(context.Background(), root)
			var le *dirtree.LimitError
			if !errors.As(err, &le) || err.Error() != tt.want {
				t.Fatalf("Walk = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestValidRel(t *testing.T) {
	for p, want := range map[string]bool{
		"a": true, "a/b": true, "a\xff/b": true, "": false, ".": false, "a/../b": false,
		"/a": false, "a/": false, "a//b": false, "a\x00": false,
	} {
		if got := dirtree.ValidRel(p); got != want {
			t.Errorf("ValidRel(%q) = %v, want %v", p, got, want)
		}
	}
}
