package consensus

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// openTestWAL opens the log in dir, closed when the test ends.
func openTestWAL(t *testing.T, dir string) *walStore {
	t.Helper()
	w, err := openWAL(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// reopenTestWAL closes w, as a stopping node does, and opens dir again.
func reopenTestWAL(t *testing.T, w *walStore, dir string) *walStore {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return openTestWAL(t, dir)
}

// TestTailTruncationSurvivesReopen: Raft truncates the log's tail when a new
// leader overwrites uncommitted entries; the log must stay readable after a
// restart (raft-wal v0.4.0 alone panics here, hashicorp/raft-wal#31).
func TestTailTruncationSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	logs := func(from, to uint64, term uint64) []*raft.Log {
		var out []*raft.Log
		for i := from; i <= to; i++ {
			out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("t%d-%d", term, i))})
		}
		return out
	}
	w := openTestWAL(t, dir)
	if err := w.StoreLogs(logs(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(8, 10); err != nil { // conflicting suffix
		t.Fatal(err)
	}
	if err := w.StoreLogs(logs(8, 12, 2)); err != nil {
		t.Fatal(err)
	}
	w = reopenTestWAL(t, w, dir)
	for i := uint64(1); i <= 12; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("after reopen, log %d: %v", i, err)
		}
		term := uint64(1)
		if i >= 8 {
			term = 2
		}
		if want := fmt.Sprintf("t%d-%d", term, i); string(l.Data) != want {
			t.Fatalf("log %d = %q, want %q", i, l.Data, want)
		}
	}
	if last, _ := w.LastIndex(); last != 12 {
		t.Fatalf("last index %d, want 12", last)
	}
}

// BenchmarkWALStoreLogs appends batches of 8 entries of 300 bytes, one
// fsync per batch: a follower's share of a write's latency.
func BenchmarkWALStoreLogs(b *testing.B) { benchmarkStoreLogs(b, false) }

// BenchmarkWALStoreLogsLeader appends the same batches as the leader does:
// written, with the fsync left to the syncer (which coalesces the fsyncs of
// appends queued behind a running one).
func BenchmarkWALStoreLogsLeader(b *testing.B) { benchmarkStoreLogs(b, true) }

func benchmarkStoreLogs(b *testing.B, deferSync bool) {
	w, err := openWAL(b.TempDir(), 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	data := make([]byte, 300)
	index := uint64(0)
	batch := make([]*raft.Log, 8)
	for b.Loop() {
		for i := range batch {
			index++
			batch[i] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
		}
		if err := w.storeLogs(batch, deferSync); err != nil {
			b.Fatal(err)
		}
	}
	w.sync.waitDurable(index)
}
