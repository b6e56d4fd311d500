package runlog

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestSnapshotSkipsFIFO(t *testing.T) {
	l := newTestLog(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// A FIFO with no writer would block an open for reading forever.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Snapshot(ctx, src, "s"); err != nil {
		t.Fatal(err)
	}
	m, err := l.ReadManifest("s")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := entryMap(m)["pipe"]; ok || len(m.Entries) != 1 {
		t.Errorf("entries = %+v, want only a.txt", m.Entries)
	}
}
