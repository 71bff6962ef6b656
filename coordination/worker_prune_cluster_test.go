package coordination_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// TestWorkerPoolPruneCluster fills a pool to MaxWorkersPerPool worker
// records, almost all of them dead pods, on a real (one-node) cluster: a
// new id is still accepted because registration prunes the dead records
// no task names, while a live worker and a deregistered one whose task is
// not reclaimed yet are kept; tokens keep increasing across the deletions.
// Filled with live workers, the pool refuses a new id.
func TestWorkerPoolPruneCluster(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := coordination.NewWorkerPool(cl.Client(1), "pods")
	for _, id := range []string{"t1", "t2"} {
		if err := p.Submit(ctx, id, nil); err != nil {
			t.Fatalf("submit %s: %v", id, err)
		}
	}
	claimOne := func(id string) *coordination.Worker {
		t.Helper()
		w, err := p.Register(ctx, id, 1, time.Minute)
		if err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		if got, err := w.Claim(ctx, 1); err != nil || len(got) != 1 {
			t.Fatalf("%s claimed %v: %v", id, got, err)
		}
		return w
	}
	claimOne("holder")
	gone := claimOne("gone")
	if err := gone.Deregister(ctx); err != nil {
		t.Fatalf("deregister gone: %v", err)
	}

	// The rest of the pool: pods that die at once (TTL 1 ms).
	registerMany(ctx, t, p, "pod", api.MaxWorkersPerPool-2, time.Millisecond)
	workers, _, err := p.Status(ctx)
	if err != nil || len(workers) != api.MaxWorkersPerPool {
		t.Fatalf("status lists %d workers (%v); want the limit %d", len(workers), err, api.MaxWorkersPerPool)
	}

	fresh, err := p.Register(ctx, "fresh", 1, time.Minute)
	if err != nil {
		t.Fatalf("register a new id in a pool full of dead pods: %v", err)
	}
	if want := uint64(api.MaxWorkersPerPool + 1); fresh.FencingToken() != want {
		t.Fatalf("fresh got token %d; want %d, the pool's next", fresh.FencingToken(), want)
	}
	workers, counts, err := p.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var ids []string
	for _, w := range workers {
		ids = append(ids, w.WorkerID)
	}
	if !slices.Equal(ids, []string{"fresh", "gone", "holder"}) {
		t.Fatalf("workers after pruning = %v; want fresh, gone (its task still names it), holder", ids)
	}
	if counts[api.WorkerTaskPending] != 1 || counts[api.WorkerTaskAssigned] != 1 {
		t.Fatalf("counts = %v; want gone's task pending, holder's assigned", counts)
	}
	// A pruned id registers again with a token larger than any issued.
	again, err := p.Register(ctx, "pod-0005", 1, time.Minute)
	if err != nil || again.FencingToken() <= fresh.FencingToken() {
		t.Fatalf("pod-0005 registered again with token %v (%v); want > %d", again, err, fresh.FencingToken())
	}

	// Live workers (and gone, whose task still names it) do count: at
	// the limit a new id is refused, and the refusal changes nothing.
	registerMany(ctx, t, p, "live", api.MaxWorkersPerPool-4, time.Minute)
	_, err = p.Register(ctx, "one-too-many", 1, time.Minute)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeResourceExhausted || !strings.Contains(ae.Message, "workers that are live or hold tasks; the limit is 1000") {
		t.Fatalf("register beyond the limit: %v; want RESOURCE_EXHAUSTED naming the limit", err)
	}
	if workers, _, err := p.Status(ctx); err != nil || len(workers) != api.MaxWorkersPerPool {
		t.Fatalf("status lists %d workers (%v) after the refusal; want %d", len(workers), err, api.MaxWorkersPerPool)
	}
}

// registerMany registers n workers prefix-0000.. of capacity 1 with ttl,
// 8 at a time.
func registerMany(ctx context.Context, t *testing.T, p *coordination.WorkerPool, prefix string, n int, ttl time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				if _, err := p.Register(ctx, fmt.Sprintf("%s-%04d", prefix, i), 1, ttl); err != nil {
					errs <- fmt.Errorf("register %s-%04d: %w", prefix, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
