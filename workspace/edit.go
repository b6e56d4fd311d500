package workspace

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// editable returns the current content of name for Edit and ReplaceLines:
// it must exist, be text and be at most MaxWrite bytes.
func (w *Workspace) editable(name string) (clean, resolved string, cur *version, err error) {
	clean, resolved, err = w.target(name)
	if err != nil {
		return
	}
	cur, err = w.snapshot(clean, resolved)
	if err != nil {
		return
	}
	switch {
	case !cur.existed:
		err = newErr(fs.ErrNotExist, nil, "file %q does not exist (use list_files to see the workspace, or write_file to create it)", clean)
	case cur.tooLarge:
		err = newErr(nil, nil, "file %q is too large to edit (%d bytes; at most %d)", clean, cur.size, MaxWrite)
	case isBinary(cur.data):
		err = binaryErr(clean, cur.size)
	default:
		err = writable(clean, cur)
	}
	return
}

// change writes content over the file located by editable and records the
// previous version. It returns the texts to diff: the diff is formatted by
// the caller once the lock is released, since for large files that takes
// long enough that other calls should not wait for it.
func (w *Workspace) change(clean, resolved string, cur *version, content string) (before, after string, err error) {
	if len(content) > MaxWrite {
		return "", "", tooLargeErr("the edited file", len(content))
	}
	err = w.replaceFile(clean, resolved, cur.mode, func(wr io.Writer) error {
		_, err := io.WriteString(wr, content)
		return err
	})
	if err != nil {
		return "", "", err
	}
	w.record(resolved, cur)
	return string(cur.data), content, nil
}

// Edit replaces the one occurrence of old in name with new and returns a
// unified diff of the change. old must occur exactly once. In a file with
// CRLF line endings, old and new may use plain "\n".
func (w *Workspace) Edit(ctx context.Context, name, old, new string) (diff string, err error) {
	clean, before, after, err := w.edit(ctx, name, old, new)
	if err != nil {
		return "", err
	}
	return UnifiedDiff(clean, before, after), nil
}

// edit is Edit's work under the lock.
func (w *Workspace) edit(ctx context.Context, name, old, new string) (clean, before, after string, err error) {
	if old == "" {
		return "", "", "", newErr(nil, nil, "old_text is empty: copy the exact text to replace from the file")
	}
	if old == new {
		return "", "", "", newErr(nil, nil, "new_text is the same as old_text: nothing to change")
	}
	if err := w.lock(ctx); err != nil {
		return "", "", "", err
	}
	defer w.mu.Unlock()
	clean, resolved, cur, err := w.editable(name)
	if err != nil {
		return "", "", "", err
	}
	content := string(cur.data)
	n, at, _ := occurrences(content, old)
	if n == 0 && strings.Contains(content, "\r\n") && strings.Contains(old, "\n") && !strings.Contains(old, "\r\n") {
		crlf := strings.ReplaceAll(old, "\n", "\r\n")
		if m, i, _ := occurrences(content, crlf); m > 0 {
			old, n, at = crlf, m, i
			if !strings.Contains(new, "\r\n") {
				new = strings.ReplaceAll(new, "\n", "\r\n")
			}
		}
	}
	switch {
	case n == 0:
		msg := fmt.Sprintf("old_text not found in %s; inspect the file and copy the exact text, including indentation", clean)
		if t := strings.TrimSpace(old); t != "" && t != old && countOverlapping(content, t) > 0 {
			msg += " (it is found when leading and trailing whitespace is ignored)"
		}
		return "", "", "", newErr(nil, nil, "%s", msg)
	case n > 1:
		return "", "", "", newErr(nil, nil, "old_text occurs %d times in %s; include more surrounding lines to make it unique", n, clean)
	}
	before, after, err = w.change(clean, resolved, cur, content[:at]+new+content[at+len(old):])
	return clean, before, after, err
}

// countOverlapping counts the positions where sub occurs in s, overlapping
// ones included ("aa" occurs twice in "aaa").
func countOverlapping(s, sub string) int {
	n, _, _ := occurrences(s, sub)
	return n
}

// occurrences counts the (overlapping) occurrences of sub in s and returns
// the index of the first, or -1, and the number of comparison steps taken.
// It is Knuth-Morris-Pratt, so the work is O(len(s)+len(sub)) whatever the
// input: repeated strings.Index from each match on costs O(len(sub)) per
// match, so a 2 MB file of one repeated byte with a 1 MB old_text took
// seconds of CPU, all of it with the workspace lock held. The steps count
// lets a test check the bound without timing anything.
func occurrences(s, sub string) (n, first, steps int) {
	first = -1
	m := len(sub)
	if m == 0 || m > len(s) {
		return 0, -1, 0
	}
	// fail[i] is the length of the longest proper prefix of sub[:i+1] that
	// is also its suffix. int32 is enough: sub is at most len(s), and s is
	// at most MaxWrite bytes.
	fail := make([]int32, m)
	k := 0
	for i := 1; i < m; i++ {
		for k > 0 && sub[i] != sub[k] {
			k = int(fail[k-1])
			steps++
		}
		if sub[i] == sub[k] {
			k++
		}
		fail[i] = int32(k)
		steps++
	}
	k = 0
	for i := 0; i < len(s); i++ {
		for k > 0 && s[i] != sub[k] {
			k = int(fail[k-1])
			steps++
		}
		if s[i] == sub[k] {
			k++
		}
		steps++
		if k == m {
			if n == 0 {
				first = i - m + 1
			}
			n++
			k = int(fail[k-1])
		}
	}
	return n, first, steps
}

