// Package hostres derives mlab's default capacity from the machine it runs
// on, so that the defaults fit the host: a session limit, a memory limit per
// sandbox and a workspace size that together stay within the host's memory,
// CPUs and free disk.
package hostres

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Units.
const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

// Host is what the machine offers.
type Host struct {
	// MemoryBytes is physical memory, or the server's cgroup memory limit
	// when that is lower.
	MemoryBytes int64
	// CPUs usable by the process.
	CPUs int
	// FreeDiskBytes is the space available where workspaces go.
	FreeDiskBytes int64
}

// Probe reads the machine: /proc/meminfo and the cgroup memory limit (v1 or
// v2), the CPUs the process may use, and the free space of the filesystem
// holding dir. What cannot be read is left zero, and Plan then takes the
// floor values.
func Probe(dir string) Host {
	h := Host{MemoryBytes: memTotal(), CPUs: runtime.NumCPU()}
	if lim := cgroupMemoryLimit(); lim > 0 && (h.MemoryBytes == 0 || lim < h.MemoryBytes) {
		h.MemoryBytes = lim
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		h.FreeDiskBytes = int64(st.Bavail) * int64(st.Bsize)
	}
	return h
}

// Plan is the capacity derived from a Host.
type Plan struct {
	// Sessions is the default limit of concurrent sessions.
	Sessions int
	// MemoryBytes is the default memory limit of one sandbox.
	MemoryBytes int64
	// WorkspaceBytes is the default size of one (docker) workspace.
	WorkspaceBytes int64
	// BudgetBytes is the memory set aside for sandboxes: what sessions
	// reserve, each its MemoryBytes (plus its workspace where workspaces
	// are in memory), must fit in it.
	BudgetBytes int64
}

// The bounds of the plan.
const (
	MaxSessions       = 64
	MaxMemoryBytes    = 8 * GiB
	MinMemoryBytes    = 512 * MiB
	MaxWorkspaceBytes = 2 * GiB
	MinWorkspaceBytes = 256 * MiB
	MinReserveBytes   = 1 * GiB
	// SessionsPerCPU bounds sessions by CPUs: agents mostly think between
	// calls, so a CPU is shared by a few sessions.
	SessionsPerCPU = 4
)

// PlanFor derives the defaults from h:
//
//	reserve   = max(1 GiB, memory/8)             for the OS and the server
//	budget    = memory - reserve                 for sandboxes
//	memory/sb = clamp(budget/4, 512 MiB, 8 GiB)  so that at least 4 fit
//	workspace = clamp(free disk/16, 256 MiB, 2 GiB)
//	sessions  = clamp(min(budget/(memory/sb + workspace), 4*CPUs), 1, 64)
//
// The workspace counts in a session's memory because docker workspaces
// are tmpfs mounts, backed by memory. A 24 GiB, 2-CPU host with 50 GiB free
// gets 5.25 GiB per sandbox, 2 GiB workspaces and 2 sessions (64 × 8 GiB
// would have been 512 GiB).
func PlanFor(h Host) Plan {
	reserve := max(MinReserveBytes, h.MemoryBytes/8)
	budget := max(h.MemoryBytes-reserve, MinMemoryBytes)
	mem := clamp(budget/4, MinMemoryBytes, MaxMemoryBytes)
	ws := clamp(h.FreeDiskBytes/16, MinWorkspaceBytes, MaxWorkspaceBytes)
	sessions := budget / (mem + ws)
	if h.CPUs > 0 {
		sessions = min(sessions, int64(SessionsPerCPU*h.CPUs))
	}
	return Plan{
		Sessions:       int(clamp(sessions, 1, MaxSessions)),
		MemoryBytes:    mem,
		WorkspaceBytes: ws,
		BudgetBytes:    budget,
	}
}

func clamp(v, lo, hi int64) int64 { return min(max(v, lo), hi) }

// Bytes formats n for people: "5.2 GiB", "512 MiB".
func Bytes(n int64) string {
	if n >= GiB {
		return strconv.FormatFloat(float64(n)/float64(GiB), 'f', 1, 64) + " GiB"
	}
	return fmt.Sprintf("%d MiB", n/MiB)
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cgroupMemoryLimit is the memory limit of the process's cgroup, 0 if none.
// "max" (v2) and the huge v1 value both mean none.
func cgroupMemoryLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<60 {
			return 0
		}
		return v
	}
	return 0
}
