package local

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/sandbox"
)

// cgroupParent is the directory, under each controller's hierarchy, that
// holds one cgroup per sandbox.
const cgroupParent = "mlab"

// cgroupRoot is where this host lets us make per-sandbox cgroups: the unified
// hierarchy (v2), or the pids and memory hierarchies of v1.
//
// Each exec also gets a cgroup of its own, in the unified hierarchy (which a
// v1 host running systemd mounts beside the others, with no controllers):
// the kernel puts the script in it as it forks it (clone3's
// CLONE_INTO_CGROUP), so whatever it starts, setsid or double fork, is
// found and killed there. Moving a process into a cgroup instead takes a
// kernel lock whose release waits for an RCU grace period, milliseconds on
// a loaded machine, and blocks every fork meanwhile.
type cgroupRoot struct {
	v2     bool
	pids   string // v1: the pids hierarchy's mlab folder; v2: the mlab folder
	memory string // v1: the memory hierarchy's mlab folder; v2: same as pids
	execs  string // the unified hierarchy's mlab folder; "" when there is none
}

// detectCgroups finds the pids and memory controllers and makes sure the
// mlab parent exists, so that creating a sandbox's cgroup is one mkdir.
func detectCgroups() (*cgroupRoot, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return nil, fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	var r *cgroupRoot
	var err error
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		r, err = detectV2("/sys/fs/cgroup")
	} else {
		r, err = detectV1()
	}
	if err != nil {
		return nil, err
	}
	// The parent may exist (made by root) and still be closed to us.
	probe := fmt.Sprintf("probe-%d", os.Getpid())
	for _, d := range []string{r.pids, r.memory, r.execs} {
		if d == "" {
			continue
		}
		if err := os.Mkdir(filepath.Join(d, probe), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create cgroup in %s: %w", d, err)
		}
		_ = unix.Rmdir(filepath.Join(d, probe))
	}
	return r, nil
}

func detectV1() (*cgroupRoot, error) {
	pids, memory, unified, err := v1Mounts()
	if err != nil {
		return nil, err
	}
	// Sandboxes nest under the server's own cgroups, so that whatever limits
	// the server (a systemd unit, a container, the hostile suite's
	// containment) also bounds every sandbox it makes.
	own, err := ownCgroupsV1()
	if err != nil {
		return nil, err
	}
	r := &cgroupRoot{pids: filepath.Join(nestedIn(pids, own["pids"]), cgroupParent), memory: filepath.Join(nestedIn(memory, own["memory"]), cgroupParent)}
	dirs := []string{r.pids, r.memory}
	if unified != "" {
		r.execs = filepath.Join(unified, cgroupParent)
		dirs = append(dirs, r.execs)
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	return r, nil
}

func detectV2(mnt string) (*cgroupRoot, error) {
	dir := filepath.Join(mnt, cgroupParent)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	// Controllers must be enabled on every level above a cgroup that uses
	// them; the root usually has them already.
	for _, d := range []string{mnt, dir} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+pids +memory"), 0); err != nil {
			return nil, fmt.Errorf("enable pids and memory controllers in %s: %w", d, err)
		}
	}
	return &cgroupRoot{v2: true, pids: dir, memory: dir, execs: dir}, nil
}

// ownCgroupsV1 maps each v1 controller to this process's cgroup in it, from
// /proc/self/cgroup ("3:pids:/system.slice/x.service"). The paths are
// relative to the hierarchy's root, which is what the host's mounts show; a
// server in a container whose mounts start deeper sees "/" for its own.
func ownCgroupsV1() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	own := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			own[ctrl] = parts[2]
		}
	}
	return own, nil
}

// nestedIn is the server's own cgroup dir under the hierarchy mounted at mnt,
// or mnt itself where that path is not visible (a mount that starts below
// the hierarchy's root, as in a container).
func nestedIn(mnt, own string) string {
	dir := filepath.Join(mnt, own)
	if info, err := os.Stat(dir); err == nil && info.IsDir() {
		return dir
	}
	return mnt
}

// v1Mounts finds the mount points of the v1 pids and memory hierarchies,
// and of the unified one if it is mounted too.
func v1Mounts() (pids, memory, unified string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", "", fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(sf) >= 1 && sf[0] == "cgroup2" && unified == "" {
			unified = pf[4]
		}
		if len(pf) < 5 || len(sf) < 3 || sf[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(sf[2], ",") {
			switch o {
			case "pids":
				pids = pf[4]
			case "memory":
				memory = pf[4]
			}
		}
	}
	if pids == "" || memory == "" {
		return "", "", "", errors.New("no cgroup v1 pids and memory hierarchies mounted")
	}
	return pids, memory, unified, nil
}

// cgroup is one sandbox's cgroup (a pair of them on v1).
type cgroup struct {
	v2           bool
	pids, memory string
	execDir      string // in the unified hierarchy; "" when there is none
	execs        atomic.Uint64
}

