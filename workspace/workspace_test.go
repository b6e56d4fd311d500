package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/mlab/mlab/tasks"
)

// newWS makes a workspace in a temp dir holding files (name -> content).
func newWS(t *testing.T, readOnly []string, files map[string]string) (*Workspace, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := tasks.NewReadOnly(readOnly...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, dir
}

func readDisk(t *testing.T, dir, name string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", substr)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not contain %q", err, substr)
	}
}

// ops runs every operation on name; each must fail.
func allOps(ctx context.Context, w *Workspace, name string) map[string]error {
	errs := map[string]error{}
	_, errs["list"] = w.List(ctx, name)
	_, errs["read"] = w.Read(ctx, name, 0, 0)
	errs["write"] = w.Write(ctx, name, "x")
	errs["append"] = w.Append(ctx, name, "x")
	errs["copy-src"] = w.Copy(ctx, name, "copied.txt")
	errs["copy-dst"] = w.Copy(ctx, "inside.txt", name)
	_, _, errs["lines"] = w.Lines(ctx, name, 1, 1)
	_, errs["edit"] = w.Edit(ctx, name, "a", "b")
	_, errs["replace"] = w.ReplaceLines(ctx, name, 1, 1, "b")
	_, errs["undo"] = w.Undo(ctx, name)
	return errs
}

func TestTraversalRefused(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, map[string]string{"inside.txt": "a\n", "a/b/c.txt": "c\n"})
	outside := filepath.Join(filepath.Dir(dir), "x")
	for _, p := range []string{
		"../x", "/etc/passwd", "a/../../x", "a/b/../../../x", "..", "a/..", "./../x",
		"/", "C:/x", "c:x", `..\x`, `a\..\..\x`, "a\x00b", outside, "/" + dir + "/../x",
	} {
		t.Run(p, func(t *testing.T) {
			for op, err := range allOps(ctx, w, p) {
				if err == nil {
					t.Errorf("%s(%q) succeeded", op, p)
					continue
				}
				if strings.Contains(err.Error(), filepath.Dir(dir)) && !strings.Contains(p, filepath.Dir(dir)) {
					t.Errorf("%s(%q) error leaks the host path: %v", op, p, err)
				}
			}
		})
	}
	if _, err := os.Stat(outside); err == nil {
		t.Fatal("a file was created outside the workspace")
	}
	// The messages say what to do.
	err := w.Write(ctx, "../x", "x")
	wantErr(t, err, `path "../x" is outside the workspace: use a path relative to the workspace root, without ".."`)
	if !errors.Is(err, ErrOutsideWorkspace) {
		t.Errorf("error %v is not ErrOutsideWorkspace", err)
	}
	_, err = w.Read(ctx, "/etc/passwd", 0, 0)
	wantErr(t, err, `path "/etc/passwd" is outside the workspace`)
	_, err = w.Read(ctx, "", 0, 0)
	wantErr(t, err, "path is empty")
	_, err = w.Read(ctx, "a\x00b", 0, 0)
	wantErr(t, err, "NUL byte")
}

func TestAbsolutePathInsideWorkspace(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, map[string]string{"a/b.txt": "hello\n"})
	r, err := w.Read(ctx, filepath.ToSlash(filepath.Join(dir, "a/b.txt")), 0, 0)
	if err != nil || r.Content != "hello\n" {
		t.Fatalf("Read(absolute path inside) = %+v, %v", r, err)
	}
}

func TestCleanPaths(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, nil)
	if err := w.Write(ctx, "./a//b/./c.txt", "x"); err != nil {
		t.Fatal(err)
	}
	if got, ok := readDisk(t, dir, "a/b/c.txt"); !ok || got != "x" {
		t.Fatalf("a/b/c.txt = %q, %v", got, ok)
	}
	entries, err := w.List(ctx, "")
	if err != nil || len(entries) != 1 || entries[0] != (Entry{Name: "a", Type: "dir"}) {
		t.Fatalf("List(\"\") = %+v, %v", entries, err)
	}
	if _, err := w.List(ctx, "./a/"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, w.Write(ctx, "", "x"), "path is empty")
	wantErr(t, w.Write(ctx, ".", "x"), "workspace directory itself")
}

