package sandbox

import (
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// Capture keeps the head and the tail of a stream within a fixed budget and
// forwards everything to an optional sink. Scripts that print 100 MB must not
// cost 100 MB of memory, but the last lines (the traceback, the final metric)
// matter most, so both ends are kept.
type Capture struct {
	mu    sync.Mutex
	limit int
	head  []byte
	tail  []byte // ring buffer of the last limit/2 bytes
	pos   int    // next write index into tail once it is full
	total int64
	sink  io.Writer
}

// NewCapture keeps at most limit bytes (half head, half tail) and copies all
// writes to sink when it is not nil. Sink errors are ignored: losing the full
// log must not kill the script.
func NewCapture(limit int, sink io.Writer) *Capture {
	if limit < 2 {
		limit = 2
	}
	return &Capture{limit: limit, sink: sink}
}

// Write implements io.Writer; it never fails.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sink != nil {
		_, _ = c.sink.Write(p)
	}
	c.total += int64(len(p))
	rest := p
	if room := c.limit/2 - len(c.head); room > 0 {
		n := min(room, len(rest))
		c.head = append(c.head, rest[:n]...)
		rest = rest[n:]
	}
	tailCap := c.limit - c.limit/2
	for len(rest) > 0 {
		if len(c.tail) < tailCap {
			n := min(tailCap-len(c.tail), len(rest))
			c.tail = append(c.tail, rest[:n]...)
			rest = rest[n:]
			continue
		}
		if len(rest) >= tailCap {
			// Only the last tailCap bytes of rest can survive.
			copy(c.tail, rest[len(rest)-tailCap:])
			c.pos = 0
			break
		}
		n := copy(c.tail[c.pos:], rest)
		c.pos = (c.pos + n) % tailCap
		rest = rest[n:]
	}
	return len(p), nil
}

// Total is the number of bytes written so far.
func (c *Capture) Total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Truncated reports whether some bytes were dropped.
func (c *Capture) Truncated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total > int64(c.limit)
}

// String returns the kept text, with a marker where the middle was cut.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := append(append([]byte{}, c.tail[c.pos:]...), c.tail[:c.pos]...)
	if c.total <= int64(c.limit) {
		return string(append(append([]byte{}, c.head...), tail...))
	}
	head := trimInvalidEnd(c.head)
	tail = trimInvalidStart(tail)
	dropped := c.total - int64(len(c.head)) - int64(len(c.tail))
	return fmt.Sprintf("%s\n... [%d bytes of output omitted; the full output is in the run log] ...\n%s", head, dropped, tail)
}

// Streams is the capped output of one process, as ExecResult reports it.
func Streams(stdout, stderr *Capture) ExecResult {
	return ExecResult{
		Stdout:      stdout.String(),
		Stderr:      stderr.String(),
		StdoutBytes: stdout.Total(),
		StderrBytes: stderr.Total(),
		Truncated:   stdout.Truncated() || stderr.Truncated(),
	}
}

// trimInvalidEnd drops a UTF-8 sequence cut short at the end of b.
func trimInvalidEnd(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		r, size := utf8.DecodeLastRune(b)
		if r != utf8.RuneError || size != 1 {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

// trimInvalidStart drops continuation bytes left at the start of b by a cut.
func trimInvalidStart(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
		b = b[1:]
	}
	return b
}
