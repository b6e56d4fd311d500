// Package forktest builds forked workspaces for the sandbox backends' tests:
// a parent run log with a snapshot of a known tree, a child run made from it
// by runlog.CreateFrom and the child's LinkTree as a sandbox.Base, and an
// agent script that attacks the forked files, with the checks that none of
// it reaches the parent.
package forktest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
)

// File is one regular file of a workspace.
type File struct {
	Path string // slash-separated, relative
	Data string
	Mode fs.FileMode
}

// ReadOnly is the task file of Tree that a fork's Spec.ReadOnly protects.
const ReadOnly = "data/ro.csv"

// Tree is the workspace at the fork point that Script attacks.
func Tree() []File {
	return []File{
		{"rewrite.txt", "original rewrite", 0o644},
		{"append.txt", "original append", 0o644},
		{"inplace.bin", strings.Repeat("0123456789abcdef", 4096), 0o644},
		{"trunc.txt", "original truncate", 0o644},
		{"chmod.txt", "chmod me", 0o644},
		{"delete.txt", "delete me", 0o644},
		{"rename.txt", "rename me", 0o644},
		{"link.txt", "link me", 0o644},
		{"mmap.bin", strings.Repeat("m", 4096), 0o644},
		// Equal content: one object, so one inode in the lower layer.
		{"same1.txt", "shared object", 0o644},
		{"same2.txt", "shared object", 0o600},
		{"run.sh", "#!/bin/sh\necho ran\n", 0o755},
		{"sub/deep/x.txt", "deep", 0o644},
		{ReadOnly, "id,label\n1,cat\n", 0o644},
	}
}

// AfterScript is the workspace Script leaves: path -> content.
func AfterScript() map[string]string {
	want := map[string]string{}
	for _, f := range Tree() {
		want[f.Path] = f.Data
	}
	inplace := []byte(want["inplace.bin"])
	copy(inplace[10:], "PATCH")
	mmap := []byte(want["mmap.bin"])
	copy(mmap, "ZZ")
	maps.Copy(want, map[string]string{
		"rewrite.txt": "rewritten",
		"append.txt":  "original append+appended",
		"inplace.bin": string(inplace),
		"trunc.txt":   "orig",
		"chmod.txt":   "chmod me!",
		"renamed.txt": "rename me!",
		"link.txt":    "link me!",
		"link2.txt":   "link me!",
		"mmap.bin":    string(mmap),
		"same1.txt":   "changed, not its twin",
		"sub/new.txt": "new",
	})
	for _, gone := range []string{"delete.txt", "rename.txt", "sub/deep/x.txt"} {
		delete(want, gone)
	}
	return want
}

// Script is the agent's attack on a forked workspace, run with python3 -c
// from the workspace root, with the host paths it must not reach as
// arguments. It prints one JSON object: "errors", each a check that failed
// inside the sandbox, and "mountinfo", the sandbox's mount table.
const Script = `
import errno, json, mmap, os, stat, subprocess, sys
errors = []
def check(ok, what):
    if not ok:
        errors.append(what)
def read(p):
    try:
        return open(p).read()
    except OSError as e:
        return repr(e)
def refused(what, fn):
    try:
        fn()
        errors.append(what + ": allowed")
    except OSError:
        pass

uid = os.getuid()
for root, dirs, files in os.walk('.'):
    for name in dirs + files:
        p = os.path.join(root, name)
        st = os.lstat(p)
        check(st.st_uid == uid, '%s: owned by %d, not the sandbox user %d' % (p, st.st_uid, uid))
modes = {'run.sh': 0o755, 'rewrite.txt': 0o644, 'same2.txt': 0o600}
for p, m in modes.items():
    got = stat.S_IMODE(os.stat(p).st_mode)
    check(got == m, '%s: mode %o, want %o' % (p, got, m))
out = subprocess.run(['./run.sh'], capture_output=True, text=True)
check(out.stdout == 'ran\n', 'run.sh did not run: %r' % (out,))

open('rewrite.txt', 'w').write('rewritten')
open('append.txt', 'a').write('+appended')
with open('inplace.bin', 'r+b') as f:
    f.seek(10)
    f.write(b'PATCH')
os.truncate('trunc.txt', 4)
os.chmod('chmod.txt', 0o600)
open('chmod.txt', 'a').write('!')
os.remove('delete.txt')
os.rename('rename.txt', 'renamed.txt')
open('renamed.txt', 'a').write('!')
os.link('link.txt', 'link2.txt')
open('link2.txt', 'a').write('!')
with open('mmap.bin', 'r+b') as f:
    m = mmap.mmap(f.fileno(), 0)
    m[0:2] = b'ZZ'
    m.flush()
    m.close()
open('same1.txt', 'w').write('changed, not its twin')
check(read('same2.txt') == 'shared object', 'same2.txt changed with its twin')
os.remove('sub/deep/x.txt')
open('sub/new.txt', 'w').write('new')
os.mkdir('sub/made')
os.rmdir('sub/made')

ro = '` + ReadOnly + `'
refused('write ' + ro, lambda: open(ro, 'w').write('x'))
refused('append ' + ro, lambda: open(ro, 'a').write('x'))
refused('delete ' + ro, lambda: os.remove(ro))
refused('rename ' + ro, lambda: os.rename(ro, 'stolen.csv'))
refused('chmod ' + ro, lambda: os.chmod(ro, 0o666))
check(read(ro) == 'id,label\n1,cat\n', ro + ' changed: ' + read(ro))

for name in ('trusted.overlay.metacopy', 'trusted.overlay.redirect', 'trusted.overlay.opaque'):
    refused('set ' + name, lambda: os.setxattr('rewrite.txt', name, b'/etc'))
for p in sys.argv[1:]:
    refused('list host path ' + p, lambda: os.listdir(p))
print(json.dumps({'errors': errors, 'mountinfo': open('/proc/self/mountinfo').read()}))
`

