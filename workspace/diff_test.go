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

// applyDiff applies a unified diff to old, checking every context and
// removed line against old, so that a diff that does not describe old
// fails: it is an independent reading of the format, not udiff's own.
func applyDiff(t *testing.T, old, diff string) string {
	t.Helper()
	if diff == "" {
		return old
	}
	a := splitLines(old)
	var out []string
	lines := strings.SplitAfter(diff, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		t.Fatalf("diff has no headers:\n%s", diff)
	}
	ai := 0 // next line of a to use
	// last is the line just written, so that a following "\ No newline"
	// marker can drop its "\n"; lastOld is set when it came from old.
	last, lastOld := (*string)(nil), false
	for _, l := range lines[2:] {
		if l == "" {
			continue
		}
		switch l[0] {
		case '@':
			var os, ol, ns, nl int
			if _, err := fmt.Sscanf(hunkHeader(l), "-%d,%d +%d,%d", &os, &ol, &ns, &nl); err != nil {
				t.Fatalf("bad hunk header %q: %v", l, err)
			}
			start := os - 1
			if ol == 0 {
				start = os // an empty range is numbered by the line before it
			}
			if start < ai {
				t.Fatalf("hunk %q goes backwards", l)
			}
			out = append(out, a[ai:start]...)
			ai = start
			last = nil
		case ' ', '-':
			if ai >= len(a) {
				t.Fatalf("diff line %q is past the end of old", l)
			}
			want := a[ai]
			if got := l[1:]; got != want && got != want+"\n" {
				t.Fatalf("diff line %q does not match old line %d %q", l, ai+1, want)
			}
			if l[0] == ' ' {
				out = append(out, want)
				last, lastOld = &out[len(out)-1], true
			} else {
				last = nil
			}
			ai++
		case '+':
			out = append(out, l[1:])
			last, lastOld = &out[len(out)-1], false
		case '\\':
			if last != nil && !lastOld {
				*last = strings.TrimSuffix(*last, "\n")
			}
		default:
			t.Fatalf("unexpected diff line %q", l)
		}
	}
	return strings.Join(append(out, a[ai:]...), "")
}

