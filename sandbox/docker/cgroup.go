package docker

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every process an exec starts must be gone when Exec returns, and a process
// can leave its process group and session (setsid) or its parent (a double
// fork) but never its cgroup: only root may move it. So, where the server may
// write the container's cgroup, each exec gets a child cgroup of its own
// (pids hierarchy on cgroup v1, the unified one on v2), its first process is
// moved in before it runs anything of the agent's, and everything in it is
// killed when the exec ends. The container's own processes (init and its
// keeper) and other execs' groups are never touched.

// execGroupPrefix names the per-exec cgroups inside a container's cgroup.
const execGroupPrefix = "mlab-exec-"

// killGroupTimeout bounds the killing of one exec group. A SIGKILLed process
// cannot fork again, so each pass over the group shrinks it; only a process
// stuck in the kernel (uninterruptible I/O) can hold it longer.
const killGroupTimeout = 30 * time.Second

// cgroupOf finds the cgroup directory of process pid as this process sees it:
// the pids controller's on cgroup v1 (also on hybrid hosts, where v2 carries
// no controllers), else the unified v2 one. procRoot is normally "/proc".
func cgroupOf(procRoot string, pid int) (dir string, v2 bool, err error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", false, fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	var v1Path, v2Path string
	found2 := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case slices.Contains(strings.Split(f[1], ","), "pids"):
			v1Path = f[2]
		case f[0] == "0" && f[1] == "":
			v2Path, found2 = f[2], true
		}
	}
	mounts, err := os.ReadFile(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return "", false, fmt.Errorf("read mountinfo: %w", err)
	}
	if v1Path != "" {
		if mp, root, ok := cgroupMount(string(mounts), "cgroup", "pids"); ok {
			return joinCgroup(mp, root, v1Path)
		}
	}
	if found2 {
		if mp, root, ok := cgroupMount(string(mounts), "cgroup2", ""); ok {
			dir, _, err := joinCgroup(mp, root, v2Path)
			return dir, true, err
		}
	}
	return "", false, fmt.Errorf("no pids cgroup for pid %d", pid)
}

// cgroupMount finds the mount of a cgroup filesystem in mountinfo text: of
// type fstype and, for v1, with controller among its super options.
func cgroupMount(mountinfo, fstype, controller string) (mountPoint, root string, ok bool) {
	for _, line := range strings.Split(mountinfo, "\n") {
		left, right, found := strings.Cut(line, " - ")
		if !found {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 || rf[0] != fstype {
			continue
		}
		if controller != "" && !slices.Contains(strings.Split(rf[2], ","), controller) {
			continue
		}
		return lf[4], lf[3], true
	}
	return "", "", false
}

// joinCgroup maps a cgroup path to a directory under a mount whose root is
// root (not "/" when the mount shows only a subtree).
func joinCgroup(mountPoint, root, cgPath string) (string, bool, error) {
	rel, err := filepath.Rel(root, cgPath)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false, fmt.Errorf("cgroup %s is outside the mount of %s", cgPath, root)
	}
	return filepath.Join(mountPoint, rel), false, nil
}

// execGroup is the cgroup of one exec.
type execGroup struct {
	dir string
	v2  bool
	// reaper is the host PID of the container's init, which adopts and
	// reaps the group's orphans; 0 when unknown.
	reaper int
	// first is the host PID of the exec's first process, once added.
	first int
}

// newExecGroup creates a child cgroup of parent named after seq, in the
// container whose init has host PID reaper.
func newExecGroup(parent string, v2 bool, seq int64, reaper int) (*execGroup, error) {
	dir := filepath.Join(parent, execGroupPrefix+strconv.FormatInt(seq, 10))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create exec cgroup: %w", err)
	}
	return &execGroup{dir: dir, v2: v2, reaper: reaper}, nil
}

// add moves process pid (a host PID) into the group.
func (g *execGroup) add(pid int) error {
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move pid %d into exec cgroup: %w", pid, err)
	}
	g.first = pid
	return nil
}

