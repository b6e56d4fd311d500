// Package tasks finds and loads research tasks laid out as MLAgentBench
// benchmark folders: env/ (what the agent sees), scripts/ (hidden: the research
// problem, eval.py, read-only patterns, answers) and an optional task.yaml.
// Built-in tasks come from an fs.FS embedded in the binary; --tasks-dir adds a
// host folder of tasks in the same layout, which takes precedence by name.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
	// ReadOnly holds the patterns of scripts/read_only_files.txt.
	ReadOnly ReadOnly
	Config   Config
	// MetricFrom says where Config's metric and direction come from: one
	// of FromTaskYAML, FromTaskConfig, FromMLAgentBench or FromDefault.
	MetricFrom string
	// ConfigFile is the task.yaml that was read, the folder's own or the
	// one given for it with Catalog.OverrideConfig; "" when there is none.
	ConfigFile string
	// Warnings are what the operator should know about how the task was
	// loaded, such as a direction that is only a guess.
	Warnings []string
	// Builtin is set for tasks shipped in the binary.
	Builtin bool
	// Source is where the task comes from: SourceBuiltin, or its folder
	// under the tasks folder (not its prepared copy).
	Source string
	// AliasOf is the folder a tasks.json alias names; "" for a task that
	// is no alias.
	AliasOf string
	// Prepare is set for a task whose folder has a scripts/prepare.py:
	// Dir is then its prepared copy in the cache.
	Prepare *Preparation
}

// Where a task's metric and direction come from.
const (
	FromTaskYAML     = "task.yaml"
	FromTaskConfig   = "--task-config"
	FromMLAgentBench = "MLAgentBench table"
	FromDefault      = "default"
)

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
	overrides map[string]string // task name -> task.yaml to read instead
	prep      PrepareOptions
}

// NewCatalog serves the tasks of builtin (one folder per task at its root,
// may be nil) and of dir (may be ""). Built-in tasks are written out under
// cacheDir when first loaded, since sandboxes copy from host folders; tasks
// with a scripts/prepare.py are prepared under <cacheDir>/prepared unless
// SetPrepare names another folder.
func NewCatalog(builtin fs.FS, dir, cacheDir string) *Catalog {
	return &Catalog{builtin: builtin, dir: dir, cacheDir: cacheDir, extracted: map[string]string{}, overrides: map[string]string{}}
}

