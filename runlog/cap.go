package runlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"unicode/utf8"
)

// Bounds on what one trace line holds of a tool call's arguments. A client
// may send arguments of any size (a refused 60 MiB write_file, say); the
// trace keeps enough to read what was asked, and a digest of the rest.
const (
	// MaxArgumentBytes bounds the arguments stored in one trace line.
	MaxArgumentBytes = 64 << 10
	// maxValueBytes is the most kept of one long string argument, so that
	// a call with two long ones (edit_script's old_text and new_text) keeps
	// the start of both.
	maxValueBytes = 16 << 10
	// maxAgentBytes bounds the client name in result.json.
	maxAgentBytes = 256
)

// Elided describes an argument the trace does not hold in full.
type Elided struct {
	// Bytes is the length of the whole value: of the decoded text for a
	// string, else of its JSON.
	Bytes int `json:"bytes"`
	// SHA256 is the hex digest of those bytes. For the content of a
	// write_file that succeeded, it is the snapshot's object name.
	SHA256 string `json:"sha256"`
	// Kept is how many of those bytes the trace's arguments still hold,
	// from the start; the rest is gone.
	Kept int `json:"kept"`
}

// wholeArguments is the key of ArgumentsElided when the arguments were not
// kept at all (not an object, or too large even after cutting each value).
const wholeArguments = "*"

// capArguments returns raw, or when it is longer than MaxArgumentBytes a
// shorter object with every long string cut to its start and every other
// long value left out, plus what was cut.
func capArguments(raw json.RawMessage) (json.RawMessage, map[string]Elided) {
	if len(raw) <= MaxArgumentBytes {
		return raw, nil
	}
	whole := func() (json.RawMessage, map[string]Elided) {
		return nil, map[string]Elided{wholeArguments: digest(raw, 0)}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return whole()
	}
	elided := map[string]Elided{}
	kept := make(map[string]any, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		if len(v) <= maxValueBytes {
			kept[k] = v
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			// A long array or object: its digest only.
			elided[k] = digest(v, 0)
			continue
		}
		head := cutRunes(s, maxValueBytes)
		kept[k] = head
		elided[k] = digest([]byte(s), len(head))
	}
	out, err := json.Marshal(kept)
	if err != nil || len(out) > MaxArgumentBytes {
		// Many keys, each short: nothing smaller tells the story.
		return whole()
	}
	return out, elided
}

func digest(b []byte, kept int) Elided {
	sum := sha256.Sum256(b)
	return Elided{Bytes: len(b), SHA256: hex.EncodeToString(sum[:]), Kept: kept}
}

// cutRunes is the longest prefix of s of at most n bytes that does not end
// inside a UTF-8 sequence.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
