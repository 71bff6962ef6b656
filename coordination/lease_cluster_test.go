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

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/coordination"
	"github.com/aspen-dev/aspen/internal/clustertest"
)

// keyGone returns nil once key is absent (linearizable read through c).
func keyGone(ctx context.Context, c *client.Client, key string) error {
	resp, err := c.Get(ctx, &api.GetRequest{Key: []byte(key)})
	if errors.Is(err, api.ErrNotFound) || (err == nil && resp.KV == nil) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("key %q still exists", key)
}

// assertReplicasLack checks that no running replica holds any of keys,
// once every replica applied everything up to rev.
func assertReplicasLack(t *testing.T, cl *clustertest.Cluster, rev uint64, keys ...string) {
	t.Helper()
	cl.WaitApplied(rev)
	for _, m := range cl.Members {
		if m.Node == nil {
			continue
		}
		for _, k := range keys {
			kv, _, err := m.Node.Store().Get([]byte(k), time.Now().UnixMilli())
			if err != nil || kv != nil {
				t.Errorf("node %d still has %q (%v)", m.ID, k, err)
			}
		}
	}
}

// stopLeader stops the leader, waits for a new one and returns the running
// members.
func stopLeader(cl *clustertest.Cluster) []int {
	cl.Stop(int(cl.WaitLeader().ID))
	cl.WaitLeader()
	var running []int
	for i, m := range cl.Members {
		if m.Node != nil {
			running = append(running, i+1)
		}
	}
	return running
}

// TestLeaseKeysCluster: keys attached to a lease from clients on different
// nodes are deleted together on revoke (except one rewritten without the
// lease), and on expiry, on every replica.
func TestLeaseKeysCluster(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c1, c2, c3 := cl.Client(1), cl.Client(2), cl.Client(3)

	l, err := coordination.GrantLease(ctx, c2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []*client.Client{c1, c2, c3} {
		if err := coordination.OpenLease(c, l.ID()).Put(ctx, fmt.Sprintf("lk/%d", i), []byte("v")); err != nil {
			t.Fatalf("put through node %d: %v", i+1, err)
		}
	}
	if _, err := c1.Put(ctx, &api.PutRequest{Key: []byte("lk/2"), Value: []byte("mine now")}); err != nil {
		t.Fatal(err)
	}
	info, err := coordination.OpenLease(c3, l.ID()).TTL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Keys) != "[lk/0 lk/1]" || info.AttachedKeys != 3 {
		t.Fatalf("attached keys = %v (%d records), want [lk/0 lk/1] (3)", info.Keys, info.AttachedKeys)
	}
	n, err := coordination.OpenLease(c3, l.ID()).Revoke(ctx)
	if err != nil || n != 2 {
		t.Fatalf("revoke = %d, %v; want 2 keys deleted", n, err)
	}
	if _, err := l.KeepAlive(ctx); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("keepalive after revoke: %v, want NOT_FOUND", err)
	}
	resp, err := c2.Get(ctx, &api.GetRequest{Key: []byte("lk/2")})
	if err != nil || resp.KV == nil || string(resp.KV.Value) != "mine now" {
		t.Fatalf("detached key: %+v, %v", resp, err)
	}
	assertReplicasLack(t, cl, resp.Revision, "lk/0", "lk/1")

	// Expiry: nobody revokes; the leader's loop does once the TTL passed.
	short, err := coordination.GrantLease(ctx, c1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := short.Put(ctx, "ex/a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := coordination.OpenLease(c3, short.ID()).Put(ctx, "ex/b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	cl.Eventually(20*time.Second, func() error {
		if err := keyGone(ctx, c2, "ex/a"); err != nil {
			return err
		}
		return keyGone(ctx, c2, "ex/b")
	})
	if _, err := short.TTL(ctx); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("ttl after expiry: %v, want NOT_FOUND", err)
	}
	list, err := c3.LeaseList(ctx, &api.LeaseListRequest{})
	if err != nil || len(list.Leases) != 0 {
		t.Fatalf("lease list after expiry = %+v, %v", list, err)
	}
	got, err := c1.Get(ctx, &api.GetRequest{Key: []byte("ex/a")})
	if err != nil {
		t.Fatal(err)
	}
	assertReplicasLack(t, cl, got.Revision, "ex/a", "ex/b")
}

