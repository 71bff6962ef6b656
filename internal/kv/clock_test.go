package kv

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"
)

// TestClockNeverGoesBackwards: a command stamped earlier than one already
// applied (a leader clock stepped back, or a new leader whose clock is
// behind) applies at the state machine clock, so a TTL key that expired
// stays expired and a new TTL counts from the later time.
func TestClockNeverGoesBackwards(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 1_000, ops(putTTL("t", "v", 500)))
	mustTxn(t, s, 2, 2_000, ops(putOp("x", "1"))) // t expired at 1500
	if got := s.MaxNowMs(); got != 2_000 {
		t.Fatalf("MaxNowMs = %d; want 2000", got)
	}
	// stamped in the past: t must not come back to life for the compare
	resp := mustTxn(t, s, 3, 1_200, ops(getOp("t")))
	if kvs := resp.Results[0].KVs; len(kvs) != 0 {
		t.Fatalf("expired key read by a back-stamped txn: %+v", kvs)
	}
	// a TTL set by a back-stamped command counts from the state machine clock
	mustTxn(t, s, 4, 100, ops(putTTL("u", "v", 1_000)))
	if kv := mustGet(t, s, "u", 2_500); kv == nil {
		t.Fatal("u absent at 2500; its TTL must count from 2000, not 100")
	}
	if got := s.MaxNowMs(); got != 2_000 {
		t.Fatalf("MaxNowMs after back-stamped commands = %d; want 2000", got)
	}
}

// TestClockSurvivesReopenAndSnapshot: the state machine clock is stored
// with the data, so a restarted store and one restored from a snapshot keep
// it.
func TestClockSurvivesReopenAndSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustTxn(t, s, 1, 5_000, ops(putOp("a", "1")))
	mustTxn(t, s, 2, 4_000, ops(putOp("b", "2")))
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := openStoreAt(t, path).MaxNowMs(); got != 5_000 {
		t.Fatalf("MaxNowMs after reopen = %d; want 5000", got)
	}
	dst := openStore(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := dst.MaxNowMs(); got != 5_000 {
		t.Fatalf("MaxNowMs after restore = %d; want 5000", got)
	}
}
