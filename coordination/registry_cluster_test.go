package coordination_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/coordination"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// TestServiceRegistryCluster registers an instance through node 1 and
// discovers it through node 3: heartbeats keep it healthy past its TTL,
// and once they stop it turns unhealthy.
func TestServiceRegistryCluster(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r1 := coordination.NewRegistry(cl.Client(1))
	r3 := coordination.NewRegistry(cl.Client(3))

	const ttl = 1500 * time.Millisecond
	reg, err := r1.Register(ctx, coordination.Instance{Service: "api", ID: "i1", Address: "10.0.0.1:80", Version: "1.4.2", Tags: []string{"blue"}, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	if reg.FencingToken() != 1 {
		t.Errorf("token = %d, want 1", reg.FencingToken())
	}
	healthy := func() []api.ServiceInstance {
		t.Helper()
		ins, err := r3.Discover(ctx, "api", coordination.DiscoverOptions{HealthyOnly: true, Tags: []string{"blue"}, VersionPrefix: "1.4"})
		if err != nil {
			t.Fatal(err)
		}
		return ins
	}
	if ins := healthy(); len(ins) != 1 || ins[0].InstanceID != "i1" || ins[0].Address != "10.0.0.1:80" || !ins[0].Healthy {
		t.Fatalf("discover from node 3 = %+v", ins)
	}

	// Heartbeats (through node 1) for twice the TTL keep it healthy.
	start := time.Now()
	for time.Since(start) < 2*ttl {
		time.Sleep(ttl / 4)
		if err := reg.Heartbeat(ctx); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if ins := healthy(); len(ins) != 1 {
			t.Fatalf("after %v of heartbeats: %+v", time.Since(start), ins)
		}
	}

	// A stale token is rejected after a re-registration.
	reg2, err := r1.Register(ctx, coordination.Instance{Service: "api", ID: "i1", Address: "10.0.0.1:80", Version: "1.4.2", Tags: []string{"blue"}, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	if reg2.FencingToken() <= reg.FencingToken() {
		t.Fatalf("re-registration token %d, not > %d", reg2.FencingToken(), reg.FencingToken())
	}
	if err := reg.Heartbeat(ctx); err == nil {
		t.Fatal("heartbeat with a stale token succeeded")
	}

	// No more heartbeats: it expires and is no longer returned.
	for {
		all, err := r3.Discover(ctx, "api", coordination.DiscoverOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("discover long after expiry = %+v", all)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := r3.Get(ctx, "api", "i1"); err != nil || got != nil {
		t.Fatalf("get after expiry = %+v, %v", got, err)
	}
	if err := reg2.Heartbeat(ctx); err == nil {
		t.Fatal("heartbeat after expiry succeeded")
	}
	if err := reg2.Deregister(ctx); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	if got, err := r3.Get(ctx, "api", "i1"); err != nil || got != nil {
		t.Fatalf("get after deregister = %+v, %v", got, err)
	}
}

// TestBarrierCluster runs a double barrier of three participants, one per
// node.
func TestBarrierCluster(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		entered int
	)
	for i := 1; i <= 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := coordination.NewBarrier(cl.Client(i), "b", "", 3)
			time.Sleep(time.Duration(i) * 100 * time.Millisecond)
			resp, err := b.Enter(ctx)
			if err != nil {
				t.Errorf("participant %d: enter: %v", i, err)
				return
			}
			mu.Lock()
			entered++
			mu.Unlock()
			if resp.Phase == api.BarrierWaiting || resp.RequiredCount != 3 {
				t.Errorf("participant %d: enter = %+v", i, resp)
			}
			if _, err := b.Leave(ctx); err != nil {
				t.Errorf("participant %d: leave: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if entered != 3 {
		t.Fatalf("%d entered", entered)
	}
	st, err := coordination.NewBarrier(cl.Client(2), "b", "x", 3).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CurrentCount != 0 || st.RequiredCount != 0 {
		t.Fatalf("status after the round = %+v", st)
	}
}
