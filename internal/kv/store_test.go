package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/hashicorp/raft"
)

// readAll returns everything a client can observe at nowMs.
func readAll(t testing.TB, s *Store, nowMs int64) (string, uint64) {
	t.Helper()
	entries, more, rev, err := s.Scan(nil, nil, api.MaxScanLimit, nowMs)
	if err != nil {
		t.Fatal(err)
	}
	if more {
		t.Fatal("more than one page")
	}
	return fmt.Sprintf("%+v", entries), rev
}

func TestSnapshotRestore(t *testing.T) {
	src := openStore(t)
	mustTxn(t, src, 1, 0, ops(putOp("a", "1"), putOp("b", "2"), putTTL("t", "3", 1000)))
	mustTxn(t, src, 2, 0, ops(putOp("a", "11"), delOp("b")))
	wantState, wantRev := readAll(t, src, 0)

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applies continue while the snapshot is open; it stays pinned.
	mustTxn(t, src, 3, 0, ops(putOp("a", "after-snapshot"), putOp("z", "new")))
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	snap.Release() // idempotent
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed %v cancelled %v; want closed", sink.closed, sink.cancelled)
	}

	dst := openStore(t)
	mustTxn(t, dst, 1, 0, ops(putOp("stale", "gone after restore")))
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	gotState, gotRev := readAll(t, dst, 0)
	if gotState != wantState || gotRev != wantRev || dst.AppliedIndex() != 2 {
		t.Fatalf("restored state %s rev %d applied %d; want %s rev %d applied 2", gotState, gotRev, dst.AppliedIndex(), wantState, wantRev)
	}
	checkTTLIndex(t, dst)

	// The restored store continues from the snapshot: index 3 applies again.
	mustTxn(t, dst, 3, 0, ops(putOp("a", "after-snapshot"), putOp("z", "new")))
	if err := diffDumps(dump(t, src), dump(t, dst)); err != nil {
		t.Fatalf("after replaying index 3: %v", err)
	}

	// No temporary files are left behind.
	files, _ := os.ReadDir(filepath.Dir(dst.path))
	if len(files) != 1 {
		t.Fatalf("store directory holds %d files; want 1", len(files))
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 0, ops(putOp("a", "1")))
	if err := s.Restore(io.NopCloser(bytes.NewReader([]byte("not a bbolt file")))); err == nil {
		t.Fatal("Restore of garbage succeeded")
	}
	wantKV(t, mustGet(t, s, "a", 0), "1", 1, 1, 1)
	if s.AppliedIndex() != 1 {
		t.Fatalf("AppliedIndex = %d; want 1", s.AppliedIndex())
	}
}

func TestBackupOpensAsStore(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 0, ops(putOp("a", "1"), putTTL("t", "2", 500)))
	mustTxn(t, s, 2, 0, ops(addOp("n", 3)))
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Fatalf("Backup reported %d bytes; file has %d", n, fi.Size())
	}
	if err := MarkClean(path); err != nil {
		t.Fatal(err)
	}
	b := openStoreAt(t, path)
	if b.AppliedIndex() != 2 {
		t.Fatalf("backup AppliedIndex = %d; want 2", b.AppliedIndex())
	}
	want, _ := readAll(t, s, 0)
	got, _ := readAll(t, b, 0)
	if got != want {
		t.Fatalf("backup holds %s; want %s", got, want)
	}
	if err := diffDumps(dump(t, s), dump(t, b)); err != nil {
		t.Fatal(err)
	}
}

