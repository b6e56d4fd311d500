package sandbox

import (
	"context"
	"testing"
)

type meterProvider struct{ owned bool }

func (meterProvider) Name() string { return "fake" }
func (p meterProvider) Create(context.Context, Spec) (Sandbox, error) {
	if p.owned {
		return ownedSandbox{}, nil
	}
	return meterSandbox{}, nil
}

type meterSandbox struct{ exec func() }

func (meterSandbox) Workspace() string { return "/ws" }
func (s meterSandbox) Exec(context.Context, ExecRequest) (ExecResult, error) {
	if s.exec != nil {
		s.exec()
	}
	return ExecResult{}, nil
}
func (meterSandbox) Close() error { return nil }

type ownedSandbox struct{ meterSandbox }

func (ownedSandbox) Owner() (int, int) { return 7, 8 }

func TestMeter(t *testing.T) {
	var m Meter
	p := m.Wrap(meterProvider{})
	sb, err := p.Create(t.Context(), Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := OwnerOf(sb); ok {
		t.Error("a sandbox that is not Owned became Owned")
	}
	var during int64
	ms := sb.(meteredSandbox)
	ms.Sandbox = meterSandbox{exec: func() { during, _ = m.Activity() }}
	ms.Exec(t.Context(), ExecRequest{})
	ms.Exec(t.Context(), ExecRequest{})
	if running, started := m.Activity(); running != 0 || started != 2 || during != 1 {
		t.Errorf("activity = %d running, %d started, %d during an exec; want 0, 2, 1", running, started, during)
	}
	owned, _ := m.Wrap(meterProvider{owned: true}).Create(t.Context(), Spec{})
	// Through a Guard too: OwnerOf unwraps every layer.
	guard := NewGuard(m.Wrap(meterProvider{owned: true}))
	defer guard.Close()
	twice, err := guard.Create(t.Context(), Spec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range []Sandbox{owned, twice} {
		if uid, gid, ok := OwnerOf(sb); !ok || uid != 7 || gid != 8 {
			t.Errorf("owner of a wrapped Owned sandbox = %d:%d, %v; want 7:8", uid, gid, ok)
		}
	}
}