// create makes the cgroup named name with the process and memory limits of l.
func (r *cgroupRoot) create(name string, l sandbox.Limits) (*cgroup, error) {
	c := &cgroup{v2: r.v2, pids: filepath.Join(r.pids, name), memory: filepath.Join(r.memory, name)}
	if r.execs != "" {
		c.execDir = filepath.Join(r.execs, name)
	}
	for _, d := range c.dirs() {
		if err := os.Mkdir(d, 0o755); err != nil {
			c.remove()
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
	}
	mem := strconv.FormatInt(l.MemoryBytes, 10)
	settings := [][2]string{{filepath.Join(c.pids, "pids.max"), strconv.FormatInt(l.Processes, 10)}}
	if c.v2 {
		settings = append(settings,
			[2]string{filepath.Join(c.memory, "memory.max"), mem},
			[2]string{filepath.Join(c.memory, "memory.swap.max"), "0"})
	} else {
		settings = append(settings,
			[2]string{filepath.Join(c.memory, "memory.limit_in_bytes"), mem},
			// Without it, swap would let the sandbox use more than its limit.
			[2]string{filepath.Join(c.memory, "memory.memsw.limit_in_bytes"), mem})
	}
	for _, s := range settings {
		err := os.WriteFile(s[0], []byte(s[1]), 0)
		if err != nil && !(errors.Is(err, os.ErrNotExist) && strings.Contains(s[0], "sw")) {
			c.remove()
			return nil, fmt.Errorf("set cgroup limit %s: %w", filepath.Base(s[0]), err)
		}
	}
	return c, nil
}

// dirs lists the cgroup's folders, the one in the unified hierarchy last.
func (c *cgroup) dirs() []string {
	if c.v2 {
		return []string{c.pids}
	}
	if c.execDir != "" {
		return []string{c.pids, c.memory, c.execDir}
	}
	return []string{c.pids, c.memory}
}

// procsFiles opens the files through which a process joins the cgroup. They
// are handed to the jail's init, which joins before it starts anything, so
// that no process of the sandbox is ever outside its limits.
func (c *cgroup) procsFiles() ([]*os.File, error) {
	var fs []*os.File
	for _, d := range c.dirs() {
		f, err := os.OpenFile(filepath.Join(d, "cgroup.procs"), os.O_WRONLY, 0)
		if err != nil {
			closeAll(fs)
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// oomKills is how many processes the kernel has killed for running the
// cgroup out of memory so far.
func (c *cgroup) oomKills() int64 {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(c.memory, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// kill SIGKILLs every process in the cgroup until it is empty.
func (c *cgroup) kill(timeout time.Duration) error { return killCgroup(c.pids, timeout) }

func (c *cgroup) procs() ([]int, error) { return cgroupProcs(c.pids) }

// remove deletes the cgroup, and the cgroups of execs left in it.
func (c *cgroup) remove() error {
	var errs []error
	var left []string
	if c.execDir != "" {
		left, _ = filepath.Glob(filepath.Join(c.execDir, "exec-*"))
	}
	for _, d := range left {
		errs = append(errs, (&execGroup{dir: d}).end())
	}
	for _, d := range c.dirs() {
		errs = append(errs, rmdirCgroup(d))
	}
	return errors.Join(errs...)
}

// execGroup is the cgroup of one exec, inside the sandbox's pids cgroup: it
// tells which processes an exec started, however they detached from it.
type execGroup struct{ dir string }

// newExec makes a cgroup for an exec and opens its folder, for
// CLONE_INTO_CGROUP.
func (c *cgroup) newExec() (*execGroup, *os.File, error) {
	g := &execGroup{dir: filepath.Join(c.execDir, "exec-"+strconv.FormatUint(c.execs.Add(1), 10))}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create exec cgroup: %w", err)
	}
	f, err := os.OpenFile(g.dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		_ = rmdirCgroup(g.dir)
		return nil, nil, fmt.Errorf("open exec cgroup: %w", err)
	}
	return g, f, nil
}

// end kills whatever the exec left running and removes its cgroup.
func (g *execGroup) end() error {
	if err := g.kill(); err != nil {
		return err
	}
	return rmdirCgroup(g.dir)
}

// kill kills whatever the exec left running.
func (g *execGroup) kill() error { return killCgroup(g.dir, killTimeout) }

// killCgroup SIGKILLs every process in the cgroup dir until it is empty.
// Processes being killed cannot fork, and the pids limit bounds how many
// there are, so the loop ends.
func killCgroup(dir string, timeout time.Duration) error {
	// cgroup.kill (v2, Linux 5.14) kills atomically; elsewhere it is absent.
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	deadline := time.Now().Add(timeout)
	for {
		pids, err := cgroupProcs(dir)
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still in a sandbox cgroup after %v", len(pids), timeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
}

func cgroupProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cgroup processes: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// rmdirCgroup deletes a cgroup. The kernel refuses while a dying process is
// still in it, so it retries for a while.
func rmdirCgroup(d string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(d)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// RemoveStale undoes what sandboxes under root left behind when their server
// died without closing them (kill -9): it kills their processes, removes
// their cgroups and unmounts their workspaces, so that root can be deleted.
// Only call it for a root whose server is gone.
func RemoveStale(root string) error {
	var errs []error
	if r, err := detectCgroups(); err == nil {
		names, _ := filepath.Glob(filepath.Join(root, "mlab-sandbox-*"))
		for _, n := range names {
			c := &cgroup{v2: r.v2, pids: filepath.Join(r.pids, filepath.Base(n)), memory: filepath.Join(r.memory, filepath.Base(n))}
			if r.execs != "" {
				c.execDir = filepath.Join(r.execs, filepath.Base(n))
			}
			if _, err := os.Stat(c.pids); err != nil {
				continue
			}
			errs = append(errs, c.kill(killTimeout), c.remove())
		}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read mounts: %w", err))...)
	}
	var points []string
	prefix := filepath.Clean(root) + "/"
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
