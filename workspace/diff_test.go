package workspace

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnifiedDiffTable(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     string
	}{
		{
			name: "equal",
			old:  "a\nb\n", new: "a\nb\n",
			want: "",
		},
		{
			name: "both empty",
			want: "",
		},
		{
			name: "create from empty",
			old:  "", new: "x\ny\n",
			want: "--- a/f\n+++ b/f\n@@ -0,0 +1,2 @@\n+x\n+y\n",
		},
		{
			name: "delete everything",
			old:  "x\ny\n", new: "",
			want: "--- a/f\n+++ b/f\n@@ -1,2 +0,0 @@\n-x\n-y\n",
		},
		{
			name: "insert at start",
			old:  "a\nb\nc\nd\ne\n", new: "new\na\nb\nc\nd\ne\n",
			want: "--- a/f\n+++ b/f\n@@ -1,3 +1,4 @@\n+new\n a\n b\n c\n",
		},
		{
			name: "insert at end",
			old:  "a\nb\nc\nd\ne\n", new: "a\nb\nc\nd\ne\nnew\n",
			want: "--- a/f\n+++ b/f\n@@ -3,3 +3,4 @@\n c\n d\n e\n+new\n",
		},
		{
			name: "delete in middle",
			old:  "1\n2\n3\n4\n5\n6\n7\n8\n9\n", new: "1\n2\n3\n4\n6\n7\n8\n9\n",
			want: "--- a/f\n+++ b/f\n@@ -2,7 +2,6 @@\n 2\n 3\n 4\n-5\n 6\n 7\n 8\n",
		},
		{
			name: "change one line",
			old:  "1\n2\n3\n", new: "1\nTWO\n3\n",
			want: "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n 1\n-2\n+TWO\n 3\n",
		},
		{
			name: "change first line",
			old:  "1\n2\n3\n4\n5\n", new: "one\n2\n3\n4\n5\n",
			want: "--- a/f\n+++ b/f\n@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n",
		},
		{
			name: "change last line",
			old:  "1\n2\n3\n4\n5\n", new: "1\n2\n3\n4\nfive\n",
			want: "--- a/f\n+++ b/f\n@@ -2,4 +2,4 @@\n 2\n 3\n 4\n-5\n+five\n",
		},
		{
			name: "add missing final newline",
			old:  "a\nb", new: "a\nb\n",
			want: "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
		},
		{
			name: "remove final newline",
			old:  "a\nb\n", new: "a\nb",
			want: "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n",
		},
		{
			name: "append to file without final newline",
			old:  "a", new: "a\nb",
			want: "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n-a\n\\ No newline at end of file\n+a\n+b\n\\ No newline at end of file\n",
		},
		{
			name: "two hunks",
			old:  "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n",
			new:  "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\nY\n15\n",
			want: "--- a/f\n+++ b/f\n" +
				"@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n" +
				"@@ -11,5 +11,5 @@\n 11\n 12\n 13\n-14\n+Y\n 15\n",
		},
		{
			name: "close changes share a hunk",
			old:  "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
			new:  "1\nX\n3\n4\n5\n6\n7\n8\nY\n10\n",
			want: "--- a/f\n+++ b/f\n@@ -1,10 +1,10 @@\n 1\n-2\n+X\n 3\n 4\n 5\n 6\n 7\n 8\n-9\n+Y\n 10\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := UnifiedDiff("f", tt.old, tt.new)
			if got != tt.want {
				t.Errorf("UnifiedDiff(%q, %q) =\n%s\nwant\n%s", tt.old, tt.new, got, tt.want)
			}
		})
	}
}

// applyOps rebuilds both sides from an edit script, to check that it is a
// valid one.
func applyOps(t *testing.T, a, b []string, ops []diffOp) {
	t.Helper()
	var ra, rb []string
	for _, op := range ops {
		switch op.kind {
		case opEqual:
			if a[op.ai] != b[op.bi] {
				t.Fatalf("equal op pairs different lines %q and %q", a[op.ai], b[op.bi])
			}
			ra = append(ra, a[op.ai])
			rb = append(rb, b[op.bi])
		case opDelete:
			ra = append(ra, a[op.ai])
		case opInsert:
			rb = append(rb, b[op.bi])
		}
	}
	if strings.Join(ra, "") != strings.Join(a, "") || strings.Join(rb, "") != strings.Join(b, "") {
		t.Fatalf("edit script does not rebuild its inputs")
	}
}

