// Package local is the embedded sandbox backend: a workspace directory on the
// host and, where bubblewrap works, one long-lived jail per sandbox that each
// exec enters. The jail has no network, a read-only system and only the
// workspace writable; scripts in it run as an unprivileged host uid of their
// own, inside a cgroup that caps their processes and memory.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/mlab/mlab/sandbox"
)

// Isolation selects how exec'd processes are confined.
type Isolation string

const (
	// IsolationAuto uses bubblewrap when it works on this host, else none.
	IsolationAuto Isolation = "auto"
	// IsolationBwrap requires bubblewrap and fails when it does not work.
	IsolationBwrap Isolation = "bwrap"
	// IsolationNone runs processes directly in the workspace.
	IsolationNone Isolation = "none"
)

// Defaults for Options fields left zero.
const (
	// DefaultUID is the first host uid (and gid) scripts run as when the
	// server is root. 65536–99999 is the gap that Debian (0–64999, 65534),
	// systemd (dynamic users 61184–65519, containers from 524288) and the
	// default subordinate id ranges of useradd (from 100000) all leave
	// unallocated, so no account or service on the host shares these ids,
	// and no file outside the sandbox belongs to them.
	DefaultUID = 70000
	// DefaultUIDs is how many ids from UID the provider hands out: each live
	// sandbox has its own, so that per-user kernel state (RLIMIT_NPROC,
	// inotify and keyring quotas) is never shared between sessions.
	DefaultUIDs = 10000
	// DefaultWorkspaceBytes caps a workspace, as the docker backend does.
	DefaultWorkspaceBytes = 2 << 30
)

// Options configure a Provider. The zero value is usable.
type Options struct {
	// Root is the directory under which workspaces are created; "" means
	// the system temporary directory.
	Root string
	// Isolation defaults to IsolationAuto.
	Isolation Isolation
	// UID and UIDs are the range of host ids scripts run as when the server
	// runs as root; 0 means DefaultUID and DefaultUIDs.
	UID, UIDs int
	// WorkspaceBytes caps each workspace (a tmpfs, when the server runs as
	// root); 0 means DefaultWorkspaceBytes.
	WorkspaceBytes int64
	// Logger receives the one-time warnings about missing protections.
	Logger zerolog.Logger
}

// Provider creates local sandboxes.
type Provider struct {
	root  string
	opts  Options
	bwrap string // path of a working bwrap, "" when processes run unconfined
	// privileged: the server is root, so scripts drop to an id of their own
	// and workspaces are size-capped tmpfs mounts.
	privileged bool
	cgroups    *cgroupRoot // nil: limits fall back to rlimits
	exeCopies  []string    // paths of this binary, hidden in jails that bind them
	log        zerolog.Logger

	mu          sync.Mutex
	slots       map[int]bool // uid offsets in use
	tmpfsWarn   sync.Once
	overlayWarn sync.Once
}