func TestSymlinkOutside(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, map[string]string{"inside.txt": "in\n"})
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Dir(secret)
	links := map[string]string{
		"link":     "/etc",
		"rellink":  "../" + filepath.Base(filepath.Dir(dir)),
		"filelink": secret,
		"dirlink":  outDir,
		"uplink":   "..",
		"deep/up":  "../../..",
	}
	os.Mkdir(filepath.Join(dir, "deep"), 0o755)
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"link", "link/passwd", "rellink", "filelink", "dirlink/secret.txt", "dirlink/new.txt", "uplink", "uplink/x", "deep/up/x"} {
		t.Run(p, func(t *testing.T) {
			for op, err := range allOps(ctx, w, p) {
				if err == nil {
					t.Errorf("%s(%q) succeeded", op, p)
				}
			}
		})
	}
	_, err := w.Read(ctx, "link/passwd", 0, 0)
	wantErr(t, err, `path "link/passwd" resolves outside the workspace`)
	if !errors.Is(err, ErrOutsideWorkspace) {
		t.Errorf("%v is not ErrOutsideWorkspace", err)
	}
	_, err = w.List(ctx, "link")
	wantErr(t, err, `path "link" resolves outside the workspace`)
	wantErr(t, w.Write(ctx, "link/passwd", "x"), "resolves outside the workspace")
	_, err = w.Read(ctx, "filelink", 0, 0)
	wantErr(t, err, `path "filelink" resolves outside the workspace`)
	wantErr(t, w.Write(ctx, "filelink", "pwned"), "resolves outside the workspace")
	wantErr(t, w.Append(ctx, "filelink", "pwned"), "resolves outside the workspace")
	if b, _ := os.ReadFile(secret); string(b) != "secret\n" {
		t.Fatalf("outside file changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(outDir, "new.txt")); err == nil {
		t.Fatal("file created outside through a link")
	}
	// The links themselves are listed.
	entries, err := w.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, e := range entries {
		types[e.Name] = e.Type
	}
	if types["link"] != "symlink" || types["inside.txt"] != "file" || types["deep"] != "dir" {
		t.Fatalf("List = %+v", entries)
	}
}

func TestSymlinksInside(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, []string{"data/*"}, map[string]string{
		"src/train.py": "print(1)\n",
		"data/x.csv":   "1,2\n",
	})
	mustLink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	mustLink("src/train.py", "t.py")
	mustLink("src", "code")
	mustLink("../src/train.py", "src2")                       // relative to the root: leads outside
	mustLink(filepath.Join(dir, "src", "train.py"), "abs.py") // absolute, but inside
	mustLink(filepath.Join(dir, "src"), "abscode")
	mustLink("data", "d")
	mustLink("data/x.csv", "x.csv")
	mustLink("new/thing.txt", "dangling")

	r, err := w.Read(ctx, "t.py", 0, 0)
	if err != nil || r.Content != "print(1)\n" {
		t.Fatalf("Read through link = %+v, %v", r, err)
	}
	if r, err := w.Read(ctx, "abs.py", 0, 0); err != nil || r.Content != "print(1)\n" {
		t.Fatalf("Read through absolute inside link = %+v, %v", r, err)
	}
	if _, err := w.Read(ctx, "src2", 0, 0); err == nil {
		t.Fatal("link to ../src/train.py from the root must resolve outside")
	}
	for _, name := range []string{"code", "abscode"} {
		entries, err := w.List(ctx, name)
		if err != nil || len(entries) != 1 || entries[0].Name != "train.py" {
			t.Fatalf("List(%s) = %+v, %v", name, entries, err)
		}
	}
	// Writing through a link writes the target, and undo finds its history.
	if err := w.Write(ctx, "code/train.py", "print(2)\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "src/train.py"); got != "print(2)\n" {
		t.Fatalf("target = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "t.py")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatal("the link itself was replaced")
	}
	if _, err := w.Undo(ctx, "t.py"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "src/train.py"); got != "print(1)\n" {
		t.Fatalf("after undo target = %q", got)
	}
	// A dangling link inside creates its target.
	if err := w.Write(ctx, "dangling", "new\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "new/thing.txt"); got != "new\n" {
		t.Fatalf("dangling target = %q", got)
	}
	// Links may not be used to get around read-only patterns.
	wantErr(t, w.Write(ctx, "x.csv", "pwned"), `file "x.csv" is read-only in this task (it is a link to "data/x.csv")`)
	wantErr(t, w.Write(ctx, "d/new.csv", "pwned"), "read-only")
	_, err = w.Edit(ctx, "d/x.csv", "1", "9")
	wantErr(t, err, "read-only")
	if got, _ := readDisk(t, dir, "data/x.csv"); got != "1,2\n" {
		t.Fatalf("read-only file changed: %q", got)
	}
}

