package sandbox

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// fakeProvider makes fakeSandboxes; with gate set, Create waits for it or
// for its context.
type fakeProvider struct {
	gate    chan struct{}
	entered chan struct{}
	created atomic.Int64
}

func (p *fakeProvider) Name() string { return "fake" }

func (p *fakeProvider) Create(ctx context.Context, _ Spec) (Sandbox, error) {
	p.created.Add(1)
	if p.gate != nil {
		p.entered <- struct{}{}
		select {
		case <-p.gate:
		case <-ctx.Done():
			// A backend that ignores cancellation part way still hands
			// back what it made.
		}
	}
	return &fakeSandbox{}, nil
}

type fakeSandbox struct{ closed atomic.Bool }

func (s *fakeSandbox) Workspace() string { return "" }
func (s *fakeSandbox) Exec(context.Context, ExecRequest) (ExecResult, error) {
	return ExecResult{}, nil
}
func (s *fakeSandbox) Close() error { s.closed.Store(true); return nil }

func TestHostileCreateAfterShutdown(t *testing.T) {
	p := &fakeProvider{}
	g := NewGuard(p)
	left, err := g.Create(context.Background(), Spec{Run: "eval-t"})
	if err != nil {
		t.Fatal(err)
	}
	closedByAgent, err := g.Create(context.Background(), Spec{})
	if err != nil {
		t.Fatal(err)
	}
	closedByAgent.Close()
	if n := g.Open(); n != 1 {
		t.Errorf("%d open, want 1", n)
	}

	// A creation in flight when shutdown begins.
	p.gate, p.entered = make(chan struct{}), make(chan struct{})
	type made struct {
		sb  Sandbox
		err error
	}
	inflight := make(chan made, 1)
	go func() {
		sb, err := g.Create(context.Background(), Spec{Run: "baseline-t"})
		inflight <- made{sb, err}
	}()
	<-p.entered
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	m := <-inflight
	if !errors.Is(m.err, ErrShutdown) || m.sb != nil {
		t.Errorf("creation in flight at shutdown: %v, %v", m.sb, m.err)
	}
	if !left.(*guarded).Sandbox.(*fakeSandbox).closed.Load() {
		t.Error("a sandbox left open was not closed by shutdown")
	}
	before := p.created.Load()
	if sb, err := g.Create(context.Background(), Spec{}); !errors.Is(err, ErrShutdown) || sb != nil {
		t.Errorf("Create after shutdown: %v, %v", sb, err)
	}
	if p.created.Load() != before {
		t.Error("Create after shutdown reached the backend")
	}
}
