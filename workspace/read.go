package workspace

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Entry is one directory entry as listed for the agent.
type Entry struct {
	Name string `json:"name"`
	Type string `json:"type"` // "file", "dir", "symlink" or "other"
	Size int64  `json:"size"`
}

// List returns the entries of dir ("" is the workspace root) sorted by
// name. Names are plain; Type tells directories apart.
func (w *Workspace) List(ctx context.Context, dir string) ([]Entry, error) {
	if err := w.lock(ctx); err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	clean, f, _, err := w.openRead(dir, true)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, w.fsErr("directory", clean, err)
	}
	entries := make([]Entry, 0, len(des))
	for _, de := range des {
		e := Entry{Name: de.Name(), Type: typeName(de.Type())}
		// Info is an fstatat on the open directory, not a walk from the root.
		if st, err := de.Info(); err == nil {
			e.Type = typeName(st.Mode())
			if e.Type != "dir" {
				e.Size = st.Size()
			}
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// ReadResult is one chunk of a text file.
type ReadResult struct {
	Content    string `json:"content"`
	Offset     int64  `json:"offset"`      // byte offset of Content
	Bytes      int    `json:"bytes"`       // length of Content in bytes
	TotalBytes int64  `json:"total_bytes"` // size of the file
	Truncated  bool   `json:"truncated"`   // more of the file follows
	NextOffset int64  `json:"next_offset,omitempty"`
}

// Text returns Content for the agent, with a note when more of the file
// follows (or when there is nothing to show).
func (r ReadResult) Text() string {
	var note string
	switch {
	case r.Truncated:
		note = fmt.Sprintf("[truncated: showed bytes %d-%d of %d; call read_file with offset=%d to read more]",
			r.Offset, r.Offset+int64(r.Bytes), r.TotalBytes, r.NextOffset)
	case r.TotalBytes == 0:
		return "[the file is empty]"
	case r.Bytes == 0:
		return fmt.Sprintf("[offset %d is the end of the file (%d bytes)]", r.Offset, r.TotalBytes)
	default:
		return r.Content
	}
	if r.Content == "" || strings.HasSuffix(r.Content, "\n") {
		return r.Content + note
	}
	return r.Content + "\n" + note
}

// Read returns at most limit bytes of the text file name from byte offset;
// limit <= 0 or above MaxRead means MaxRead. The chunk never ends inside a
// UTF-8 sequence, and an offset inside one is moved back to its start.
// Binary files (a NUL byte in the first 8 KiB) are refused.
func (w *Workspace) Read(ctx context.Context, name string, offset, limit int64) (ReadResult, error) {
	if err := w.lock(ctx); err != nil {
		return ReadResult{}, err
	}
	defer w.mu.Unlock()
	if offset < 0 {
		return ReadResult{}, newErr(nil, nil, "offset must be >= 0 (got %d)", offset)
	}
	if limit <= 0 || limit > MaxRead {
		limit = MaxRead
	}
	clean, f, fi, err := w.openRead(name, false)
	if err != nil {
		return ReadResult{}, err
	}
	defer f.Close()
	size := fi.Size()

	// Read from up to 3 bytes before offset (to find the start of a UTF-8
	// sequence) to 3 bytes past the limit (to finish one).
	var buf []byte
	from := max(offset-(utf8.UTFMax-1), 0)
	if offset <= size {
		buf = make([]byte, min(offset+limit+utf8.UTFMax, size)-from)
		n, err := f.ReadAt(buf, from)
		if err != nil && err != io.EOF {
			return ReadResult{}, w.fsErr("file", clean, err)
		}
		buf = buf[:n]
	}
	// A read from the start usually covers the head too.
	head := buf
	if from != 0 || int64(len(buf)) < min(size, binarySniffBytes) {
		head = make([]byte, min(size, binarySniffBytes))
		n, err := f.ReadAt(head, 0)
		if err != nil && err != io.EOF {
			return ReadResult{}, w.fsErr("file", clean, err)
		}
		head = head[:n]
	}
	if isBinary(head[:min(len(head), binarySniffBytes)]) {
		return ReadResult{}, binaryErr(clean, size)
	}
	if offset > size {
		return ReadResult{}, newErr(nil, nil, "offset %d is beyond the end of %q, which has %d bytes", offset, clean, size)
	}
	start := int(offset - from)
	if start < len(buf) && !utf8.RuneStart(buf[start]) {
		for i := start - 1; i >= 0; i-- {
			if utf8.RuneStart(buf[i]) {
				if r, sz := utf8.DecodeRune(buf[i:]); r != utf8.RuneError && i+sz > start {
					start = i
				}
				break
			}
		}
	}
	end := min(start+int(limit), len(buf))
	if end < len(buf) && !utf8.RuneStart(buf[end]) {
		// end is inside a sequence: stop before it, or if that leaves
		// nothing, after it.
		for i := end - 1; i >= start; i-- {
			if utf8.RuneStart(buf[i]) {
				if r, sz := utf8.DecodeRune(buf[i:]); r != utf8.RuneError && i+sz > end {
					if i > start {
						end = i
					} else {
						end = i + sz
					}
				}
				break
			}
		}
	}
	res := ReadResult{
		Content:    string(buf[start:end]),
		Offset:     from + int64(start),
		Bytes:      end - start,
		TotalBytes: size,
	}
	if next := res.Offset + int64(res.Bytes); next < size {
		res.Truncated = true
		res.NextOffset = next
	}
	return res, nil
}

// Lines returns lines start..end (1-based, inclusive; end is clamped to
// the end of the file) of the text file name, numbered like "  12 | code",
// and the number of lines in the file. At most MaxInspectLines lines are
// returned; lines longer than 2000 bytes are cut.
func (w *Workspace) Lines(ctx context.Context, name string, start, end int) (text string, total int, err error) {
	if start < 1 {
		return "", 0, newErr(nil, nil, "start_line must be 1 or more (got %d); lines are numbered from 1", start)
	}
	if end < start {
		return "", 0, newErr(nil, nil, "end_line (%d) is before start_line (%d)", end, start)
	}
	if end-start+1 > MaxInspectLines {
		return "", 0, newErr(nil, nil, "lines %d-%d are %d lines; inspect at most %d lines at a time",
			start, end, end-start+1, MaxInspectLines)
	}
	if err := w.lock(ctx); err != nil {
		return "", 0, err
	}
	defer w.mu.Unlock()
	clean, f, fi, err := w.openRead(name, false)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()

	br := bufio.NewReaderSize(f, 64<<10)
	if head, _ := br.Peek(binarySniffBytes); isBinary(head) {
		return "", 0, binaryErr(clean, fi.Size())
	}
	type shown struct {
		text string
		cut  int // length of the whole line when it was cut, else 0
	}
	var lines []shown
	for {
		line, full, cut, err := readLine(br, maxLineDisplay)
		if err != nil && err != io.EOF {
			return "", 0, w.fsErr("file", clean, err)
		}
		if full == 0 {
			break // end of file
		}
		total++
		if total >= start && total <= end {
			l := shown{text: line}
			if cut {
				l.cut = full
			}
			lines = append(lines, l)
		}
		if err == io.EOF {
			break
		}
	}
	if start > total {
		if total == 0 {
			return "", 0, newErr(nil, nil, "file %q is empty", clean)
		}
		return "", total, newErr(nil, nil, "start_line %d is beyond the end of %q, which has %d lines", start, clean, total)
	}
	last := min(end, total)
	width := len(strconv.Itoa(last))
	var sb strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&sb, "%*d | %s", width, start+i, l.text)
		if l.cut > 0 {
			fmt.Fprintf(&sb, " ... [line cut: %d bytes in all]", l.cut)
		}
		sb.WriteByte('\n')
	}
	return sb.String(), total, nil
}

// readLine reads one line from br. It returns at most keep bytes of it,
// without the line ending and never ending inside a UTF-8 sequence; the
// length of the whole line including its "\n" (0 at the end of the input);
// and whether the line was cut. The last line may come with io.EOF.
func readLine(br *bufio.Reader, keep int) (text string, full int, cut bool, err error) {
	var kept []byte
	for {
		chunk, rerr := br.ReadSlice('\n')
		full += len(chunk)
		// Keep one byte more than needed (plus a "\r\n") to tell whether
		// the line is longer than keep.
		if room := keep + 2 - len(kept); room > 0 {
			kept = append(kept, chunk[:min(room, len(chunk))]...)
		}
		if rerr == bufio.ErrBufferFull {
			continue
		}
		if rerr != nil && rerr != io.EOF {
			return "", full, false, rerr
		}
		err = rerr
		break
	}
	kept = bytes.TrimSuffix(kept, []byte("\n"))
	kept = bytes.TrimSuffix(kept, []byte("\r"))
	if len(kept) > keep {
		kept = cutUTF8(kept[:keep])
		cut = true
	}
	return string(kept), full, cut, err
}

// cutUTF8 drops an incomplete UTF-8 sequence from the end of b.
func cutUTF8(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
