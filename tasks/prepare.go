package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Preparing a task: MLAgentBench runs scripts/prepare.py once, with its
// working directory scripts/, before the first episode of a task; it writes
// the agent's data into ../env/ and the hidden answers into scripts/, then
// marks the folder with scripts/prepared. mlab does the same in a private
// copy of the task folder in its cache, so that the operator's folder (or
// the binary's embedded tasks) is never written, and a failed prepare leaves
// nothing behind.

const (
	// DefaultPython runs prepare.py when PrepareOptions names none:
	// Debian's interpreter, the one with numpy, pandas and scikit-learn.
	DefaultPython = "/usr/bin/python3"
	// DefaultPrepareTimeout bounds one prepare.py run.
	DefaultPrepareTimeout = 30 * time.Minute

	// prepareScript is what makes a task need preparing.
	prepareScript = "scripts/prepare.py"
	// preparedMarker is MLAgentBench's mark of a prepared folder: a task
	// folder that has it is used as it is, which is how a folder prepared
	// on another machine is brought here.
	preparedMarker = "scripts/prepared"
)

// PrepareOptions say where and how tasks are prepared.
type PrepareOptions struct {
	// Dir holds the prepared copies, one folder per task and version of its
	// files, with their logs and lock files. "" means <cacheDir>/prepared
	// of NewCatalog; it should outlive the process, so that a task is
	// prepared once.
	Dir string
	// Python runs prepare.py; "" means DefaultPython.
	Python string
	// Timeout bounds one prepare.py run; 0 means DefaultPrepareTimeout.
	Timeout time.Duration
	// Answers is what prepare.py reads on standard input, then end of
	// file; "" closes it. MLAgentBench's Kaggle tasks ask the operator to
	// confirm that they accepted the competition's rules: an operator who
	// did can answer with newlines (mlab prepare --yes). Nothing that runs
	// unattended should answer for them.
	Answers string
}

// Preparation says how a task that has a scripts/prepare.py was prepared.
type Preparation struct {
	// Key is the hash of the task folder's files, which names its prepared
	// copy: a changed task is prepared again.
	Key string
	// Dir is the prepared copy, ready when Done.
	Dir string
	// Log is prepare.py's output (standard output and error).
	Log string
	// Done is set when Dir holds a complete prepared copy.
	Done bool
	// Ran is set when this Load ran prepare.py, rather than reuse a copy
	// prepared before (by this process or another).
	Ran bool
	// Took is how long prepare.py ran, when Ran.
	Took time.Duration
}

// PrepareError is a prepare.py that failed. Error says why, with the tail of
// its log and, when the log shows that something outside this machine was
// needed (the kaggle command, network access, a download), what that was
// and how to prepare the task elsewhere.
type PrepareError struct {
	Task string
	// Log is the file that keeps prepare.py's whole output.
	Log string
	// Tail is the end of that output.
	Tail string
	// Missing names what the output shows was missing, e.g. "network
	// access"; empty when the log shows nothing known.
	Missing []string
	// Hint says how to prepare the task on a machine that has what is
	// missing and bring it here; empty when Missing is.
	Hint string
	// Err is how the run ended: an exit status, a timeout, or a failure
	// to start it.
	Err error
}

func (e *PrepareError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "prepare task %s: scripts/prepare.py failed: %v", e.Task, e.Err)
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "; it needs %s, which this machine lacks", strings.Join(e.Missing, " and "))
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, ". %s", e.Hint)
	}
	if e.Tail != "" {
		fmt.Fprintf(&b, "\nlast lines of %s:\n%s", e.Log, e.Tail)
	}
	return b.String()
}

func (e *PrepareError) Unwrap() error { return e.Err }

// SetPrepare sets where and how tasks with a scripts/prepare.py are
// prepared. Call it before the first Load.
func (c *Catalog) SetPrepare(o PrepareOptions) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prep = o
}

func (c *Catalog) prepareOptions() PrepareOptions {
	c.mu.Lock()
	o := c.prep
	c.mu.Unlock()
	if o.Dir == "" {
		o.Dir = filepath.Join(c.cacheDir, "prepared")
	}
	if o.Python == "" {
		o.Python = DefaultPython
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultPrepareTimeout
	}
	return o
}

// needsPrepare reports whether a task folder has a prepare.py that has not
// been run on it (MLAgentBench's scripts/prepared marks one that has).
func needsPrepare(fsys fs.FS) bool {
	if _, err := fs.Stat(fsys, prepareScript); err != nil {
		return false
	}
	_, err := fs.Stat(fsys, preparedMarker)
	return err != nil
}

// preparation names the prepared copy of the task folder fsys (called
// folder) without preparing it: Done says whether it exists.
func (c *Catalog) preparation(folder string, fsys fs.FS) (*Preparation, error) {
	key, err := hashFS(fsys)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", folder, err)
	}
	o := c.prepareOptions()
	base := filepath.Join(o.Dir, folder+"-"+key[:16])
	p := &Preparation{Key: key, Dir: base, Log: base + ".log"}
	p.Done = isDir(base)
	return p, nil
}