// kill SIGKILLs every process in the group until none is left, waits until
// the container's init has reaped them, then removes the group. A group whose
// container is gone has nothing left to kill.
//
// A killed process leaves cgroup.procs when it exits, but stays a zombie
// until its parent reaps it; the group's orphans go to the container's init,
// which reaps them as soon as it runs, later on a loaded machine. Until then
// the next exec would see them, and each still holds a PID against the
// container's pids limit: leftovers, so Exec does not return before they are
// gone. Init runs as root, out of the agent's reach, so the wait is short.
func (g *execGroup) kill() error {
	if g.v2 {
		// cgroup.kill (Linux 5.14) kills the whole subtree at once, with no
		// race against forks; the loop below then only waits.
		_ = os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0)
	}
	deadline := time.Now().Add(killGroupTimeout)
	wait := 100 * time.Microsecond
	for {
		pids, err := g.procs()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed with its container
		}
		if err != nil {
			return err
		}
		zombies := 0
		if len(pids) == 0 {
			zombies, err = g.unreaped()
			if err != nil {
				return err
			}
		}
		if len(pids) == 0 && zombies == 0 {
			// Exiting processes leave cgroup.procs before their cgroup can
			// be removed; rmdir says EBUSY until then.
			err := syscall.Rmdir(g.dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				return nil
			}
			if !errors.Is(err, syscall.EBUSY) {
				return fmt.Errorf("remove exec cgroup: %w", err)
			}
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("exec cgroup still holds %d processes and %d unreaped zombies after %s", len(pids), zombies, killGroupTimeout)
		}
		time.Sleep(wait)
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// unreaped counts the group's processes that have left cgroup.procs (they
// are exiting or have exited) but are not yet reaped. A process's PID is
// charged to the pids controller from its fork to its reaping, so where the
// group has pids.current (always on cgroup v1, where the group is in the pids
// hierarchy) that is the count once cgroup.procs is empty. On cgroup v2 the
// container's cgroup cannot enable controllers for its children (it holds
// processes itself), so they are looked for in /proc.
func (g *execGroup) unreaped() (int, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, "pids.current"))
	if err == nil {
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return 0, fmt.Errorf("read pids.current of exec cgroup: %w", err)
		}
		return n, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !g.v2 {
		return 0, fmt.Errorf("read pids.current of exec cgroup: %w", err)
	}
	return unreapedIn("/proc", g.reaper, g.first, filepath.Base(g.dir)), nil
}

// unreapedIn counts the processes of the cgroup v2 group named group that
// /proc (at procRoot) still shows, from the exec's first process and the
// children of the container's init (reaper), and down from them through the
// group's own processes: an exiting process's children are reparented to init
// only when it is done. An exited process's /proc/PID/cgroup still names the
// cgroup it died in, with " (deleted)" once that is removed (on v1 it says
// "/", which is why v1 counts with pids.current). Group names are unique
// within a container, and a process never leaves its group, so one of
// another group is not descended into. Without CONFIG_PROC_CHILDREN only the
// first process is seen.
func unreapedIn(procRoot string, reaper, first int, group string) int {
	var todo []int
	if reaper > 0 {
		todo = childrenOf(procRoot, reaper)
	}
	if first > 0 {
		todo = append(todo, first)
	}
	seen := map[int]bool{}
	n := 0
	for len(todo) > 0 {
		pid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[pid] || !inGroup(procRoot, pid, group) {
			continue
		}
		seen[pid] = true
		n++
		todo = append(todo, childrenOf(procRoot, pid)...)
	}
	return n
}

// childrenOf lists the children of each thread of process pid.
func childrenOf(procRoot string, pid int) []int {
	lists, _ := filepath.Glob(filepath.Join(procRoot, strconv.Itoa(pid), "task", "*", "children"))
	var kids []int
	for _, list := range lists {
		b, _ := os.ReadFile(list) // a thread gone meanwhile had its children moved
		for _, f := range strings.Fields(string(b)) {
			if kid, err := strconv.Atoi(f); err == nil {
				kids = append(kids, kid)
			}
		}
	}
	return kids
}

// inGroup reports whether process pid is in, or died in, the cgroup v2 group
// named group.
func inGroup(procRoot string, pid int, group string) bool {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false // reaped
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return path.Base(strings.TrimSuffix(p, " (deleted)")) == group
		}
	}
	return false
}

// procs lists the processes in the group.
func (g *execGroup) procs() ([]int, error) {
	f, err := os.Open(filepath.Join(g.dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read exec cgroup: %w", err)
	}
	return pids, nil
}
