package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/sandbox"
)

const (
	// killTimeout bounds how long a killed exec may take to report its end
	// before the whole jail is torn down instead.
	killTimeout = 10 * time.Second
	// outputDelay is how long output may keep flowing after a script ended:
	// a process of another exec may hold a copy of its pipes.
	outputDelay = 2 * time.Second
)

// execJail runs the request in the sandbox's jail. Each exec has a cgroup of
// its own (or, without cgroups, a pid namespace of its own), so that when it
// ends, by itself or killed, nothing it started survives it.
func (s *Sandbox) execJail(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	extra, _ := interpreterBind(req.Args[0])
	j, err := s.jailFor(extra)
	if err != nil {
		return sandbox.ExecResult{}, err
	}
	var (
		files   []*os.File // the child's ends, closed once init has them
		readers []*os.File
	)
	defer func() { closeAll(files) }()
	stdin, stdinW, err := s.stdin(req.Stdin)
	if err != nil {
		return sandbox.ExecResult{}, err
	}
	files = append(files, stdin)
	stdout := sandbox.NewCapture(s.limits.OutputBytes, req.Stdout)
	stderr := sandbox.NewCapture(s.limits.OutputBytes, req.Stderr)
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(readers)
			if stdinW != nil {
				stdinW.Close()
			}
			return sandbox.ExecResult{}, fmt.Errorf("exec pipe: %w", err)
		}
		files, readers = append(files, w), append(readers, r)
	}
	args := req.Args
	if s.cg == nil {
		// No memory cgroup: the address-space rlimit is all there is.
		args = append([]string{"prlimit", "--as=" + fmt.Sprint(s.limits.MemoryBytes), "--"}, args...)
	}
	var oomBefore int64
	if s.cg != nil {
		oomBefore = s.cg.oomKills()
	}
	start := time.Now()
	id, exited, group, err := j.spawn(spawnArgs{args: args, env: s.env(req.Env), dir: path.Join(mountPoint, req.Dir)},
		[3]*os.File{files[0], files[1], files[2]})
	closeAll(files)
	files = nil
	if group != nil {
		// Whatever happens, nothing the exec started outlives Exec. Once
		// the cgroup is empty, it can go later.
		defer func() {
			if err := group.kill(); err != nil {
				s.p.log.Error().Err(err).Msg("kill the processes of an exec")
			}
			go func() {
				if err := rmdirCgroup(group.dir); err != nil {
					s.p.log.Warn().Err(err).Msg("remove the cgroup of an exec")
				}
			}()
		}()
	}
	if err != nil {
		closeAll(readers)
		if stdinW != nil {
			stdinW.Close()
		}
		if s.isClosed() {
			return sandbox.ExecResult{}, sandbox.ErrClosed
		}
		if errors.Is(err, errJailDied) {
			s.dropJail(j)
		}
		return sandbox.ExecResult{}, fmt.Errorf("start %s: %w", req.Args[0], err)
	}
	if stdinW != nil {
		go func() {
			_, _ = io.Copy(stdinW, req.Stdin)
			stdinW.Close()
		}()
	}
	var copies sync.WaitGroup
	for i, w := range []io.Writer{stdout, stderr} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			_, _ = io.Copy(w, readers[i])
		}()
	}

	var (
		r                reply
		killed, timedOut bool
		jailDied         bool
	)
	kill := func() {
		killed = true
		if group != nil {
			// From here, not through init: it works even if init is stuck.
			_ = group.kill()
		} else {
			j.kill(id)
		}
	}