func randomText(r *rand.Rand, lines int) string {
	var sb strings.Builder
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&sb, "line %c\n", 'a'+rune(r.IntN(6)))
	}
	s := sb.String()
	if s != "" && r.IntN(4) == 0 {
		s = strings.TrimSuffix(s, "\n")
	}
	return s
}

func mutate(r *rand.Rand, s string) string {
	lines := splitLines(s)
	for n := r.IntN(6); n >= 0; n-- {
		switch i := r.IntN(len(lines) + 1); r.IntN(3) {
		case 0:
			lines = append(lines[:i], append([]string{fmt.Sprintf("new %d\n", r.IntN(100))}, lines[i:]...)...)
		case 1:
			if i < len(lines) {
				lines = append(lines[:i], lines[i+1:]...)
			}
		case 2:
			if i < len(lines) {
				lines[i] = fmt.Sprintf("changed %d\n", r.IntN(100))
			}
		}
	}
	out := strings.Join(lines, "")
	if r.IntN(5) == 0 {
		out = strings.TrimSuffix(out, "\n")
	}
	return out
}

func TestDiffOpsMinimalAndValid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		old := randomText(r, r.IntN(30))
		new := mutate(r, old)
		a, b := splitLines(old), splitLines(new)
		ops := diffLines(a, b)
		applyOps(t, a, b, ops)
		// A shortest script keeps an LCS of the lines.
		eq := 0
		for _, op := range ops {
			if op.kind == opEqual {
				eq++
			}
		}
		if want := lcsLen(a, b); eq != want {
			t.Fatalf("case %d: diff keeps %d lines, LCS is %d", i, eq, want)
		}
	}
}

func lcsLen(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

func TestDiffLargeInputsFallBack(t *testing.T) {
	// Many scattered changes in a big file exceed the edit bound; the diff
	// must still be a valid script, and come back quickly.
	r := rand.New(rand.NewPCG(3, 4))
	var a, b []string
	for i := 0; i < 15000; i++ {
		a = append(a, fmt.Sprintf("%d %d\n", i, r.IntN(3)))
		b = append(b, fmt.Sprintf("%d %d\n", i, r.IntN(3)))
	}
	applyOps(t, a, b, diffLines(a, b))
	// Same size, one change in the middle: the prefix/suffix trim keeps
	// the diff small.
	c := append([]string(nil), a...)
	c[7000] = "changed\n"
	d := UnifiedDiff("big", strings.Join(a, ""), strings.Join(c, ""))
	if want := "@@ -6998,7 +6998,7 @@"; !strings.Contains(d, want) || strings.Count(d, "\n") != 11 {
		t.Fatalf("diff of one change in a big file:\n%s", d)
	}
}

// TestDiffAppliesWithPatch checks random diffs with the patch command.
func TestDiffAppliesWithPatch(t *testing.T) {
	patch, err := exec.LookPath("patch")
	if err != nil {
		t.Skip("patch command not available")
	}
	r := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	for i := 0; i < 60; i++ {
		old := randomText(r, 1+r.IntN(40))
		new := mutate(r, old)
		if new == "" || old == new {
			continue
		}
		d := UnifiedDiff("f.txt", old, new)
		file := filepath.Join(dir, "f.txt")
		out := filepath.Join(dir, "out.txt")
		pf := filepath.Join(dir, "p.diff")
		os.Remove(out)
		if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pf, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(patch, "--batch", "--silent", "--fuzz=0", "-o", out, file, "-i", pf)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: patch failed: %v\n%s\nold:\n%q\nnew:\n%q\ndiff:\n%s", i, err, msg, old, new, d)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != new {
			t.Fatalf("case %d: patched file is\n%q\nwant\n%q\ndiff:\n%s", i, got, new, d)
		}
	}
}