// ReplaceLines replaces lines start..end (1-based, inclusive) of name with
// text and returns a unified diff. end = start-1 inserts text before line
// start without replacing anything; start = total+1 appends. Empty text
// deletes the lines. text is taken as whole lines: a final "\n" is added
// unless it replaces a last line that had none.
func (w *Workspace) ReplaceLines(ctx context.Context, name string, start, end int, text string) (diff string, err error) {
	clean, before, after, err := w.replaceLines(ctx, name, start, end, text)
	if err != nil {
		return "", err
	}
	return UnifiedDiff(clean, before, after), nil
}

// replaceLines is ReplaceLines' work under the lock.
func (w *Workspace) replaceLines(ctx context.Context, name string, start, end int, text string) (clean, before, after string, err error) {
	fail := func(err error) (string, string, string, error) { return "", "", "", err }
	if start < 1 {
		return fail(newErr(nil, nil, "start_line must be 1 or more (got %d); lines are numbered from 1", start))
	}
	if end < start-1 {
		return fail(newErr(nil, nil,
			"end_line (%d) is before start_line (%d); to insert before line %d without replacing anything, use end_line=%d",
			end, start, start, start-1))
	}
	if err := w.lock(ctx); err != nil {
		return fail(err)
	}
	defer w.mu.Unlock()
	clean, resolved, cur, err := w.editable(name)
	if err != nil {
		return fail(err)
	}
	lines := splitLines(string(cur.data))
	total := len(lines)
	if start > total+1 {
		return fail(newErr(nil, nil, "start_line %d is beyond the end of %q, which has %d lines; use start_line=%d, end_line=%d to append",
			start, clean, total, total+1, total))
	}
	if end > total {
		return fail(newErr(nil, nil, "end_line %d is beyond the end of %q, which has %d lines", end, clean, total))
	}
	add := splitLines(text)
	if n := len(add); n > 0 && !strings.HasSuffix(add[n-1], "\n") {
		replacesUnterminatedLast := end >= start && end == total && !strings.HasSuffix(lines[total-1], "\n")
		if !replacesUnterminatedLast {
			add[n-1] += "\n"
		}
	}
	out := make([]string, 0, total-(end-start+1)+len(add))
	out = append(out, lines[:start-1]...)
	out = append(out, add...)
	out = append(out, lines[end:]...)
	for i := 0; i < len(out)-1; i++ {
		if !strings.HasSuffix(out[i], "\n") {
			out[i] += "\n"
		}
	}
	content := strings.Join(out, "")
	if content == string(cur.data) {
		return clean, content, content, nil // nothing changed: an empty diff
	}
	before, after, err = w.change(clean, resolved, cur, content)
	return clean, before, after, err
}

// Undo restores the version of name from before its most recent change
// (Write, Append, Copy to it, Edit, ReplaceLines), removing the file if it
// did not exist then, and returns a unified diff from the current content
// to the restored one. It can be called again to go further back, until
// no earlier version is left.
func (w *Workspace) Undo(ctx context.Context, name string) (diff string, err error) {
	clean, from, to, err := w.undo(ctx, name)
	if err != nil {
		return "", err
	}
	// Formatted once the lock is released, as for edits.
	return versionDiff(clean, from, to), nil
}

// undo is Undo's work under the lock; it returns the versions to diff.
func (w *Workspace) undo(ctx context.Context, name string) (clean string, from, to *version, err error) {
	if err := w.lock(ctx); err != nil {
		return "", nil, nil, err
	}
	defer w.mu.Unlock()
	clean, resolved, err := w.target(name)
	if err != nil {
		return "", nil, nil, err
	}
	h := w.hist[resolved]
	if len(h) == 0 {
		return "", nil, nil, newErr(nil, nil, "no earlier version of %s to restore", clean)
	}
	prev := h[len(h)-1]
	if prev.tooLarge {
		return "", nil, nil, newErr(nil, nil, "cannot undo the last change to %s: the version before it (%d bytes) was too large to keep", clean, prev.size)
	}
	cur, err := w.snapshot(clean, resolved)
	if err != nil {
		return "", nil, nil, newErr(nil, err, "cannot undo the last change to %s: %v", clean, err)
	}
	switch {
	case prev.existed:
		err = w.replaceFile(clean, resolved, prev.mode, func(wr io.Writer) error {
			_, err := wr.Write(prev.data)
			return err
		})
	case cur.existed:
		if err = w.root.Remove(resolved); err != nil {
			err = w.fsErr("file", clean, err)
		}
	}
	if err != nil {
		return "", nil, nil, err
	}
	h[len(h)-1] = nil
	if len(h) == 1 {
		delete(w.hist, resolved)
	} else {
		w.hist[resolved] = h[:len(h)-1]
	}
	w.histBytes -= int64(len(prev.data))
	return clean, cur, prev, nil
}

// versionDiff shows the change from one version of a file to another,
// against /dev/null where one of them did not exist.
func versionDiff(clean string, from, to *version) string {
	oldName, newName := "a/"+clean, "b/"+clean
	if !from.existed {
		oldName = "/dev/null"
	}
	if !to.existed {
		newName = "/dev/null"
	}
	switch {
	case !from.existed && !to.existed:
		return ""
	case from.tooLarge || to.tooLarge:
		return fmt.Sprintf("[%s changed; too large to show a diff]\n", clean)
	case isBinary(from.data) || isBinary(to.data):
		if from.existed && to.existed && string(from.data) == string(to.data) {
			return ""
		}
		return fmt.Sprintf("Binary files %s and %s differ\n", oldName, newName)
	}
	d := unifiedDiff(oldName, newName, string(from.data), string(to.data))
	if d == "" && from.existed != to.existed {
		// An empty file created or removed.
		d = fmt.Sprintf("--- %s\n+++ %s\n", oldName, newName)
	}
	return d
}