// TestLeaseDeadlineAcrossLeaderKill: a lease granted before the leader dies
// still exists under the new leader before its deadline, and it and its key
// are gone after it (the deadline is absolute, stamped by the old leader).
func TestLeaseDeadlineAcrossLeaderKill(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const ttl = 4 * time.Second
	l, err := coordination.GrantLease(ctx, cl.Client(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "failover/key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	info, err := l.TTL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.UnixMilli(info.DeadlineMs)

	c := cl.Client(stopLeader(cl)...)
	l = coordination.OpenLease(c, l.ID())

	// Before the deadline the lease and its key are there: asked before
	// the deadline, the leader cannot have seen it pass.
	if asked := time.Now(); asked.Before(deadline) {
		if _, err := l.TTL(ctx); err != nil && time.Now().Before(deadline) {
			t.Fatalf("lease gone before its deadline %v under the new leader: %v", deadline, err)
		}
	} else {
		t.Logf("failover took until after the deadline; only checking expiry")
	}
	cl.Eventually(2*ttl+10*time.Second, func() error { return keyGone(ctx, c, "failover/key") })
	if now := time.Now(); now.Before(deadline) {
		t.Fatalf("key deleted at %v, before the lease deadline %v", now, deadline)
	}
	if _, err := l.TTL(ctx); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("ttl after expiry: %v, want NOT_FOUND", err)
	}
}

// TestLockSetMutualExclusion: workers on every node take overlapping pairs
// of three locks as lock sets; no lock ever has two holders inside, and each
// lock's holds ordered by its fencing token do not overlap in time.
func TestLockSetMutualExclusion(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	clients := nodeClients(cl, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names := []string{"r0", "r1", "r2"}
	type hold struct {
		token      uint64
		start, end time.Time
	}
	var (
		mu     sync.Mutex
		holds  = map[string][]hold{}
		inside [3]atomic.Int32
		wg     sync.WaitGroup
	)
	const cycles = 3
	for w, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := w%3, (w+1)%3
			set := coordination.NewLockSet(c, []string{names[b], names[a]}, coordination.LockOptions{Holder: fmt.Sprintf("w%d", w), TTL: 20 * time.Second})
			for range cycles {
				g, err := set.Acquire(ctx)
				if err != nil {
					t.Errorf("worker %d: acquire: %v", w, err)
					return
				}
				start := time.Now()
				for _, r := range []int{a, b} {
					if n := inside[r].Add(1); n != 1 {
						t.Errorf("worker %d: %d holders of %s", w, n, names[r])
					}
				}
				time.Sleep(time.Millisecond)
				for _, r := range []int{a, b} {
					inside[r].Add(-1)
				}
				end := time.Now()
				mu.Lock()
				for _, r := range []int{a, b} {
					holds[names[r]] = append(holds[names[r]], hold{g.FencingToken(names[r]), start, end})
				}
				mu.Unlock()
				if err := g.Release(ctx); err != nil {
					t.Errorf("worker %d: release: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, name := range names {
		hs := holds[name]
		if len(hs) != 2*len(clients)/3*cycles {
			t.Errorf("%s: %d holds, want %d", name, len(hs), 2*len(clients)/3*cycles)
		}
		sort.Slice(hs, func(i, j int) bool { return hs[i].token < hs[j].token })
		for i := 1; i < len(hs); i++ {
			if hs[i].token == hs[i-1].token {
				t.Errorf("%s: token %d handed out twice", name, hs[i].token)
			}
			if hs[i].start.Before(hs[i-1].end) {
				t.Errorf("%s: hold with token %d began before the one with token %d ended", name, hs[i].token, hs[i-1].token)
			}
		}
	}

	// All or nothing: a set with one held member takes none of the others.
	c := cl.Client(2)
	g, err := coordination.NewLock(c, "r1", coordination.LockOptions{Holder: "solo", TTL: 20 * time.Second}).TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = coordination.NewLockSet(c, []string{"r0", "r1", "r2"}, coordination.LockOptions{Holder: "set"}).TryAcquire(ctx)
	var he *coordination.HeldError
	if !errors.As(err, &he) || he.Key != "r1" || he.Holder != "solo" {
		t.Fatalf("set over a held member: %v, want HeldError for r1 held by solo", err)
	}
	for _, name := range []string{"r0", "r2"} {
		st, err := c.LockStatus(ctx, &api.LockStatusRequest{Key: name})
		if err != nil || st.IsSuccess {
			t.Errorf("%s after a refused set: %+v, %v; want free", name, st, err)
		}
	}
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LockSetTryAcquire(ctx, &api.LockSetRequest{Keys: []string{"a", "a"}, HolderID: "x", TTLMs: 1000}); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("duplicate members: %v, want INVALID_ARGUMENT", err)
	}
}

// TestElectionCluster: candidates on every node campaign for two terms
// each; there is never more than one leader, every term has a larger
// fencing token than the one before, Leader names the current leader, and
// each resign hands leadership over.
func TestElectionCluster(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		tokens  []uint64 // in the order terms began
		leading atomic.Int32
		wg      sync.WaitGroup
	)
	observer := coordination.NewElection(cl.Client(1), "primary", "observer", coordination.ElectionOptions{PollInterval: 20 * time.Millisecond})
	obsCtx, stopObs := context.WithCancel(ctx)
	seen := observer.Observe(obsCtx)
	var observed []string
	obsDone := make(chan struct{})
	go func() {
		defer close(obsDone)
		for l := range seen {
			if l != nil {
				observed = append(observed, l.Candidate)
			}
		}
	}()

	const terms = 2
	for i := 1; i <= 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cl.Client(i)
			e := coordination.NewElection(c, "primary", fmt.Sprintf("node%d", i), coordination.ElectionOptions{TTL: 10 * time.Second})
			for range terms {
				lead, err := e.Campaign(ctx)
				if err != nil {
					t.Errorf("candidate %d: campaign: %v", i, err)
					return
				}
				if n := leading.Add(1); n != 1 {
					t.Errorf("candidate %d: %d leaders at once", i, n)
				}
				mu.Lock()
				tokens = append(tokens, lead.FencingToken())
				mu.Unlock()
				cur, err := e.Leader(ctx)
				if err != nil || cur.Candidate != e.Candidate() || cur.FencingToken != lead.FencingToken() {
					t.Errorf("candidate %d: Leader() = %+v, %v during its term %d", i, cur, err, lead.FencingToken())
				}
				select {
				case <-lead.Done():
					t.Errorf("candidate %d: term %d lost before resigning", i, lead.FencingToken())
				case <-time.After(50 * time.Millisecond):
				}
				leading.Add(-1)
				if err := lead.Resign(ctx); err != nil {
					t.Errorf("candidate %d: resign: %v", i, err)
					return
				}
				<-lead.Done()
			}
		}()
	}
	wg.Wait()
	if len(tokens) != 3*terms {
		t.Fatalf("%d terms, want %d", len(tokens), 3*terms)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Errorf("term %d has token %d, not greater than the previous term's %d", i, tokens[i], tokens[i-1])
		}
	}
	if _, err := observer.Leader(ctx); !errors.Is(err, coordination.ErrNoLeader) {
		t.Errorf("leader after everyone resigned: %v, want ErrNoLeader", err)
	}
	stopObs()
	<-obsDone
	if len(observed) == 0 {
		t.Errorf("the observer saw no leader")
	}
}
