package server

import (
	"fmt"
	"sync"

	"github.com/mlab/mlab/internal/hostres"
)

// Capacity bounds the number of concurrent episodes (each holds a sandbox)
// across every Server that shares it, and the memory they reserve. A nil
// *Capacity has no bound.
type Capacity struct {
	mu   sync.Mutex
	max  int
	used int
	// budget is the memory set aside for sandboxes and per what each
	// session reserves of it; 0 means no memory accounting.
	budget, per int64
}

// NewCapacity allows max concurrent episodes; max <= 0 means no bound.
func NewCapacity(max int) *Capacity {
	if max <= 0 {
		return nil
	}
	return &Capacity{max: max}
}

// WithMemory makes every session reserve per bytes of a budget of memory set
// aside for sandboxes (its sandbox's memory limit, plus its workspace where
// workspaces live in memory), and refuses a session that would not fit.
func (c *Capacity) WithMemory(budget, per int64) *Capacity {
	if c != nil && budget > 0 && per > 0 {
		c.budget, c.per = budget, per
	}
	return c
}

// acquire reserves a session's share, or says why there is none.
func (c *Capacity) acquire() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used >= c.max {
		return fmt.Errorf("the server is at its limit of %d concurrent sessions: try again later", c.max)
	}
	if c.per > 0 && int64(c.used+1)*c.per > c.budget {
		return fmt.Errorf("the server has no memory for another session: %d running sessions reserve %s of the %s this machine sets aside for sandboxes, and a session needs %s: try again later",
			c.used, hostres.Bytes(int64(c.used)*c.per), hostres.Bytes(c.budget), hostres.Bytes(c.per))
	}
	c.used++
	return nil
}

func (c *Capacity) release() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used--
}
