package faults

import (
	"sync"
	"time"
)

// Clock is a set of per-node wall clocks for clock-jump tests: each node's
// clock is the real time plus an offset that a nemesis can change while the
// cluster runs (forward and back). Give each node For(id) as its
// node.Config.Clock. The zero value is ready to use; all methods are safe
// for concurrent use.
type Clock struct {
	mu      sync.Mutex // guards offsets
	offsets map[uint64]time.Duration
}

// For returns node id's clock: time.Now plus the node's current offset.
func (c *Clock) For(id uint64) func() time.Time {
	return func() time.Time { return time.Now().Add(c.Offset(id)) }
}

// Offset returns node id's current offset from the real time.
func (c *Clock) Offset(id uint64) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offsets[id]
}

// Set sets node id's offset from the real time (negative: behind).
func (c *Clock) Set(id uint64, offset time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offsets == nil {
		c.offsets = map[uint64]time.Duration{}
	}
	c.offsets[id] = offset
}

// Reset puts every clock back on the real time.
func (c *Clock) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offsets = nil
}
