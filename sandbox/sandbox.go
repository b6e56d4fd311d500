// Package sandbox owns the place where agent code runs: the Provider and Sandbox
// contracts every backend implements, the resource limits they enforce, and the
// capped capture of script output. Backends live in subpackages (sandbox/local).
package sandbox

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Provider creates sandboxes. One sandbox serves one episode.
type Provider interface {
	// Name identifies the backend in logs and result.json ("local", "docker").
	Name() string
	// Create makes a fresh sandbox whose workspace holds a copy of
	// Spec.Files, or Spec.Base.
	Create(ctx context.Context, spec Spec) (Sandbox, error)
}

// Sandbox is an isolated workspace plus a way to run processes in it.
type Sandbox interface {
	// Workspace is the host path of the workspace root. Tools read and write
	// it directly (through os.Root); scripts see it as their working directory.
	Workspace() string
	// Exec runs a command inside the sandbox and waits for it. A non-zero
	// exit, a timeout or an OOM kill is reported in ExecResult, not as an
	// error; errors mean the sandbox itself failed.
	Exec(ctx context.Context, req ExecRequest) (ExecResult, error)
	// Close kills every process of the sandbox and removes its workspace.
	// It is idempotent.
	Close() error
}

// Spec describes a sandbox to create.
type Spec struct {
	// Session and Run name the episode, for labels and logs.
	Session, Run string
	// Files is copied into the workspace: a host directory.
	Files string
	// Base, instead of Files, is a tree the workspace starts from without
	// copying it where the backend can (see Base): a forked or resumed
	// episode's snapshot.
	Base *Base
	// Limits bound every process started in the sandbox.
	Limits Limits
	// GPUs are the device indexes leased to this sandbox; none means its
	// processes see no GPU.
	GPUs []string
	// Image overrides the provider's runtime image, for backends that have
	// one.
	Image string
	// ReadOnly lists workspace files (relative, slash-separated) that
	// scripts may read but neither change nor delete: the task's data.
	ReadOnly []string
}

// MaxReadOnlyMounts bounds how many files a sandbox protects one by one;
// past it, only the tools enforce read-only patterns.
const MaxReadOnlyMounts = 1000

// ProtectedFiles returns the files of spec.ReadOnly that exist in the
// workspace ws as regular files (not links), at most MaxReadOnlyMounts, so
// that a backend can mount each read-only over the workspace.
func ProtectedFiles(ws string, spec Spec) []string {
	var out []string
	for _, rel := range spec.ReadOnly {
		if len(out) == MaxReadOnlyMounts {
			break
		}
		p := filepath.FromSlash(rel)
		if !filepath.IsLocal(p) {
			continue
		}
		if info, err := os.Lstat(filepath.Join(ws, p)); err == nil && info.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// Limits bound the resources of processes in a sandbox. Zero fields take the
// defaults below.
type Limits struct {
	// MemoryBytes caps the memory of a sandbox's processes together (a
	// cgroup: docker, and local where it may make one) or, failing that, the
	// address space of each local process.
	MemoryBytes int64
	// CPUSeconds caps the CPU time of a script.
	CPUSeconds int64
	// Processes caps the number of processes and threads of a sandbox (per
	// uid where the local backend has no cgroup).
	Processes int64
	// FileBytes caps the size of any single file a script writes.
	FileBytes int64
	// OutputBytes caps the stdout and stderr kept in ExecResult, each. Half
	// is kept from the head and half from the tail.
	OutputBytes int
}

// The defaults are generous enough for small training runs on one machine and
// small enough that a runaway script cannot take the host down.
const (
	DefaultMemoryBytes = 8 << 30
	DefaultCPUSeconds  = 4 * 3600
	DefaultProcesses   = 512
	DefaultFileBytes   = 4 << 30
	DefaultOutputBytes = 32 << 10
)

// WithDefaults returns l with zero fields filled from the defaults.
func (l Limits) WithDefaults() Limits {
	fill := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	fill(&l.MemoryBytes, DefaultMemoryBytes)
	fill(&l.CPUSeconds, DefaultCPUSeconds)
	fill(&l.Processes, DefaultProcesses)
	fill(&l.FileBytes, DefaultFileBytes)
	if l.OutputBytes <= 0 {
		l.OutputBytes = DefaultOutputBytes
	}
	return l
}

// ExecRequest is one process to run in a sandbox.
type ExecRequest struct {
	// Args is the command line; Args[0] is looked up inside the sandbox.
	Args []string
	// Dir is the working directory relative to the workspace root ("" = root).
	Dir string
	// Env holds extra KEY=VALUE pairs on top of a minimal environment.
	Env []string
	// Timeout kills the whole process tree when it elapses; 0 means none
	// beyond ctx.
	Timeout time.Duration
	// Stdin feeds the process; nil means an empty input.
	Stdin io.Reader
	// Stdout and Stderr, when set, receive the full output as it is produced.
	Stdout, Stderr io.Writer
}

// ExecResult is what a finished process left behind.
type ExecResult struct {
	ExitCode int           `json:"exit_code"`
	Stdout   string        `json:"stdout"`
	Stderr   string        `json:"stderr"`
	Duration time.Duration `json:"-"`
	// StdoutBytes and StderrBytes count all output, including what was cut.
	StdoutBytes int64 `json:"stdout_bytes"`
	StderrBytes int64 `json:"stderr_bytes"`
	// Truncated is set when either stream was longer than Limits.OutputBytes.
	Truncated bool `json:"truncated"`
	TimedOut  bool `json:"timed_out"`
	// OOM is set when the process ran out of its memory limit.
	OOM bool `json:"oom"`
	// Signal names the signal that killed the process, if any.
	Signal string `json:"signal,omitempty"`
}

// Owned is implemented by sandboxes whose processes run as a user other than
// the server's: files the server puts in the workspace must belong to that
// user, or scripts could not change them.
type Owned interface {
	Owner() (uid, gid int)
}

// Import copies the host folder src into the workspace of sb at rel and, for
// an Owned sandbox, hands the copy to the sandbox's user.
func Import(ctx context.Context, sb Sandbox, src, rel string) error {
	dst := filepath.Join(sb.Workspace(), rel)
	if err := CopyDir(ctx, src, dst); err != nil {
		return err
	}
	if uid, gid, ok := OwnerOf(sb); ok {
		return ChownTree(dst, uid, gid)
	}
	return nil
}

// OwnerOf is the user that sb's processes run as, when that is not the
// server's: sb's own Owned interface or, for a wrapper (a Meter's, a
// Guard's), that of the sandbox it wraps, found through Unwrap. Wrappers thus
// need not re-expose every optional interface of what they wrap.
func OwnerOf(sb Sandbox) (uid, gid int, ok bool) {
	for sb != nil {
		if o, isOwned := sb.(Owned); isOwned {
			uid, gid = o.Owner()
			return uid, gid, true
		}
		w, isWrapper := sb.(interface{ Unwrap() Sandbox })
		if !isWrapper {
			break
		}
		sb = w.Unwrap()
	}
	return 0, 0, false
}

// ErrClosed is returned by Exec on a sandbox that has been closed.
var ErrClosed = errors.New("sandbox is closed")

// ErrGone is returned (wrapped) by Exec when the sandbox died under its
// user: its container or jail is no longer running, so no later call can
// succeed either. Backends return it only after checking that the sandbox
// itself is down, never for a failure of one process.
var ErrGone = errors.New("the sandbox is gone")
