package sandbox

import (
	"bytes"
	"strings"
	"testing"
)

func TestCapture(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		writes    []string
		want      string
		truncated bool
	}{
		{"fits", 10, []string{"abc", "de"}, "abcde", false},
		{"exactly full", 4, []string{"ab", "cd"}, "abcd", false},
		{"keeps head and tail", 4, []string{"ab", "cdef", "gh"}, "ab\n... [4 bytes of output omitted; the full output is in the run log] ...\ngh", true},
		{"one big write", 6, []string{"0123456789"}, "012\n... [4 bytes of output omitted; the full output is in the run log] ...\n789", true},
		{"many small writes", 4, strings.Split("abcdefghij", ""), "ab\n... [6 bytes of output omitted; the full output is in the run log] ...\nij", true},
		{"cut utf8 rune", 4, []string{"aé", "xxxxxé"}, "a\n... [6 bytes of output omitted; the full output is in the run log] ...\né", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sink bytes.Buffer
			c := NewCapture(tc.limit, &sink)
			for _, w := range tc.writes {
				c.Write([]byte(w))
			}
			if got := c.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if c.Truncated() != tc.truncated {
				t.Errorf("Truncated() = %v", c.Truncated())
			}
			if full := strings.Join(tc.writes, ""); sink.String() != full || c.Total() != int64(len(full)) {
				t.Errorf("sink got %q (total %d), want everything", sink.String(), c.Total())
			}
		})
	}
}
