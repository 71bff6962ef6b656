package node_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/hooks"
)

// BenchmarkHookDelivery measures the hook loop on one node: b.N KV writes
// made by 16 concurrent writers, then the wait until an in-process handler
// has received every one of them (each delivery also stores the cursor
// through Raft). Reports the write rate and the delivered events per
// second (writes and deliveries overlap; events/s counts from the first
// write to the last delivery).
func BenchmarkHookDelivery(b *testing.B) {
	c := clustertest.New(b, 1, clustertest.Options{})
	cl := c.Client(1)
	var got atomic.Int64
	if _, err := c.Members[0].Node.Subscribe("bench", "kv.put.bench.>", func(context.Context, *hooks.Event) error {
		got.Add(1)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	const writers = 16
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := w; i < b.N; i += writers {
				if _, err := cl.Put(ctx, &api.PutRequest{Key: fmt.Appendf(nil, "bench/%d", i), Value: []byte("v")}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	wrote := time.Since(start)
	clustertest.Eventually(b, 5*time.Minute, func() error {
		if n := got.Load(); n < int64(b.N) {
			return fmt.Errorf("%d of %d delivered", n, b.N)
		}
		return nil
	})
	b.ReportMetric(float64(b.N)/wrote.Seconds(), "writes/s")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
