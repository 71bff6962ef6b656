package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// watchLog collects a watch's events in the background.
type watchLog struct {
	mu   sync.Mutex
	evs  []api.WatchEvent
	err  error
	done chan struct{}
}

func collect(ch <-chan client.WatchEvent) *watchLog {
	w := &watchLog{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range ch {
			w.mu.Lock()
			if ev.Err != nil {
				w.err = ev.Err
			} else {
				w.evs = append(w.evs, ev.WatchEvent)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watchLog) snapshot() ([]api.WatchEvent, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]api.WatchEvent(nil), w.evs...), w.err
}

// checkOrder fails unless events are in revision order with no key twice in
// one revision, and returns how often each key/revision pair appeared.
func checkOrder(t *testing.T, evs []api.WatchEvent) {
	t.Helper()
	seen := map[string]bool{}
	var last uint64
	for i, e := range evs {
		if e.Revision < last {
			t.Fatalf("event %d: revision %d after %d", i, e.Revision, last)
		}
		id := fmt.Sprintf("%d/%s", e.Revision, e.Key)
		if seen[id] {
			t.Fatalf("event %d: %s delivered twice", i, id)
		}
		seen[id] = true
		last = e.Revision
	}
}

// waitAll waits until the watch delivered an event for every acknowledged
// write (key → revision), then checks order and exactly-once delivery.
func waitAll(t *testing.T, w *watchLog, acked map[string]uint64) []api.WatchEvent {
	t.Helper()
	var evs []api.WatchEvent
	clustertest.Eventually(t, 30*time.Second, func() error {
		var err error
		evs, err = w.snapshot()
		if err != nil {
			t.Fatalf("watch ended: %v", err)
		}
		got := map[string]uint64{}
		for _, e := range evs {
			got[string(e.Key)] = e.Revision
		}
		for k, rev := range acked {
			if got[k] != rev {
				return fmt.Errorf("write %s at revision %d not seen (have %d events)", k, rev, len(evs))
			}
		}
		return nil
	})
	checkOrder(t, evs)
	return evs
}

func TestWatchFollowerAcrossLeaderKill(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	leader := cl.WaitLeader()
	follower := 1
	for follower == int(leader.ID) {
		follower++
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := cl.Client(follower).Watch(ctx, []byte("w/"), client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := collect(ch)
	writers := map[int]*client.Client{}
	for i := 1; i <= 3; i++ {
		writers[i] = cl.Client(i)
	}
	acked := map[string]uint64{}
	write := func(via int, k string) {
		r, err := writers[via].Put(ctxT(t), &api.PutRequest{Key: []byte(k), Value: []byte(k)})
		if err != nil {
			t.Fatalf("put %s via node %d: %v", k, via, err)
		}
		acked[k] = r.Revision
	}
	for n := range 30 {
		write(n%3+1, fmt.Sprintf("w/before/%02d", n))
	}
	put(t, writers[1], "other", "not watched")
	cl.Stop(int(leader.ID))
	cl.WaitLeader()
	for n := range 30 {
		via := n%3 + 1
		if via == int(leader.ID) {
			via = follower
		}
		write(via, fmt.Sprintf("w/after/%02d", n))
	}
	evs := waitAll(t, w, acked)
	if len(evs) != len(acked) {
		t.Fatalf("watch delivered %d events; want %d", len(evs), len(acked))
	}
	for _, e := range evs {
		if e.Type != api.WatchPut || string(e.Value) != string(e.Key) {
			t.Fatalf("unexpected event %+v", e)
		}
	}
}

// TestWatchResumeAcrossNodes watches through a ticket of all nodes, kills
// the node serving the watch, and also resumes a cancelled watch from its
// last revision: neither sees a gap or a duplicate.
func TestWatchResumeAcrossNodes(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	cl.WaitLeader()
	c := cl.Client(1, 2, 3) // the watch starts on node 1
	writer := cl.Client(2, 3)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Watch(ctx, nil, client.WatchOptions{PrevValue: true})
	if err != nil {
		t.Fatal(err)
	}
	w := collect(ch)

	// a second watch that is cancelled after some events and resumed
	ctx2, cancel2 := context.WithCancel(context.Background())
	ch2, err := c.Watch(ctx2, nil, client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}

	acked := map[string]uint64{}
	for n := range 20 {
		k := fmt.Sprintf("k%02d", n)
		acked[k] = put(t, writer, k, "v1")
	}
	var first []api.WatchEvent
	for len(first) < 10 {
		ev := <-ch2
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		first = append(first, ev.WatchEvent)
	}
	cancel2()

	cl.Stop(1) // the node serving both watches
	cl.WaitLeader()
	for n := 20; n < 40; n++ {
		k := fmt.Sprintf("k%02d", n)
		acked[k] = put(t, writer, k, "v1")
	}
	// one multi-key revision
	r, err := writer.Txn(ctxT(t), &api.TxnRequest{Success: []api.TxnOp{
		{Kind: api.TxnPut, Key: []byte("m1"), Value: []byte("x")},
		{Kind: api.TxnPut, Key: []byte("m2"), Value: []byte("x")},
		{Kind: api.TxnDelete, Key: []byte("k00")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	acked["m1"], acked["m2"], acked["k00"] = r.Revision, r.Revision, r.Revision

	evs := waitAll(t, w, acked)
	if len(evs) != 43 {
		t.Fatalf("watch delivered %d events; want 43", len(evs))
	}
	// one revision's events come in key order: k00, m1, m2
	if last := evs[len(evs)-3]; last.Type != api.WatchDelete || string(last.Key) != "k00" || !last.HasPrevValue || string(last.PrevValue) != "v1" {
		t.Fatalf("last event = %+v; want the delete of k00 with its previous value first", last)
	}

	// resume the cancelled watch from its last revision + 1
	resumeFrom := first[len(first)-1].Revision + 1
	ch3, err := c.Watch(ctxT(t), nil, client.WatchOptions{FromRevision: resumeFrom})
	if err != nil {
		t.Fatal(err)
	}
	rest := collect(ch3)
	want := map[string]uint64{}
	for _, e := range evs[10:] {
		want[string(e.Key)] = e.Revision
	}
	got := waitAll(t, rest, want)
	all := append(first, got...)
	if len(all) != len(evs) {
		t.Fatalf("resumed watch: %d + %d events; want %d", len(first), len(got), len(evs))
	}
	for i := range all {
		if all[i].Revision != evs[i].Revision || string(all[i].Key) != string(evs[i].Key) {
			t.Fatalf("event %d: resumed %d/%s, continuous %d/%s", i, all[i].Revision, all[i].Key, evs[i].Revision, evs[i].Key)
		}
	}
}
