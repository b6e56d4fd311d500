package docker

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// AptMirror returns the main Debian mirror of the apt configuration under
// root ("" for the machine's own): the URI of the first binary ("deb")
// source with the main component for a Debian suite, skipping security
// archives. It reads root/etc/apt/sources.list, then the *.list (one-line)
// and *.sources (deb822) files of root/etc/apt/sources.list.d in name order,
// as apt does.
func AptMirror(root string) (string, error) {
	files := []string{root + "/etc/apt/sources.list"}
	var dropins []string
	for _, pattern := range []string{"*.list", "*.sources"} {
		m, err := filepath.Glob(root + "/etc/apt/sources.list.d/" + pattern)
		if err != nil {
			return "", err
		}
		dropins = append(dropins, m...)
	}
	sort.Strings(dropins)
	files = append(files, dropins...)

	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return "", fmt.Errorf("read apt sources: %w", err)
		}
		var entries []aptSource
		if strings.HasSuffix(f, ".sources") {
			entries = aptParseDeb822(string(data))
		} else {
			entries = aptParseOneLine(string(data))
		}
		for _, e := range entries {
			if uri, ok := e.debianMirror(); ok {
				return uri, nil
			}
		}
	}
	return "", fmt.Errorf("no Debian mirror in the apt sources under %s/etc/apt", root)
}

// aptSource is one entry of an apt source list, in either format.
type aptSource struct {
	types, uris, suites, components []string
	disabled                        bool
}

// aptDebianSuites are Debian release code names and aliases: a source for
// one of them (or one of their -updates, -backports) is a Debian mirror.
var aptDebianSuites = []string{
	"jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
	"oldoldstable", "oldstable", "stable", "testing", "unstable", "experimental",
}

// debianMirror returns the entry's first usable URI if it is a main Debian
// archive (not a security one, not a third-party repository).
func (e aptSource) debianMirror() (string, bool) {
	if e.disabled || !slices.Contains(e.types, "deb") || !slices.Contains(e.components, "main") {
		return "", false
	}
	debianSuite := false
	for _, s := range e.suites {
		base, suffix, _ := strings.Cut(s, "-")
		if strings.Contains(s, "/") || suffix == "security" {
			return "", false // security archive (bookworm-security, buster/updates)
		}
		debianSuite = debianSuite || slices.Contains(aptDebianSuites, base)
	}
	for _, raw := range e.uris {
		u, err := url.Parse(raw)
		if err != nil || !slices.Contains([]string{"http", "https", "ftp", "file"}, u.Scheme) {
			continue
		}
		if strings.Contains(u.Host, "security") || strings.Contains(u.Path, "security") {
			continue
		}
		if debianSuite || slices.Contains(strings.Split(u.Path, "/"), "debian") {
			return strings.TrimSuffix(raw, "/"), true
		}
	}
	return "", false
}

// aptParseDeb822 parses a deb822 .sources file: paragraphs of "Field: value"
// lines, separated by blank lines, with indented continuation lines.
func aptParseDeb822(text string) []aptSource {
	var out []aptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 {
			out = append(out, aptSource{
				types:      strings.Fields(fields["types"]),
				uris:       strings.Fields(fields["uris"]),
				suites:     strings.Fields(fields["suites"]),
				components: strings.Fields(fields["components"]),
				disabled:   strings.EqualFold(strings.TrimSpace(fields["enabled"]), "no"),
			})
		}
		fields, last = map[string]string{}, ""
	}
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

// aptParseOneLine parses a one-line sources.list: "deb [options] URI suite
// component...", with # comments.
func aptParseOneLine(text string) []aptSource {
	var out []aptSource
	for line := range strings.Lines(text) {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		typ, rest := f[0], f[1:]
		if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
			// Options may contain spaces: skip to the word closing them.
			i := slices.IndexFunc(rest, func(w string) bool { return strings.HasSuffix(w, "]") })
			if i < 0 {
				continue
			}
			rest = rest[i+1:]
		}
		if len(rest) < 2 {
			continue
		}
		out = append(out, aptSource{
			types: []string{typ}, uris: rest[:1], suites: rest[1:2], components: rest[2:],
		})
	}
	return out
}
