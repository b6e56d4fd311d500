package server

import (
	"sync"
	"time"
)

// Capacity bounds the number of concurrent episodes (each holds a sandbox)
// across every Server that shares it. A nil *Capacity has no bound.
type Capacity struct {
	mu   sync.Mutex
	max  int
	used int
}

// NewCapacity allows max concurrent episodes; max <= 0 means no bound.
func NewCapacity(max int) *Capacity {
	if max <= 0 {
		return nil
	}
	return &Capacity{max: max}
}

func (c *Capacity) acquire() bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used >= c.max {
		return false
	}
	c.used++
	return true
}

func (c *Capacity) release() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used--
}

// reapIdle ends the episodes whose session has made no tool call for
// timeout, so an abandoned client does not hold a sandbox forever.
func (s *Server) reapIdle(timeout time.Duration) {
	t := time.NewTicker(max(timeout/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			var idle []*episode
			for _, ep := range s.episodes {
				if now.Sub(time.Unix(0, ep.active.Load())) > timeout {
					idle = append(idle, ep)
				}
			}
			s.mu.Unlock()
			for _, ep := range idle {
				ep.close("the session was idle for longer than " + timeout.String())
			}
		}
	}
}
