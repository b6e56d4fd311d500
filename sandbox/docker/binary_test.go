package docker

import (
	"testing"
	"time"

	"github.com/mlab/mlab/internal/leakprobe"
	"github.com/mlab/mlab/sandbox"
)

// TestHostileReadServerBinary: nothing of the server's binary (mlab embeds
// the built-in tasks' hidden answers) is reachable in a container: not
// through its init or keeper, a bind mount, or the image's bin folders.
// This test binary stands in for mlab.
func TestHostileReadServerBinary(t *testing.T) {
	p, _ := newProvider(t, Options{})
	sb := create(t, p, sandbox.Limits{})
	args := leakprobe.Setup(t, sb.Workspace(), "python3")
	res, err := sb.Exec(t.Context(), sandbox.ExecRequest{Args: args, Timeout: 2 * time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe failed: %v, %+v", err, res)
	}
	if leaks := leakprobe.Leaks(t, res.Stdout); len(leaks) > 0 {
		t.Errorf("a script read the server's binary at %v", leaks)
	}
}
