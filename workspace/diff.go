package workspace

import (
	"fmt"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"
)

// diffContext is the number of unchanged lines shown around each change.
const diffContext = 3

// maxDiffLines bounds the number of lines (old plus new, after the common
// prefix and suffix are set aside) that get a line-by-line diff. A larger
// changed middle is shown as one block replaced by another: still a correct
// diff, and the cost stays linear in the size of the files.
const maxDiffLines = 20000

// UnifiedDiff returns a unified diff (three lines of context) that turns old
// into new, with headers "--- a/name" and "+++ b/name", or "" when old and
// new are equal. A diff longer than 64 KiB is cut at a line boundary and
// ends with a line saying so.
func UnifiedDiff(name, old, new string) string {
	return unifiedDiff("a/"+name, "b/"+name, old, new)
}

// unifiedDiff is UnifiedDiff with explicit header names, so that a file
// being created or removed can be shown against /dev/null.
//
// The line diff is go-udiff's (the Go tools' Myers diff). Two things are
// done around it, both for cost: the common prefix and suffix of whole
// lines are set aside first, so a small edit in a large file diffs a few
// lines rather than all of them; and only the edits that fit in the shown
// part of the diff are formatted, since formatting costs more than diffing.
func unifiedDiff(oldName, newName, old, new string) string {
	if old == new {
		return ""
	}
	pre, suf := commonLines(old, new)
	midOld, midNew := old[pre:len(old)-suf], new[pre:len(new)-suf]
	var edits []udiff.Edit
	if strings.Count(midOld, "\n")+strings.Count(midNew, "\n") > maxDiffLines {
		edits = []udiff.Edit{{Start: 0, End: len(midOld), New: midNew}}
	} else {
		edits = udiff.Lines(midOld, midNew)
	}
	// Every edit shows at least the bytes it removes and adds; once they
	// pass the cap, what follows would be cut anyway.
	shown, cut := 0, false
	for i := range edits {
		edits[i].Start += pre
		edits[i].End += pre
		shown += edits[i].End - edits[i].Start + len(edits[i].New)
		if shown > maxDiffBytes && i+1 < len(edits) {
			edits, cut = edits[:i+1], true
			break
		}
	}
	d, err := udiff.ToUnified(oldName, newName, old, edits, diffContext)
	if err != nil {
		// The edits come from udiff itself; this would be a bug in the
		// shifting above, and a diff is only a display.
		return fmt.Sprintf("[no diff: %v]\n", err)
	}
	return capDiff(d, cut)
}

// commonLines returns the byte lengths of the longest common prefix and
// suffix of a and b that consist of whole lines and do not overlap. a and b
// differ.
func commonLines(a, b string) (pre, suf int) {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	pre = strings.LastIndexByte(a[:i], '\n') + 1
	j := 0
	for j < n-pre && a[len(a)-1-j] == b[len(b)-1-j] {
		j++
	}
	// The suffix must start a line in both: right after the prefix or a
	// "\n". Where it does not, it starts after its own first "\n", if any.
	startsLine := func(s string, at int) bool { return at == pre || s[at-1] == '\n' }
	if !startsLine(a, len(a)-j) || !startsLine(b, len(b)-j) {
		if k := strings.IndexByte(a[len(a)-j:], '\n'); k >= 0 {
			j -= k + 1
		} else {
			j = 0
		}
	}
	return pre, j
}

// capDiff shortens a diff longer than maxDiffBytes at a line boundary, and
// marks it as cut when it is shortened or when cut says edits were left
// out before formatting.
func capDiff(d string, cut bool) string {
	if len(d) > maxDiffBytes {
		d, cut = d[:strings.LastIndexByte(d[:maxDiffBytes], '\n')+1], true
	}
	if cut {
		d += fmt.Sprintf("[diff cut at %d KiB: the rest of the change is not shown; inspect the file to see it]\n", maxDiffBytes>>10)
	}
	return d
}

// splitLines splits s into lines that keep their "\n"; only the last line
// may lack it. An empty string has no lines.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := make([]string, 0, strings.Count(s, "\n")+1)
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i+1])
		s = s[i+1:]
	}
	return lines
}