// genLogs builds a deterministic pseudo-random workload of n logs. Expire
// commands are planned the way the leader's sweeper does, by applying the
// workload to a planner store and asking it for expired keys.
func genLogs(t testing.TB, n int) []*raft.Log {
	planner := openStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() []byte { return []byte(fmt.Sprintf("k/%02d", rng.IntN(30))) }
	var logs []*raft.Log
	now := int64(1_000_000)
	for i := 1; i <= n; i++ {
		now += int64(rng.IntN(50))
		idx := uint64(i)
		if rng.IntN(20) == 0 {
			logs = append(logs, &raft.Log{Type: raft.LogConfiguration, Index: idx})
			continue
		}
		if rng.IntN(8) == 0 {
			exp, err := planner.Expired(now, 5)
			if err != nil {
				t.Fatal(err)
			}
			exp = append(exp, ExpiredKey{Key: key(), ModRevision: uint64(rng.IntN(i))}) // mostly stale
			logs = append(logs, cmdLog(t, idx, &Command{NowMs: now, Expire: exp}))
			planner.Apply(logs[len(logs)-1])
			continue
		}
		txn := &api.TxnRequest{}
		if rng.IntN(2) == 0 {
			txn.Compares = []api.Compare{{Key: key(), Target: api.TargetVersion, Result: api.Greater, Number: int64(rng.IntN(3))}}
		}
		for range 1 + rng.IntN(4) {
			var op api.TxnOp
			switch rng.IntN(6) {
			case 0:
				op = api.TxnOp{Kind: api.TxnDelete, Key: key()}
			case 1:
				op = api.TxnOp{Kind: api.TxnAdd, Key: key(), Delta: int64(rng.IntN(10))}
			case 2:
				op = api.TxnOp{Kind: api.TxnDeleteRange, Key: []byte(fmt.Sprintf("k/%d", rng.IntN(3)))}
			case 3:
				op = api.TxnOp{Kind: api.TxnRange, Key: []byte("k/"), Limit: rng.IntN(5)}
			default:
				value := fmt.Sprint(rng.IntN(100))
				if rng.IntN(10) == 0 {
					value = "not a number" // a later add on this key fails
				}
				op = api.TxnOp{Kind: api.TxnPut, Key: key(), Value: []byte(value), TTLMs: int64(rng.IntN(3) * 100)}
			}
			if rng.IntN(2) == 0 {
				txn.Success = append(txn.Success, op)
			} else {
				txn.Failure = append(txn.Failure, op)
			}
		}
		if rng.IntN(15) == 0 { // whichever branch runs fails mid-way and must apply nothing
			k := string(key())
			txn.Success = append(txn.Success, putOp(k, "x"), addOp(k, 1))
			txn.Failure = append(txn.Failure, putOp(k, "x"), addOp(k, 1))
		}
		logs = append(logs, cmdLog(t, idx, &Command{NowMs: now, Txn: txn}))
		planner.Apply(logs[len(logs)-1])
	}
	return logs
}

// resultString renders an Apply result by value.
func resultString(t testing.TB, v interface{}) string {
	t.Helper()
	if v == nil {
		return "nil"
	}
	r := v.(*ApplyResult)
	errText := ""
	if r.Err != nil {
		errText = r.Err.Error()
	}
	b, err := json.Marshal(struct {
		Txn     *api.TxnResponse
		Expired int
		Err     string
	}{r.Txn, r.Expired, errText})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeterminism(t *testing.T) {
	logs := genLogs(t, 400)
	a, b := openStore(t), openStore(t)
	var resA, resB []string
	var succeeded, failed, errored, expired int
	for _, l := range logs { // one at a time
		r := a.Apply(l)
		resA = append(resA, resultString(t, r))
		switch r, _ := r.(*ApplyResult); {
		case r == nil:
		case r.Err != nil:
			errored++
		case r.Txn != nil && r.Txn.Succeeded:
			succeeded++
		case r.Txn != nil:
			failed++
		case r.Expired > 0:
			expired++
		}
	}
	if succeeded == 0 || failed == 0 || errored == 0 || expired == 0 {
		t.Fatalf("workload too narrow: %d succeeded, %d failed, %d errors, %d expire commands that removed keys",
			succeeded, failed, errored, expired)
	}
	for i := 0; i < len(logs); i += 37 { // in batches
		for _, r := range b.ApplyBatch(logs[i:min(i+37, len(logs))]) {
			resB = append(resB, resultString(t, r))
		}
	}
	for i := range resA {
		if resA[i] != resB[i] {
			t.Fatalf("result of log %d differs: one by one %s, batched %s", i, resA[i], resB[i])
		}
	}
	if err := diffDumps(dump(t, a), dump(t, b)); err != nil {
		t.Fatalf("stores differ: %v", err)
	}
	checkTTLIndex(t, a)
	if a.AppliedIndex() != uint64(len(logs)) {
		t.Fatalf("AppliedIndex = %d; want %d", a.AppliedIndex(), len(logs))
	}
}

func TestWaitApplied(t *testing.T) {
	s := openStore(t)
	if err := s.WaitApplied(context.Background(), 0); err != nil {
		t.Fatalf("WaitApplied(0) = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitApplied(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitApplied with a cancelled ctx = %v; want context.Canceled", err)
	}

	done := make(chan error, 1)
	go func() { done <- s.WaitApplied(context.Background(), 2) }()
	mustTxn(t, s, 1, 0, ops(putOp("a", "1")))
	mustTxn(t, s, 2, 0, ops(putOp("a", "2")))
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied(2) = %v", err)
	}

	go func() { done <- s.WaitApplied(context.Background(), 100) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitApplied on close = %v; want ErrClosed", err)
	}
}

