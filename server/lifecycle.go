package server

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// tombstone is what the server remembers of an ended session.
type tombstone struct {
	reason string
	at     time.Time
}

// tombstoneTTL is how long an ended session's reason is kept. A client
// calling again within it is told why its episode ended; after it, the
// session is simply unknown.
const tombstoneTTL = time.Hour

// bury records why session id ended and forgets old tombstones, so the map
// holds only the sessions of the last tombstoneTTL. Callers hold s.mu.
func (s *Server) bury(id, reason string) {
	now := time.Now()
	for k, t := range s.ended {
		if now.Sub(t.at) > tombstoneTTL {
			delete(s.ended, k)
		}
	}
	s.ended[id] = tombstone{reason: reason, at: now}
}

// endedReason is why session id ended, if it did recently. Callers hold s.mu.
func (s *Server) endedReason(id string) (string, bool) {
	t, ok := s.ended[id]
	return t.reason, ok
}

// reapIdle ends the episodes this server created that have had no tool call
// running and none started for timeout, so an abandoned client does not
// hold a sandbox forever, and drops the transport sessions they were bound
// to, so that the transport does not keep a vanished client's state forever
// either. A call in progress (a long training run) keeps its episode alive
// however long it takes.
func (s *Server) reapIdle(timeout time.Duration) {
	t := time.NewTicker(max(timeout/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			for _, e := range s.reg.of(s) {
				if e.ep.Finished() || !e.ep.Idle(now, timeout) {
					continue
				}
				reason := idleReason(timeout)
				e.ep.Close(reason)
				// A session whose episodes are all over goes with them.
				if e.session != "" && s.sessionOver(e.session) {
					s.endSession(e.session, reason)
					s.dropTransport(e.session)
				}
			}
		}
	}
}

// dropStreamable terminates a streamable HTTP session from the server side.
// mcp-go exports no call for it, so this serves the handler the DELETE the
// client would have sent: that is the one path that both marks the session
// id terminated and removes every piece of the transport's per-session state.
func dropStreamable(h *mcpserver.StreamableHTTPServer, id string) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodDelete, "/mcp", http.NoBody)
	if err != nil {
		return
	}
	req.Header.Set(mcpserver.HeaderKeySessionID, id)
	req.Header.Set(mcp.HeaderProtocolVersion, mcp.ProtocolVersion20251125)
	h.ServeHTTP(discardResponse{header: http.Header{}}, req)
}

// discardResponse is a ResponseWriter for dropStreamable's DELETE, whose
// answer nobody reads.
type discardResponse struct{ header http.Header }

func (d discardResponse) Header() http.Header         { return d.header }
func (d discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d discardResponse) WriteHeader(int)             {}

// sessionOver reports whether every episode bound to session sid is over.
func (s *Server) sessionOver(sid string) bool {
	s.mu.Lock()
	ids := slices.Clone(s.bound[sid])
	s.mu.Unlock()
	for _, id := range ids {
		if e, err := s.reg.lookupAny(id); err == nil && !e.ep.Finished() {
			return false
		}
	}
	return true
}
