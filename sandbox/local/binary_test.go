package local

import (
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlab/mlab/internal/leakprobe"
	"github.com/mlab/mlab/sandbox"
)

// probeBinary runs the leak probe in sb and returns where it read this test
// binary, which is the jails' init here as mlab is in production.
func probeBinary(t *testing.T, sb *Sandbox, extra ...string) []string {
	t.Helper()
	args := leakprobe.Setup(t, sb.Workspace(), python, extra...)
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: args, Timeout: 2 * time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe failed: %v, %+v", err, res)
	}
	return leakprobe.Leaks(t, res.Stdout)
}

// TestHostileReadInitBinary: the binary that runs the jail's init (and, in
// mlab, embeds the built-in tasks' hidden answers) is not readable from the
// jail, by any path.
func TestHostileReadInitBinary(t *testing.T) {
	sb := hostileSandbox(t, sandbox.Limits{})
	if leaks := probeBinary(t, sb); len(leaks) > 0 {
		t.Errorf("a script read the init binary at %v", leaks)
	}
}

// installedEnv makes TestHostileInstalledBinary, run from a copy of this
// binary under /usr, probe its own copy.
const installedEnv = "MLAB_TEST_INSTALLED_BINARY"

// TestHostileInstalledBinary: mlab installed under /usr (which every jail
// binds) is hidden from scripts. It runs this test binary again from a copy
// under /usr/local/lib, where the copy is the jails' init.
func TestHostileInstalledBinary(t *testing.T) {
	if os.Getenv(installedEnv) == "1" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		sb := hostileSandbox(t, sandbox.Limits{})
		if leaks := probeBinary(t, sb, exe); len(leaks) > 0 {
			t.Errorf("a script read the installed binary %s at %v", exe, leaks)
		}
		return
	}
	if _, err := probeBwrap(t.Context()); err != nil {
		t.Skipf("bubblewrap not usable on this host: %v", err)
	}
	dir, err := os.MkdirTemp("/usr/local/lib", "mlab-test-")
	if err != nil {
		t.Skipf("cannot install a copy under /usr here: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	installed := path.Join(dir, "mlab")
	if err := os.WriteFile(installed, data, 0o755); err != nil {
		t.Fatalf("install a copy: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), installed, "-test.run=^TestHostileInstalledBinary$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), installedEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHostileInstalledBinary") {
		t.Errorf("run from %s: %v\n%s", installed, err, out)
	}
}

func TestMaskArgs(t *testing.T) {
	bound := []string{"/usr", "/lib", "/opt/conda/"}
	tests := []struct {
		copies []string
		want   []string
	}{
		{nil, nil},
		{[]string{"/usr/local/bin/mlab"}, []string{"--ro-bind", os.DevNull, "/usr/local/bin/mlab"}},
		{[]string{"/opt/conda/bin/mlab"}, []string{"--ro-bind", os.DevNull, "/opt/conda/bin/mlab"}},
		// Not in the jail: nothing to cover, and nothing made for it.
		{[]string{"/home/me/go/bin/mlab", "/usrx/mlab", "/tmp/go-build1/local.test"}, nil},
		{[]string{"/root/mlab", "/usr/bin/mlab"}, []string{"--ro-bind", os.DevNull, "/usr/bin/mlab"}},
	}
	for _, tc := range tests {
		if got := maskArgs(tc.copies, bound); !slices.Equal(got, tc.want) {
			t.Errorf("maskArgs(%v) = %v, want %v", tc.copies, got, tc.want)
		}
	}
}
