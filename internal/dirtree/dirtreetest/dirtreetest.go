// Package dirtreetest builds and describes trees deeper than PATH_MAX for
// tests, where helpers that take full paths (os.MkdirAll, filepath.WalkDir)
// fail with ENAMETOOLONG.
package dirtreetest

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/dirtree"
)

// MakeChain creates the directories names[0]/names[1]/... under root, one
// inside the other, and in the deepest a file leaf holding content.
func MakeChain(t testing.TB, root string, names []string, leaf, content string) {
	t.Helper()
	c, err := dirtree.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.MoveTo(names, true, 0o755); err != nil {
		t.Fatalf("make chain: %v", err)
	}
	WriteFile(t, c, leaf, content, 0o644)
}

// WriteFile creates file name in c's current directory.
func WriteFile(t testing.TB, c *dirtree.Cursor, name, content string, mode uint32) {
	t.Helper()
	fd, err := unix.Openat(c.Fd(), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode)
	if err != nil {
		t.Fatalf("create %q: %v", c.Rel(name), err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := io.WriteString(f, content); err != nil {
		t.Fatal(err)
	}
}

// State describes every entry under root by type, mode and content or
// target, keyed by relative path, for comparing trees byte for byte.
func State(t testing.TB, root string) map[string]string {
	t.Helper()
	state := map[string]string{}
	w := dirtree.Walker{Visit: func(c *dirtree.Cursor, e *dirtree.Entry) (bool, error) {
		mode := e.Stat.Mode & 0o7777
		switch e.Stat.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			state[e.Rel] = fmt.Sprintf("dir %o", mode)
		case unix.S_IFLNK:
			buf := make([]byte, 8192)
			n, err := unix.Readlinkat(c.Fd(), e.Name, buf)
			if err != nil {
				return false, err
			}
			state[e.Rel] = "symlink -> " + string(buf[:n])
		case unix.S_IFREG:
			fd, err := unix.Openat(c.Fd(), e.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return false, err
			}
			f := os.NewFile(uintptr(fd), e.Name)
			data, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				return false, err
			}
			state[e.Rel] = fmt.Sprintf("file %o %q", mode, data)
		default:
			state[e.Rel] = fmt.Sprintf("other %o", e.Stat.Mode)
		}
		return true, nil
	}}
	if err := w.Walk(context.Background(), root); err != nil {
		t.Fatalf("describe tree: %v", err)
	}
	return state
}

// Equal fails t unless the two states are the same, naming a few
// differences.
func Equal(t testing.TB, got, want map[string]string) {
	t.Helper()
	bad := 0
	for p, w := range want {
		if g := got[p]; g != w && bad < 5 {
			t.Errorf("%q: got %q, want %q", dirtree.ShortPath(p), g, w)
			bad++
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok && bad < 5 {
			t.Errorf("extra %q: %q", dirtree.ShortPath(p), g)
			bad++
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d", len(got), len(want))
	}
}
