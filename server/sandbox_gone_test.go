package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/episode"
	"github.com/mlab/mlab/internal/testenv"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/sandbox/docker"
)

// keepingProvider hands out its provider's sandboxes and keeps the last one,
// so that a test can kill it under the episode.
type keepingProvider struct {
	sandbox.Provider
	last atomic.Pointer[sandbox.Sandbox]
	// dying, when set, wraps each sandbox so that its Exec fails with
	// sandbox.ErrGone once dead is set, as a backend says a dead jail.
	dying bool
}

func (p *keepingProvider) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	sb, err := p.Provider.Create(ctx, spec)
	if err == nil && p.dying {
		sb = &dyingSandbox{Sandbox: sb}
	}
	if err == nil {
		p.last.Store(&sb)
	}
	return sb, err
}

type dyingSandbox struct {
	sandbox.Sandbox
	dead atomic.Bool
}

func (d *dyingSandbox) Exec(ctx context.Context, req sandbox.ExecRequest) (sandbox.ExecResult, error) {
	if d.dead.Load() {
		return sandbox.ExecResult{}, sandbox.ErrGone
	}
	return d.Sandbox.Exec(ctx, req)
}

func dockerProvider(t *testing.T) (*docker.Provider, func(t *testing.T, sb sandbox.Sandbox)) {
	cli := testenv.Docker(t)
	img := testenv.Image(t, cli, docker.ImageTag(docker.ImageSpec{Variant: "base"}))
	p, err := docker.New(t.Context(), docker.Options{Client: cli, Image: img, Root: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	kill := func(t *testing.T, sb sandbox.Sandbox) {
		if err := cli.ContainerKill(context.Background(), sb.(*docker.Sandbox).ID(), "KILL"); err != nil {
			t.Fatal(err)
		}
	}
	return p, kill
}

// TestHostileSandboxDies: when the sandbox dies under an episode, between
// calls or during a script, execute_script says that the sandbox is gone, no
// tool works any more, final_answer included, and the run is recorded as
// invalid, "sandbox broken", never as a success, although the workspace held
// a winning answer.
func TestHostileSandboxDies(t *testing.T) {
	tests := []struct {
		name   string
		docker bool
		during bool
	}{
		{"a backend reports its sandbox gone", false, false},
		{"docker kill between calls", true, false},
		{"docker kill during a script", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &keepingProvider{}
			var kill func(t *testing.T, sb sandbox.Sandbox)
			if tc.docker {
				p.Provider, kill = dockerProvider(t)
			} else {
				p.Provider, p.dying = localProvider(t), true
				kill = func(t *testing.T, sb sandbox.Sandbox) { sb.(*dyingSandbox).dead.Store(true) }
			}
			srv, cs := connect(t, Options{Provider: p})
			// train.py writes a score of 1.0 against a baseline of 0.5: scored,
			// this run would be a success.
			if text, isErr := callText(t, cs, "execute_script", map[string]any{"script_name": "train.py"}); isErr {
				t.Fatalf("first run: %s", text)
			}
			sb := *p.last.Load()
			var text string
			var isErr bool
			if tc.during {
				if text, isErr := callText(t, cs, "write_file", map[string]any{"file_name": "wait.py", "content": "import time\nopen('started', 'w').close()\ntime.sleep(600)\n"}); isErr {
					t.Fatalf("write_file: %s", text)
				}
				replied := make(chan struct{})
				go func() {
					defer close(replied)
					text, isErr = callText(t, cs, "execute_script", map[string]any{"script_name": "wait.py"})
				}()
				deadline := time.Now().Add(time.Minute)
				for {
					if _, err := os.Stat(filepath.Join(sb.Workspace(), "started")); err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("wait.py did not start")
					}
					time.Sleep(20 * time.Millisecond)
				}
				kill(t, sb)
				select {
				case <-replied:
				case <-time.After(2 * time.Minute):
					t.Fatal("execute_script did not return after its sandbox died")
				}
			} else {
				kill(t, sb)
				text, isErr = callText(t, cs, "execute_script", map[string]any{"script_name": "train.py"})
			}
			if !isErr || !strings.Contains(text, "the sandbox is gone") || !strings.Contains(text, episode.BrokenReason) {
				t.Errorf("execute_script after the sandbox died: %q (error %v)", text, isErr)
			}
			if strings.Contains(text, sb.Workspace()) || strings.Contains(text, "daemon") {
				t.Errorf("the reply shows the engine's error or a host path: %q", text)
			}
			if text, isErr := callText(t, cs, "final_answer", map[string]any{"final_answer": "done"}); !isErr || !strings.Contains(text, episode.BrokenReason) {
				t.Errorf("final_answer after the sandbox died: %q (error %v)", text, isErr)
			}
			dirs, _ := filepath.Glob(filepath.Join(srv.opts.RunsDir, "*"))
			if len(dirs) != 1 {
				t.Fatalf("run dirs: %v", dirs)
			}
			r, err := runlog.ReadResult(dirs[0])
			if err != nil || r.Status != runlog.StatusInvalid || r.Error != episode.BrokenReason || r.Success || r.Score != nil {
				t.Errorf("result %+v (%v), want invalid, %q, no score", r, err, episode.BrokenReason)
			}
		})
	}
}
