package workspace

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlab/mlab/tasks"
)

// TestReadOnlyFilesAgreeWithWorkspace: the files a task's ReadOnly lists
// (which a sandbox protects and eval restores) are exactly the files the
// workspace refuses to write as read-only. The two walk the tree each
// their own way: Files asks Match of every file, the workspace asks it of
// a path and each directory above it.
func TestReadOnlyFilesAgreeWithWorkspace(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, f := range []string{
		"train.py", "train.csv", "notes.txt", "a.txt", "b.txt", "c.txt", "data.csv.bak",
		"data/x.csv", "data/.hidden", "data/sub/y.csv",
		"other/z.csv", "other/data/w.txt", "sub/train.csv",
		"models/m.bin", "models/a/b/c.bin", "other/models/n.bin", "ckpt/1/w.txt",
		// A script can make such a name; Match reads "\" as "/".
		`data\x.csv`,
	} {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("orig\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Links are neither listed nor walked into: only regular files are
	// compared (the workspace checks where a link leads on its own).
	if err := os.Symlink("train.csv", filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data", filepath.Join(dir, "datalink")); err != nil {
		t.Fatal(err)
	}
	var regular []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		regular = append(regular, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		patterns []string
		want     string // what Files lists, sorted
	}{
		{nil, ""},
		{[]string{"train.csv"}, "sub/train.csv,train.csv"},
		{[]string{"data/*"}, "data/.hidden,data/sub/y.csv,data/x.csv,data\\x.csv"},
		{[]string{"models/"}, "models/a/b/c.bin,models/m.bin"},
		{[]string{"data"}, "data/.hidden,data/sub/y.csv,data/x.csv,data\\x.csv,other/data/w.txt"},
		{[]string{"*/data"}, "other/data/w.txt"},
		{[]string{"d?ta/sub"}, "data/sub/y.csv"},
		{[]string{"*/*/*.csv"}, "data/sub/y.csv"},
		{[]string{"*.csv"}, "data/sub/y.csv,data/x.csv,data\\x.csv,other/z.csv,sub/train.csv,train.csv"},
		{[]string{"models/", "ckpt/**"}, "ckpt/1/w.txt,models/a/b/c.bin,models/m.bin"},
		{[]string{"[ab].txt", "# c.txt"}, "a.txt,b.txt"},
		{[]string{"./"}, strings.Join(regular, ",")},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.patterns, " "), func(t *testing.T) {
			r, err := tasks.NewReadOnly(tc.patterns...)
			if err != nil {
				t.Fatal(err)
			}
			listed, err := r.Files(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(listed, ","); got != tc.want {
				t.Errorf("Files = %s, want %s", got, tc.want)
			}
			for _, f := range listed {
				if !slices.Contains(regular, f) {
					t.Errorf("Files lists %q, which is not a regular file of the tree", f)
				}
			}
			w, err := Open(dir, r)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			for _, f := range regular {
				isListed := slices.Contains(listed, f)
				err := w.Write(ctx, f, "orig\n")
				refused := errors.Is(err, ErrReadOnly)
				if strings.Contains(f, `\`) {
					// The workspace takes no path with "\" at all, so such
					// a file is never written through it, listed or not.
					if err == nil {
						t.Errorf("Write(%q) succeeded; a path with \\ must be refused", f)
					}
					continue
				}
				if err != nil && !refused {
					t.Errorf("Write(%q): %v", f, err)
				}
				if refused != isListed {
					t.Errorf("Write(%q) refused as read-only: %v; listed by Files: %v", f, refused, isListed)
				}
				if got := w.IsReadOnly(f); got != isListed {
					t.Errorf("IsReadOnly(%q) = %v; listed by Files: %v", f, got, isListed)
				}
			}
		})
	}
}
