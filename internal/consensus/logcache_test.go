package consensus

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

func entries(from, to uint64, size int) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return out
}

// countingStore counts the reads that reach the store.
type countingStore struct {
	*raft.InmemStore
	reads int
	fail  error
}

func (s *countingStore) GetLog(idx uint64, l *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(idx, l)
}

func (s *countingStore) StoreLogs(logs []*raft.Log) error {
	if s.fail != nil {
		return s.fail
	}
	return s.InmemStore.StoreLogs(logs)
}

func mustGet(t *testing.T, c *logCache, idx uint64) *raft.Log {
	t.Helper()
	var l raft.Log
	if err := c.GetLog(idx, &l); err != nil {
		t.Fatalf("GetLog(%d): %v", idx, err)
	}
	if l.Index != idx || len(l.Data) == 0 || l.Data[0] != byte(idx) {
		t.Fatalf("GetLog(%d) = index %d data %v", idx, l.Index, l.Data[:min(len(l.Data), 4)])
	}
	return &l
}

func TestLogCache(t *testing.T) {
	store := &countingStore{InmemStore: raft.NewInmemStore()}
	c := newLogCache(store, 8, 1000)

	// the newest 8 entries come from memory, older ones from the store
	if err := c.StoreLogs(entries(1, 10, 10)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(3); i <= 10; i++ {
		mustGet(t, c, i)
	}
	if store.reads != 0 {
		t.Errorf("%d reads reached the store for cached entries", store.reads)
	}
	mustGet(t, c, 2)
	if store.reads != 1 {
		t.Errorf("reads = %d after a miss; want 1", store.reads)
	}

	// the byte budget: 300-byte entries, at most 3 of them (900 ≤ 1000)
	if err := c.StoreLogs(entries(11, 15, 300)); err != nil {
		t.Fatal(err)
	}
	store.reads = 0
	for i := uint64(13); i <= 15; i++ {
		mustGet(t, c, i)
	}
	if store.reads != 0 || c.bytes != 900 || len(c.entries) != 3 {
		t.Errorf("after 300-byte entries: reads %d, cached %d entries, %d bytes; want 0, 3, 900", store.reads, len(c.entries), c.bytes)
	}
	// an entry larger than the budget is not cached at all
	if err := c.StoreLogs(entries(16, 16, 2000)); err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != 0 || c.bytes != 0 {
		t.Errorf("after an oversize entry: %d entries, %d bytes cached; want none", len(c.entries), c.bytes)
	}
	mustGet(t, c, 16)

	// a tail overwritten after a truncation restarts the run
	if err := c.StoreLogs(entries(17, 18, 10)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRange(18, 18); err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != 0 {
		t.Errorf("DeleteRange left %d entries cached", len(c.entries))
	}
	overwrite := entries(18, 18, 10)
	overwrite[0].Term = 2
	if err := c.StoreLogs(overwrite); err != nil {
		t.Fatal(err)
	}
	if l := mustGet(t, c, 18); l.Term != 2 {
		t.Errorf("entry 18 has term %d after the overwrite; want 2", l.Term)
	}

	// a batch the store refused is not cached
	store.fail = errors.New("disk full")
	if err := c.StoreLogs(entries(19, 19, 10)); !errors.Is(err, store.fail) {
		t.Fatalf("StoreLogs = %v; want the store's error", err)
	}
	store.fail = nil
	var l raft.Log
	if err := c.GetLog(19, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog of a refused entry = %v (%+v); want ErrLogNotFound", err, l)
	}
}

func TestLogCacheMonotonic(t *testing.T) {
	if newLogCache(raft.NewInmemStore(), 1, 1).IsMonotonic() {
		t.Error("an in-memory store is not monotonic")
	}
	w, err := openWAL(t.TempDir(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !newLogCache(w, 1, 1).IsMonotonic() {
		t.Error("the cache hides raft-wal's monotonic log")
	}
}
