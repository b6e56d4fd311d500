package server

import (
	"sync"
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
