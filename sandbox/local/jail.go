package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errJailDied is returned by Exec when the jail's init is gone.
var errJailDied = errors.New("sandbox jail died")

// jail is a running bubblewrap namespace with our init inside, and the
// client side of the socket to it.
type jail struct {
	cmd  *exec.Cmd
	conn *net.UnixConn

	wmu    sync.Mutex
	nextID atomic.Uint64

	// With cgroups, each exec is born in a cgroup of its own; the next
	// one is made ahead of time.
	cg      *cgroup
	spawnMu sync.Mutex
	next    *execGroup
	nextDir *os.File // open on next's folder
	closed  bool

	mu      sync.Mutex
	waiters map[uint64]chan reply
	dead    chan struct{} // closed when the socket to init is gone
	stderr  *tailBuffer
}

// startJail starts bwrap with argv (its options, up to the command) running
// the init binary exe, and waits until init has joined the cgroups and is
// ready for requests. bwrap executes exe through the descriptor it inherits,
// so the binary is never mounted in the jail.
func startJail(argv []string, exe *os.File, cfg initConfig, cgroupFiles []*os.File) (*jail, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("jail socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "jail"), os.NewFile(uintptr(fds[1]), "init")
	defer theirs.Close()
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("jail socket: %w", err)
	}
	cfg.Cgroups = len(cgroupFiles)
	cfg.ExeFD = initFD + 1 + len(cgroupFiles)
	argv = append(slices.Clone(argv), "--", exeFDPath(cfg.ExeFD))
	cfgText, err := json.Marshal(cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	j := &jail{conn: c.(*net.UnixConn), waiters: map[uint64]chan reply{}, dead: make(chan struct{}), stderr: &tailBuffer{max: 4096}}
	cmd := exec.Command(argv[0], append(argv[1:], initArg, string(cfgText))...)
	cmd.Env = []string{"MLAB_JAIL_INIT=1"}
	cmd.Stderr = j.stderr
	cmd.ExtraFiles = append(append([]*os.File{theirs}, cgroupFiles...), exe)
	// Its own process group, so that a signal to the server's group does not
	// reach it; Pdeathsig so that it dies with a crashed server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		j.conn.Close()
		return nil, fmt.Errorf("start jail: %w", err)
	}
	j.cmd = cmd
	ready := make(chan reply, 1)
	j.waiters[0] = ready
	go j.read()
	go func() {
		_ = cmd.Wait()
		// bwrap is gone, so is init: unblock everyone.
		j.conn.Close()
	}()
	select {
	case r := <-ready:
		if r.Err != "" {
			j.close()
			return nil, fmt.Errorf("jail init: %s", r.Err)
		}
	case <-j.dead:
		j.close()
		return nil, fmt.Errorf("jail exited at start: %s", strings.TrimSpace(j.stderr.String()))
	case <-time.After(30 * time.Second):
		j.close()
		return nil, errors.New("jail init did not start within 30s")
	}
	return j, nil
}

