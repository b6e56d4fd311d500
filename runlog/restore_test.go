package runlog

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildTree writes a tree covering every entry kind Restore must reproduce.
func buildTree(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "bin", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	writeFile(t, filepath.Join(dir, "secret.txt"), []byte("s3cret"), 0o600)
	writeFile(t, filepath.Join(dir, "data", "deep", "x.csv"), []byte("a,b\n1,2\n"), 0o644)
	writeFile(t, filepath.Join(dir, "dup1.txt"), []byte("same"), 0o644)
	writeFile(t, filepath.Join(dir, "dup2.txt"), []byte("same"), 0o640)
	writeFile(t, filepath.Join(dir, "zero.txt"), nil, 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "empty", "nested"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ro", "f.txt"), []byte("read only"), 0o444)
	if err := os.Chmod(filepath.Join(dir, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "ro"), 0o755) })
	for name, target := range map[string]string{"link-rel": "data/deep/x.csv", "link-abs": "/etc/passwd", "link-dir": "data"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// treeState describes every path under dir by type, mode and content or
// target, for comparing trees.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			state[rel] = "symlink -> " + target
		case fi.IsDir():
			state[rel] = fmt.Sprintf("dir %v", fi.Mode().Perm())
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			state[rel] = fmt.Sprintf("file %v %q", fi.Mode().Perm(), data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func TestRestore(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dst string) // nil: dst does not exist
		wantErr bool
	}{
		{"missing dst", nil, false},
		{"empty dst", func(t *testing.T, dst string) {
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"non-empty dst", func(t *testing.T, dst string) {
			writeFile(t, filepath.Join(dst, "old.txt"), []byte("old"), 0o644)
		}, true},
		{"dst is a file", func(t *testing.T, dst string) {
			writeFile(t, dst, []byte("file"), 0o644)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newCachingLog(t)
			src := t.TempDir()
			buildTree(t, src)
			snapshot(t, l, src, "final")

			dst := filepath.Join(t.TempDir(), "submission")
			if tt.prepare != nil {
				tt.prepare(t, dst)
			}
			t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "ro"), 0o755) })
			err := l.Restore(context.Background(), "final", dst)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Restore succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			want, got := treeState(t, src), treeState(t, dst)
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s: got %s, want %s", p, got[p], w)
				}
			}
			for p, g := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("extra %s: %s", p, g)
				}
			}
		})
	}
}

func TestRestoreCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, l *Log, m *Manifest)
		wantMsg string
	}{
		{"changed object bytes", func(t *testing.T, l *Log, m *Manifest) {
			p := l.objectPath(entryMap(*m)["secret.txt"].SHA256)
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, []byte("S3CRET"), 0o444)
		}, "hash mismatch"},
		{"missing object", func(t *testing.T, l *Log, m *Manifest) {
			if err := os.Remove(l.objectPath(entryMap(*m)["secret.txt"].SHA256)); err != nil {
				t.Fatal(err)
			}
		}, "open object"},
		{"path escapes dst", func(t *testing.T, l *Log, m *Manifest) {
			m.Entries = append(m.Entries, Entry{Path: "../evil", Type: TypeDir, Mode: 0o755})
		}, "invalid entry path"},
		{"sha escapes objects", func(t *testing.T, l *Log, m *Manifest) {
			m.Entries = append(m.Entries, Entry{Path: "evil", Type: TypeFile, Mode: 0o644, SHA256: "../../trace.jsonl"})
		}, "invalid sha256"},
		{"write through symlink", func(t *testing.T, l *Log, m *Manifest) {
			outside := t.TempDir()
			t.Cleanup(func() {
				if names, _ := os.ReadDir(outside); len(names) > 0 {
					t.Errorf("restore wrote %s outside its destination", names[0].Name())
				}
			})
			m.Entries = append(m.Entries,
				Entry{Path: "out", Type: TypeSymlink, Target: outside},
				Entry{Path: "out/evil", Type: TypeDir, Mode: 0o755})
		}, `entry "out/evil": open out: not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newCachingLog(t)
			src := t.TempDir()
			writeFile(t, filepath.Join(src, "secret.txt"), []byte("s3cret"), 0o600)
			m := snapshot(t, l, src, "final")
			tt.corrupt(t, l, &m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, l.manifestPath("final"), data, 0o644)

			err = l.Restore(context.Background(), "final", filepath.Join(t.TempDir(), "out"))
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Restore = %v, want error containing %q", err, tt.wantMsg)
			}
		})
	}
}

func TestRestoreCancelled(t *testing.T) {
	l := newCachingLog(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	snapshot(t, l, src, "final")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Restore(ctx, "final", filepath.Join(t.TempDir(), "out")); err == nil {
		t.Fatal("Restore with cancelled context succeeded")
	}
}