// hunkHeader turns "@@ -3 +3,2 @@" into "-3,1 +3,2".
func hunkHeader(l string) string {
	f := strings.Fields(l)
	for i, r := range f[1:3] {
		if !strings.Contains(r, ",") {
			f[1+i] = r + ",1"
		}
	}
	return f[1] + " " + f[2]
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

// TestDiffMinimalAndApplies: random small edits give a diff that turns old
// into new and is minimal: it removes and adds only the lines outside a
// longest common subsequence.
func TestDiffMinimalAndApplies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		old := randomText(r, r.IntN(30))
		new := mutate(r, old)
		d := UnifiedDiff("f", old, new)
		if got := applyDiff(t, old, d); got != new {
			t.Fatalf("case %d: the diff turns %q into %q, want %q\n%s", i, old, got, new, d)
		}
		a, b := splitLines(old), splitLines(new)
		removed, added := 0, 0
		for _, l := range strings.SplitAfter(d, "\n")[min(2, strings.Count(d, "\n")):] {
			switch {
			case strings.HasPrefix(l, "-"):
				removed++
			case strings.HasPrefix(l, "+"):
				added++
			}
		}
		if lcs := lcsLen(a, b); removed != len(a)-lcs || added != len(b)-lcs {
			t.Fatalf("case %d: diff removes %d and adds %d lines; minimal is %d and %d\n%s", i, removed, added, len(a)-lcs, len(b)-lcs, d)
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
	// Many scattered changes in a big file: past maxDiffLines the middle is
	// one block replaced by another, still a diff that applies.
	r := rand.New(rand.NewPCG(3, 4))
	var a, b []string
	for i := 0; i < 15000; i++ {
		a = append(a, fmt.Sprintf("%d %d\n", i, r.IntN(3)))
		b = append(b, fmt.Sprintf("%d %d\n", i, r.IntN(3)))
	}
	old, new := strings.Join(a, ""), strings.Join(b, "")
	d := unifiedDiff("a/big", "b/big", old, new)
	if !strings.HasSuffix(d, "inspect the file to see it]\n") || len(d) > maxDiffBytes+200 {
		t.Fatalf("diff of a big rewrite is %d bytes and ends %q; want it cut at %d", len(d), d[max(0, len(d)-80):], maxDiffBytes)
	}
	// What is shown is the start of the true diff: without the cut it
	// applies (checked on a part small enough to show whole).
	small := strings.Join(a[:500], "")
	if got := applyDiff(t, small, UnifiedDiff("f", small, strings.Join(b[:500], ""))); got != strings.Join(b[:500], "") {
		t.Fatal("diff of 500 scattered changes does not apply")
	}
	// Same size, one change in the middle: setting the common lines aside
	// keeps the diff small and its line numbers right.
	c := append([]string(nil), a...)
	c[7000] = "changed\n"
	d = UnifiedDiff("big", old, strings.Join(c, ""))
	if want := "@@ -6998,7 +6998,7 @@"; !strings.Contains(d, want) || strings.Count(d, "\n") != 11 {
		t.Fatalf("diff of one change in a big file:\n%s", d)
	}
	if got := applyDiff(t, old, d); got != strings.Join(c, "") {
		t.Fatal("diff of one change in a big file does not apply")
	}
}

func TestCommonLines(t *testing.T) {
	tests := []struct {
		a, b     string
		pre, suf int
	}{
		{"a\nb\nc\n", "a\nX\nc\n", 2, 2},
		{"a\nb", "a\nb\n", 2, 0},        // the last line differs by its newline
		{"ab\nc\n", "ac\nc\n", 0, 2},    // a shared start of a line is not a line
		{"x\n", "y\nx\n", 0, 2},         // all of a is the suffix
		{"a\nq\n", "a\nq\nq\n", 4, 0},   // the prefix comes first; the suffix may not overlap it
		{"1\nxyz\n", "1\nwxyz\n", 2, 0}, // a shared end of a line is not a line
		{"abc", "xbc", 0, 0},
	}
	for _, tc := range tests {
		pre, suf := commonLines(tc.a, tc.b)
		if pre != tc.pre || suf != tc.suf {
			t.Errorf("commonLines(%q, %q) = %d, %d; want %d, %d", tc.a, tc.b, pre, suf, tc.pre, tc.suf)
		}
	}
}

// TestDiffCap: a diff over maxDiffBytes keeps its beginning, exactly as the
// whole diff has it, up to a line boundary, and says that it was cut.
func TestDiffCap(t *testing.T) {
	var a, b strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&a, "line %d of the old text\n", i)
		fmt.Fprintf(&b, "line %d of the new text\n", i)
	}
	d := UnifiedDiff("f", a.String(), b.String())
	note := fmt.Sprintf("[diff cut at %d KiB: the rest of the change is not shown; inspect the file to see it]\n", maxDiffBytes>>10)
	body, ok := strings.CutSuffix(d, note)
	if !ok {
		t.Fatalf("long diff does not end with the cut note: ...%q", d[max(0, len(d)-120):])
	}
	if len(body) > maxDiffBytes || !strings.HasSuffix(body, "\n") {
		t.Fatalf("cut diff body is %d bytes (cap %d), ends %q", len(body), maxDiffBytes, body[len(body)-20:])
	}
	if !strings.HasPrefix(body, "--- a/f\n+++ b/f\n@@ -1,3000 +1,3000 @@\n-line 0 of the old text\n") {
		t.Fatalf("cut diff starts %q", body[:100])
	}
	if short := UnifiedDiff("f", "a\n", "b\n"); strings.Contains(short, "diff cut") {
		t.Fatalf("short diff marked as cut: %q", short)
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
