package kv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/aspen-dev/aspen/api"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// evText renders events compactly for comparisons: "rev:kind:key=value<prev".
func evText(evs []Event) []string {
	var out []string
	for _, e := range evs {
		s := fmt.Sprintf("%d:%s:%s", e.Revision, e.Kind, e.Key)
		if e.Kind == EventPut {
			s += "=" + string(e.Value)
		}
		if e.HasPrev {
			s += "<" + string(e.PrevValue)
		}
		out = append(out, s)
	}
	return out
}

func wantEvents(t *testing.T, got []Event, want ...string) {
	t.Helper()
	g := evText(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("events:\n got %q\nwant %q", g, want)
	}
}

func mustEvents(t *testing.T, s *Store, prefix string, from uint64, limit int) ([]Event, uint64) {
	t.Helper()
	evs, next, err := s.Events([]byte(prefix), from, limit)
	if err != nil {
		t.Fatalf("Events(%q, %d, %d): %v", prefix, from, limit, err)
	}
	return evs, next
}

func TestEventsRecordEveryChange(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 1000, ops(putOp("b", "1"), putOp("a", "1")))
	mustTxn(t, s, 2, 1000, ops(putOp("a", "2"), delOp("nope")))
	mustTxn(t, s, 3, 1000, ops(addOp("n", 5)))
	mustTxn(t, s, 4, 1000, ops(delOp("b")))
	// a failed compare applies the (empty) failure branch: no events
	mustTxn(t, s, 5, 1000, &api.TxnRequest{
		Compares: []api.Compare{{Key: []byte("a"), Target: api.TargetValue, Result: api.Equal, Value: []byte("x")}},
		Success:  []api.TxnOp{putOp("a", "never")},
	})
	mustTxn(t, s, 6, 1000, ops(putTTL("t", "ttl", 10), putOp("c/1", ""), putOp("c/2", "x")))
	mustTxn(t, s, 7, 1000, ops(api.TxnOp{Kind: api.TxnDeleteRange, Key: []byte("c/")}))
	// the key expired at 1010; the sweeper's Expire command removes it
	res := applyOne(t, s, cmdLog(t, 8, &Command{NowMs: 2000, Expire: []ExpiredKey{{Key: []byte("t"), ModRevision: 6}}}))
	if res.Err != nil || res.Expired != 1 {
		t.Fatalf("expire: %+v", res)
	}
	// a put over an expired-but-unswept record has no previous value
	mustTxn(t, s, 9, 1000, ops(putTTL("u", "old", 10)))
	mustTxn(t, s, 10, 5000, ops(putOp("u", "new")))

	evs, next := mustEvents(t, s, "", 0, 0)
	wantEvents(t, evs,
		"1:put:a=1", "1:put:b=1",
		"2:put:a=2<1",
		"3:put:n=5",
		"4:delete:b<1",
		"6:put:c/1=", "6:put:c/2=x", "6:put:t=ttl",
		"7:delete:c/1<", "7:delete:c/2<x",
		"8:delete:t<ttl",
		"9:put:u=old",
		"10:put:u=new",
	)
	if next != 11 {
		t.Fatalf("next = %d; want 11", next)
	}

	evs, _ = mustEvents(t, s, "c/", 0, 0)
	wantEvents(t, evs, "6:put:c/1=", "6:put:c/2=x", "7:delete:c/1<", "7:delete:c/2<x")
	evs, _ = mustEvents(t, s, "a", 2, 0)
	wantEvents(t, evs, "2:put:a=2<1")
	evs, next = mustEvents(t, s, "", 11, 0)
	if len(evs) != 0 || next != 11 {
		t.Fatalf("Events from the future = %v, %d; want none, 11", evText(evs), next)
	}
	if o, err := s.OldestRevision(); err != nil || o != 1 {
		t.Fatalf("OldestRevision = %d, %v; want 1", o, err)
	}
}

