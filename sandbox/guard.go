package sandbox

import (
	"context"
	"errors"
	"sync"
)

// ErrShutdown is returned by a Guard's Create once shutdown has begun.
var ErrShutdown = errors.New("the server is shutting down: no new sandboxes")

// Guard wraps a Provider so that shutdown is final: after Close, Create
// fails without reaching the provider, creations in flight are cancelled
// and what they make is removed at once, and every sandbox the Guard handed
// out and nobody closed (an eval or baseline run cut short) is closed.
type Guard struct {
	Provider
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	open     map[*guarded]struct{}
	creating sync.WaitGroup
}

// NewGuard wraps p.
func NewGuard(p Provider) *Guard {
	ctx, cancel := context.WithCancel(context.Background())
	return &Guard{Provider: p, ctx: ctx, cancel: cancel, open: map[*guarded]struct{}{}}
}

// Create implements Provider.
func (g *Guard) Create(ctx context.Context, spec Spec) (Sandbox, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrShutdown
	}
	g.creating.Add(1)
	g.mu.Unlock()
	defer g.creating.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.ctx, cancel)()
	sb, err := g.Provider.Create(ctx, spec)
	if err != nil {
		if g.ctx.Err() != nil {
			return nil, errors.Join(ErrShutdown, err)
		}
		return nil, err
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, errors.Join(ErrShutdown, sb.Close())
	}
	w := &guarded{Sandbox: sb, g: g}
	g.open[w] = struct{}{}
	g.mu.Unlock()
	return w, nil
}

// Close refuses new sandboxes, cancels creations in flight and waits for
// them, and closes every sandbox still open. It is idempotent.
func (g *Guard) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.creating.Wait()
	g.mu.Lock()
	open := make([]*guarded, 0, len(g.open))
	for w := range g.open {
		open = append(open, w)
	}
	g.mu.Unlock()
	var errs []error
	for _, w := range open {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}

// Open is the number of sandboxes handed out and not closed.
func (g *Guard) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.open)
}

// guarded is a sandbox that tells its Guard when it is closed.
type guarded struct {
	Sandbox
	g *Guard
}

func (w *guarded) Close() error {
	err := w.Sandbox.Close()
	w.g.mu.Lock()
	delete(w.g.open, w)
	w.g.mu.Unlock()
	return err
}

// Unwrap is the backend's sandbox, whose optional interfaces (Owned: see
// OwnerOf) are found through it.
func (w *guarded) Unwrap() Sandbox { return w.Sandbox }