func TestSymlinkLoop(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, nil)
	os.Symlink("b", filepath.Join(dir, "a"))
	os.Symlink("a", filepath.Join(dir, "b"))
	_, err := w.Read(ctx, "a", 0, 0)
	wantErr(t, err, "too many symbolic links")
	wantErr(t, w.Write(ctx, "a/x", "x"), "too many symbolic links")
}

func TestHardLinkToReadOnlyIsReplacedNotWrittenThrough(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, []string{"train.csv"}, map[string]string{"train.csv": "orig\n"})
	if err := os.Link(filepath.Join(dir, "train.csv"), filepath.Join(dir, "h.csv")); err != nil {
		t.Skip("hard links not supported:", err)
	}
	if err := w.Write(ctx, "h.csv", "new\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "train.csv"); got != "orig\n" {
		t.Fatalf("read-only file changed through a hard link: %q", got)
	}
}

func TestReadOnlyPatterns(t *testing.T) {
	ctx := t.Context()
	patterns := []string{"train.csv", "data/*", "models/", "ckpt/**", "./answer.txt", "*.npy", "", "# comment"}
	w, dir := newWS(t, patterns, map[string]string{
		"train.csv":         "a,b\n",
		"sub/train.csv":     "a,b\n",
		"data/x.txt":        "a\n",
		"data/deep/y.txt":   "a\n",
		"models/m.txt":      "a\n",
		"ckpt/1/w.txt":      "a\n",
		"answer.txt":        "a\n",
		"feat/x.npy":        "a\n",
		"train.py":          "a\n",
		"datax/x.txt":       "a\n",
		"mydata/x.txt":      "a\n",
		"train.csv.bak.txt": "a\n",
	})
	tests := []struct {
		path string
		ro   bool
	}{
		{"train.csv", true},
		{"./train.csv", true},
		{"sub/train.csv", true},
		{"data/x.txt", true},
		{"data/deep/y.txt", true},
		{"data/new.txt", true},
		{"models/m.txt", true},
		{"ckpt/1/w.txt", true},
		{"answer.txt", true},
		{"feat/x.npy", true},
		{"train.py", false},
		{"datax/x.txt", false},
		{"mydata/x.txt", false},
		{"train.csv.bak.txt", false},
		{"new.txt", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := w.IsReadOnly(tt.path); got != tt.ro {
				t.Fatalf("IsReadOnly(%q) = %v, want %v", tt.path, got, tt.ro)
			}
			before, existed := readDisk(t, dir, tt.path)
			errs := map[string]error{
				"write":  w.Write(ctx, tt.path, "changed\n"),
				"append": w.Append(ctx, tt.path, "more\n"),
				"copy":   w.Copy(ctx, "train.py", tt.path),
			}
			_, errs["edit"] = w.Edit(ctx, tt.path, "a", "b")
			_, errs["replace"] = w.ReplaceLines(ctx, tt.path, 1, 1, "z")
			_, errs["undo"] = w.Undo(ctx, tt.path)
			for op, err := range errs {
				if !tt.ro {
					if err != nil && strings.Contains(err.Error(), "read-only") {
						t.Errorf("%s(%q): %v", op, tt.path, err)
					}
					continue
				}
				if !errors.Is(err, ErrReadOnly) {
					t.Errorf("%s(%q) = %v, want read-only error", op, tt.path, err)
				}
			}
			if tt.ro {
				wantErr(t, errs["write"], fmt.Sprintf("file %q is read-only in this task", strings.TrimPrefix(tt.path, "./")))
				after, existsNow := readDisk(t, dir, tt.path)
				if after != before || existsNow != existed {
					t.Errorf("read-only %q changed", tt.path)
				}
				// Reading and copying from it stay allowed.
				if existed {
					if _, err := w.Read(ctx, tt.path, 0, 0); err != nil {
						t.Errorf("Read(%q): %v", tt.path, err)
					}
					if err := w.Copy(ctx, tt.path, "copy-of-ro.txt"); err != nil {
						t.Errorf("Copy(%q): %v", tt.path, err)
					}
				}
			}
		})
	}
}