// CommittedEventKeys lists the committed events without their values, and
// CommittedEvent reads one of them whole.
func TestCommittedEventKeysAndValues(t *testing.T) {
	s := openRetention(t, 3)
	mustTxn(t, s, 1, 1000, ops(putOp("b", "1"), putOp("a", "1")))
	mustTxn(t, s, 2, 1000, ops(putOp("a", "2"), delOp("b")))
	keys, next, err := s.CommittedEventKeys(nil, 1, 0)
	if err != nil || len(keys) != 0 || next != 1 {
		t.Fatalf("before a commit: CommittedEventKeys = %q, %d, %v; want none, 1, nil", evText(keys), next, err)
	}
	commitNow(s)
	mustTxn(t, s, 3, 1000, ops(putOp("c", "3"))) // applied, not committed

	keys, next, err = s.CommittedEventKeys(nil, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	// no values: "=" and "<" with nothing after them
	if got, want := evText(keys), []string{"1:put:a=", "1:put:b=", "2:put:a=<", "2:delete:b<"}; fmt.Sprint(got) != fmt.Sprint(want) || next != 3 {
		t.Fatalf("CommittedEventKeys = %q, next %d; want %q, next 3", got, next, want)
	}
	for _, e := range keys {
		if e.Value != nil || e.PrevValue != nil {
			t.Fatalf("listed event %s carries values", evText([]Event{e}))
		}
	}
	var whole []Event
	for i, e := range keys {
		index := i
		if e.Revision == 2 {
			index = i - 2
		}
		full, err := s.CommittedEvent(e.Revision, index)
		if err != nil {
			t.Fatalf("CommittedEvent(%d, %d): %v", e.Revision, index, err)
		}
		whole = append(whole, full)
	}
	wantEvents(t, whole, "1:put:a=1", "1:put:b=1", "2:put:a=2<1", "2:delete:b<1")
	if _, err := s.CommittedEvent(3, 0); err == nil {
		t.Fatal("CommittedEvent of an uncommitted revision: no error")
	}

	for i := uint64(4); i <= 8; i++ {
		mustTxn(t, s, i, 1000, ops(putOp("c", fmt.Sprint(i))))
	}
	commitNow(s)
	if _, err := s.CommittedEvent(1, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("CommittedEvent of a compacted revision: %v; want ErrCompacted", err)
	}
}

func TestEventsLimitKeepsRevisionsWhole(t *testing.T) {
	s := openStore(t)
	mustTxn(t, s, 1, 0, ops(putOp("a", "1"), putOp("b", "1"), putOp("c", "1")))
	mustTxn(t, s, 2, 0, ops(putOp("a", "2")))
	mustTxn(t, s, 3, 0, ops(putOp("a", "3")))

	evs, next := mustEvents(t, s, "", 1, 1)
	wantEvents(t, evs, "1:put:a=1", "1:put:b=1", "1:put:c=1")
	if next != 2 {
		t.Fatalf("next = %d; want 2", next)
	}
	evs, next = mustEvents(t, s, "", next, 1)
	wantEvents(t, evs, "2:put:a=2<1")
	evs, next = mustEvents(t, s, "", next, 1)
	wantEvents(t, evs, "3:put:a=3<2")
	if next != 4 {
		t.Fatalf("next = %d; want 4", next)
	}
}

func openRetention(t *testing.T, retention uint64) *Store {
	t.Helper()
	s, err := OpenWith(filepath.Join(t.TempDir(), "kv.db"), nil, Options{HistoryRetention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestHistoryCompaction(t *testing.T) {
	s := openRetention(t, 5)
	for i := uint64(1); i <= 20; i++ {
		mustTxn(t, s, i, 0, ops(putOp("k", fmt.Sprint(i)), putOp("other", fmt.Sprint(i))))
	}
	oldest, err := s.OldestRevision()
	if err != nil {
		t.Fatal(err)
	}
	if oldest != 16 {
		t.Fatalf("OldestRevision = %d; want 16 (applied 20, retention 5)", oldest)
	}
	_, _, err = s.Events(nil, 15, 0)
	var ce *CompactedError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCompacted) || ce.Oldest != 16 || ce.Requested != 15 {
		t.Fatalf("Events(from 15) error = %v; want a CompactedError with oldest 16", err)
	}
	evs, _ := mustEvents(t, s, "k", 16, 0)
	wantEvents(t, evs, "16:put:k=16<15", "17:put:k=17<16", "18:put:k=18<17", "19:put:k=19<18", "20:put:k=20<19")
	if n := len(dump(t, s)["events"]); n != 10 {
		t.Fatalf("events bucket holds %d events; want 10", n)
	}
}

// TestHistoryCompactionBounded checks that a revision with more events than
// one command's budget is compacted over several commands, marking a partly
// deleted revision as compacted, and that the history catches up.
func TestHistoryCompactionBounded(t *testing.T) {
	s := openRetention(t, 2)
	for i := range uint64(10) {
		var puts []api.TxnOp
		for j := range 100 {
			puts = append(puts, putOp(fmt.Sprintf("k%d-%03d", i, j), "v"))
		}
		mustTxn(t, s, i+1, 0, ops(puts...))
	}
	mustTxn(t, s, 11, 0, ops(api.TxnOp{Kind: api.TxnDeleteRange, Key: []byte("k")})) // 1000 events
	mustTxn(t, s, 12, 0, ops(putOp("a", "1")))
	mustTxn(t, s, 13, 0, ops(putOp("a", "2"))) // limit 11: deletes compactBase+2 events of revision 11
	oldest, _ := s.OldestRevision()
	if oldest != 12 {
		t.Fatalf("OldestRevision after a partial compaction = %d; want 12", oldest)
	}
	if n := len(dump(t, s)["events"]); n != 1000-(compactBase+2)+2 {
		t.Fatalf("events bucket holds %d events; want %d", n, 1000-(compactBase+2)+2)
	}
	for i := uint64(14); i <= 20; i++ {
		mustTxn(t, s, i, 0, ops(putOp("a", fmt.Sprint(i))))
	}
	if n := len(dump(t, s)["events"]); n != 2 {
		t.Fatalf("events bucket holds %d events after catching up; want 2", n)
	}
	if oldest, _ := s.OldestRevision(); oldest != 19 {
		t.Fatalf("OldestRevision = %d; want 19", oldest)
	}
}

func TestHistoryDeterministicAcrossBatching(t *testing.T) {
	a, b := openRetention(t, 3), openRetention(t, 3)
	var logs []*raft.Log
	for i := uint64(1); i <= 30; i++ {
		var op api.TxnOp
		switch i % 3 {
		case 0:
			op = delOp(fmt.Sprintf("k%d", i%5))
		default:
			op = putOp(fmt.Sprintf("k%d", i%5), fmt.Sprint(i))
		}
		logs = append(logs, txnLog(t, i, 0, ops(op)))
	}
	for _, l := range logs {
		a.ApplyBatch([]*raft.Log{l})
	}
	for i := 0; i < len(logs); i += 7 {
		b.ApplyBatch(logs[i:min(i+7, len(logs))])
	}
	if err := diffDumps(dump(t, a), dump(t, b)); err != nil {
		t.Fatalf("stores differ: %v", err)
	}
}

func TestHistorySnapshotRoundTrip(t *testing.T) {
	src := openStore(t)
	mustTxn(t, src, 1, 0, ops(putOp("a", "1")))
	mustTxn(t, src, 2, 0, ops(putOp("a", "2"), putOp("b", "x")))
	mustTxn(t, src, 3, 0, ops(delOp("a")))
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := openStore(t)
	mustTxn(t, dst, 1, 0, ops(putOp("zzz", "gone")))
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	want, _ := mustEvents(t, src, "", 0, 0)
	got, next := mustEvents(t, dst, "", 0, 0)
	if fmt.Sprint(evText(got)) != fmt.Sprint(evText(want)) || next != 4 {
		t.Fatalf("restored history = %q next %d; want %q next 4", evText(got), next, evText(want))
	}
	// applying continues the history
	mustTxn(t, dst, 4, 0, ops(putOp("c", "1")))
	got, _ = mustEvents(t, dst, "", 4, 0)
	wantEvents(t, got, "4:put:c=1")
}

// TestHistoryStartsAtUpgrade checks that a store made without history marks
// what it applied before as compacted.
func TestHistoryStartsAtUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustTxn(t, s, 7, 0, ops(putOp("a", "1")))
	// simulate an older store: no events bucket, no compaction mark
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketEvents); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyCompacted)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path)
	if o, _ := s.OldestRevision(); o != 8 {
		t.Fatalf("OldestRevision = %d; want 8", o)
	}
	if _, _, err := s.Events(nil, 7, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Events(from 7) error = %v; want ErrCompacted", err)
	}
}

// The history is appended in key order, so its pages are filled, not left
// half empty as bbolt leaves pages of random inserts: a commit writes half as
// many history pages.
func TestHistoryPagesAreFull(t *testing.T) {
	s := openStore(t)
	value := bytes.Repeat([]byte("v"), 100)
	for i := uint64(1); i <= 200; i++ {
		var puts []api.TxnOp
		for j := range 20 {
			puts = append(puts, api.TxnOp{Kind: api.TxnPut, Key: fmt.Appendf(nil, "key/%04d", (int(i)*31+j*7)%1000), Value: value})
		}
		mustTxn(t, s, i, 0, &api.TxnRequest{Success: puts})
	}
	commitNow(s)
	err := s.view(func(tx *bbolt.Tx) error {
		st := tx.Bucket(bucketEvents).Stats()
		fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
		if st.KeyN != 4000 || fill < 0.9 {
			t.Errorf("events bucket: %d events on %d leaf pages, %.0f%% full; want 4000 events on pages at least 90%% full", st.KeyN, st.LeafPageN, 100*fill)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