// OverrideConfig makes file the task.yaml of task, read in place of the
// task folder's own (which may be one the operator cannot change) and taking
// precedence over the MLAgentBench table. The task must exist and the file
// must parse; it is read again at each Load.
func (c *Catalog) OverrideConfig(task, file string) error {
	names, err := c.Names()
	if err != nil {
		return err
	}
	if !slices.Contains(names, task) {
		return fmt.Errorf("task config for %q: %w (available: %s)", task, ErrNotFound, strings.Join(names, ", "))
	}
	if _, found, err := readConfig(file); err != nil {
		return fmt.Errorf("task config for %s: %w", task, err)
	} else if !found {
		return fmt.Errorf("task config for %s: %s does not exist", task, file)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.overrides[task] = file
	return nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Names lists the available tasks, sorted: the task folders and the aliases
// of the tasks folder's tasks.json.
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
	aliases, err := c.aliases()
	if err != nil {
		return nil, err
	}
	for n := range aliases {
		seen[n] = true
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

// Load finds a task by name and reads its metadata. A task whose folder has
// a scripts/prepare.py (and no scripts/prepared, MLAgentBench's mark of a
// folder prepared already) is prepared first, once: Load returns its
// prepared copy in the cache, running prepare.py when there is none. A name
// that tasks.json makes an alias loads its folder with the alias's research
// problem.
func (c *Catalog) Load(ctx context.Context, name string) (*Task, error) {
	return c.load(ctx, name, true)
}

// Describe reads a task's metadata as Load does, but never runs prepare.py:
// it is for listing tasks. When the task needs preparing, Prepare says
// whether it has been (Prepare.Done), and Dir is the prepared copy if so,
// else the unprepared folder, which must not be served.
func (c *Catalog) Describe(ctx context.Context, name string) (*Task, error) {
	return c.load(ctx, name, false)
}

func (c *Catalog) load(ctx context.Context, name string, prepare bool) (*Task, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("task name %q: %w (names use letters, digits, '.', '_' and '-')", name, ErrNotFound)
	}
	aliases, err := c.aliases()
	if err != nil {
		return nil, err
	}
	// As in MLAgentBench, tasks.json comes before the folders.
	folder, alias := name, aliases[name]
	if alias != nil {
		folder = alias.Folder
	}
	c.mu.Lock()
	override := c.overrides[name]
	if override == "" && alias != nil {
		override = c.overrides[folder]
	}
	c.mu.Unlock()
	src, builtin, source := c.source(folder)
	if src == nil {
		if alias != nil {
			return nil, fmt.Errorf("task %q: %w: tasks.json in %s makes it an alias of %q, which is no task folder", name, ErrNotFound, c.dir, folder)
		}
		names, _ := c.Names()
		return nil, fmt.Errorf("task %q: %w (available: %s)", name, ErrNotFound, strings.Join(names, ", "))
	}
	var dir string
	var prep *Preparation
	switch {
	case needsPrepare(src) && prepare:
		if prep, err = c.prepare(ctx, folder, src); err != nil {
			return nil, err
		}
		dir = prep.Dir
	case needsPrepare(src):
		if prep, err = c.preparation(folder, src); err != nil {
			return nil, err
		}
		dir = prep.Dir
	}
	if dir == "" || !prep.Done {
		if builtin {
			if dir, err = c.extract(ctx, folder); err != nil {
				return nil, err
			}
		} else {
			dir = filepath.Join(c.dir, folder)
		}
	}
	t, err := loadDir(name, folder, dir, builtin, override)
	if err != nil {
		return nil, err
	}
	t.Source, t.Prepare = source, prep
	if prep != nil && !builtin && t.MetricFrom == FromTaskYAML {
		// The operator's file, not its copy in the cache.
		t.ConfigFile = filepath.Join(c.dir, folder, "task.yaml")
	}
	if alias != nil {
		if folder != name {
			t.AliasOf = folder
		}
		if alias.Problem != "" {
			t.Problem = strings.TrimSpace(alias.Problem)
		}
	}
	return t, nil
}

// SourceBuiltin is the Source of a task shipped in the binary.
const SourceBuiltin = "built-in"

// source finds a task folder: in the tasks folder, which takes precedence,
// or among the built-in tasks; src is nil when neither has it.
func (c *Catalog) source(folder string) (src fs.FS, builtin bool, source string) {
	if c.dir != "" && isTask(os.DirFS(c.dir), folder) {
		dir := filepath.Join(c.dir, folder)
		return os.DirFS(dir), false, dir
	}
	if c.builtin != nil && isTask(c.builtin, folder) {
		if sub, err := fs.Sub(c.builtin, folder); err == nil {
			return sub, true, SourceBuiltin
		}
	}
	return nil, false, ""
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
	// The built-in tasks are small and in memory: no context is needed.
	if err := os.CopyFS(dir, sub); err != nil {
		return "", fmt.Errorf("extract built-in task %s: %w", name, err)
	}
	c.extracted[name] = dir
	return dir, nil
}

// loadDir reads a task folder, the one called folder (which keys the
// MLAgentBench table) for the task called name; override, when set, is read
// in place of the folder's task.yaml.
func loadDir(name, folder, dir string, builtin bool, override string) (*Task, error) {
	problem, err := os.ReadFile(filepath.Join(dir, "scripts", "research_problem.txt"))
	if err != nil {
		return nil, fmt.Errorf("task %s: read research problem: %w", name, err)
	}
	t := &Task{Name: name, Dir: dir, Problem: strings.TrimSpace(string(problem)), Builtin: builtin}
	t.ReadOnly, err = readReadOnly(filepath.Join(dir, "scripts", "read_only_files.txt"))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", name, err)
	}
	file, from := filepath.Join(dir, "task.yaml"), FromTaskYAML
	if override != "" {
		file, from = override, FromTaskConfig
	}
	cfg, found, err := readConfig(file)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", name, err)
	}
	if override != "" && !found {
		return nil, fmt.Errorf("task %s: task config %s does not exist", name, override)
	}
	if found {
		t.ConfigFile = file
	}
	t.MetricFrom = from
	if cfg.Metric == "" && cfg.Direction == "" {
		// task.yaml, if any, says nothing of the metric: an MLAgentBench
		// folder's own eval.py does, as recorded in the table.
		if m, ok := mlagentbench[folder]; ok {
			cfg.Metric, cfg.Direction = m.metric, m.direction
			if m.timedBy != "" && cfg.TimedBy == "" {
				cfg.Timed, cfg.TimedBy = true, m.timedBy
			}
			t.MetricFrom = FromMLAgentBench
		}
	}
	if cfg.Direction == "" {
		cfg.Direction = Higher
		t.MetricFrom = FromDefault
		why := "it has no task.yaml and is not one of MLAgentBench's published tasks"
		if found {
			why = file + " names no direction"
		}
		t.Warnings = append(t.Warnings, fmt.Sprintf("task %s: %s, so its score is taken as higher-is-better; "+
			"if lower is better, say so with direction: lower in a task.yaml (or one given with --task-config)", name, why))
	}
	t.Config = cfg.withDefaults()
	return t, nil
}