// read dispatches init's replies until the socket closes.
func (j *jail) read() {
	defer func() {
		j.mu.Lock()
		close(j.dead)
		j.mu.Unlock()
	}()
	buf := make([]byte, 4096)
	for {
		n, err := j.conn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		var r reply
		if json.Unmarshal(buf[:n], &r) != nil {
			continue
		}
		j.mu.Lock()
		ch := j.waiters[r.ID]
		j.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// spawnArgs is one process to start in the jail.
type spawnArgs struct {
	args, env []string
	dir       string
}

// spawn asks init to start a process with stdin, stdout and stderr and
// waits until it has. The returned channel receives its exit; the group,
// with cgroups, holds every process the exec starts.
func (j *jail) spawn(a spawnArgs, stdio [3]*os.File) (uint64, <-chan reply, *execGroup, error) {
	if j.cg == nil || j.cg.execDir == "" {
		id, ch, err := j.spawnNext(a, stdio, nil)
		return id, ch, nil, err
	}
	j.spawnMu.Lock()
	group, dir := j.next, j.nextDir
	j.next, j.nextDir = nil, nil
	j.spawnMu.Unlock()
	if group == nil {
		var err error
		if group, dir, err = j.cg.newExec(); err != nil {
			return 0, nil, nil, err
		}
	}
	defer dir.Close()
	id, ch, err := j.spawnNext(a, stdio, dir)
	// The cgroup for the next exec is made while this one starts up, not
	// when the next one does.
	go j.prepareNext()
	if err != nil {
		_ = group.end()
		return 0, nil, nil, err
	}
	return id, ch, group, nil
}

func (j *jail) prepareNext() {
	g, dir, err := j.cg.newExec()
	if err != nil {
		return
	}
	j.spawnMu.Lock()
	defer j.spawnMu.Unlock()
	if j.next != nil || j.closed {
		dir.Close()
		_ = g.end()
		return
	}
	j.next, j.nextDir = g, dir
}

// spawnNext starts the process in the cgroup of cgroupDir, if any.
func (j *jail) spawnNext(a spawnArgs, stdio [3]*os.File, cgroupDir *os.File) (uint64, <-chan reply, error) {
	id := j.nextID.Add(1)
	ch := make(chan reply, 2)
	j.mu.Lock()
	select {
	case <-j.dead:
		j.mu.Unlock()
		return 0, nil, errJailDied
	default:
	}
	j.waiters[id] = ch
	j.mu.Unlock()
	fail := func(err error) (uint64, <-chan reply, error) {
		j.forget(id)
		return 0, nil, err
	}
	req := request{Op: "spawn", ID: id, Args: a.args, Env: a.env, Dir: a.dir, Cgroup: cgroupDir != nil}
	msg, err := json.Marshal(req)
	if err != nil {
		return fail(err)
	}
	fds := []int{int(stdio[0].Fd()), int(stdio[1].Fd()), int(stdio[2].Fd())}
	if len(msg) > maxPacket {
		// An argument list can be megabytes (python -c with a long program);
		// a packet cannot.
		mfd, err := unix.MemfdCreate("mlab-request", unix.MFD_CLOEXEC)
		if err != nil {
			return fail(fmt.Errorf("memfd: %w", err))
		}
		body := os.NewFile(uintptr(mfd), "request")
		defer body.Close()
		if _, err := body.Write(msg); err != nil {
			return fail(fmt.Errorf("memfd: %w", err))
		}
		fds = append(fds, mfd)
		msg, _ = json.Marshal(request{Op: "spawn", ID: id, Big: true, Cgroup: req.Cgroup})
	}
	if cgroupDir != nil {
		fds = append(fds, int(cgroupDir.Fd()))
	}
	if err := j.send(msg, fds); err != nil {
		return fail(err)
	}
	select {
	case r := <-ch:
		if r.Err != "" {
			j.forget(id)
			return 0, nil, errors.New(r.Err)
		}
		return id, ch, nil
	case <-j.dead:
		return fail(errJailDied)
	}
}

func (j *jail) send(msg []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if _, _, err := j.conn.WriteMsgUnix(msg, oob, nil); err != nil {
		return fmt.Errorf("%w: %v", errJailDied, err)
	}
	return nil
}

// kill asks init to SIGKILL the process id, which takes its whole pid
// namespace with it.
func (j *jail) kill(id uint64) {
	msg, _ := json.Marshal(request{Op: "kill", ID: id})
	_ = j.send(msg, nil)
}

func (j *jail) forget(id uint64) {
	j.mu.Lock()
	delete(j.waiters, id)
	j.mu.Unlock()
}

// close kills the jail: bwrap's child, init, is pid 1 of the jail's pid
// namespace, so everything in it dies with it.
func (j *jail) close() {
	j.conn.Close()
	if j.cmd != nil && j.cmd.Process != nil {
		_ = j.cmd.Process.Kill()
	}
	<-j.dead
	j.spawnMu.Lock()
	defer j.spawnMu.Unlock()
	j.closed = true
	if j.nextDir != nil {
		j.nextDir.Close()
	}
}

// tailBuffer keeps the last max bytes written to it: bwrap's error message.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
