package coordination_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/coordination"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

const benchClients = 16

// runClients splits b.N operations over benchClients goroutines, each with
// its own client of a 1-node cluster, and reports operations per second.
func runClients(b *testing.B, setup func(context.Context, *client.Client) error, op func(ctx context.Context, w int, c *client.Client) error) {
	cl := clustertest.New(b, 1, clustertest.Options{})
	clients := make([]*client.Client, benchClients)
	for i := range clients {
		clients[i] = cl.Client(1)
	}
	ctx := context.Background()
	if setup != nil {
		if err := setup(ctx, clients[0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w, c := range clients {
		n := b.N / benchClients
		if w < b.N%benchClients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := op(ctx, w, c); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkCounterIncr: 16 clients increment one counter.
func BenchmarkCounterIncr(b *testing.B) {
	runClients(b, nil, func(ctx context.Context, _ int, c *client.Client) error {
		_, err := coordination.NewCounter(c, "bench").Incr(ctx)
		return err
	})
}

// BenchmarkCounterDecr: 16 clients decrement one counter (the
// compare-and-swap path of unsigned subtraction).
func BenchmarkCounterDecr(b *testing.B) {
	setup := func(ctx context.Context, c *client.Client) error {
		return coordination.NewCounter(c, "bench").Set(ctx, 1<<40)
	}
	runClients(b, setup, func(ctx context.Context, _ int, c *client.Client) error {
		_, err := coordination.NewCounter(c, "bench").Decr(ctx)
		return err
	})
}

// BenchmarkSequenceNext: 16 clients take IDs from one sequence.
func BenchmarkSequenceNext(b *testing.B) {
	runClients(b, nil, func(ctx context.Context, _ int, c *client.Client) error {
		_, err := coordination.NewSequence(c, "bench").Next(ctx)
		return err
	})
}

// BenchmarkLockCycle: 16 clients each acquire and release a lock of their
// own (uncontended), or all the same lock (contended; waiting is the
// client-side backoff of Acquire).
func BenchmarkLockCycle(b *testing.B) {
	for _, contended := range []bool{false, true} {
		name := "distinct"
		if contended {
			name = "contended"
		}
		b.Run(name, func(b *testing.B) {
			runClients(b, nil, func(ctx context.Context, w int, c *client.Client) error {
				key := fmt.Sprintf("bench-%d", w)
				if contended {
					key = "bench"
				}
				g, err := coordination.NewLock(c, key, coordination.LockOptions{Holder: fmt.Sprint(w), TTL: 10 * time.Second}).Acquire(ctx)
				if err != nil {
					return err
				}
				return g.Release(ctx)
			})
		})
	}
}
