package workspace

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSetOwner(t *testing.T) {
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
	if err := w.Write("a/b/c.py", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Edit("a/b/c.py", "x", "y"); err != nil {
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

func TestReadOnlyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"train.py", "train.csv", "data/x.csv", "data/sub/y.csv", "other/z.csv"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), []byte("1"), 0o644)
	}
	tests := []struct {
		patterns []string
		want     string
	}{
		{nil, ""},
		{[]string{"train.csv"}, "train.csv"},
		{[]string{"data/*"}, "data/sub/y.csv,data/x.csv"},
		{[]string{"*.csv"}, "data/sub/y.csv,data/x.csv,other/z.csv,train.csv"},
	}
	for _, tc := range tests {
		got, err := ReadOnlyFiles(dir, tc.patterns)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("ReadOnlyFiles(%v) = %v, %v; want %s", tc.patterns, got, err, tc.want)
		}
	}
}
