package tasks

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The workspace package opens a workspace with any Match(string) bool.
var _ interface{ Match(string) bool } = ReadOnly{}

func TestReadOnlyMatch(t *testing.T) {
	r, err := NewReadOnly("train.csv", "data/*", "models/", "ckpt/**", "./answer.txt", "*.npy", "", "# comment", `win\dir\*`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Patterns(), ","); got != "train.csv,/data,/models,/ckpt,/answer.txt,*.npy,/win/dir" {
		t.Errorf("Patterns() = %s", got)
	}
	tests := []struct {
		path string
		ro   bool
	}{
		{"train.csv", true},
		{"./train.csv", true},
		{"/train.csv", true},
		{"sub/train.csv", true},
		{"sub/../train.csv", true},
		{"data", true},
		{"data/x.txt", true},
		{"data/deep/y.txt", true},
		{"data/new.txt", true},
		// A pattern written with "/" is anchored at the root, even once
		// cleaning has taken the "/" out of it; one without is not.
		{"other/data/x.txt", false},
		{"other/models/m.txt", false},
		{"x/ckpt/1/w.txt", false},
		{"sub/answer.txt", false},
		{"a/win/dir/f", false},
		{"sub/feat/x.npy", true},
		{"sub/train.csv/f", true},
		{"models/m.txt", true},
		{"ckpt/1/w.txt", true},
		{"answer.txt", true},
		{"feat/x.npy", true},
		{"win/dir/f", true},
		{`win\dir\f`, true},
		{"train.py", false},
		{"datax/x.txt", false},
		{"mydata/x.txt", false},
		{"train.csv.bak.txt", false},
		{"new.txt", false},
		{"", false},
		{".", false},
		{"../train.csv", false},
		{"../data/x.txt", false},
	}
	for _, tt := range tests {
		if got := r.Match(tt.path); got != tt.ro {
			t.Errorf("Match(%q) = %v, want %v", tt.path, got, tt.ro)
		}
	}
	if (ReadOnly{}).Match("anything") || !(ReadOnly{}).Empty() {
		t.Error("the zero ReadOnly must match nothing")
	}
	// Patterns() is a canonical form: parsing it again gives the same set.
	again, err := NewReadOnly(r.Patterns()...)
	if err != nil || !slices.Equal(again.Patterns(), r.Patterns()) {
		t.Errorf("NewReadOnly(Patterns()...) = %v, %v; want %v", again.Patterns(), err, r.Patterns())
	}
	for _, tt := range tests {
		if got := again.Match(tt.path); got != tt.ro {
			t.Errorf("reparsed: Match(%q) = %v, want %v", tt.path, got, tt.ro)
		}
	}
	whole, err := NewReadOnly("./")
	if err != nil || !whole.Match("a/b/c.txt") || !whole.Match("x") {
		t.Errorf(`"./" must cover the whole workspace: %v, %v`, whole.Patterns(), err)
	}
}

func TestReadOnlyInvalid(t *testing.T) {
	if _, err := NewReadOnly("ok.csv", "data/[x"); err == nil || !strings.Contains(err.Error(), `pattern 2: read-only pattern "data/[x"`) {
		t.Errorf("NewReadOnly with a bad pattern: %v", err)
	}
	dir := t.TempDir()
	writeTask(t, dir, "bad", map[string]string{"scripts/read_only_files.txt": "# data\ntrain.csv\n[\\\n"})
	_, err := NewCatalog(nil, dir, t.TempDir()).Load(t.Context(), "bad")
	want := filepath.Join(dir, "bad", "scripts", "read_only_files.txt") + `:3: read-only pattern "[\\"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load with a bad pattern on line 3: %v, want an error containing %s", err, want)
	}
}

func TestReadOnlyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"train.py", "train.csv", "data/x.csv", "data/sub/y.csv", "other/z.csv"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A link is neither followed nor listed: a sandbox protects files, and
	// eval restores them, only as regular files.
	if err := os.Symlink("train.csv", filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		patterns []string
		want     string
	}{
		{nil, ""},
		{[]string{"train.csv"}, "train.csv"},
		{[]string{"data/*"}, "data/sub/y.csv,data/x.csv"},
		{[]string{"*.csv"}, "data/sub/y.csv,data/x.csv,other/z.csv,train.csv"},
		{[]string{"missing.csv"}, ""},
	}
	for _, tc := range tests {
		r, err := NewReadOnly(tc.patterns...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Files(dir)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("Files(%v) = %v, %v; want %s", tc.patterns, got, err, tc.want)
		}
	}
	r, _ := NewReadOnly("x")
	if _, err := r.Files(filepath.Join(dir, "missing")); err == nil {
		t.Error("Files of a missing folder must fail")
	}
}
