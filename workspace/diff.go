package workspace

import (
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines shown around each change.
const diffContext = 3

// maxDiffLines bounds the number of lines (old plus new, after the common
// prefix and suffix are trimmed) that get a minimal line diff. Larger
// middles are reported as one block replaced by another.
const maxDiffLines = 20000

// maxDiffEdits bounds the edit distance the minimal diff searches for. Past
// it the changed middle is reported coarsely, which is still a correct diff.
const maxDiffEdits = 1000

// UnifiedDiff returns a unified diff (three lines of context) that turns old
// into new, with headers "--- a/name" and "+++ b/name". It returns "" when
// old and new are equal.
func UnifiedDiff(name, old, new string) string {
	return unifiedDiff("a/"+name, "b/"+name, old, new)
}

// unifiedDiff is UnifiedDiff with explicit header names, so that a file
// being created or removed can be shown against /dev/null.
func unifiedDiff(oldName, newName, old, new string) string {
	if old == new {
		return ""
	}
	a := splitLines(old)
	b := splitLines(new)
	ops := diffLines(a, b)

	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", oldName, newName)
	for _, h := range groupHunks(ops) {
		writeHunk(&sb, h, a, b)
	}
	return sb.String()
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

type opKind byte

const (
	opEqual opKind = iota
	opDelete
	opInsert
)

// diffOp is one step of an edit script: for opEqual both indexes are used,
// for opDelete only ai (an index into old), for opInsert only bi.
type diffOp struct {
	kind   opKind
	ai, bi int
}

// diffLines returns an edit script turning a into b, one op per line.
func diffLines(a, b []string) []diffOp {
	// Trim the common prefix and suffix: cheap, and it keeps the expensive
	// part of the work to the region that actually changed.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}

	ops := make([]diffOp, 0, len(a)+len(b)-pre-suf)
	for i := 0; i < pre; i++ {
		ops = append(ops, diffOp{opEqual, i, i})
	}

	am := a[pre : len(a)-suf]
	bm := b[pre : len(b)-suf]
	var mid []diffOp
	if len(am)+len(bm) <= maxDiffLines {
		mid = myers(intern(am, bm))
	}
	if mid == nil {
		mid = coarse(len(am), len(bm))
	}
	for _, op := range mid {
		op.ai += pre
		op.bi += pre
		ops = append(ops, op)
	}

	for i := 0; i < suf; i++ {
		ops = append(ops, diffOp{opEqual, len(a) - suf + i, len(b) - suf + i})
	}
	return ops
}

// intern maps every distinct line to a small integer so that the diff
// compares ints instead of strings.
func intern(a, b []string) ([]int, []int) {
	ids := make(map[string]int, len(a)+len(b))
	conv := func(lines []string) []int {
		out := make([]int, len(lines))
		for i, l := range lines {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	return conv(a), conv(b)
}

// coarse is the fallback edit script: delete all of a, then insert all of b.
func coarse(n, m int) []diffOp {
	ops := make([]diffOp, 0, n+m)
	for i := 0; i < n; i++ {
		ops = append(ops, diffOp{opDelete, i, 0})
	}
	for j := 0; j < m; j++ {
		ops = append(ops, diffOp{opInsert, n, j})
	}
	return ops
}

// myers computes a shortest edit script with Myers' O(ND) greedy algorithm.
// It returns nil when the edit distance exceeds maxDiffEdits, so that the
// caller can fall back to a coarse diff instead of spending quadratic time.
func myers(a, b []int) []diffOp {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		return coarse(n, m)
	}
	limit := n + m
	if limit > maxDiffEdits {
		limit = maxDiffEdits
	}
	// v[k+off] is the furthest x reached on diagonal k (k = x - y).
	off := limit + 1
	v := make([]int, 2*limit+3)
	// trace[d] holds v[-d..d] as it was after step d.
	var trace [][]int
	found := -1
	for d := 0; d <= limit && found < 0; d++ {
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1] // step down: insert b[y-1]
			} else {
				x = v[off+k-1] + 1 // step right: delete a[x-1]
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				found = d
			}
		}
		trace = append(trace, append([]int(nil), v[off-d:off+d+1]...))
	}
	if found < 0 {
		return nil
	}

	// Walk back from (n, m) to (0, 0), collecting ops in reverse.
	rev := make([]diffOp, 0, n+m)
	x, y := n, m
	for d := found; d > 0; d-- {
		prev := trace[d-1] // indexes -(d-1)..(d-1), stored from 0
		at := func(k int) int { return prev[k+d-1] }
		k := x - y
		var pk int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := at(pk)
		py := px - pk
		for x > px && y > py {
			x--
			y--
			rev = append(rev, diffOp{opEqual, x, y})
		}
		if x == px {
			y--
			rev = append(rev, diffOp{opInsert, x, y})
		} else {
			x--
			rev = append(rev, diffOp{opDelete, x, y})
		}
	}
	for x > 0 && y > 0 {
		x--
		y--
		rev = append(rev, diffOp{opEqual, x, y})
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}

// groupHunks splits ops into hunks: runs of changes with up to diffContext
// unchanged lines around them. Changes separated by at most 2*diffContext
// unchanged lines share a hunk.
func groupHunks(ops []diffOp) [][]diffOp {
	var hunks [][]diffOp
	i := 0
	for i < len(ops) {
		// Find the next change.
		for i < len(ops) && ops[i].kind == opEqual {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(i-diffContext, 0)
		// Extend while the gap to the following change is small enough.
		end := i
		for {
			for end < len(ops) && ops[end].kind != opEqual {
				end++
			}
			gap := end
			for gap < len(ops) && ops[gap].kind == opEqual {
				gap++
			}
			if gap < len(ops) && gap-end <= 2*diffContext {
				end = gap
				continue
			}
			end = min(end+diffContext, len(ops))
			break
		}
		hunks = append(hunks, ops[start:end])
		i = end
	}
	return hunks
}

// writeHunk writes one hunk with its "@@ -l,s +l,s @@" header.
func writeHunk(sb *strings.Builder, h []diffOp, a, b []string) {
	aStart, bStart := -1, -1
	aCount, bCount := 0, 0
	for _, op := range h {
		switch op.kind {
		case opEqual:
			if aStart < 0 {
				aStart = op.ai
			}
			if bStart < 0 {
				bStart = op.bi
			}
			aCount++
			bCount++
		case opDelete:
			if aStart < 0 {
				aStart = op.ai
			}
			aCount++
		case opInsert:
			if bStart < 0 {
				bStart = op.bi
			}
			bCount++
		}
	}
	// An empty range is numbered by the line before it; the delete/insert
	// ops carry the matching position in the other file.
	if aStart < 0 {
		aStart = firstOther(h, opInsert)
	}
	if bStart < 0 {
		bStart = firstOther(h, opDelete)
	}
	fmt.Fprintf(sb, "@@ -%s +%s @@\n", hunkRange(aStart, aCount), hunkRange(bStart, bCount))
	for _, op := range h {
		switch op.kind {
		case opEqual:
			writeDiffLine(sb, ' ', a[op.ai])
		case opDelete:
			writeDiffLine(sb, '-', a[op.ai])
		case opInsert:
			writeDiffLine(sb, '+', b[op.bi])
		}
	}
}

// firstOther returns, for a hunk that only has ops of kind k, the position
// of its first op in the file those ops do not index.
func firstOther(h []diffOp, k opKind) int {
	for _, op := range h {
		if op.kind == k {
			if k == opInsert {
				return op.ai
			}
			return op.bi
		}
	}
	return 0
}

// hunkRange formats a 0-based start and a count in unified-diff style.
func hunkRange(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start) // the line before an empty range
	case 1:
		return fmt.Sprintf("%d", start+1)
	default:
		return fmt.Sprintf("%d,%d", start+1, count)
	}
}

func writeDiffLine(sb *strings.Builder, prefix byte, line string) {
	sb.WriteByte(prefix)
	sb.WriteString(line)
	if !strings.HasSuffix(line, "\n") {
		sb.WriteString("\n\\ No newline at end of file\n")
	}
}
