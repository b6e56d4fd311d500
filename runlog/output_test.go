package runlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOutputFileCap(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		writes   []string
		want     string
	}{
		{"under cap", 100, []string{"hello ", "world"}, "hello world"},
		{"exactly cap", 5, []string{"hello"}, "hello"},
		{"one write over", 10, []string{strings.Repeat("a", 25)},
			strings.Repeat("a", 10) + "\n…[output truncated: 15 bytes dropped after the first 10 bytes]\n"},
		{"crossing writes", 10, []string{"123456", "789012", "345"},
			"1234567890\n…[output truncated: 5 bytes dropped after the first 10 bytes]\n"},
		{"default cap", 0, []string{"small"}, "small"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLog(t)
			name := fmt.Sprintf("step-%04d.log", i)
			w, rel, err := l.OutputFile(name, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if rel != "outputs/"+name {
				t.Errorf("rel = %q", rel)
			}
			for _, s := range tt.writes {
				// The writer must accept everything so the producer never stalls.
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(l.Dir(), filepath.FromSlash(rel)))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("content = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOutputFileNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"step-0004.log", true},
		{"final.txt", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../escape.log", false},
		{"a/b.log", false},
		{"/abs.log", false},
		{`a\b.log`, false},
		{"x..y", false},
		{"nul\x00.log", false},
	}
	l := newTestLog(t)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			w, _, err := l.OutputFile(tt.name, 0)
			if tt.ok != (err == nil) {
				t.Fatalf("OutputFile(%q) err = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if w != nil {
				w.Close()
			}
		})
	}
	if _, _, err := l.OutputFile("step-0004.log", 0); err == nil {
		t.Error("reusing an output name succeeded")
	}
}