func TestClosedStore(t *testing.T) {
	s := openStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, _, err := s.Get([]byte("a"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get = %v; want ErrClosed", err)
	}
	if _, _, _, err := s.Scan(nil, nil, 0, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scan = %v; want ErrClosed", err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot = %v; want ErrClosed", err)
	}
	if r := applyOne(t, s, txnLog(t, 1, 0, ops(putOp("a", "1")))); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("Apply = %+v; want ErrClosed", r)
	}
}

// TestConcurrentReadsDuringApplyAndRestore exercises the locking under -race.
func TestConcurrentReadsDuringApplyAndRestore(t *testing.T) {
	s := openStore(t)
	logs := genLogs(t, 200)
	s.ApplyBatch(logs[:50])
	var snap bytes.Buffer
	if _, err := s.Backup(&snap); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := s.Get([]byte("k/01"), 1_000_000); err != nil {
					t.Error(err)
					return
				}
				if _, _, _, err := s.Scan([]byte("k/"), nil, 5, 1_000_000); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Expired(2_000_000, 10); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 50; i < len(logs); i += 10 {
		s.ApplyBatch(logs[i:min(i+10, len(logs))])
		if i == 100 {
			sn, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer sn.Release()
				if err := sn.Persist(&memSink{}); err != nil {
					t.Error(err)
				}
			}()
		}
		if i == 150 {
			if err := s.Restore(io.NopCloser(bytes.NewReader(snap.Bytes()))); err != nil {
				t.Fatal(err)
			}
			if s.AppliedIndex() != 50 {
				t.Fatalf("AppliedIndex after restore = %d; want 50", s.AppliedIndex())
			}
			s.ApplyBatch(logs[50:160])
		}
	}
	close(stop)
	wg.Wait()

	want := openStore(t)
	want.ApplyBatch(logs)
	if err := diffDumps(dump(t, want), dump(t, s)); err != nil {
		t.Fatalf("after restore and replay: %v", err)
	}
}

// TestUncleanFileIsDiscarded: a store that was not closed (a crash) is not
// trusted at the next Open, since its unsynced pages may be torn; Raft
// rebuilds it from the snapshot and the log.
func TestUncleanFileIsDiscarded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustTxn(t, s, 1, 0, ops(putOp("a", "1")))
	// simulate a crash: release the file without Close's commit, sync and marker
	s.mu.Lock()
	s.discardPending()
	_ = s.db.Close()
	s.db = nil
	s.mu.Unlock()

	s2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s2.AppliedIndex() != 0 {
		t.Fatalf("unclean store reopened at applied %d; want a fresh store", s2.AppliedIndex())
	}
	mustTxn(t, s2, 1, 0, ops(putOp("a", "1")))
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if s3.AppliedIndex() != 1 {
		t.Fatalf("cleanly closed store reopened at applied %d; want 1", s3.AppliedIndex())
	}
}