// prepare returns the prepared copy of the task folder fsys, running its
// prepare.py when no complete copy exists. One process prepares a version
// of a task at a time (a lock file in the cache); the others wait and reuse
// its copy.
func (c *Catalog) prepare(ctx context.Context, folder string, fsys fs.FS) (*Preparation, error) {
	p, err := c.preparation(folder, fsys)
	if err != nil || p.Done {
		return p, err
	}
	o := c.prepareOptions()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("prepare task %s: create cache: %w", folder, err)
	}
	unlock, err := lockFile(ctx, p.Dir+".lock")
	if err != nil {
		return nil, fmt.Errorf("prepare task %s: %w", folder, err)
	}
	defer unlock()
	if isDir(p.Dir) {
		p.Done = true // prepared by whoever held the lock before
		return p, nil
	}
	// Holding the lock, nobody else prepares this version: temporary
	// folders left are those of a process that was killed.
	tmpPattern := "." + filepath.Base(p.Dir) + ".tmp-"
	if old, err := filepath.Glob(filepath.Join(o.Dir, tmpPattern+"*")); err == nil {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	tmp, err := os.MkdirTemp(o.Dir, tmpPattern)
	if err != nil {
		return nil, fmt.Errorf("prepare task %s: %w", folder, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := copyFS(ctx, tmp, fsys); err != nil {
		return nil, fmt.Errorf("prepare task %s: copy the task folder: %w", folder, err)
	}
	start := time.Now()
	if err := runPrepare(ctx, o, folder, tmp, p.Log); err != nil {
		return nil, err
	}
	p.Ran, p.Took = true, time.Since(start)
	// MLAgentBench's own mark, so that a copy taken elsewhere is used as
	// it is.
	if err := os.WriteFile(filepath.Join(tmp, filepath.FromSlash(preparedMarker)), []byte("success"), 0o644); err != nil {
		return nil, fmt.Errorf("prepare task %s: %w", folder, err)
	}
	// MkdirTemp made it private; the copy is as readable as the task.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("prepare task %s: %w", folder, err)
	}
	if err := os.Rename(tmp, p.Dir); err != nil {
		return nil, fmt.Errorf("prepare task %s: %w", folder, err)
	}
	done, p.Done = true, true
	return p, nil
}

// runPrepare runs prepare.py in dir/scripts as MLAgentBench does, with
// standard input closed so that a question (Kaggle's consent prompt) fails
// at once instead of waiting forever, and its output in logPath.
func runPrepare(ctx context.Context, o PrepareOptions, task, dir, logPath string) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("prepare task %s: create log: %w", task, err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, o.Python, "prepare.py")
	cmd.Dir = filepath.Join(dir, "scripts")
	cmd.Stdin = nil // /dev/null
	if o.Answers != "" {
		cmd.Stdin = strings.NewReader(o.Answers)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	// Its own process group, so that a timeout also ends what it started
	// (kaggle, wget, unzip).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	// Whatever it left running in its group goes too, before the copy is
	// renamed into place or removed.
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	out := readLogEnd(logPath)
	missing := diagnose(out)
	if runErr == nil {
		if len(missing) == 0 {
			return nil
		}
		// MLAgentBench's scripts run wget, unzip and kaggle without
		// checking them: one that failed leaves a task without its data.
		runErr = errors.New("it exited 0, but its output shows that a step failed, leaving the task without its data")
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			runErr = fmt.Errorf("timed out after %s (raise it with the prepare timeout)", o.Timeout)
		} else {
			runErr = fmt.Errorf("%w (%v)", ctx.Err(), runErr)
		}
	}
	if len(missing) == 0 && (errors.Is(runErr, exec.ErrNotFound) || errors.Is(runErr, fs.ErrNotExist)) {
		missing = append(missing, "the Python interpreter "+o.Python)
	}
	e := &PrepareError{Task: task, Log: logPath, Tail: tail(out, 15), Missing: missing, Err: runErr}
	if len(missing) > 0 {
		e.Hint = prepareElsewhereHint(task, strings.Contains(string(out), eofPrompt))
	}
	return e
}

// eofPrompt is Python's error for input() with standard input closed.
const eofPrompt = "EOFError: EOF when reading a line"