// New checks the isolation the options ask for and returns a Provider.
func New(ctx context.Context, opts Options) (*Provider, error) {
	if opts.UID <= 0 {
		opts.UID = DefaultUID
	}
	if opts.UIDs <= 0 {
		opts.UIDs = DefaultUIDs
	}
	if opts.WorkspaceBytes <= 0 {
		opts.WorkspaceBytes = DefaultWorkspaceBytes
	}
	p := &Provider{root: opts.Root, opts: opts, log: opts.Logger, slots: map[int]bool{}}
	if p.root == "" {
		p.root = os.TempDir()
	}
	if err := os.MkdirAll(p.root, 0o755); err != nil {
		return nil, fmt.Errorf("create sandbox root %s: %w", p.root, err)
	}
	mode := opts.Isolation
	if mode == "" {
		mode = IsolationAuto
	}
	switch mode {
	case IsolationNone:
		opts.Logger.Warn().Msg("local sandbox isolation disabled: agent scripts run with the server's privileges and can reach the network and the host filesystem")
		return p, nil
	case IsolationAuto, IsolationBwrap:
	default:
		return nil, fmt.Errorf("unknown isolation %q (want auto, bwrap or none)", mode)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	copies, unfound, err := binaryCopies(exe)
	if err != nil {
		return nil, err
	}
	p.exeCopies = copies
	if unfound {
		opts.Logger.Warn().Str("binary", exe).Msg("this binary has hard links that were not found: if one lies under /usr, scripts can read it, and with it the built-in tasks' hidden answers")
	}
	p.privileged = os.Geteuid() == 0
	path, err := probeBwrap(ctx)
	if err != nil {
		if mode == IsolationBwrap {
			return nil, fmt.Errorf("bubblewrap isolation requested: %w", err)
		}
		opts.Logger.Warn().Err(err).Msg("bubblewrap is not usable, so agent scripts run without a network or filesystem jail (install the bubblewrap package to confine them)")
		return p, nil
	}
	p.bwrap = path
	var missing []string
	if p.cgroups, err = detectCgroups(); err != nil {
		missing = append(missing, "no cgroup ("+err.Error()+"): the process limit is RLIMIT_NPROC and the memory limit is RLIMIT_AS, per process, and out-of-memory kills are guessed")
	}
	if !p.privileged {
		missing = append(missing,
			"not root: scripts run as the server's own uid (in a user namespace), not as a dedicated one",
			"not root: no workspace disk quota, only RLIMIT_FSIZE per file")
	}
	if len(missing) > 0 {
		opts.Logger.Warn().Strs("missing", missing).Msg("the local sandbox lacks some protections on this host")
	}
	return p, nil
}

// Name implements sandbox.Provider.
func (p *Provider) Name() string { return "local" }

// Isolated reports whether processes run under bubblewrap.
func (p *Provider) Isolated() bool { return p.bwrap != "" }

// allocSlot reserves an id offset for a new sandbox.
func (p *Provider) allocSlot() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.opts.UIDs {
		if !p.slots[i] {
			p.slots[i] = true
			return i, nil
		}
	}
	return 0, fmt.Errorf("all %d sandbox user ids are in use", p.opts.UIDs)
}

func (p *Provider) freeSlot(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.slots, i)
}

