package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/internal/dirtree/dirtreetest"
)

// deepChain returns directory names whose joined path is longer than
// PATH_MAX.
func deepChain() []string {
	names := make([]string, 30)
	for i := range names {
		names[i] = strings.Repeat(string(rune('a'+i)), 200)
	}
	return names
}

// TestHostileCopyDeepTree copies a tree whose paths are longer than
// PATH_MAX, and chowns it, as importing a submission does. Copying by
// absolute path failed with "file name too long" and made the submission
// invalid.
func TestHostileCopyDeepTree(t *testing.T) {
	src := t.TempDir()
	names := deepChain()
	if n := len(strings.Join(names, "/")); n <= unix.PathMax {
		t.Fatalf("chain is only %d bytes long", n)
	}
	dirtreetest.MakeChain(t, src, names, "leaf.txt", "bottom")
	writeTestFile(t, filepath.Join(src, "top.py"), "print(1)\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "submission")
	if err := CopyDir(context.Background(), src, dst); err != nil {
		t.Fatalf("CopyDir: %v", err)
	}
	want := dirtreetest.State(t, src)
	delete(want, "link") // links are not copied
	dirtreetest.Equal(t, dirtreetest.State(t, dst), want)
	if err := ChownTree(dst, os.Getuid(), os.Getgid()); err != nil {
		t.Fatalf("ChownTree: %v", err)
	}
}

// TestHostileCopyErrors checks that a failed copy names the path in the
// tree, never a host path, and that a link in the destination is not
// followed.
func TestHostileCopyErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, src, dst, outside string)
		want    string
	}{
		{"file in the way deep down", func(t *testing.T, src, dst, outside string) {
			names := deepChain()
			dirtreetest.MakeChain(t, src, names, "leaf.txt", "bottom")
			dirtreetest.MakeChain(t, dst, names[:len(names)-1], names[len(names)-1], "in the way")
		}, "/" + deepChain()[29][:80] + ": not a directory"},
		{"link in the destination", func(t *testing.T, src, dst, outside string) {
			writeTestFile(t, filepath.Join(src, "out", "evil.txt"), "x")
			if err := os.Symlink(outside, filepath.Join(dst, "out")); err != nil {
				t.Fatal(err)
			}
		}, `open out: not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst, outside := t.TempDir(), t.TempDir(), t.TempDir()
			tt.prepare(t, src, dst, outside)
			err := CopyDir(context.Background(), src, dst)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CopyDir = %v, want an error containing %q", err, tt.want)
			}
			if len(err.Error()) > 500 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			for _, host := range []string{src, dst, os.TempDir()} {
				if strings.Contains(err.Error(), host) {
					t.Errorf("error %q shows host path %s", err, host)
				}
			}
			if names, _ := os.ReadDir(outside); len(names) > 0 {
				t.Errorf("copy wrote %s through a link", names[0].Name())
			}
		})
	}
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