func TestReadTruncationAndOffsets(t *testing.T) {
	ctx := t.Context()
	big := strings.Repeat("0123456789abcdef", 8192) // 128 KiB
	w, _ := newWS(t, nil, map[string]string{"big.txt": big, "small.txt": "hello\n", "empty.txt": ""})

	r, err := w.Read(ctx, "big.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != MaxRead || r.Content != big[:MaxRead] || !r.Truncated || r.NextOffset != MaxRead || r.TotalBytes != int64(len(big)) {
		t.Fatalf("first chunk: %+v", r.Bytes)
	}
	wantNote := "\n[truncated: showed bytes 0-65536 of 131072; call read_file with offset=65536 to read more]"
	if !strings.HasSuffix(r.Text(), wantNote) {
		t.Fatalf("Text() ends %q", r.Text()[len(r.Text())-120:])
	}
	r, err = w.Read(ctx, "big.txt", r.NextOffset, 1<<30)
	if err != nil || r.Truncated || r.Offset != MaxRead || r.Content != big[MaxRead:] || r.NextOffset != 0 {
		t.Fatalf("second chunk: off %d bytes %d trunc %v, %v", r.Offset, r.Bytes, r.Truncated, err)
	}
	if r.Text() != r.Content {
		t.Fatal("Text() of the last chunk has a note")
	}

	r, err = w.Read(ctx, "small.txt", 1, 3)
	if err != nil || r.Content != "ell" || !r.Truncated || r.NextOffset != 4 {
		t.Fatalf("small range: %+v, %v", r, err)
	}
	r, err = w.Read(ctx, "small.txt", 6, 0)
	if err != nil || r.Content != "" || r.Truncated {
		t.Fatalf("at end: %+v, %v", r, err)
	}
	_, err = w.Read(ctx, "small.txt", 7, 0)
	wantErr(t, err, "beyond the end")
	_, err = w.Read(ctx, "small.txt", -1, 0)
	wantErr(t, err, "offset must be >= 0")
	r, err = w.Read(ctx, "empty.txt", 0, 0)
	if err != nil || r.Text() != "[the file is empty]" {
		t.Fatalf("empty: %+v, %v", r, err)
	}
	_, err = w.Read(ctx, "missing.py", 0, 0)
	wantErr(t, err, `file "missing.py" does not exist (use list_files to see the workspace)`)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("missing file error is not fs.ErrNotExist")
	}
	_, err = w.Read(ctx, ".", 0, 0)
	wantErr(t, err, "is a directory")
}

func TestReadUTF8Boundaries(t *testing.T) {
	ctx := t.Context()
	s := "aé€😀b" // 1 + 2 + 3 + 4 + 1 bytes
	w, _ := newWS(t, nil, map[string]string{"u.txt": s})
	for off := int64(0); off <= int64(len(s)); off++ {
		for limit := int64(1); limit <= int64(len(s)); limit++ {
			r, err := w.Read(ctx, "u.txt", off, limit)
			if err != nil {
				t.Fatalf("Read(%d, %d): %v", off, limit, err)
			}
			if !utf8.ValidString(r.Content) {
				t.Fatalf("Read(%d, %d) = %q: invalid UTF-8", off, limit, r.Content)
			}
			if r.Offset > off || off-r.Offset >= utf8.UTFMax {
				t.Fatalf("Read(%d, %d) starts at %d", off, limit, r.Offset)
			}
			if s[r.Offset:r.Offset+int64(r.Bytes)] != r.Content {
				t.Fatalf("Read(%d, %d): content does not match offset", off, limit)
			}
			if off < int64(len(s)) && r.Bytes == 0 {
				t.Fatalf("Read(%d, %d) made no progress", off, limit)
			}
		}
	}
	// Reading chunk by chunk with NextOffset gives back the whole file.
	var got strings.Builder
	for off := int64(0); ; {
		r, err := w.Read(ctx, "u.txt", off, 2)
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(r.Content)
		if !r.Truncated {
			break
		}
		off = r.NextOffset
	}
	if got.String() != s {
		t.Fatalf("chunks = %q", got.String())
	}
}

func TestBinaryRefused(t *testing.T) {
	ctx := t.Context()
	bin := "PK\x03\x04\x00\x00" + strings.Repeat("x", 100)
	w, _ := newWS(t, nil, map[string]string{"m.bin": bin, "late.txt": strings.Repeat("a", 9000) + "\x00"})
	_, err := w.Read(ctx, "m.bin", 0, 0)
	wantErr(t, err, fmt.Sprintf(`file "m.bin" looks binary (%d bytes`, len(bin)))
	_, _, err = w.Lines(ctx, "m.bin", 1, 1)
	wantErr(t, err, "looks binary")
	_, err = w.Edit(ctx, "m.bin", "PK", "ZZ")
	wantErr(t, err, "looks binary")
	// Only the first 8 KiB are checked.
	if _, err := w.Read(ctx, "late.txt", 0, 10); err != nil {
		t.Fatal(err)
	}
}