// Create implements sandbox.Provider.
func (p *Provider) Create(ctx context.Context, spec sandbox.Spec) (_ sandbox.Sandbox, err error) {
	if spec.Files != "" && spec.Base != nil {
		return nil, errors.New("create sandbox: a workspace starts from Files or from a Base, not both")
	}
	dir, err := os.MkdirTemp(p.root, "mlab-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("create sandbox dir: %w", err)
	}
	s := &Sandbox{
		p:       p,
		dir:     dir,
		ws:      filepath.Join(dir, "workspace"),
		tmp:     filepath.Join(dir, "tmp"),
		limits:  spec.Limits.WithDefaults(),
		gpus:    strings.Join(spec.GPUs, ","),
		uid:     os.Getuid(),
		gid:     os.Getgid(),
		slot:    -1,
		running: map[*proc]struct{}{},
		jails:   map[string]*jail{},
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, d := range []string{s.ws, s.tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("create sandbox dir: %w", err)
		}
	}
	if p.bwrap != "" && p.privileged {
		if s.slot, err = p.allocSlot(); err != nil {
			return nil, err
		}
		s.uid, s.gid = p.opts.UID+s.slot, p.opts.UID+s.slot
		if err := s.prepareWorkspace(); err != nil {
			return nil, err
		}
	}
	switch {
	case spec.Base != nil:
		if err := s.fillFromBase(ctx, spec.Base); err != nil {
			return nil, err
		}
	case spec.Files != "":
		if err := sandbox.CopyDir(ctx, spec.Files, s.ws); err != nil {
			return nil, fmt.Errorf("copy %s into workspace: %w", spec.Files, err)
		}
		if s.uid != os.Getuid() {
			if err := sandbox.ChownTree(s.ws, s.uid, s.gid); err != nil {
				return nil, err
			}
		}
	}
	s.readOnly = sandbox.ProtectedFiles(s.ws, spec)
	if p.bwrap == "" {
		return s, nil
	}
	if p.cgroups != nil {
		if s.cg, err = p.cgroups.create(filepath.Base(dir), s.limits); err != nil {
			return nil, err
		}
	}
	// The first jail starts now, so a sandbox that cannot run anything
	// fails at creation rather than at its first exec.
	if _, err := s.jailFor(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// prepareWorkspace makes the workspace a size-capped tmpfs that only the
// sandbox's user can enter, or, where mounting is refused, a private folder.
func (s *Sandbox) prepareWorkspace() error {
	opts := fmt.Sprintf("size=%d,mode=0700,uid=%d,gid=%d", s.p.opts.WorkspaceBytes, s.uid, s.gid)
	err := unix.Mount("tmpfs", s.ws, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts)
	if err == nil {
		s.tmpfs = true
		return nil
	}
	s.p.tmpfsWarn.Do(func() {
		s.p.log.Warn().Err(err).Msg("cannot mount a tmpfs for local workspaces: there is no workspace disk quota, only RLIMIT_FSIZE per file")
	})
	if err := os.Chown(s.ws, s.uid, s.gid); err != nil {
		return fmt.Errorf("chown workspace: %w", err)
	}
	return nil
}

// fillFromBase makes the workspace start from base: an overlay on the
// workspace's tmpfs, which costs no copy of the files' bytes and keeps the
// changes under the tmpfs's cap, or else a copy.
func (s *Sandbox) fillFromBase(ctx context.Context, base *sandbox.Base) error {
	why := "the workspace is not a tmpfs of the server's (not root, or no bubblewrap)"
	if s.tmpfs {
		err := sandbox.MountBase(ctx, s.ws, base, s.uid, s.gid)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("workspace from base: %w", err)
		}
		why = err.Error()
	}
	s.p.overlayWarn.Do(func() {
		s.p.log.Warn().Str("reason", why).Msg("cannot mount forked workspaces copy-on-write: their files are copied")
	})
	uid := -1
	if s.uid != os.Getuid() {
		uid = s.uid
	}
	if err := sandbox.CopyBase(ctx, base, s.ws, uid, s.gid); err != nil {
		return fmt.Errorf("copy base into workspace: %w", err)
	}
	return nil
}

// Sandbox is a local workspace plus the processes running in it.
type Sandbox struct {
	p            *Provider
	dir, ws, tmp string
	limits       sandbox.Limits
	gpus         string   // CUDA_VISIBLE_DEVICES
	readOnly     []string // files mounted read-only in the jail
	uid, gid     int      // owner of the workspace; scripts' ids when privileged
	slot         int      // uid offset, -1 when none
	tmpfs        bool     // the workspace is a tmpfs mount
	cg           *cgroup  // nil: no cgroup

	mu      sync.Mutex
	closed  bool
	running map[*proc]struct{} // unconfined execs
	jails   map[string]*jail   // by the extra folders bound into them
}

// Workspace implements sandbox.Sandbox.
func (s *Sandbox) Workspace() string { return s.ws }

// Owner implements sandbox.Owned: the workspace belongs to the sandbox's
// user, so that scripts can change what the tools write.
func (s *Sandbox) Owner() (uid, gid int) { return s.uid, s.gid }

// Close implements sandbox.Sandbox: it kills every process of the sandbox,
// removes its cgroup and unmounts and removes its workspace.
func (s *Sandbox) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for p := range s.running {
		p.kill()
	}
	jails := s.jails
	s.jails = nil
	s.mu.Unlock()
	for _, j := range jails {
		j.close()
	}
	var errs []error
	if s.cg != nil {
		// Init's death killed its pid namespace; this is for whatever the
		// kernel has not reaped yet.
		if err := s.cg.kill(killTimeout); err != nil {
			errs = append(errs, err)
		}
		if err := s.cg.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.tmpfs {
		// The tmpfs, and the overlay of a forked workspace above it.
		if err := sandbox.Unmount(s.ws); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove sandbox %s: %w", s.dir, err))
	}
	if s.slot >= 0 {
		s.p.freeSlot(s.slot)
	}
	return errors.Join(errs...)
}

// start runs p under the lock Close takes, so a process is either refused
// or killed by Close, never missed.
func (s *Sandbox) start(p *proc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sandbox.ErrClosed
	}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	s.running[p] = struct{}{}
	return nil
}

func (s *Sandbox) untrack(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, p)
}
