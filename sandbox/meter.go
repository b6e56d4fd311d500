package sandbox

import (
	"context"
	"sync/atomic"
)

// Meter counts the execs of the sandboxes of the providers it wraps, so that
// a measurement that must not compete with other work (a timed baseline) can
// tell whether anything ran while it did.
type Meter struct {
	running atomic.Int64
	started atomic.Int64
}

// Activity returns how many execs are running now and how many have
// started since the Meter was made. A measurement that sees the same
// started count before and after, and nothing running at its start, ran
// alone.
func (m *Meter) Activity() (running, started int64) {
	return m.running.Load(), m.started.Load()
}

// Wrap returns a provider whose sandboxes count their execs in m.
func (m *Meter) Wrap(p Provider) Provider { return meteredProvider{p, m} }

type meteredProvider struct {
	Provider
	m *Meter
}

func (p meteredProvider) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	sb, err := p.Provider.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	return meteredSandbox{sb, p.m}, nil
}

type meteredSandbox struct {
	Sandbox
	m *Meter
}

func (s meteredSandbox) Exec(ctx context.Context, req ExecRequest) (ExecResult, error) {
	s.m.started.Add(1)
	s.m.running.Add(1)
	defer s.m.running.Add(-1)
	return s.Sandbox.Exec(ctx, req)
}

// Unwrap returns the backend's own sandbox, whose optional interfaces
// (Owned: see OwnerOf) are found through it.
func (s meteredSandbox) Unwrap() Sandbox { return s.Sandbox }
