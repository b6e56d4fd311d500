// Package local is the embedded sandbox backend: a workspace directory on the
// host and one process group per exec, bounded by rlimits and, where
// bubblewrap is installed, confined to a namespace with no network, a
// read-only system and only the workspace writable.
package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rs/zerolog"

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

// Options configure a Provider. The zero value is usable.
type Options struct {
	// Root is the directory under which workspaces are created; "" means
	// the system temporary directory.
	Root string
	// Isolation defaults to IsolationAuto.
	Isolation Isolation
	// Logger receives the one-time warning when bubblewrap is missing.
	Logger zerolog.Logger
}

// Provider creates local sandboxes.
type Provider struct {
	root  string
	bwrap string // path of a working bwrap, "" when processes run unconfined
}

// New checks the isolation the options ask for and returns a Provider.
func New(ctx context.Context, opts Options) (*Provider, error) {
	p := &Provider{root: opts.Root}
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
	case IsolationAuto, IsolationBwrap:
		path, err := probeBwrap(ctx)
		if err == nil {
			p.bwrap = path
			break
		}
		if mode == IsolationBwrap {
			return nil, fmt.Errorf("bubblewrap isolation requested: %w", err)
		}
		opts.Logger.Warn().Err(err).Msg("bubblewrap is not usable, so agent scripts run without a network or filesystem jail (install the bubblewrap package to confine them)")
	default:
		return nil, fmt.Errorf("unknown isolation %q (want auto, bwrap or none)", mode)
	}
	return p, nil
}

// Name implements sandbox.Provider.
func (p *Provider) Name() string { return "local" }

// Isolated reports whether processes run under bubblewrap.
func (p *Provider) Isolated() bool { return p.bwrap != "" }

// Create implements sandbox.Provider.
func (p *Provider) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	dir, err := os.MkdirTemp(p.root, "mlab-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("create sandbox dir: %w", err)
	}
	s := &Sandbox{
		dir:     dir,
		ws:      filepath.Join(dir, "workspace"),
		tmp:     filepath.Join(dir, "tmp"),
		limits:  spec.Limits.WithDefaults(),
		bwrap:   p.bwrap,
		gpus:    strings.Join(spec.GPUs, ","),
		running: map[*proc]struct{}{},
	}
	for _, d := range []string{s.ws, s.tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("create sandbox dir: %w", err)
		}
	}
	if spec.Files != "" {
		if err := sandbox.CopyDir(ctx, spec.Files, s.ws); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("copy %s into workspace: %w", spec.Files, err)
		}
	}
	s.readOnly = sandbox.ProtectedFiles(s.ws, spec)
	return s, nil
}

// Sandbox is a local workspace plus the processes running in it.
type Sandbox struct {
	dir, ws, tmp string
	limits       sandbox.Limits
	bwrap        string
	gpus         string   // CUDA_VISIBLE_DEVICES
	readOnly     []string // files mounted read-only under bubblewrap

	mu      sync.Mutex
	closed  bool
	running map[*proc]struct{}
}

// Workspace implements sandbox.Sandbox.
func (s *Sandbox) Workspace() string { return s.ws }

// Close implements sandbox.Sandbox: it kills every running process tree and
// removes the sandbox directory.
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
	s.mu.Unlock()
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", s.dir, err)
	}
	return nil
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
