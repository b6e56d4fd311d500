package tools

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSetOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	dir := t.TempDir()
	w, err := OpenWorkspace(dir, nil)
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