func TestList(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, map[string]string{"b.txt": "12345", "a/x.txt": "", "c.py": "x"})
	os.Symlink("b.txt", filepath.Join(dir, "link"))
	haveFIFO := exec.Command("mkfifo", filepath.Join(dir, "fifo")).Run() == nil
	got, err := w.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"a", "dir", 0}, {"b.txt", "file", 5}, {"c.py", "file", 1}, {"fifo", "other", 0}, {"link", "symlink", 5}}
	if !haveFIFO {
		want = slices.Delete(want, 3, 4)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	_, err = w.List(ctx, "b.txt")
	wantErr(t, err, "is a file, not a directory")
	_, err = w.List(ctx, "nope")
	wantErr(t, err, `directory "nope" does not exist`)
	if !haveFIFO {
		t.Skip("mkfifo not available")
	}
	// A FIFO made by a script must not hang reads, writes or copies.
	wantErr(t, w.Copy(ctx, "fifo", "x"), "not a regular file")
	_, _, err = w.Lines(ctx, "fifo", 1, 1)
	wantErr(t, err, "not a regular file")
	_, err = w.Read(ctx, "fifo", 0, 0)
	wantErr(t, err, "not a regular file")
	wantErr(t, w.Write(ctx, "fifo", "x"), "not a regular file")
}