wait:
	for {
		var guard <-chan time.Time
		if killed {
			guard = time.After(killTimeout)
		}
		select {
		case r = <-exited:
			break wait
		case <-ctx.Done():
			if !killed {
				timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
				kill()
			}
			ctx = context.Background()
		case <-j.dead:
			select {
			case r = <-exited: // its end arrived before the socket closed
			default:
				jailDied = true
			}
			break wait
		case <-guard:
			// Init did not answer: kill everything the jail holds.
			s.dropJail(j)
			j.close()
		}
	}
	j.forget(id)
	if group != nil {
		// The script is gone; what it left behind (setsid, double fork)
		// goes now, before the output is collected.
		_ = group.kill()
	}
	if stdinW != nil {
		stdinW.Close()
	}
	// Every process of the exec is dead; their pipe ends are closed unless
	// another exec's process holds a copy, which must not hold us.
	copied := make(chan struct{})
	go func() { copies.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(outputDelay):
		closeAll(readers)
		<-copied
	}
	closeAll(readers)

	res := sandbox.Streams(stdout, stderr)
	res.Duration, res.TimedOut = time.Since(start), timedOut
	switch {
	case jailDied:
		s.dropJail(j)
		if !s.isClosed() && !killed {
			return res, fmt.Errorf("run %s: %w", req.Args[0], errJailDied)
		}
		// Killed with its jail, by Close or by us: not out of memory.
		killed = true
		setStatus(&res, syscall.WaitStatus(syscall.SIGKILL))
	case r.Err != "":
		return res, fmt.Errorf("wait for %s: %s", req.Args[0], r.Err)
	default:
		setStatus(&res, syscall.WaitStatus(r.Status))
	}
	if s.cg != nil {
		res.OOM = s.cg.oomKills() > oomBefore
	} else {
		res.OOM = !killed && guessOOM(res)
	}
	return res, nil
}

// stdin is the child's end of its input, and the writer to feed it when the
// request's input is not a file.
func (s *Sandbox) stdin(in io.Reader) (child, w *os.File, err error) {
	switch in := in.(type) {
	case nil:
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", os.DevNull, err)
		}
		return f, nil, nil
	case *os.File:
		// A dup: the caller keeps its file, and we close ours.
		fd, err := unix.FcntlInt(in.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("dup stdin: %w", err)
		}
		return os.NewFile(uintptr(fd), "stdin"), nil, nil
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("stdin pipe: %w", err)
		}
		return r, w, nil
	}
}

func (s *Sandbox) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// jailFor returns the running jail with extra bound in, starting it if
// needed. Jails differ only in the interpreter folders outside /usr that are
// bound into them; almost every sandbox has one jail.
func (s *Sandbox) jailFor(extra []string) (*jail, error) {
	slices.Sort(extra)
	extra = slices.Compact(extra)
	key := strings.Join(extra, "\x00")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, sandbox.ErrClosed
	}
	if j := s.jails[key]; j != nil {
		return j, nil
	}
	// Starting under the lock keeps Close from missing a jail; it takes
	// milliseconds, and only once per sandbox.
	j, err := s.startJail(extra)
	if err != nil {
		return nil, err
	}
	s.jails[key] = j
	return j, nil
}

// dropJail forgets a dead jail, so that the next exec starts a new one.
func (s *Sandbox) dropJail(j *jail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.jails {
		if v == j {
			delete(s.jails, k)
		}
	}
}

func (s *Sandbox) startJail(extra []string) (*jail, error) {
	p := s.p
	argv := append([]string{p.bwrap}, bwrapArgs(jailConfig{
		privileged: p.privileged, uid: s.uid, gid: s.gid, ws: s.ws, tmpBytes: p.opts.WorkspaceBytes,
	})...)
	argv = append(argv, gpuBinds(s.gpus)...)
	for _, rel := range s.readOnly {
		argv = append(argv, "--ro-bind", path.Join(s.ws, rel), path.Join(mountPoint, rel))
	}
	for _, d := range extra {
		argv = append(argv, "--ro-bind", d, d)
	}
	argv = append(argv, maskArgs(p.exeCopies, append(slices.Clone(systemDirs), extra...))...)
	argv = append(argv, sealRoot...)
	exe, err := openExe()
	if err != nil {
		return nil, err
	}
	defer exe.Close()

	l := s.limits
	cfg := initConfig{UID: -1, GID: -1, Rlimits: []rlimit{
		{unix.RLIMIT_CORE, 0},
		{unix.RLIMIT_CPU, uint64(l.CPUSeconds)},
		{unix.RLIMIT_FSIZE, uint64(l.FileBytes)},
	}}
	if p.privileged {
		cfg.UID, cfg.GID = s.uid, s.gid
	}
	var cgroupFiles []*os.File
	if s.cg != nil {
		var err error
		if cgroupFiles, err = s.cg.procsFiles(); err != nil {
			return nil, err
		}
		defer closeAll(cgroupFiles)
	} else {
		// Per uid: a dedicated uid as root, the user namespace's own
		// count otherwise.
		cfg.Rlimits = append(cfg.Rlimits, rlimit{unix.RLIMIT_NPROC, uint64(l.Processes)})
	}
	j, err := startJail(argv, exe, cfg, cgroupFiles)
	if err != nil {
		return nil, err
	}
	j.cg = s.cg
	return j, nil
}
