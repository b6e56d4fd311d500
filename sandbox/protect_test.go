package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestProtectedFiles(t *testing.T) {
	ws := t.TempDir()
	os.MkdirAll(filepath.Join(ws, "data"), 0o755)
	for _, f := range []string{"train.csv", "data/a.csv"} {
		os.WriteFile(filepath.Join(ws, f), []byte("x"), 0o644)
	}
	os.Symlink("/etc/passwd", filepath.Join(ws, "link.csv"))
	got := ProtectedFiles(ws, Spec{ReadOnly: []string{"train.csv", "data/a.csv", "missing.csv", "link.csv", "../outside", "data"}})
	want := []string{"train.csv", filepath.FromSlash("data/a.csv")}
	if !slices.Equal(got, want) {
		t.Errorf("ProtectedFiles = %v, want %v (no missing files, links, escapes or directories)", got, want)
	}
	many := make([]string, MaxReadOnlyMounts+5)
	for i := range many {
		many[i] = "train.csv"
	}
	if n := len(ProtectedFiles(ws, Spec{ReadOnly: many})); n != MaxReadOnlyMounts {
		t.Errorf("%d files protected, want the cap %d", n, MaxReadOnlyMounts)
	}
}
