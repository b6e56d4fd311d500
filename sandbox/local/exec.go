package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlab/mlab/sandbox"
)

// mountPoint is where the workspace appears inside bubblewrap, so scripts see
// the same path in every session and learn nothing about the host layout.
const mountPoint = "/workspace"

// Exec implements sandbox.Sandbox.
func (s *Sandbox) Exec(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	if len(req.Args) == 0 {
		return sandbox.ExecResult{}, errors.New("exec: empty command")
	}
	if err := checkRelDir(req.Dir); err != nil {
		return sandbox.ExecResult{}, err
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	if s.p.bwrap != "" {
		return s.execJail(ctx, req)
	}
	return s.execDirect(ctx, req)
}

// execDirect runs an unconfined process (isolation none), bounded by rlimits.
func (s *Sandbox) execDirect(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	argv := append(s.prlimit(true), req.Args...)
	stdout := sandbox.NewCapture(s.limits.OutputBytes, req.Stdout)
	stderr := sandbox.NewCapture(s.limits.OutputBytes, req.Stderr)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = s.env(req.Env)
	cmd.Dir = filepath.Join(s.ws, req.Dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = req.Stdin, stdout, stderr
	// A process group lets one kill reach the whole tree; Pdeathsig stops
	// the top process from outliving a crashed server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Grandchildren may hold the output pipes open after a kill; do not let
	// them block Wait forever.
	cmd.WaitDelay = 2 * time.Second

	p := &proc{cmd: cmd}
	start := time.Now()
	if err := s.start(p); err != nil {
		return sandbox.ExecResult{}, fmt.Errorf("start %s: %w", req.Args[0], err)
	}
	defer s.untrack(p)
	done := make(chan struct{})
	var timedOut atomic.Bool
	go func() {
		select {
		case <-ctx.Done():
			timedOut.Store(errors.Is(ctx.Err(), context.DeadlineExceeded))
			p.kill()
		case <-done:
		}
	}()
	waitErr := cmd.Wait()
	close(done)
	// Background children of a finished script die with it.
	killGroup(cmd)

	res := sandbox.Streams(stdout, stderr)
	res.Duration, res.TimedOut = time.Since(start), timedOut.Load()
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return res, fmt.Errorf("wait for %s: %w", req.Args[0], waitErr)
	}
	setStatus(&res, cmd.ProcessState.Sys().(syscall.WaitStatus))
	res.OOM = !p.killed.Load() && guessOOM(res)
	return res, nil
}

// setStatus fills the exit code and signal from a wait status.
func setStatus(res *sandbox.ExecResult, ws syscall.WaitStatus) {
	res.ExitCode = ws.ExitStatus()
	if ws.Signaled() {
		res.Signal = ws.Signal().String()
		res.ExitCode = 128 + int(ws.Signal())
	}
}

// guessOOM tells an out-of-memory death where no cgroup counts them:
// RLIMIT_AS turns running out of memory into a failed allocation, which
// Python reports as MemoryError; the kernel OOM killer sends SIGKILL.
func guessOOM(res sandbox.ExecResult) bool {
	return strings.Contains(stderrTail(res.Stderr), "MemoryError") || res.Signal == syscall.SIGKILL.String()
}

// stderrTail is the part of stderr a final traceback would be in.
func stderrTail(s string) string {
	if len(s) > 4096 {
		return s[len(s)-4096:]
	}
	return s
}

// proc is one running exec; killed tells a kill of ours from the kernel's.
type proc struct {
	cmd    *exec.Cmd
	killed atomic.Bool
}

func (p *proc) kill() {
	p.killed.Store(true)
	killGroup(p.cmd)
}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

func checkRelDir(dir string) error {
	if dir == "" {
		return nil
	}
	if filepath.IsAbs(dir) || !filepath.IsLocal(dir) {
		return fmt.Errorf("exec: working directory %q is outside the workspace", dir)
	}
	return nil
}

// prlimit is the prlimit command line that bounds a script by rlimits. The
// address-space limit is only for processes outside a memory cgroup: it
// counts reserved address space, which CUDA and JAX reserve by the terabyte.
func (s *Sandbox) prlimit(addressSpace bool) []string {
	l := s.limits
	argv := []string{
		"prlimit",
		"--cpu=" + strconv.FormatInt(l.CPUSeconds, 10),
		"--fsize=" + strconv.FormatInt(l.FileBytes, 10),
		"--core=0",
	}
	if addressSpace {
		argv = append(argv, "--as="+strconv.FormatInt(l.MemoryBytes, 10))
	}
	return append(argv, "--")
}

// env is the whole environment of a script: nothing of the server's leaks in.
func (s *Sandbox) env(extra []string) []string {
	home := s.tmp
	if s.p.bwrap != "" {
		home = "/tmp"
	}
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"TMPDIR=" + home,
		"USER=agent",
		"LANG=C.UTF-8",
		"PYTHONUNBUFFERED=1",
		"PYTHONDONTWRITEBYTECODE=1",
		"MPLBACKEND=Agg",
		// Only the leased GPUs, or none: an empty list hides every device.
		"CUDA_VISIBLE_DEVICES=" + s.gpus,
	}
	return append(env, extra...)
}