// prepareElsewhereHint says how to bring a task prepared on another machine
// here. Both ways end in a folder with MLAgentBench's scripts/prepared mark,
// which Load uses as it is. prompted adds how to answer prepare.py's
// question.
func prepareElsewhereHint(task string, prompted bool) string {
	yes, answer := "", ""
	if prompted {
		yes, answer = " --yes", "; --yes answers its question once you have done what it asks"
	}
	return fmt.Sprintf("Prepare it on a machine that has what is missing, then bring the prepared folder here: "+
		"either run `mlab prepare %[1]s%[2]s` there (with the same --tasks-dir%[3]s) and copy the folder it prints, named %[1]s, into a tasks folder here, "+
		"or run MLAgentBench's own `python -m MLAgentBench.prepare_task %[1]s` there and copy its benchmarks/%[1]s; "+
		"then pass --tasks-dir with that folder: a task folder with scripts/prepared is used as it is, without running prepare.py",
		task, yes, answer)
}

// A cause is one thing a prepare.py's output shows it lacked, and the
// output lines that say so.
type cause struct {
	what     string
	patterns []string
}

// causes are matched in order against prepare.py's output; each one found
// is named once.
var causes = []cause{
	{"an answer on standard input (it asked a question, such as consent to a Kaggle competition's rules; mlab runs it with standard input closed)",
		[]string{eofPrompt}},
	{"the kaggle command (pip install kaggle, an API token in ~/.kaggle/kaggle.json, the competition's rules accepted on kaggle.com, and network access)",
		[]string{"kaggle: not found", "kaggle: command not found", "No such file or directory: 'kaggle'", "kaggle.rest.ApiException",
			"Could not find kaggle.json", "kaggle.com/competitions"}},
	{"a Hugging Face download (network access to huggingface.co)",
		[]string{"huggingface.co", "HF_HUB_OFFLINE", "LocalEntryNotFoundError", "huggingface_hub.utils", "OfflineModeIsEnabled"}},
	{"a torchvision dataset download",
		[]string{"torchvision/datasets", "torchvision.datasets", "Dataset not found or corrupted. You can use download=True"}},
	{"network access",
		[]string{"socket.gaierror", "Temporary failure in name resolution", "Name or service not known", "nodename nor servname",
			"urllib.error.URLError", "urlopen error", "requests.exceptions.ConnectionError", "ConnectionError", "NewConnectionError",
			"Failed to establish a new connection", "Network is unreachable", "Connection refused", "Connection timed out",
			"unable to resolve host address", "Could not resolve host", "No route to host"}},
	{"wget (the download command)", []string{"wget: not found", "No such file or directory: 'wget'"}},
	{"unzip", []string{"unzip: not found", "No such file or directory: 'unzip'"}},
}

// diagnose names what prepare.py's output shows was missing.
func diagnose(out []byte) []string {
	var found []string
	text := string(out)
	for _, c := range causes {
		for _, p := range c.patterns {
			if strings.Contains(text, p) {
				found = append(found, c.what)
				break
			}
		}
	}
	// A module the interpreter lacks (torchvision, ogb, datasets).
	const nm = "ModuleNotFoundError: No module named "
	if i := strings.Index(text, nm); i >= 0 {
		mod, _, _ := strings.Cut(text[i+len(nm):], "\n")
		found = append(found, "the Python module "+strings.TrimSpace(mod))
	}
	return found
}

// maxLogRead bounds how much of a prepare log is read back: download
// progress bars can make it long, and what went wrong is at its end.
const maxLogRead = 4 << 20

// readLogEnd returns the last maxLogRead bytes of a log.
func readLogEnd(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > maxLogRead {
		f.Seek(info.Size()-maxLogRead, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxLogRead))
	return b
}

// tail returns the last n lines of out, or their last 4000 bytes.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, "\n")
	// A progress bar redrawn with \r is one long line.
	const maxTail = 4000
	if len(s) > maxTail {
		s = "..." + strings.ToValidUTF8(s[len(s)-maxTail:], "")
	}
	return s
}

// lockFile takes an exclusive flock on path, waiting as long as ctx allows;
// the returned function releases it. flock locks belong to the open file,
// so two loads in one process exclude each other as two processes do, and
// a killed holder's lock goes with it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	wait := 10 * time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for another prepare of the task (lock %s): %w", path, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// hashFS hashes a task folder: every path, and every file's content, so
// that any change to the task prepares it again.
func hashFS(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %s\x00", p)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %s %d %d\x00", p, info.Size(), info.Mode().Perm()&0o111)
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return fmt.Errorf("hash %s: %w", p, err)
			}
		default:
			return fmt.Errorf("%s is not a regular file or folder (links are not followed)", p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash task folder: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFS copies a task folder into dst, which exists: folders and regular
// files, which keep their execute bits.
func copyFS(ctx context.Context, dst string, fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(p))
		switch {
		case d.IsDir():
			if p == "." {
				return nil
			}
			return os.Mkdir(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			src, err := fsys.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644|(info.Mode().Perm()&0o111))
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, src); err != nil {
				out.Close()
				return fmt.Errorf("copy %s: %w", p, err)
			}
			return out.Close()
		default:
			return fmt.Errorf("%s is not a regular file or folder (links are not followed)", p)
		}
	})
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}
