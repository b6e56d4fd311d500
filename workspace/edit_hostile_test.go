package workspace

import (
	"fmt"
	"strings"
	"testing"
)

// hostileEditCases are edits whose cost used to grow with the product of
// the file and old_text sizes: every overlapping match was re-found with a
// fresh strings.Index, each costing len(old_text).
var hostileEditCases = []struct {
	name, content, old string
}{
	{"one byte repeated", strings.Repeat("a", 2<<20), strings.Repeat("a", 1<<20)},
	{"near misses", strings.Repeat("a", 2<<20), strings.Repeat("a", 1<<20-1) + "b"},
	{"period two", strings.Repeat("ab", 1<<20), strings.Repeat("ab", 1<<19)},
	{"unique large", strings.Repeat("x\n", 1<<19) + "marker\n" + strings.Repeat("y\n", 1<<19),
		strings.Repeat("x\n", 1<<18) + "marker\n" + strings.Repeat("y\n", 1<<18)},
}

// TestHostileEditOccurrenceCount checks that counting old_text in the file
// takes work linear in their sizes, by counting comparison steps rather than
// timing: the cases above made the old count run for tens of seconds.
func TestHostileEditOccurrenceCount(t *testing.T) {
	for _, tc := range hostileEditCases {
		t.Run(tc.name, func(t *testing.T) {
			n, first, steps := occurrences(tc.content, tc.old)
			if bound := 2*len(tc.content) + 2*len(tc.old); steps > bound {
				t.Fatalf("%d comparison steps, want at most %d", steps, bound)
			}
			if want := naiveCount(tc.content, tc.old, 3); (n > 2) != (want > 2) || min(n, 3) != want {
				t.Fatalf("count = %d, a naive count says %d", n, want)
			}
			if want := strings.Index(tc.content, tc.old); first != want {
				t.Fatalf("first = %d, want %d", first, want)
			}
		})
	}
}

// TestHostileEditLarge runs the reported case end to end: a 2 MB file and a
// 1 MB old_text that occurs a million times. It used to take 26 s of CPU
// with the workspace lock held; it must now finish well inside the test
// timeout and say how often the text occurs.
func TestHostileEditLarge(t *testing.T) {
	ctx := t.Context()
	for _, tc := range hostileEditCases {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := newWS(t, nil, map[string]string{"big.txt": tc.content})
			_, err := w.Edit(ctx, "big.txt", tc.old, "z")
			want := naiveCount(tc.content, tc.old, 2)
			switch {
			case want == 0:
				wantErr(t, err, "old_text not found")
			case want > 1:
				wantErr(t, err, "old_text occurs")
			case err != nil:
				t.Fatal(err)
			}
		})
	}
}

// naiveCount counts overlapping occurrences up to stop, for cross-checking.
func naiveCount(s, sub string, stop int) int {
	n := 0
	for i := 0; i+len(sub) <= len(s) && n < stop; {
		j := strings.Index(s[i:], sub)
		if j < 0 {
			break
		}
		n++
		i += j + 1
	}
	return n
}

func TestOccurrences(t *testing.T) {
	tests := []struct {
		s, sub   string
		n, first int
	}{
		{"aaa", "aa", 2, 0},
		{"abcabc", "abc", 2, 0},
		{"xabab", "abab", 1, 1},
		{"ababab", "abab", 2, 0},
		{"abc", "d", 0, -1},
		{"ab", "abc", 0, -1},
		{"aabaabaaa", "aab", 2, 0},
		{"héllo héllo", "é", 2, 1},
	}
	for _, tt := range tests {
		n, first, _ := occurrences(tt.s, tt.sub)
		if n != tt.n || first != tt.first {
			t.Errorf("occurrences(%q, %q) = %d, %d; want %d, %d", tt.s, tt.sub, n, first, tt.n, tt.first)
		}
	}
}

func BenchmarkEditLarge(b *testing.B) {
	for _, tc := range hostileEditCases {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.content) + len(tc.old)))
			for b.Loop() {
				occurrences(tc.content, tc.old)
			}
		})
	}
}

// BenchmarkDiffLarge measures the diff of the largest files an edit can
// produce, half of MaxWrite each: the line diff is limited to middles of
// maxDiffLines, the common lines around a change are set aside first, and
// only what the cap shows is formatted.
func BenchmarkDiffLarge(b *testing.B) {
	var x, y, one strings.Builder
	for i := 0; x.Len() < MaxWrite/2; i++ {
		fmt.Fprintf(&x, "line %d\n", i)
		fmt.Fprintf(&y, "line %d\n", i*7%1000)
		if i == 500000 {
			one.WriteString("changed\n")
		} else {
			fmt.Fprintf(&one, "line %d\n", i)
		}
	}
	// Just under maxDiffLines, with every other line changed: the line diff
	// runs on all of it.
	var p, q strings.Builder
	for i := range maxDiffLines / 4 {
		fmt.Fprintf(&p, "same\nold %d\n", i)
		fmt.Fprintf(&q, "same\nnew %d\n", i)
	}
	cases := []struct{ name, old, new string }{
		{"all lines changed", x.String(), y.String()},
		{"one line changed", x.String(), one.String()},
		{"new file", "", x.String()},
		{"line diff at its bound", p.String(), q.String()},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.old) + len(tc.new)))
			for b.Loop() {
				UnifiedDiff("f", tc.old, tc.new)
			}
		})
	}
}
