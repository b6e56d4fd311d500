// Package proc tells live mlab servers from dead ones, so that what a
// crashed server left behind (containers, run logs, scratch folders,
// submission copies) can be removed without touching what a live one still
// uses.
//
// A server is alive while it holds an exclusive flock(2) on a lock file of
// its own in a shared state directory. The kernel drops the lock when the
// process dies, however it dies, and before it is reaped: a killed server
// that is still a zombie is dead. The lock does not depend on PID
// namespaces, so a second mlab in a container (sharing the state directory
// and the Docker engine) judges the host's servers correctly. A record
// names its server by an owner ID, "lock:<dev>:<ino>:<lock file path>",
// where dev:ino identify the state directory: a reader that does not see
// that very directory (another mount namespace, another host) cannot judge
// the server and treats it as alive.
package proc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// StateDirEnv overrides the state directory that holds the lock files.
const StateDirEnv = "MLAB_STATE_DIR"

// StateDir is where servers keep their lock files: $MLAB_STATE_DIR, else
// /var/lib/mlab/servers for root, else $XDG_STATE_HOME/mlab/servers (by
// default ~/.local/state/mlab/servers). It is persistent, so that the
// records of servers that died before a reboot can still be judged.
func StateDir() string {
	if d := os.Getenv(StateDirEnv); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/mlab/servers"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mlab", "servers")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "mlab", "servers")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("mlab-servers-%d", os.Geteuid()))
}

// Lease is a held server lock.
type Lease struct {
	id   string
	path string
	f    *os.File // holds the flock for as long as it is open
}

// ID is the owner ID records name the server by.
func (l *Lease) ID() string { return l.id }

// Path is the lock file.
func (l *Lease) Path() string { return l.path }

// Release drops the lock and removes the lock file: the server is dead.
func (l *Lease) Release() error {
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Acquire creates a lock file in dir and locks it. The file is locked under
// a temporary name and only then renamed into place, so no reaper can ever
// see it unlocked while its server lives.
func Acquire(dir string) (*Lease, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create server state dir: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("stat server state dir %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("server state dir: %w", err)
	}
	// os.CreateTemp opens with O_CLOEXEC: no child (a sandboxed script, a
	// container runtime) inherits the lock and keeps a dead server alive.
	f, err := os.CreateTemp(abs, ".server-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create server lock: %w", err)
	}
	fail := func(err error) (*Lease, error) {
		os.Remove(f.Name())
		f.Close()
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(fmt.Errorf("lock %s: %w", f.Name(), err))
	}
	host, _ := os.Hostname()
	if _, err := fmt.Fprintf(f, "pid %d\nhost %s\n", os.Getpid(), host); err != nil {
		return fail(fmt.Errorf("write server lock: %w", err))
	}
	b := make([]byte, 12)
	rand.Read(b)
	path := filepath.Join(abs, "server-"+hex.EncodeToString(b)+".lock")
	if err := os.Rename(f.Name(), path); err != nil {
		return fail(fmt.Errorf("create server lock: %w", err))
	}
	return &Lease{id: fmt.Sprintf("lock:%d:%d:%s", st.Dev, st.Ino, path), path: path, f: f}, nil
}

var (
	selfOnce sync.Once
	self     string
	selfErr  error
)

// Self is the owner ID of this process. The first call takes the process's
// lease in StateDir (or, failing that, in the temporary directory), held
// until the process exits; if no lock can be taken at all it falls back to
// the "<pid>:<start time>" ID of old servers, which only /proc can judge.
func Self() string {
	selfOnce.Do(func() {
		l, err := Acquire(StateDir())
		if err != nil {
			l, err = Acquire(filepath.Join(os.TempDir(), fmt.Sprintf("mlab-servers-%d", os.Geteuid())))
		}
		if err != nil {
			selfErr = err
			self = legacyID(os.Getpid())
			return
		}
		leases = append(leases, l) // kept referenced: the finalizer of an unreachable *os.File would close it
		self = l.ID()
	})
	return self
}

// Legacy is this process's "<pid>:<start time>" ID. Records carry it beside
// the lock ID because mlab servers from before lock files read only it, and
// would judge a lock ID dead and remove a live server's things.
func Legacy() string {
	legacyOnce.Do(func() { legacy = legacyID(os.Getpid()) })
	return legacy
}

var (
	legacyOnce sync.Once
	legacy     string
)

// SelfError says why Self fell back to a /proc ID, if it did.
func SelfError() error {
	Self()
	return selfErr
}

var leases []*Lease

var lockName = regexp.MustCompile(`^server-[0-9a-f]+\.lock$`)

// Alive reports whether the server an owner ID names may still run. Only a
// server proven dead is reported dead: its lock file, in the very state
// directory the ID names, can be locked or is gone. A server that cannot be
// judged from here, or a malformed lock ID, counts as alive, so that nothing
// of a live server is ever removed. IDs of old servers ("<pid>:<start>")
// and empty ones are judged by /proc as before.
func Alive(id string) bool {
	rest, ok := strings.CutPrefix(id, "lock:")
	if !ok {
		return legacyAlive(id)
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 {
		return true
	}
	dev, err1 := strconv.ParseUint(parts[0], 10, 64)
	ino, err2 := strconv.ParseUint(parts[1], 10, 64)
	path := parts[2]
	if err1 != nil || err2 != nil || !filepath.IsAbs(path) || filepath.Clean(path) != path || !lockName.MatchString(filepath.Base(path)) {
		return true
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Dir(path), &st); err != nil || uint64(st.Dev) != dev || uint64(st.Ino) != ino {
		return true // not the directory the server used: cannot judge
	}
	return locked(path)
}

// locked reports whether someone holds the lock on path; a missing file
// means its server died and a reaper removed it.
func locked(path string) bool {
	// O_NONBLOCK: opening a FIFO put there must not hang the reaper.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return false
	}
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return true
	}
	switch err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		unix.Flock(fd, unix.LOCK_UN)
		return false
	default: // EWOULDBLOCK: held; anything else: cannot judge
		return true
	}
}

// PID is the process ID written in the lock file an owner ID names, for
// messages; 0 if it cannot be read.
func PID(id string) int {
	if pid, _, ok := strings.Cut(id, ":"); ok && !strings.HasPrefix(id, "lock:") {
		n, _ := strconv.Atoi(pid)
		return n
	}
	parts := strings.SplitN(strings.TrimPrefix(id, "lock:"), ":", 3)
	if len(parts) != 3 {
		return 0
	}
	b, err := os.ReadFile(parts[2])
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscanf(string(b), "pid %d", &pid)
	return pid
}

// Prune removes the lock files in dir of servers that are dead. Records
// naming them stay judgeable: a missing lock file in a visible state
// directory means a dead server.
func Prune(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "server-*.lock"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, p := range paths {
		if !lockName.MatchString(filepath.Base(p)) || locked(p) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove dead server lock: %w", err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// legacyID names pid as "<pid>:<start time>", the IDs of servers from before
// lock files; only used when no lock can be taken.
func legacyID(pid int) string {
	start, err := startTime(pid)
	if err != nil {
		return strconv.Itoa(pid)
	}
	return fmt.Sprintf("%d:%s", pid, start)
}

// legacyAlive judges a "<pid>:<start time>" ID by the local /proc.
func legacyAlive(id string) bool {
	pidStr, start, ok := strings.Cut(id, ":")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil {
		return false
	}
	got, err := startTime(pid)
	return err == nil && got == start
}

// startTime is field 22 of /proc/<pid>/stat: start time in clock ticks since
// boot.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("read process %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields restart after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return fields[19], nil
}
