package coordination_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/coordination"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// nodeClients returns per workers clients bound to each of the n nodes.
func nodeClients(cl *clustertest.Cluster, n, per int) []*client.Client {
	var out []*client.Client
	for i := 1; i <= n; i++ {
		for j := 0; j < per; j++ {
			out = append(out, cl.Client(i))
		}
	}
	return out
}

// TestLockMutualExclusion runs acquire/release cycles from clients on every
// node of a 3-node cluster: no two holders are ever inside at once, and the
// holds ordered by fencing token do not overlap in time.
func TestLockMutualExclusion(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	clients := nodeClients(cl, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type hold struct {
		token      uint64
		start, end time.Time
	}
	var (
		mu     sync.Mutex
		holds  []hold
		inside atomic.Int32
		wg     sync.WaitGroup
	)
	const cycles = 5
	for w, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := coordination.NewLock(c, "mutex", coordination.LockOptions{Holder: fmt.Sprintf("w%d", w), TTL: 20 * time.Second})
			for range cycles {
				g, err := l.Acquire(ctx)
				if err != nil {
					t.Errorf("worker %d: acquire: %v", w, err)
					return
				}
				start := time.Now()
				if n := inside.Add(1); n != 1 {
					t.Errorf("worker %d: %d holders inside", w, n)
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				end := time.Now()
				mu.Lock()
				holds = append(holds, hold{g.FencingToken(), start, end})
				mu.Unlock()
				if err := g.Release(ctx); err != nil {
					t.Errorf("worker %d: release: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(holds) != len(clients)*cycles {
		t.Fatalf("%d holds, want %d", len(holds), len(clients)*cycles)
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].token < holds[j].token })
	for i := 1; i < len(holds); i++ {
		if holds[i].token == holds[i-1].token {
			t.Fatalf("token %d granted twice", holds[i].token)
		}
		if holds[i].start.Before(holds[i-1].end) {
			t.Errorf("hold with token %d started before the hold with token %d ended", holds[i].token, holds[i-1].token)
		}
	}
}

// TestCounterLinearizable increments one counter from clients on every node:
// it ends at exactly the number of increments, and every increment saw a
// distinct value.
func TestCounterLinearizable(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	clients := nodeClients(cl, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const per = 25
	var (
		mu   sync.Mutex
		seen = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := coordination.NewCounter(c, "hits")
			for range per {
				v, err := k.Incr(ctx)
				if err != nil {
					t.Errorf("incr: %v", err)
					return
				}
				mu.Lock()
				if seen[v] {
					t.Errorf("value %d returned twice", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	want := uint64(len(clients) * per)
	for i := 1; i <= 3; i++ {
		got, err := coordination.NewCounter(cl.Client(i), "hits").Get(ctx)
		if err != nil || got != want {
			t.Errorf("get via node %d = %d, %v; want %d", i, got, err, want)
		}
	}
	for v := uint64(1); v <= want; v++ {
		if !seen[v] {
			t.Errorf("no increment returned %d", v)
		}
	}
	// Decrements saturate at zero even under contention.
	var dwg sync.WaitGroup
	for _, c := range clients {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			k := coordination.NewCounter(c, "hits")
			for range per + 5 {
				if _, err := k.Decr(ctx); err != nil {
					t.Errorf("decr: %v", err)
					return
				}
			}
		}()
	}
	dwg.Wait()
	if got, err := coordination.NewCounter(cl.Client(1), "hits").Get(ctx); err != nil || got != 0 {
		t.Errorf("after decrements: %d, %v; want 0", got, err)
	}
}

// TestSequenceAcrossNodes takes IDs from the three nodes at once: together
// they are exactly 1..N, and each client's IDs strictly increase.
func TestSequenceAcrossNodes(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	clients := nodeClients(cl, 3, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const per = 20
	got := make([][]uint64, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := coordination.NewSequence(c, "ids")
			for range per {
				id, err := s.Next(ctx)
				if err != nil {
					t.Errorf("next: %v", err)
					return
				}
				got[i] = append(got[i], id)
			}
		}()
	}
	wg.Wait()
	all := map[uint64]bool{}
	for i, ids := range got {
		for j, id := range ids {
			if j > 0 && id <= ids[j-1] {
				t.Errorf("node %d: id %d after %d", i+1, id, ids[j-1])
			}
			if all[id] {
				t.Errorf("id %d handed out twice", id)
			}
			all[id] = true
		}
	}
	n := uint64(len(clients) * per)
	for id := uint64(1); id <= n; id++ {
		if !all[id] {
			t.Errorf("gap: id %d never handed out", id)
		}
	}
	s := coordination.NewSequence(cl.Client(2), "ids")
	start, err := s.Reserve(ctx, 10)
	if err != nil || start != n+1 {
		t.Fatalf("reserve = %d, %v; want %d", start, err, n+1)
	}
	if next, err := s.Next(ctx); err != nil || next != n+11 {
		t.Errorf("next after reserve = %d, %v; want %d", next, err, n+11)
	}
}

// TestLockDeadlineAcrossLeaderKill: a lock taken before the leader dies
// keeps its holder, token and deadline under the new leader; it is free
// exactly when that deadline has passed, with the next token.
func TestLockDeadlineAcrossLeaderKill(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const ttl = 4 * time.Second
	a := coordination.NewLock(cl.Client(), "failover", coordination.LockOptions{Holder: "A", TTL: ttl})
	g, err := a.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := cl.Client(stopLeader(cl)...)
	a = coordination.NewLock(c, "failover", coordination.LockOptions{Holder: "A", TTL: ttl})
	b := coordination.NewLock(c, "failover", coordination.LockOptions{Holder: "B", TTL: ttl})

	deadline := g.LeaderDeadline()
	if _, err := b.TryAcquire(ctx); err == nil {
		if time.Now().Before(deadline) {
			t.Fatalf("B acquired at %v, before A's deadline %v", time.Now(), deadline)
		}
	} else if !errors.Is(err, coordination.ErrHeld) {
		t.Fatal(err)
	}
	var gb *coordination.Guard
	clustertest.Eventually(t, 2*ttl, func() error {
		var err error
		gb, err = b.TryAcquire(ctx)
		return err
	})
	if now := time.Now(); now.Before(deadline) {
		t.Errorf("B acquired at %v, before A's deadline %v", now, deadline)
	}
	if gb.FencingToken() != g.FencingToken()+1 {
		t.Errorf("B's token %d, want %d", gb.FencingToken(), g.FencingToken()+1)
	}
	// A's old hold is gone: no new acquire, no renew.
	if _, err := a.TryAcquire(ctx); !errors.Is(err, coordination.ErrHeld) {
		t.Errorf("A's try-acquire after expiry: %v, want ErrHeld", err)
	}
	if err := g.Renew(ctx); !errors.Is(err, coordination.ErrLost) {
		t.Errorf("A's renew after expiry: %v, want ErrLost", err)
	}
}
