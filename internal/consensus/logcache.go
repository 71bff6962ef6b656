package consensus

import (
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
)

// logCache serves the newest log entries from memory. The leader reads
// every entry back from the log store to replicate it, and followers read
// the entries they apply: without the cache each is a pread of the log file
// (raft.LogCache does the same by count only; this one also bounds the bytes
// it pins, since one entry can be a 16 MiB batch).
//
// It holds one contiguous run of indexes, the newest stored, at most
// maxEntries entries and maxBytes bytes of entry data. Entries enter only
// after the store accepted them; truncation (DeleteRange) empties it.
type logCache struct {
	raft.LogStore

	maxEntries, maxBytes int

	mu      sync.RWMutex
	first   uint64      // index of entries[0]
	entries []*raft.Log // first, first+1, …
	bytes   int
}

func newLogCache(store raft.LogStore, maxEntries, maxBytes int) *logCache {
	return &logCache{LogStore: store, maxEntries: maxEntries, maxBytes: maxBytes}
}

// IsMonotonic passes the store's answer on: raft-wal is monotonic, which
// changes how Raft restores a snapshot.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// GetLog returns entry idx from memory when the cache holds it.
func (c *logCache) GetLog(idx uint64, log *raft.Log) error {
	c.mu.RLock()
	var cached *raft.Log
	if idx >= c.first && idx-c.first < uint64(len(c.entries)) {
		cached = c.entries[idx-c.first]
	}
	c.mu.RUnlock()
	if cached != nil {
		*log = *cached
		return nil
	}
	return c.LogStore.GetLog(idx, log)
}

// StoreLog stores one entry.
func (c *logCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores logs and then caches them.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return fmt.Errorf("storing %d log entries: %w", len(logs), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		if len(c.entries) == 0 || l.Index != c.first+uint64(len(c.entries)) {
			c.reset() // not the next index (first entries, or an overwritten tail): start over
			c.first = l.Index
		}
		c.entries = append(c.entries, l)
		c.bytes += entrySize(l)
	}
	n := 0 // entries to drop from the front
	for len(c.entries)-n > c.maxEntries || (c.bytes > c.maxBytes && len(c.entries)-n > 0) {
		c.bytes -= entrySize(c.entries[n])
		c.entries[n] = nil // unpin it from the backing array
		n++
	}
	c.entries = c.entries[n:]
	c.first += uint64(n)
	return nil
}

// DeleteRange deletes entries min..max from the store, emptying the cache.
func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
	return c.LogStore.DeleteRange(min, max)
}

func (c *logCache) reset() {
	clear(c.entries)
	c.entries, c.bytes = c.entries[:0], 0
}

func entrySize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) }
