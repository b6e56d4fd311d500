package hostres

import (
	"testing"
)

func TestPlanFor(t *testing.T) {
	tests := []struct {
		name string
		host Host
		want Plan
	}{
		{"24 GiB, 2 CPUs: the machine of the issue",
			Host{MemoryBytes: 24 * GiB, CPUs: 2, FreeDiskBytes: 50 * GiB},
			Plan{Sessions: 2, MemoryBytes: 21 * GiB / 4, WorkspaceBytes: 2 * GiB, BudgetBytes: 21 * GiB}},
		{"large host: the old defaults",
			Host{MemoryBytes: 1024 * GiB, CPUs: 128, FreeDiskBytes: 10 * 1024 * GiB},
			Plan{Sessions: 64, MemoryBytes: 8 * GiB, WorkspaceBytes: 2 * GiB, BudgetBytes: 896 * GiB}},
		{"256 GiB, 16 CPUs: memory bounds sessions",
			Host{MemoryBytes: 256 * GiB, CPUs: 16, FreeDiskBytes: 1024 * GiB},
			Plan{Sessions: 22, MemoryBytes: 8 * GiB, WorkspaceBytes: 2 * GiB, BudgetBytes: 224 * GiB}},
		{"64 GiB, 2 CPUs: CPUs bound sessions",
			Host{MemoryBytes: 64 * GiB, CPUs: 2, FreeDiskBytes: 1024 * GiB},
			Plan{Sessions: 5, MemoryBytes: 8 * GiB, WorkspaceBytes: 2 * GiB, BudgetBytes: 56 * GiB}},
		{"small disk: small workspaces",
			Host{MemoryBytes: 16 * GiB, CPUs: 8, FreeDiskBytes: 8 * GiB},
			Plan{Sessions: 3, MemoryBytes: 14 * GiB / 4, WorkspaceBytes: 512 * MiB, BudgetBytes: 14 * GiB}},
		{"tiny host: one session at the floors",
			Host{MemoryBytes: 1 * GiB, CPUs: 1, FreeDiskBytes: 100 * MiB},
			Plan{Sessions: 1, MemoryBytes: 512 * MiB, WorkspaceBytes: 256 * MiB, BudgetBytes: 512 * MiB}},
		{"nothing known: floors",
			Host{},
			Plan{Sessions: 1, MemoryBytes: 512 * MiB, WorkspaceBytes: 256 * MiB, BudgetBytes: 512 * MiB}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanFor(tc.host)
			if got != tc.want {
				t.Errorf("PlanFor(%+v) = %+v, want %+v", tc.host, got, tc.want)
			}
			// Whatever the host, what the sessions reserve fits in memory.
			if tc.host.MemoryBytes > 2*GiB && int64(got.Sessions)*(got.MemoryBytes+got.WorkspaceBytes) > tc.host.MemoryBytes {
				t.Errorf("%d sessions × %s exceed %s", got.Sessions, Bytes(got.MemoryBytes+got.WorkspaceBytes), Bytes(tc.host.MemoryBytes))
			}
		})
	}
}

func TestProbe(t *testing.T) {
	h := Probe(t.TempDir())
	if h.MemoryBytes <= 0 || h.CPUs <= 0 || h.FreeDiskBytes <= 0 {
		t.Errorf("Probe = %+v", h)
	}
}
