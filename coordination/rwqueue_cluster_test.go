package coordination_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// TestQueueRedeliveryExactlyOnceAck: on a 3-node cluster a consumer takes
// an item and dies (never acks); after the visibility timeout consumers on
// the other nodes get it, and every item is acked exactly once.
func TestQueueRedeliveryExactlyOnceAck(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const items = 30
	producer := coordination.NewQueue(cl.Client(1), "jobs")
	for i := range items {
		if _, err := producer.Enqueue(ctx, api.QueueNewItem{Payload: fmt.Appendf(nil, "job-%d", i)}); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	// The doomed consumer on node 1 takes the first item and never acks.
	dead, err := coordination.NewQueue(cl.Client(1), "jobs").Dequeue(ctx, coordination.DequeueOptions{Consumer: "doomed", Visibility: 500 * time.Millisecond})
	if err != nil || len(dead) != 1 {
		t.Fatalf("doomed dequeue: %v, %d items", err, len(dead))
	}
	lost := dead[0].ItemID

	var (
		mu    sync.Mutex
		acked = map[uint64]int{}
		by    = map[uint64]string{}
		total atomic.Int32
		wg    sync.WaitGroup
	)
	for n := 2; n <= 3; n++ {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("n%d-w%d", n, w)
				q := coordination.NewQueue(cl.Client(n), "jobs")
				for total.Load() < items && ctx.Err() == nil {
					got, err := q.Dequeue(ctx, coordination.DequeueOptions{Consumer: name, Max: 2, Visibility: 10 * time.Second, Wait: 200 * time.Millisecond})
					if err != nil {
						t.Errorf("%s: dequeue: %v", name, err)
						return
					}
					for _, it := range got {
						if err := q.Ack(ctx, it.ReceiptHandle); err != nil {
							t.Errorf("%s: ack %d: %v", name, it.ItemID, err)
							continue
						}
						mu.Lock()
						acked[it.ItemID]++
						by[it.ItemID] = name
						mu.Unlock()
						total.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	if len(acked) != items {
		t.Fatalf("%d distinct items acked, want %d", len(acked), items)
	}
	for id, n := range acked {
		if n != 1 {
			t.Errorf("item %d acked %d times", id, n)
		}
	}
	if by[lost] == "" {
		t.Errorf("the doomed consumer's item %d was never redelivered", lost)
	}
	// The doomed consumer's receipt is stale now.
	if err := producer.Ack(ctx, dead[0].ReceiptHandle); err == nil {
		t.Errorf("ack with the doomed consumer's stale receipt succeeded")
	}
	st, err := producer.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.VisibleCount != 0 || st.PendingCount != 0 || st.DLQCount != 0 {
		t.Errorf("status = %d visible, %d pending, %d dlq; want all 0", st.VisibleCount, st.PendingCount, st.DLQCount)
	}
}

// TestRWLockExclusion runs readers and writers from every node: a writer
// is never inside with anyone else, and write tokens strictly increase.
func TestRWLockExclusion(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		readers, writers atomic.Int32
		maxReaders       atomic.Int32
		mu               sync.Mutex
		lastToken        uint64
		wg               sync.WaitGroup
	)
	for n := 1; n <= 3; n++ {
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := coordination.NewRWLock(cl.Client(n), "rw", coordination.RWLockOptions{Holder: fmt.Sprintf("n%d-%d", n, w), TTL: 20 * time.Second})
				for i := range 4 {
					write := (w+i)%3 == 0
					var g *coordination.RWGuard
					var err error
					if write {
						g, err = l.Lock(ctx)
					} else {
						g, err = l.RLock(ctx)
					}
					if err != nil {
						t.Errorf("acquire (write %v): %v", write, err)
						return
					}
					if write {
						if writers.Add(1) != 1 || readers.Load() != 0 {
							t.Errorf("writer inside with others")
						}
						mu.Lock()
						if g.FencingToken() <= lastToken {
							t.Errorf("token %d after %d", g.FencingToken(), lastToken)
						}
						lastToken = g.FencingToken()
						mu.Unlock()
						time.Sleep(2 * time.Millisecond)
						writers.Add(-1)
					} else {
						r := readers.Add(1)
						if writers.Load() != 0 {
							t.Errorf("reader inside with a writer")
						}
						for m := maxReaders.Load(); r > m && !maxReaders.CompareAndSwap(m, r); m = maxReaders.Load() {
						}
						time.Sleep(2 * time.Millisecond)
						readers.Add(-1)
					}
					if err := g.Release(ctx); err != nil {
						t.Errorf("release: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if lastToken == 0 {
		t.Errorf("no writer ever got the lock")
	}
	t.Logf("write holds: %d, most readers at once: %d", lastToken, maxReaders.Load())
}
