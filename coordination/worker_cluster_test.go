package coordination_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// TestWorkerPoolCluster runs the worker coordinator on a 3-node cluster:
// workers on every node claim concurrently from one pool without ever
// exceeding their capacity and every task is completed exactly once; a
// worker that stops heartbeating loses its tasks to another after its TTL;
// stealing moves not started tasks from a loaded worker to an idle one.
func TestWorkerPoolCluster(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	clients := []*coordination.WorkerPool{nil}
	for n := 1; n <= 3; n++ {
		clients = append(clients, coordination.NewWorkerPool(cl.Client(n), "jobs"))
	}

	t.Run("concurrent claims", func(t *testing.T) {
		const tasks = 48
		for i := range tasks {
			if err := clients[1].Submit(ctx, fmt.Sprintf("task-%02d", i), fmt.Appendf(nil, "payload %d", i)); err != nil {
				t.Fatalf("submit %d: %v", i, err)
			}
		}
		if err := clients[2].Submit(ctx, "task-00", nil); !errors.Is(err, coordination.ErrWorkerRefused) {
			t.Fatalf("second submit of task-00: %v", err)
		}
		var (
			mu        sync.Mutex
			completed = map[string]int{}
			done      atomic.Int32
			wg        sync.WaitGroup
		)
		for n := 1; n <= 3; n++ {
			for k := range 2 {
				capacity := n + k // 1..4
				id := fmt.Sprintf("n%d-w%d", n, k)
				w, err := clients[n].Register(ctx, id, capacity, 20*time.Second)
				if err != nil {
					t.Fatalf("register %s: %v", id, err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					held := map[string]bool{}
					for done.Load() < tasks && ctx.Err() == nil {
						got, err := w.Claim(ctx, api.MaxWorkerClaim)
						if err != nil {
							t.Errorf("%s: claim: %v", id, err)
							return
						}
						for _, tk := range got {
							if held[tk.TaskID] {
								t.Errorf("%s: claimed %s twice", id, tk.TaskID)
							}
							held[tk.TaskID] = true
						}
						if len(held) > capacity {
							t.Errorf("%s holds %d tasks; capacity %d", id, len(held), capacity)
						}
						for tid := range held {
							if err := w.Start(ctx, tid); err != nil {
								t.Errorf("%s: start %s: %v", id, tid, err)
							}
							if err := w.Complete(ctx, tid); err != nil {
								t.Errorf("%s: complete %s: %v", id, tid, err)
								continue
							}
							delete(held, tid)
							mu.Lock()
							completed[tid]++
							mu.Unlock()
							done.Add(1)
						}
						if err := w.Heartbeat(ctx); err != nil {
							t.Errorf("%s: heartbeat: %v", id, err)
							return
						}
						if len(got) == 0 {
							time.Sleep(20 * time.Millisecond) // pace the polling of an empty pool
						}
					}
				}()
			}
		}
		// Meanwhile the pool's status never shows a worker over capacity.
		for done.Load() < tasks && ctx.Err() == nil && !t.Failed() {
			ws, _, err := clients[3].Status(ctx)
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			for _, w := range ws {
				if w.Load > w.Capacity || w.Started > w.Load {
					t.Errorf("status: %+v", w)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		wg.Wait()
		if len(completed) != tasks {
			t.Fatalf("%d distinct tasks completed, want %d", len(completed), tasks)
		}
		for id, n := range completed {
			if n != 1 {
				t.Errorf("%s completed %d times", id, n)
			}
		}
		ws, counts, err := clients[2].Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for _, w := range ws {
			sum += w.Completed
			if w.Load != 0 {
				t.Errorf("worker %s still loaded: %+v", w.WorkerID, w)
			}
		}
		if sum != tasks || counts[api.WorkerTaskPending]+counts[api.WorkerTaskAssigned]+counts[api.WorkerTaskStarted] != 0 {
			t.Fatalf("completed counters sum to %d, counts %v", sum, counts)
		}
	})

	t.Run("dead worker", func(t *testing.T) {
		p1, p3 := coordination.NewWorkerPool(cl.Client(1), "dead"), coordination.NewWorkerPool(cl.Client(3), "dead")
		for _, id := range []string{"a", "b", "c"} {
			if err := p1.Submit(ctx, id, nil); err != nil {
				t.Fatal(err)
			}
		}
		// doomed takes all three and starts one, then never heartbeats. Its
		// TTL is short: on a slow machine it may expire before it got there,
		// and then it simply registers again (taking its tasks back).
		var doomed *coordination.Worker
		cl.Eventually(30*time.Second, func() error {
			var err error
			if doomed, err = p1.Register(ctx, "doomed", 3, time.Second); err != nil {
				return err
			}
			if got, err := doomed.Claim(ctx, 16); err != nil || len(got) != 3 {
				return fmt.Errorf("doomed claimed %v, %v", got, err)
			}
			return doomed.Start(ctx, "a")
		})
		rescuer, err := p3.Register(ctx, "rescuer", 4, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing to take while doomed is live (its TTL is a second, so
		// this may already see it dead; then all three come at once).
		var mine []string
		cl.Eventually(30*time.Second, func() error {
			got, err := rescuer.Claim(ctx, 16)
			if err != nil {
				return err
			}
			for _, tk := range got {
				mine = append(mine, tk.TaskID)
				if tk.Attempts < 2 {
					t.Errorf("reclaimed %s with attempts %d, want ≥ 2", tk.TaskID, tk.Attempts)
				}
			}
			if len(mine) < 3 {
				return fmt.Errorf("rescuer holds %v", mine)
			}
			return nil
		})
		slices.Sort(mine)
		if !slices.Equal(mine, []string{"a", "b", "c"}) {
			t.Fatalf("rescuer got %v", mine)
		}
		if err := doomed.Complete(ctx, "b"); !errors.Is(err, coordination.ErrWorkerRefused) {
			t.Fatalf("the dead worker completed a reclaimed task: %v", err)
		}
		if err := doomed.Heartbeat(ctx); !errors.Is(err, coordination.ErrWorkerRefused) {
			t.Fatalf("heartbeat of an expired worker: %v", err)
		}
		for _, id := range mine {
			if err := rescuer.Complete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if left, err := p1.Tasks(ctx, "", 0); err != nil || len(left) != 0 {
			t.Fatalf("tasks left: %v, %v", left, err)
		}
	})

	t.Run("assign least loaded", func(t *testing.T) {
		px, py, p3 := coordination.NewWorkerPool(cl.Client(1), "place"), coordination.NewWorkerPool(cl.Client(2), "place"), coordination.NewWorkerPool(cl.Client(3), "place")
		if _, err := px.Register(ctx, "x", 2, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := py.Register(ctx, "y", 4, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			if err := p3.Submit(ctx, fmt.Sprintf("p%d", i), nil); err != nil {
				t.Fatal(err)
			}
		}
		got, err := p3.Assign(ctx, 16)
		if err != nil {
			t.Fatal(err)
		}
		var placed []string
		for _, tk := range got {
			placed = append(placed, tk.TaskID+"@"+tk.WorkerID)
		}
		// x (0/2) and y (0/4) tie; then each goes to the lower load/capacity.
		if want := "p0@x,p1@y,p2@y,p3@x,p4@y,p5@y"; strings.Join(placed, ",") != want {
			t.Fatalf("assign placed %v; want %s", placed, want)
		}
		if got, err := p3.Assign(ctx, 16); err != nil || len(got) != 0 {
			t.Fatalf("assign with every worker full = %v, %v", got, err)
		}
		if pend, err := p3.Tasks(ctx, api.WorkerTaskPending, 0); err != nil || len(pend) != 2 {
			t.Fatalf("pending after placement = %v, %v", pend, err)
		}
	})

	t.Run("stealing", func(t *testing.T) {
		p1, p2 := coordination.NewWorkerPool(cl.Client(1), "steal"), coordination.NewWorkerPool(cl.Client(2), "steal")
		for i := range 8 {
			if err := p1.Submit(ctx, fmt.Sprintf("s%d", i), nil); err != nil {
				t.Fatal(err)
			}
		}
		loaded, err := p1.Register(ctx, "loaded", 8, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := loaded.Claim(ctx, 16); err != nil || len(got) != 8 {
			t.Fatalf("loaded claimed %v, %v", got, err)
		}
		for _, id := range []string{"s0", "s1"} {
			if err := loaded.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		idle, err := p2.Register(ctx, "idle", 4, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// 6 not started: at most half (3) may go.
		got, victim, err := idle.Steal(ctx, 16)
		if err != nil || victim != "loaded" || len(got) != 3 {
			t.Fatalf("steal = %v from %q, %v; want 3 tasks from loaded", got, victim, err)
		}
		for _, tk := range got {
			if tk.TaskID == "s0" || tk.TaskID == "s1" || tk.WorkerID != "idle" {
				t.Fatalf("stolen %+v", tk)
			}
		}
		if err := loaded.Complete(ctx, got[0].TaskID); !errors.Is(err, coordination.ErrWorkerRefused) {
			t.Fatalf("the victim completed a stolen task: %v", err)
		}
		ws, counts, err := p2.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		loads := map[string]int{}
		for _, w := range ws {
			loads[w.WorkerID] = w.Load
		}
		if loads["loaded"] != 5 || loads["idle"] != 3 || counts[api.WorkerTaskStarted] != 2 || counts[api.WorkerTaskAssigned] != 6 {
			t.Fatalf("after the steal: loads %v counts %v", loads, counts)
		}
		// 3 not started left and one free slot: one more, then the thief is full.
		if got, _, err := idle.Steal(ctx, 16); err != nil || len(got) != 1 {
			t.Fatalf("second steal = %v, %v", got, err)
		}
		if got, _, err := idle.Steal(ctx, 16); err != nil || len(got) != 0 {
			t.Fatalf("steal at capacity = %v, %v", got, err)
		}
	})
}