func TestLines(t *testing.T) {
	ctx := t.Context()
	var sb strings.Builder
	for i := 1; i <= 250; i++ {
		fmt.Fprintf(&sb, "line %d\n", i)
	}
	long := strings.Repeat("é", 3000)
	w, _ := newWS(t, nil, map[string]string{
		"f.py": sb.String(), "nonl.txt": "a\nb", "crlf.txt": "a\r\nb\r\n", "empty.txt": "", "long.txt": long + "\nx\n",
	})
	tests := []struct {
		name       string
		file       string
		start, end int
		want       string
		total      int
		err        string
	}{
		{"first lines", "f.py", 1, 3, "1 | line 1\n2 | line 2\n3 | line 3\n", 250, ""},
		{"aligned", "f.py", 98, 100, " 98 | line 98\n 99 | line 99\n100 | line 100\n", 250, ""},
		{"clamped", "f.py", 249, 300, "249 | line 249\n250 | line 250\n", 250, ""},
		{"single", "f.py", 7, 7, "7 | line 7\n", 250, ""},
		{"no final newline", "nonl.txt", 1, 5, "1 | a\n2 | b\n", 2, ""},
		{"crlf", "crlf.txt", 1, 2, "1 | a\n2 | b\n", 2, ""},
		{"start 0", "f.py", 0, 3, "", 0, "start_line must be 1 or more"},
		{"end before start", "f.py", 5, 4, "", 0, "end_line (4) is before start_line (5)"},
		{"too many", "f.py", 1, 101, "", 0, "inspect at most 100 lines at a time"},
		{"beyond eof", "f.py", 251, 260, "", 250, `start_line 251 is beyond the end of "f.py", which has 250 lines`},
		{"empty file", "empty.txt", 1, 1, "", 0, `file "empty.txt" is empty`},
		{"missing", "nope.py", 1, 1, "", 0, `file "nope.py" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := w.Lines(ctx, tt.file, tt.start, tt.end)
			if tt.err != "" {
				wantErr(t, err, tt.err)
				return
			}
			if err != nil || got != tt.want || total != tt.total {
				t.Fatalf("Lines = %q, %d, %v; want %q, %d", got, total, err, tt.want, tt.total)
			}
		})
	}
	got, total, err := w.Lines(ctx, "long.txt", 1, 2)
	if err != nil || total != 2 || !utf8.ValidString(got) || !strings.Contains(got, "[line cut: 6001 bytes in all]") || !strings.HasSuffix(got, "2 | x\n") {
		t.Fatalf("long line: %q, %d, %v", got[len(got)-80:], total, err)
	}
}

func TestWriteAppendModes(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, map[string]string{"exe.sh": "#!/bin/sh\n", "ro.txt": "locked\n"})
	os.Chmod(filepath.Join(dir, "exe.sh"), 0o755)
	os.Chmod(filepath.Join(dir, "ro.txt"), 0o444)
	if err := w.Write(ctx, "deep/er/new.py", "x = 1\n"); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{"deep": 0o755, "deep/er": 0o755, "deep/er/new.py": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Directories are subject to the umask; files are set exactly.
		if fi.Mode().Perm() != mode && !(fi.IsDir() && fi.Mode().Perm()&^mode == 0) {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	if err := w.Append(ctx, "exe.sh", "echo hi\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "exe.sh"); got != "#!/bin/sh\necho hi\n" {
		t.Fatalf("append = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "exe.sh")); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing file mode changed to %v", fi.Mode().Perm())
	}
	if err := w.Append(ctx, "fresh.log", "one\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "fresh.log"); got != "one\n" {
		t.Fatalf("append new = %q", got)
	}
	wantErr(t, w.Write(ctx, "ro.txt", "x"), "not writable")
	wantErr(t, w.Write(ctx, "deep", "x"), `"deep" is a directory`)
	wantErr(t, w.Write(ctx, "deep/er/new.py/x", "x"), "part of its path is a file, not a directory")
	wantErr(t, w.Write(ctx, "big.txt", strings.Repeat("x", MaxWrite+1)), "at most")
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Join(dir, "deep", "er"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary file %s left", e.Name())
		}
	}
}

func TestCopy(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, []string{"train.csv"}, map[string]string{"train.csv": "a,b\n1,2\n", "d/x": "x"})
	if err := w.Copy(ctx, "train.csv", "work/train_copy.csv"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "work/train_copy.csv"); got != "a,b\n1,2\n" {
		t.Fatalf("copy = %q", got)
	}
	wantErr(t, w.Copy(ctx, "d", "e"), "is a directory; copy_file copies single files")
	wantErr(t, w.Copy(ctx, "train.csv", "d"), `"d" is a directory`)
	wantErr(t, w.Copy(ctx, "nope", "e"), `file "nope" does not exist`)
	wantErr(t, w.Copy(ctx, "d/x", "d/x"), "are the same file")
	wantErr(t, w.Copy(ctx, "d/x", "train.csv"), "read-only")
	// Copying over a file can be undone, and undoing the first copy
	// removes the destination.
	if err := w.Copy(ctx, "d/x", "work/train_copy.csv"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Undo(ctx, "work/train_copy.csv"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "work/train_copy.csv"); got != "a,b\n1,2\n" {
		t.Fatalf("after undo = %q", got)
	}
	if _, err := w.Undo(ctx, "work/train_copy.csv"); err != nil {
		t.Fatal(err)
	}
	if _, ok := readDisk(t, dir, "work/train_copy.csv"); ok {
		t.Fatal("undo of first copy did not remove the file")
	}
}

func TestEdit(t *testing.T) {
	ctx := t.Context()
	src := "import os\n\ndef f():\n    x = 1\n    return x\n\ndef g():\n    x = 1\n    return 2\n"
	w, dir := newWS(t, nil, map[string]string{"train.py": src, "crlf.py": "a = 1\r\nb = 2\r\n"})
	tests := []struct {
		name, old, new string
		err            string
	}{
		{"empty old", "", "x", "old_text is empty"},
		{"same", "x", "x", "nothing to change"},
		{"not found", "y = 2", "y = 3", "old_text not found in train.py; inspect the file and copy the exact text, including indentation"},
		{"indent hint", "x = 1\n\t", "x", "ignored"},
		{"many", "    x = 1\n", "    x = 2\n", "old_text occurs 2 times in train.py; include more surrounding lines to make it unique"},
		{"blank lines", "\n\n", "\n", "old_text occurs 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Edit(ctx, "train.py", tt.old, tt.new)
			wantErr(t, err, tt.err)
		})
	}
	if got, _ := readDisk(t, dir, "train.py"); got != src {
		t.Fatal("failed edits changed the file")
	}
	diff, err := w.Edit(ctx, "train.py", "    x = 1\n    return 2\n", "    x = 10\n    return 2\n")
	if err != nil {
		t.Fatal(err)
	}
	wantDiff := "--- a/train.py\n+++ b/train.py\n@@ -5,5 +5,5 @@\n     return x\n \n def g():\n-    x = 1\n+    x = 10\n     return 2\n"
	if diff != wantDiff {
		t.Fatalf("diff =\n%s\nwant\n%s", diff, wantDiff)
	}
	if got, _ := readDisk(t, dir, "train.py"); got != strings.Replace(src, "x = 1\n    return 2", "x = 10\n    return 2", 1) {
		t.Fatalf("edited = %q", got)
	}
	if countOverlapping("aaa", "aa") != 2 {
		t.Fatal("overlapping matches not counted")
	}
	// LF old_text matches a CRLF file.
	if _, err := w.Edit(ctx, "crlf.py", "a = 1\nb = 2", "a = 1\nb = 3"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "crlf.py"); got != "a = 1\r\nb = 3\r\n" {
		t.Fatalf("crlf edit = %q", got)
	}
	_, err = w.Edit(ctx, "missing.py", "a", "b")
	wantErr(t, err, `file "missing.py" does not exist`)
}

func TestReplaceLines(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name       string
		content    string
		start, end int
		text       string
		want       string
		err        string
	}{
		{"replace middle", "1\n2\n3\n", 2, 2, "two", "1\ntwo\n3\n", ""},
		{"replace range with more", "1\n2\n3\n4\n", 2, 3, "a\nb\nc\n", "1\na\nb\nc\n4\n", ""},
		{"delete", "1\n2\n3\n", 2, 3, "", "1\n", ""},
		{"insert before first", "1\n2\n", 1, 0, "0", "0\n1\n2\n", ""},
		{"insert in middle", "1\n2\n", 2, 1, "x\ny\n", "1\nx\ny\n2\n", ""},
		{"append", "1\n2\n", 3, 2, "3", "1\n2\n3\n", ""},
		{"append to unterminated", "1\n2", 3, 2, "3", "1\n2\n3\n", ""},
		{"replace unterminated last keeps it so", "1\n2", 2, 2, "two", "1\ntwo", ""},
		{"into empty file", "", 1, 0, "hello", "hello\n", ""},
		{"start 0", "1\n", 0, 0, "x", "", "start_line must be 1 or more"},
		{"start too far", "1\n2\n", 4, 3, "x", "", "use start_line=3, end_line=2 to append"},
		{"end too far", "1\n2\n", 1, 3, "x", "", "end_line 3 is beyond the end"},
		{"end before start-1", "1\n2\n", 2, 0, "x", "", "use end_line=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, dir := newWS(t, nil, map[string]string{"f.txt": tt.content})
			diff, err := w.ReplaceLines(ctx, "f.txt", tt.start, tt.end, tt.text)
			if tt.err != "" {
				wantErr(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := readDisk(t, dir, "f.txt")
			if got != tt.want {
				t.Fatalf("content = %q, want %q", got, tt.want)
			}
			if diff != UnifiedDiff("f.txt", tt.content, tt.want) {
				t.Fatalf("diff =\n%s", diff)
			}
		})
	}
	w, _ := newWS(t, nil, map[string]string{"f.txt": "1\n"})
	if diff, err := w.ReplaceLines(ctx, "f.txt", 1, 1, "1"); err != nil || diff != "" || w.HistoryLen("f.txt") != 0 {
		t.Fatalf("no-op replace: %q, %v, history %d", diff, err, w.HistoryLen("f.txt"))
	}
}

func TestUndoChain(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, nil)
	steps := []func() error{
		func() error { return w.Write(ctx, "a/f.py", "v1\n") },
		func() error { return w.Append(ctx, "a/f.py", "v2\n") },
		func() error { _, err := w.Edit(ctx, "a/f.py", "v2", "V2"); return err },
		func() error { _, err := w.ReplaceLines(ctx, "a/f.py", 1, 1, "first"); return err },
		func() error { return w.Write(ctx, "a/f.py", "") },
	}
	var versions []string
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
		got, _ := readDisk(t, dir, "a/f.py")
		versions = append(versions, got)
	}
	// Undo walks back through every version.
	for i := len(versions) - 2; i >= 0; i-- {
		diff, err := w.Undo(ctx, "a/f.py")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readDisk(t, dir, "a/f.py")
		if got != versions[i] {
			t.Fatalf("undo to version %d = %q, want %q", i, got, versions[i])
		}
		if diff != UnifiedDiff("a/f.py", versions[i+1], versions[i]) {
			t.Fatalf("undo diff:\n%s", diff)
		}
	}
	// The last undo removes the file, which did not exist before.
	diff, err := w.Undo(ctx, "a/f.py")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := readDisk(t, dir, "a/f.py"); ok {
		t.Fatal("file not removed")
	}
	if want := "--- a/a/f.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-v1\n"; diff != want {
		t.Fatalf("removal diff = %q, want %q", diff, want)
	}
	_, err = w.Undo(ctx, "a/f.py")
	wantErr(t, err, "no earlier version of a/f.py to restore")
	_, err = w.Undo(ctx, "never.py")
	wantErr(t, err, "no earlier version of never.py to restore")

	// Undo restores a file that was deleted behind our back.
	if err := w.Write(ctx, "g.py", "one\n"); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, "g.py", "two\n"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "g.py"))
	diff, err = w.Undo(ctx, "g.py")
	if err != nil || diff != "--- /dev/null\n+++ b/g.py\n@@ -0,0 +1 @@\n+one\n" {
		t.Fatalf("undo over a deleted file: %q, %v", diff, err)
	}
	// Undo refuses to clobber a directory that replaced the file.
	os.Remove(filepath.Join(dir, "g.py"))
	os.Mkdir(filepath.Join(dir, "g.py"), 0o755)
	_, err = w.Undo(ctx, "g.py")
	wantErr(t, err, "is a directory")
	if fi, err := os.Stat(filepath.Join(dir, "g.py")); err != nil || !fi.IsDir() {
		t.Fatal("directory clobbered")
	}
}

func TestHistoryBounds(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, nil)
	for i := 0; i < MaxHistoryVersions+10; i++ {
		if err := w.Write(ctx, "f.txt", fmt.Sprintf("v%d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.HistoryLen("f.txt"); n != MaxHistoryVersions {
		t.Fatalf("history has %d versions, want %d", n, MaxHistoryVersions)
	}
	for i := 0; i < MaxHistoryVersions; i++ {
		if _, err := w.Undo(ctx, "f.txt"); err != nil {
			t.Fatal(err)
		}
	}
	// 60 writes made 60 earlier versions (the first: no file); the last
	// 50 are v9..v58.
	if got, _ := readDisk(t, dir, "f.txt"); got != "v9\n" {
		t.Fatalf("oldest kept version = %q, want v9", got)
	}
	if _, err := w.Undo(ctx, "f.txt"); err == nil {
		t.Fatal("undo past the kept history succeeded")
	}

	// Total size: 8 MiB versions in several files; the oldest go first.
	chunk := strings.Repeat("x", 8<<20)
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("big%d.txt", i%3)
		if err := w.Write(ctx, name, chunk[:len(chunk)-i]); err != nil {
			t.Fatal(err)
		}
	}
	if w.histBytes > MaxHistoryBytes {
		t.Fatalf("history holds %d bytes", w.histBytes)
	}
	var sum int64
	for _, vs := range w.hist {
		for _, v := range vs {
			sum += int64(len(v.data))
		}
	}
	if sum != w.histBytes {
		t.Fatalf("history accounting %d != %d", w.histBytes, sum)
	}
	// 7 of the 10 writes replaced an existing file: 7 versions of ~8 MiB
	// fit in 64 MiB, so all are kept; add more to force eviction.
	for i := 10; i < 20; i++ {
		if err := w.Write(ctx, fmt.Sprintf("big%d.txt", i%3), chunk[:len(chunk)-i]); err != nil {
			t.Fatal(err)
		}
	}
	if w.histBytes > MaxHistoryBytes {
		t.Fatalf("history holds %d bytes", w.histBytes)
	}
	if n := w.HistoryLen("big0.txt") + w.HistoryLen("big1.txt") + w.HistoryLen("big2.txt"); n >= 17 {
		t.Fatalf("no versions evicted (%d kept)", n)
	}
	// Undo still walks back through what is kept.
	if _, err := w.Undo(ctx, "big1.txt"); err != nil {
		t.Fatal(err)
	}
}

func TestTooLargeBackup(t *testing.T) {
	ctx := t.Context()
	w, dir := newWS(t, nil, nil)
	huge := strings.Repeat("y", maxBackupBytes+10)
	if err := os.WriteFile(filepath.Join(dir, "huge.log"), []byte(huge), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ctx, "huge.log", "tail\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDisk(t, dir, "huge.log"); got != huge+"tail\n" {
		t.Fatal("append to a large file lost data")
	}
	_, err := w.Undo(ctx, "huge.log")
	wantErr(t, err, "too large to keep")
	if w.histBytes != 0 {
		t.Fatalf("marker counted %d bytes", w.histBytes)
	}
	_, err = w.Edit(ctx, "huge.log", "tail", "x")
	wantErr(t, err, "too large to edit")
}

func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	w, _ := newWS(t, nil, map[string]string{"shared.txt": ""})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				name := fmt.Sprintf("g%d.txt", g)
				if err := w.Write(ctx, name, fmt.Sprintf("%d\n", i)); err != nil {
					t.Error(err)
				}
				if err := w.Append(ctx, "shared.txt", "x\n"); err != nil {
					t.Error(err)
				}
				if _, err := w.Read(ctx, name, 0, 0); err != nil {
					t.Error(err)
				}
				if _, err := w.List(ctx, ""); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	_, total, err := w.Lines(ctx, "shared.txt", 1, 1)
	if err != nil || total != 160 {
		t.Fatalf("shared.txt has %d lines, %v", total, err)
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	w, _ := newWS(t, nil, map[string]string{"a.txt": "a"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := w.Read(ctx, "a.txt", 0, 0)
	wantErr(t, err, "closed")
	wantErr(t, w.Write(ctx, "a.txt", "b"), "closed")
}
