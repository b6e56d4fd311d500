package tasks

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ReadOnly is a task's set of read-only patterns (scripts/read_only_files.txt),
// parsed once when the task is loaded. It is the one place that decides
// whether a workspace path is read-only: the tools refuse to change such
// paths, sandboxes protect the files, and eval restores them.
//
// Patterns use path.Match syntax on slash-separated paths relative to the
// workspace. "./x" and "/x" mean "x"; a trailing "/", "/*" or "/**" covers the
// whole directory; a pattern written without any "/" (or "\") also matches
// base names at any depth, while one written with one is anchored at the
// workspace root ("data/*" covers data/ but not other/data/); a path is
// read-only when it or any directory above it matches.
//
// The zero value matches nothing. A ReadOnly is immutable and safe for
// concurrent use.
type ReadOnly struct {
	patterns []pattern
}

// pattern is one cleaned pattern.
type pattern struct {
	glob string
	// anyDepth: the pattern was written without "/", so it also matches a
	// base name below the root. Cleaning can take every "/" out of a
	// pattern ("data/*" becomes "data"), so this is decided before.
	anyDepth bool
}

// NewReadOnly parses patterns as lines of read_only_files.txt would be:
// blank entries and entries starting with "#" are skipped. An invalid
// pattern is an error naming it and its position.
func NewReadOnly(patterns ...string) (ReadOnly, error) {
	var r ReadOnly
	for i, p := range patterns {
		clean, ok, err := cleanPattern(p)
		if err != nil {
			return ReadOnly{}, fmt.Errorf("read-only pattern %d: %w", i+1, err)
		}
		if ok {
			r.patterns = append(r.patterns, clean)
		}
	}
	return r, nil
}

// readReadOnly reads read_only_files.txt; a missing file means no patterns.
func readReadOnly(file string) (ReadOnly, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return ReadOnly{}, nil
	}
	if err != nil {
		return ReadOnly{}, fmt.Errorf("read %s: %w", file, err)
	}
	var r ReadOnly
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		clean, ok, err := cleanPattern(sc.Text())
		if err != nil {
			return ReadOnly{}, fmt.Errorf("%s:%d: %w", file, line, err)
		}
		if ok {
			r.patterns = append(r.patterns, clean)
		}
	}
	if err := sc.Err(); err != nil {
		return ReadOnly{}, fmt.Errorf("read %s: %w", file, err)
	}
	return r, nil
}

// cleanPattern normalises one pattern; ok is false for a blank line or a
// comment.
func cleanPattern(p string) (clean pattern, ok bool, err error) {
	p = strings.TrimSpace(p)
	if p == "" || strings.HasPrefix(p, "#") {
		return pattern{}, false, nil
	}
	orig := p
	p = strings.ReplaceAll(p, `\`, "/")
	anyDepth := !strings.Contains(p, "/")
	for strings.HasPrefix(p, "./") || strings.HasPrefix(p, "/") {
		p = strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/")
	}
	// Anything below a matching directory is read-only anyway (see Match),
	// so these suffixes only name the directory.
	for {
		trimmed := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(p, "/**"), "/*"), "/")
		if trimmed == p {
			break
		}
		p = trimmed
	}
	if p == "" || p == "." || p == "**" {
		p = "*" // the whole workspace
	}
	// path.Match reports a malformed pattern only once it gets to the bad
	// part, so it is tried against a name that fails early and one that
	// goes all the way through.
	for _, name := range []string{"", p} {
		if _, err := path.Match(p, name); err != nil {
			return pattern{}, false, fmt.Errorf("read-only pattern %q: %w", orig, err)
		}
	}
	return pattern{glob: p, anyDepth: anyDepth}, true, nil
}

// Patterns returns the cleaned patterns, those anchored at the workspace
// root with a leading "/", so that NewReadOnly(r.Patterns()...) is r.
func (r ReadOnly) Patterns() []string {
	out := make([]string, len(r.patterns))
	for i, p := range r.patterns {
		out[i] = p.glob
		if !p.anyDepth {
			out[i] = "/" + p.glob
		}
	}
	return out
}

// Empty reports whether there are no patterns.
func (r ReadOnly) Empty() bool { return len(r.patterns) == 0 }

// Match reports whether rel, a slash-separated path relative to the
// workspace, is read-only: it, or a directory above it, matches a pattern
// (the whole path, or its base name for a pattern written without "/"). A
// path that leaves the workspace ("../x") matches nothing: the workspace
// refuses it on its own. Match does not look at the file system, so it
// follows no links; callers check where a link leads themselves.
func (r ReadOnly) Match(rel string) bool {
	if len(r.patterns) == 0 {
		return false
	}
	// A "\" counts as a separator, as in the patterns: it can only make
	// more paths read-only.
	p := strings.TrimPrefix(path.Clean(strings.ReplaceAll(rel, `\`, "/")), "/")
	if p == ".." || strings.HasPrefix(p, "../") {
		return false
	}
	for c := p; c != "." && c != ""; c = path.Dir(c) {
		for _, pat := range r.patterns {
			if globMatch(pat.glob, c) || (pat.anyDepth && globMatch(pat.glob, path.Base(c))) {
				return true
			}
		}
	}
	return false
}

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	if err != nil {
		// Checked at parse time; kept as a literal match all the same.
		return pattern == name
	}
	return ok
}

// Files lists the regular files under dir that r covers, as sorted
// slash-separated paths relative to dir, so that a sandbox can protect them
// and eval can restore them. Symbolic links are not followed or listed.
func (r ReadOnly) Files(dir string) ([]string, error) {
	if len(r.patterns) == 0 {
		return nil, nil
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); r.Match(rel) {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list read-only files under %s: %w", dir, err)
	}
	return files, nil
}
