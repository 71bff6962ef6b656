package coordination_test

import (
	"context"
	"fmt"
	"slices"
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
	pods := api.MaxWorkersPerPool - 2
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < pods; i += 8 {
				if _, err := p.Register(ctx, fmt.Sprintf("pod-%04d", i), 1, time.Millisecond); err != nil {
					errs <- fmt.Errorf("register pod-%04d: %w", i, err)
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
}
