package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/mlab/mlab/sandbox"
)

// execProc is one running exec; killed tells our kill from the kernel's.
// Docker starts every exec as the leader of a new session, so its process ID
// is also the process group that holds the script's whole tree.
type execProc struct {
	execID string
	killed atomic.Bool
}

// Exec implements sandbox.Sandbox.
func (s *Sandbox) Exec(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	if len(req.Args) == 0 {
		return sandbox.ExecResult{}, errors.New("exec: empty command")
	}
	if req.Dir != "" && (filepath.IsAbs(req.Dir) || !filepath.IsLocal(req.Dir)) {
		return sandbox.ExecResult{}, fmt.Errorf("exec: working directory %q is outside the workspace", req.Dir)
	}
	if s.isClosed() {
		return sandbox.ExecResult{}, sandbox.ErrClosed
	}
	p := &execProc{}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}

	actx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	created, err := s.api.ContainerExecCreate(actx, s.id, container.ExecOptions{
		Cmd:          req.Args,
		Env:          req.Env,
		WorkingDir:   path.Join(MountPoint, filepath.ToSlash(req.Dir)),
		AttachStdin:  req.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return sandbox.ExecResult{}, fmt.Errorf("create exec in %s: %w", shortID(s.id), err)
	}
	p.execID = created.ID
	start := time.Now()
	// The attachment lives as long as the process; it is not bounded by the
	// API timeout.
	conn, err := s.api.ContainerExecAttach(context.WithoutCancel(ctx), created.ID, container.ExecAttachOptions{})
	if err != nil {
		return sandbox.ExecResult{}, fmt.Errorf("start exec in %s: %w", shortID(s.id), err)
	}
	defer conn.Close()
	if req.Stdin != nil {
		go func() {
			io.Copy(conn.Conn, req.Stdin)
			conn.CloseWrite()
		}()
	}

	stdout := sandbox.NewCapture(s.limits.OutputBytes, req.Stdout)
	stderr := sandbox.NewCapture(s.limits.OutputBytes, req.Stderr)
	copied := make(chan struct{})
	go func() {
		stdcopy.StdCopy(stdout, stderr, conn.Reader)
		close(copied)
	}()

	timedOut := false
	exited := s.waitExit(ctx, created.ID, copied)
	select {
	case <-exited:
	case <-ctx.Done():
		timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		s.kill(p)
	}
	ictx, icancel := context.WithTimeout(context.Background(), apiTimeout)
	defer icancel()
	info, err := s.api.ContainerExecInspect(ictx, created.ID)
	if err != nil {
		return sandbox.ExecResult{}, fmt.Errorf("inspect exec in %s: %w", shortID(s.id), err)
	}
	// Background children of a finished script die with it; then the
	// output streams close.
	s.killGroup(info.Pid, false)
	conn.Close()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}

	res := sandbox.Streams(stdout, stderr)
	res.Duration, res.TimedOut, res.ExitCode = time.Since(start), timedOut, info.ExitCode
	if info.ExitCode > 128 && info.ExitCode < 128+65 {
		res.Signal = syscall.Signal(info.ExitCode - 128).String()
	}
	if res.Signal == syscall.SIGKILL.String() && !p.killed.Load() {
		// Nobody but the kernel's OOM killer sends SIGKILL here.
		res.OOM = s.oomKilled(ictx)
	}
	return res, nil
}

// waitExit closes its result when the exec's main process has ended. The
// output stream ending is the usual sign; polling covers a background child
// that keeps the stream open after its parent is gone.
func (s *Sandbox) waitExit(ctx context.Context, execID string, copied <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-copied:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				ictx, cancel := context.WithTimeout(ctx, apiTimeout)
				info, err := s.api.ContainerExecInspect(ictx, execID)
				cancel()
				if err == nil && !info.Running {
					return
				}
			}
		}
	}()
	return done
}

// isClosed reports whether Close has begun; removing the container then
// ends every exec, so none is tracked.
func (s *Sandbox) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Sandbox) kill(p *execProc) {
	p.killed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	pid := 0
	if info, err := s.api.ContainerExecInspect(ctx, p.execID); err == nil {
		pid = info.Pid
	}
	s.killGroup(pid, true)
}

// killGroup sends SIGKILL to the process group led by hostPid (the exec's
// process ID on the host, from ExecInspect). Signalling from the host needs
// no process in the container, which matters when a fork bomb has used up
// the pids limit. Where the host may not signal the container's user (a
// server that is not root), the group is killed from a second exec, by its
// ID inside the container; failing that, and only for a timeout (all),
// every process of the agent's user goes.
func (s *Sandbox) killGroup(hostPid int, all bool) {
	if hostPid > 0 {
		// Repeat: a process forking at the moment of the kill may add a
		// member the first signal missed.
		var err error
		for range 3 {
			if err = syscall.Kill(-hostPid, syscall.SIGKILL); err != nil {
				break
			}
		}
		if err == nil || errors.Is(err, syscall.ESRCH) {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if pid, ok := namespacePid(hostPid); ok {
		s.run(ctx, fmt.Sprintf("kill -9 -%d 2>/dev/null; true", pid))
	} else if all {
		s.run(ctx, "kill -9 -1 2>/dev/null; true")
	}
}

// namespacePid maps a host process ID to its ID in the innermost PID
// namespace, from the NSpid line of /proc/<pid>/status.
func namespacePid(hostPid int) (int, bool) {
	if hostPid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hostPid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			pid, err := strconv.Atoi(f[len(f)-1])
			return pid, err == nil
		}
	}
	return 0, false
}

// oomKilled tells whether the kernel's OOM killer has struck in this
// container since the last check, from the cgroup's oom_kill counter (cgroup
// v1 memory.oom_control or v2 memory.events, as mounted in the container).
// The engine's OOMKilled flag only covers the container's main process.
func (s *Sandbox) oomKilled(ctx context.Context) bool {
	out, err := s.run(ctx, "cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null; true")
	if err != nil {
		return false
	}
	var count int64
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			count, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := count > s.oomKills
	s.oomKills = max(s.oomKills, count)
	return seen
}

// run executes a short shell command of the backend's own in the container
// and returns its stdout.
func (s *Sandbox) run(ctx context.Context, script string) (string, error) {
	created, err := s.api.ContainerExecCreate(ctx, s.id, container.ExecOptions{Cmd: []string{"sh", "-c", script}, AttachStdout: true})
	if err != nil {
		return "", err
	}
	conn, err := s.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var out strings.Builder
	_, err = stdcopy.StdCopy(&out, io.Discard, conn.Reader)
	return out.String(), err
}
