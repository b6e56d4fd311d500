// Package tasks finds and loads research tasks laid out as MLAgentBench
// benchmark folders: env/ (what the agent sees), scripts/ (hidden: the research
// problem, eval.py, read-only patterns, answers) and an optional task.yaml.
// Built-in tasks come from an fs.FS embedded in the binary; --tasks-dir adds a
// host folder of tasks in the same layout, which takes precedence by name.
package tasks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// ErrNotFound is returned by Load for a task no source has.
var ErrNotFound = errors.New("task not found")

// Task is one loaded task. Its folders are on the host and must be treated
// as read-only: sandboxes and eval get copies.
type Task struct {
	Name string
	// Dir holds env/ and scripts/.
	Dir string
	// Problem is scripts/research_problem.txt, the agent's instructions.
	Problem string
	// ReadOnly holds the fnmatch patterns of scripts/read_only_files.txt.
	ReadOnly []string
	Config   Config
	// Builtin is set for tasks shipped in the binary.
	Builtin bool
}

// EnvDir is the folder copied into every workspace.
func (t *Task) EnvDir() string { return filepath.Join(t.Dir, "env") }

// ScriptsDir is the hidden folder eval uses.
func (t *Task) ScriptsDir() string { return filepath.Join(t.Dir, "scripts") }

// Catalog resolves task names against the built-in tasks and a tasks folder.
type Catalog struct {
	builtin  fs.FS
	dir      string
	cacheDir string

	mu        sync.Mutex
	extracted map[string]string // built-in name -> host dir
}

// NewCatalog serves the tasks of builtin (one folder per task at its root,
// may be nil) and of dir (may be ""). Built-in tasks are written out under
// cacheDir when first loaded, since sandboxes copy from host folders.
func NewCatalog(builtin fs.FS, dir, cacheDir string) *Catalog {
	return &Catalog{builtin: builtin, dir: dir, cacheDir: cacheDir, extracted: map[string]string{}}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Names lists the available tasks, sorted.
func (c *Catalog) Names() ([]string, error) {
	seen := map[string]bool{}
	if c.builtin != nil {
		entries, err := fs.ReadDir(c.builtin, ".")
		if err != nil {
			return nil, fmt.Errorf("list built-in tasks: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && isTask(c.builtin, e.Name()) {
				seen[e.Name()] = true
			}
		}
	}
	if c.dir != "" {
		entries, err := os.ReadDir(c.dir)
		if err != nil {
			return nil, fmt.Errorf("list tasks in %s: %w", c.dir, err)
		}
		root := os.DirFS(c.dir)
		for _, e := range entries {
			if e.IsDir() && validName.MatchString(e.Name()) && isTask(root, e.Name()) {
				seen[e.Name()] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func isTask(fsys fs.FS, name string) bool {
	info, err := fs.Stat(fsys, name+"/env")
	if err != nil || !info.IsDir() {
		return false
	}
	_, err = fs.Stat(fsys, name+"/scripts/eval.py")
	return err == nil
}

// Load finds a task by name and reads its metadata.
func (c *Catalog) Load(ctx context.Context, name string) (*Task, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("task name %q: %w (names use letters, digits, '.', '_' and '-')", name, ErrNotFound)
	}
	if c.dir != "" && isTask(os.DirFS(c.dir), name) {
		return loadDir(name, filepath.Join(c.dir, name), false)
	}
	if c.builtin != nil && isTask(c.builtin, name) {
		dir, err := c.extract(ctx, name)
		if err != nil {
			return nil, err
		}
		return loadDir(name, dir, true)
	}
	names, _ := c.Names()
	return nil, fmt.Errorf("task %q: %w (available: %s)", name, ErrNotFound, strings.Join(names, ", "))
}

// extract writes a built-in task to the cache once per catalog.
func (c *Catalog) extract(ctx context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dir, ok := c.extracted[name]; ok {
		return dir, nil
	}
	if err := os.MkdirAll(c.cacheDir, 0o700); err != nil {
		return "", fmt.Errorf("create task cache: %w", err)
	}
	dir, err := os.MkdirTemp(c.cacheDir, name+"-")
	if err != nil {
		return "", fmt.Errorf("create task cache: %w", err)
	}
	sub, err := fs.Sub(c.builtin, name)
	if err != nil {
		return "", err
	}
	if err := copyFS(ctx, sub, dir); err != nil {
		return "", fmt.Errorf("extract built-in task %s: %w", name, err)
	}
	c.extracted[name] = dir
	return dir, nil
}

func copyFS(ctx context.Context, fsys fs.FS, dst string) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

func loadDir(name, dir string, builtin bool) (*Task, error) {
	problem, err := os.ReadFile(filepath.Join(dir, "scripts", "research_problem.txt"))
	if err != nil {
		return nil, fmt.Errorf("task %s: read research problem: %w", name, err)
	}
	t := &Task{Name: name, Dir: dir, Problem: strings.TrimSpace(string(problem)), Builtin: builtin}
	t.ReadOnly, err = readPatterns(filepath.Join(dir, "scripts", "read_only_files.txt"))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", name, err)
	}
	t.Config, err = readConfig(filepath.Join(dir, "task.yaml"))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", name, err)
	}
	return t, nil
}

// readPatterns reads one pattern per line; a missing file means none.
func readPatterns(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var pats []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pats = append(pats, strings.TrimPrefix(line, "./"))
	}
	return pats, sc.Err()
}