// jailConfig is what a jail is built from.
type jailConfig struct {
	privileged bool
	uid, gid   int
	ws         string
	tmpBytes   int64
}

// bwrapArgs builds a jail with no network, its own pid, IPC and UTS
// namespaces, the system read-only, a private /tmp and the workspace as the
// only writable host path. Nothing else of the host (task folders, run logs,
// other sessions) is mounted.
//
// As root, bubblewrap needs no user namespace, and none is made: a user
// namespace made by root maps the sandbox's ids onto host root, which is
// what let scripts write kernel.core_pattern. Init stays root with only the
// capabilities it needs to start scripts under their own uid; the scripts
// themselves have none. Without root, the user namespace maps only the
// server's own uid, and init keeps CAP_SYS_ADMIN inside it for the pid
// namespace of each exec.
// systemDirs are the host folders bound read-only into every jail (those
// of them that are not symlinks into /usr), /usr first.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

func bwrapArgs(c jailConfig) []string {
	args := []string{
		// No cgroup namespace: init puts each exec in a cgroup outside the
		// one it starts in, which the kernel refuses across a namespace.
		"--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
		"--die-with-parent", "--new-session", "--as-pid-1",
	}
	if c.privileged {
		args = append(args, "--cap-drop", "ALL",
			"--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_KILL")
	} else {
		args = append(args, "--unshare-user", "--uid", strconv.Itoa(c.uid), "--gid", strconv.Itoa(c.gid),
			"--cap-add", "CAP_SYS_ADMIN")
	}
	args = append(args, "--ro-bind", "/usr", "/usr")
	for _, d := range systemDirs[1:] {
		target, err := os.Readlink(d)
		switch {
		case err == nil:
			args = append(args, "--symlink", target, d)
		default:
			args = append(args, "--ro-bind-try", d, d)
		}
	}
	// numpy's BLAS is found through /etc/alternatives; the rest of /etc stays
	// out of reach. Made first, as bubblewrap running as root would make it
	// mode 0700 and so closed to the sandbox user.
	args = append(args, "--perms", "0755", "--dir", "/etc")
	for _, f := range []string{"/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types"} {
		args = append(args, "--ro-bind-try", f, f)
	}
	size := strconv.FormatInt(c.tmpBytes, 10)
	return append(args,
		"--proc", "/proc",
		// Kernel knobs are read-only whoever asks: bubblewrap covers
		// /proc/sys only when it cannot write it itself.
		"--ro-bind", "/proc/sys", "/proc/sys",
		"--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
		"--dev", "/dev",
		"--perms", "1777", "--size", size, "--tmpfs", "/dev/shm",
		"--perms", "1777", "--size", size, "--tmpfs", "/tmp",
		"--bind", c.ws, mountPoint,
		// Init works from /: as root without CAP_DAC_OVERRIDE it cannot
		// enter the workspace, which only the sandbox user may.
		"--chdir", "/",
	)
}

// sealRoot ends a jail's mounts: the jail's own root (a tmpfs of
// bubblewrap's, with no size limit) and the folders made in it become
// read-only.
var sealRoot = []string{"--remount-ro", "/"}

// gpuBinds makes the leased NVIDIA devices, and the driver's control nodes
// and sysfs entries CUDA reads, visible inside the jail.
func gpuBinds(gpus string) []string {
	if gpus == "" {
		return nil
	}
	args := []string{"--ro-bind-try", "/sys", "/sys"}
	for _, d := range []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"} {
		args = append(args, "--dev-bind-try", d, d)
	}
	for _, id := range strings.Split(gpus, ",") {
		args = append(args, "--dev-bind-try", "/dev/nvidia"+id, "/dev/nvidia"+id)
	}
	return args
}

// interpreterBind returns the install prefix of an interpreter that lives
// outside /usr (a pyenv or conda python), which must be visible inside the jail.
func interpreterBind(name string) ([]string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("interpreter %s: %w", name, err)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("interpreter %s: %w", name, err)
	}
	var binds []string
	for _, p := range []string{path, real} {
		if strings.HasPrefix(p, "/usr/") || strings.HasPrefix(p, "/bin/") {
			continue
		}
		// <prefix>/bin/python3 -> <prefix>
		binds = append(binds, filepath.Dir(filepath.Dir(p)))
	}
	return binds, nil
}

// probeBwrap checks that bubblewrap can build our jail here; inside some
// containers it is installed but cannot.
func probeBwrap(ctx context.Context) (string, error) {
	path, err := exec.LookPath("bwrap")
	if err != nil {
		return "", errors.New("bwrap not found on PATH")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "mlab-bwrap-probe-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	c := jailConfig{privileged: os.Geteuid() == 0, uid: os.Getuid(), gid: os.Getgid(), ws: dir, tmpBytes: 1 << 20}
	args := append(bwrapArgs(c), sealRoot...)
	args = append(args, "--", "/bin/true")
	if out, err := exec.CommandContext(ctx, path, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("bwrap probe failed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return path, nil
}
