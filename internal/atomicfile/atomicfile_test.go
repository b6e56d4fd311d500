package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// leftovers lists the temporary files Write left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tmps []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			tmps = append(tmps, e.Name())
		}
	}
	return tmps
}

func TestWrite(t *testing.T) {
	for _, durable := range []bool{false, true} {
		for _, perm := range []fs.FileMode{0o644, 0o600, 0o444} {
			dir := t.TempDir()
			path := filepath.Join(dir, "result.json")
			if err := Write(path, []byte("old\n"), 0o644, durable); err != nil {
				t.Fatal(err)
			}
			if err := Write(path, []byte("new content\n"), perm, durable); err != nil {
				t.Fatalf("durable=%v perm=%v: %v", durable, perm, err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != "new content\n" {
				t.Fatalf("durable=%v: content %q, %v", durable, got, err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != perm {
				t.Errorf("durable=%v: mode %v, want %v", durable, fi.Mode().Perm(), perm)
			}
			if tmps := leftovers(t, dir); len(tmps) != 0 {
				t.Errorf("durable=%v: temporary files left: %v", durable, tmps)
			}
		}
	}
}

// TestWriteFailureLeavesNothing: when the rename cannot happen (a directory
// is in the way), the old state stays and no temporary file is left.
func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "taken")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "inside"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(path, []byte("data"), 0o644, true)
	if err == nil || !strings.Contains(err.Error(), "rename") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Write over a directory = %v, want a rename error naming %s", err, path)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Fatalf("the directory in the way was changed: %v, %v", fi, err)
	}
	if tmps := leftovers(t, dir); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}

	missing := filepath.Join(dir, "no", "such", "dir", "f")
	if err := Write(missing, []byte("x"), 0o644, false); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Write into a missing directory = %v, want ErrNotExist naming the path", err)
	}
}

// TestWriteReadersSeeWholeContent: while one goroutine replaces a file over
// and over with contents of different sizes, readers only ever see one of
// the contents whole.
func TestWriteReadersSeeWholeContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	contents := [][]byte{bytes.Repeat([]byte("a"), 1<<16), bytes.Repeat([]byte("b"), 100), []byte("c")}
	if err := Write(path, contents[0], 0o644, false); err != nil {
		t.Fatal(err)
	}
	const writes = 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range writes {
			if err := Write(path, contents[i%len(contents)], 0o644, false); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for {
		select {
		case <-done:
			wg.Wait()
			if reads == 0 {
				t.Fatal("no read happened while writing")
			}
			return
		default:
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read during writes: %v", err)
		}
		reads++
		whole := false
		for _, c := range contents {
			whole = whole || bytes.Equal(got, c)
		}
		if !whole {
			t.Fatalf("a reader saw %d bytes that are none of the contents", len(got))
		}
	}
}

// TestHostileLinkAtPathIsReplaced: a symbolic link at path is replaced, not
// written through, so a link planted at a record's name cannot redirect the
// write elsewhere.
func TestHostileLinkAtPathIsReplaced(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "record")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o644, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "keep" {
		t.Errorf("the link's target was written: %q", got)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Errorf("path is not a regular file after Write: mode %o, %v", st.Mode, err)
	}
}
