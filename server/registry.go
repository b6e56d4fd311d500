package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mlab/mlab/episode"
)

// registry is the table of episodes by handle, shared by every endpoint of
// a gateway, so that a handle works wherever its token does. An entry stays
// after its episode is released, as a tombstone, for tombstoneTTL: a client
// calling again is told why its episode ended and can still read the result.
type registry struct {
	mu      sync.Mutex
	entries map[string]*entry
}

// entry is one episode as the server holds it.
type entry struct {
	ep *episode.Episode
	// owner is the token the episode was created with: no other token can
	// use its handle.
	owner tokenHash
	// srv created the episode: it reaps it when idle and closes it at
	// shutdown.
	srv *Server
	// session is the transport session the episode is bound to ("" for
	// none): it ends with that session.
	session string
	// released is when the episode let go of its sandbox; zero while it
	// holds it.
	released time.Time
}

func newRegistry() *registry { return &registry{entries: map[string]*entry{}} }

func (r *registry) add(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for id, old := range r.entries {
		if !old.released.IsZero() && now.Sub(old.released) > tombstoneTTL {
			delete(r.entries, id)
		}
	}
	r.entries[e.ep.ID()] = e
}

// markReleased turns an entry into a tombstone.
func (r *registry) markReleased(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[id]; ok {
		e.released = time.Now()
	}
}

// errNoSuchEpisode is matched by errUnknownEpisode's errors.
var errNoSuchEpisode = errors.New("unknown episode")

// errUnknownEpisode is the one answer for a handle that was never issued,
// has been forgotten, or belongs to another token: telling them apart would
// tell a client about other clients' episodes.
func errUnknownEpisode(id string) error {
	return fmt.Errorf("%w: episode_id %q was never issued by this server, ended more than %s ago, or belongs to another client; call start_task for a new episode", errNoSuchEpisode, truncateID(id), tombstoneTTL)
}

func truncateID(id string) string {
	if len(id) > 64 {
		return id[:64] + "..."
	}
	return id
}

// lookup finds the entry of handle id for the token tok.
func (r *registry) lookup(id string, tok tokenHash) (*entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[id]
	if !ok || e.owner != tok {
		return nil, errUnknownEpisode(id)
	}
	return e, nil
}

// lookupAny finds the entry of handle id whoever owns it, for the server's
// own housekeeping.
func (r *registry) lookupAny(id string) (*entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[id]
	if !ok {
		return nil, errNoSuchEpisode
	}
	return e, nil
}

// of lists the entries srv created that are still held (not released).
func (r *registry) of(srv *Server) []*entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*entry
	for _, e := range r.entries {
		if e.srv == srv && e.released.IsZero() {
			out = append(out, e)
		}
	}
	return out
}

// held counts the episodes srv created and still holds.
func (r *registry) held(srv *Server) int { return len(r.of(srv)) }

// tokenKey carries the hash of the request's bearer token through the
// request context to the tools.
type tokenKey struct{}

// stdioToken is the owner of stdio episodes: that connection has no token.
var stdioToken = tokenHash(sha256.Sum256([]byte("\x00stdio")))

func ctxWithToken(ctx context.Context, t tokenHash) context.Context {
	return context.WithValue(ctx, tokenKey{}, t)
}

func tokenFrom(ctx context.Context) tokenHash {
	if t, ok := ctx.Value(tokenKey{}).(tokenHash); ok {
		return t
	}
	return stdioToken
}

var errShuttingDown = errors.New("the server is shutting down")
