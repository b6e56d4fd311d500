package workspace

import (
	"fmt"
	"path"
	"strings"
)

// Patterns is a Matcher for read-only patterns in path.Match syntax, as in
// a task's read_only_files.txt: a pattern without "/" matches a name at any
// depth, one with "/" matches the path from the workspace root, and a
// directory's pattern covers everything below it.
type Patterns struct {
	pats []string
}

// ParsePatterns checks and normalises read-only patterns, once: "./x" and
// "/x" mean "x", a trailing "/", "/*" or "/**" covers the whole directory,
// and blank lines and lines starting with "#" are ignored. A malformed
// pattern is an error naming it.
func ParsePatterns(lines []string) (Patterns, error) {
	var out []string
	for _, p := range lines {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		orig := p
		p = strings.ReplaceAll(p, `\`, "/")
		for strings.HasPrefix(p, "./") || strings.HasPrefix(p, "/") {
			p = strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/")
		}
		for {
			switch {
			case strings.HasSuffix(p, "/**"):
				p = strings.TrimSuffix(p, "/**")
				continue
			case strings.HasSuffix(p, "/*"):
				p = strings.TrimSuffix(p, "/*")
				continue
			case strings.HasSuffix(p, "/"):
				p = strings.TrimSuffix(p, "/")
				continue
			}
			break
		}
		if p == "" || p == "." || p == "**" {
			p = "*" // the whole workspace
		}
		if _, err := path.Match(p, ""); err != nil {
			return Patterns{}, fmt.Errorf("read-only pattern %q: %w", orig, err)
		}
		if _, err := path.Match(p, p); err != nil {
			return Patterns{}, fmt.Errorf("read-only pattern %q: %w", orig, err)
		}
		out = append(out, p)
	}
	return Patterns{out}, nil
}

// Match reports whether a pattern matches rel, or, for a pattern without
// "/", its base name. Directories above rel are the caller's to ask about
// (the workspace does).
func (ps Patterns) Match(rel string) bool {
	for _, pat := range ps.pats {
		if globMatch(pat, rel) {
			return true
		}
		if !strings.Contains(pat, "/") && globMatch(pat, path.Base(rel)) {
			return true
		}
	}
	return false
}

// Empty reports whether there are no patterns.
func (ps Patterns) Empty() bool { return len(ps.pats) == 0 }

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	if err != nil {
		return pattern == name
	}
	return ok
}