// Fixture is a parent run with a snapshot of Tree (plus extra files), and a
// child run forked from it whose linked tree is Base.
type Fixture struct {
	Parent, Child *runlog.Log
	// ParentWS is the parent's workspace, which stays as it was.
	ParentWS string
	Base     *sandbox.Base
	files    []File
}

// New makes the fixture from Tree and extra, under a temporary directory.
func New(t testing.TB, extra ...File) *Fixture {
	t.Helper()
	f := &Fixture{files: append(Tree(), extra...), ParentWS: t.TempDir()}
	for _, file := range f.files {
		p := filepath.Join(f.ParentWS, filepath.FromSlash(file.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(file.Data), file.Mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, file.Mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(f.ParentWS, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	runs := t.TempDir()
	var err error
	if f.Parent, err = runlog.Create(runs, "parent"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Parent.Close() })
	if _, err := f.Parent.Snapshot(t.Context(), f.ParentWS, runlog.StepSnapshot(3)); err != nil {
		t.Fatal(err)
	}
	if f.Child, err = runlog.CreateFrom(runs, "child", f.Parent.Dir(), runlog.StepSnapshot(3)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Child.Close() })
	lower := filepath.Join(f.Child.Dir(), "lower")
	modes, err := f.Child.LinkTree(t.Context(), runlog.ForkSnapshot, lower)
	if err != nil {
		t.Fatal(err)
	}
	f.Base = &sandbox.Base{Dir: lower, Modes: modes}
	return f
}

// HostPaths are the host paths behind a fork that the agent must not reach.
func (f *Fixture) HostPaths() []string {
	return []string{f.Base.Dir, f.Parent.Dir(), f.Child.Dir(), filepath.Join(f.Parent.Dir(), "objects"), f.ParentWS}
}

// CheckIntact fails t unless every object of both runs still hashes to its
// name, the parent's workspace holds exactly its files, and the linked
// tree holds its files' original bytes.
func (f *Fixture) CheckIntact(t testing.TB) {
	t.Helper()
	for _, l := range []*runlog.Log{f.Parent, f.Child} {
		objects := filepath.Join(l.Dir(), "objects")
		n := 0
		err := filepath.WalkDir(objects, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(objects, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if got := sum(data); got != strings.ReplaceAll(rel, "/", "") {
				t.Errorf("object %s of %s now hashes to %s", rel, l.ID(), got)
			}
			n++
			return nil
		})
		if err != nil || n == 0 {
			t.Errorf("objects of %s: %d checked, %v", l.ID(), n, err)
		}
	}
	for _, file := range f.files {
		for _, root := range []string{f.ParentWS, f.Base.Dir} {
			data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file.Path)))
			if err != nil || string(data) != file.Data {
				t.Errorf("%s in %s changed (%d bytes, %v)", file.Path, root, len(data), err)
			}
		}
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// CheckScript fails t for each check Script failed inside the sandbox, for
// a mount table that shows a host path behind the fork, and unless the
// workspace (its host path ws) then holds exactly AfterScript's files, as
// read directly and as the child's snapshot of it records them.
func (f *Fixture) CheckScript(t testing.TB, ws, stdout string, ignore ...string) {
	t.Helper()
	var out struct {
		Errors    []string `json:"errors"`
		Mountinfo string   `json:"mountinfo"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("script output: %v: %q", err, stdout)
	}
	for _, e := range out.Errors {
		t.Error("in the sandbox: " + e)
	}
	for _, p := range f.HostPaths() {
		if strings.Contains(out.Mountinfo, p) {
			t.Errorf("the sandbox's mountinfo shows %s:\n%s", p, out.Mountinfo)
		}
	}
	want := AfterScript()
	for _, p := range ignore {
		delete(want, p)
	}
	got := Files(t, ws, ignore...)
	compare(t, "workspace", got, want)

	name := runlog.StepSnapshot(1)
	if _, err := f.Child.Snapshot(t.Context(), ws, name); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if err := f.Child.Restore(t.Context(), name, restored); err != nil {
		t.Fatal(err)
	}
	compare(t, "snapshot of the workspace", Files(t, restored, ignore...), want)
}

func compare(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s is missing", what, p)
		} else if g != w {
			t.Errorf("%s: %s holds %q, want %q", what, p, short(g), short(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
}

func short(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", s[:40], len(s))
	}
	return s
}

// Files reads the regular files under root, path -> content, leaving out
// the paths in ignore.
func Files(t testing.TB, root string, ignore ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, skip := range ignore {
			if rel == skip {
				return nil
			}
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Mounts lists this process's mount points at or under dir.
func Mounts(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
