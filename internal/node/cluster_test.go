package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/kv"
	"github.com/aspen-dev/aspen/internal/node"
	"github.com/aspen-dev/aspen/internal/ticket"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, c *client.Client, k, v string) uint64 {
	t.Helper()
	r, err := c.Put(ctxT(t), &api.PutRequest{Key: []byte(k), Value: []byte(v)})
	if err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
	return r.Revision
}

func get(t *testing.T, c *client.Client, k string, cons api.Consistency) *api.KeyValue {
	t.Helper()
	r, err := c.Get(ctxT(t), &api.GetRequest{Key: []byte(k), Consistency: cons})
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	return r.KV
}

func TestNotInitializedBeforeInit(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.NodeID, cfg.Cookie, cfg.DataDir, cfg.Bind = 1, "c", t.TempDir(), "127.0.0.1:0"
	n, err := node.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := client.New(client.Config{Ticket: n.Ticket(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Health(ctxT(t))
	if err != nil || h.Status != api.HealthDegraded || h.Initialized {
		t.Fatalf("health before init = %+v, %v; want degraded, not initialized", h, err)
	}
	_, err = c.Get(ctxT(t), &api.GetRequest{Key: []byte("x")})
	if !errors.Is(err, api.ErrNotInitialized) {
		t.Fatalf("get before init: err = %v, want NOT_INITIALIZED", err)
	}
	if _, err := c.Init(ctxT(t)); err != nil {
		t.Fatalf("init: %v", err)
	}
	if _, err := c.Init(ctxT(t)); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("second init: err = %v, want CONFLICT", err)
	}
	st, err := c.Status(ctxT(t))
	if err != nil || len(st.Nodes) != 1 || !st.Nodes[0].IsLeader || !st.Nodes[0].IsVoter {
		t.Fatalf("status = %+v, %v; want one leader voter", st, err)
	}
}

func TestWrongCredentialIsUnauthorized(t *testing.T) {
	cl := clustertest.New(t, 1, clustertest.Options{})
	tk, err := ticket.Parse(cl.Ticket())
	if err != nil {
		t.Fatal(err)
	}
	tk.Credential = bytes.Repeat([]byte{7}, len(tk.Credential))
	c, err := client.New(client.Config{Ticket: tk.String(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Get(ctxT(t), &api.GetRequest{Key: []byte("x")})
	if !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("err = %v, want UNAUTHORIZED", err)
	}
}

func TestReplicationAndForwarding(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	leader := cl.WaitLeader()
	for i := 1; i <= 3; i++ {
		// a client that only knows node i: followers forward writes and
		// linearizable reads to the leader
		c := cl.Client(i)
		k := fmt.Sprintf("k%d", i)
		rev := put(t, c, k, "v"+k)
		if kv := get(t, c, k, api.Linearizable); kv == nil || string(kv.Value) != "v"+k || kv.ModRevision != rev {
			t.Fatalf("node %d: linearizable get = %+v, want value %q at rev %d", i, kv, "v"+k, rev)
		}
	}
	st, err := cl.Client(2).Status(ctxT(t))
	if err != nil || len(st.Nodes) != 3 || st.LeaderID != leader.ID {
		t.Fatalf("status = %+v, %v", st, err)
	}
	for _, n := range st.Nodes {
		if !n.IsVoter {
			t.Fatalf("node %d is not a voter", n.NodeID)
		}
	}
	// every node eventually has every key locally (stale reads)
	for i := 1; i <= 3; i++ {
		c := cl.Client(i)
		cl.Eventually(10*time.Second, func() error {
			for j := 1; j <= 3; j++ {
				if kv := get(t, c, fmt.Sprintf("k%d", j), api.Stale); kv == nil {
					return fmt.Errorf("node %d lacks k%d", i, j)
				}
			}
			return nil
		})
	}
	// all nodes agree on leader and term
	var term uint64
	for i := 1; i <= 3; i++ {
		m, err := cl.Client(i).Metrics(ctxT(t))
		if err != nil || m.NodeID != uint64(i) || m.CurrentLeader != leader.ID {
			t.Fatalf("metrics on %d = %+v, %v", i, m, err)
		}
		if term != 0 && m.CurrentTerm != term {
			t.Fatalf("node %d term %d, others %d", i, m.CurrentTerm, term)
		}
		term = m.CurrentTerm
	}
}

func TestLeaderFailoverAndCatchUp(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	old := cl.WaitLeader()
	c := cl.Client()
	put(t, c, "before", "1")
	oldIdx := int(old.ID)
	cl.Stop(oldIdx)
	nl := cl.WaitLeader()
	if nl.ID == old.ID {
		t.Fatalf("leader did not change")
	}
	var others []int
	for i := 1; i <= 3; i++ {
		if i != oldIdx {
			others = append(others, i)
		}
	}
	c2 := cl.Client(others...)
	put(t, c2, "during", "2")
	if r, err := c2.CAS(ctxT(t), &api.CASRequest{Key: []byte("during"), Expected: []byte("2"), NewValue: []byte("3")}); err != nil || !r.Succeeded {
		t.Fatalf("cas after failover = %+v, %v", r, err)
	}
	if kv := get(t, c2, "before", api.Linearizable); kv == nil {
		t.Fatalf("write before failover lost")
	}
	cl.Start(oldIdx)
	back := cl.Client(oldIdx)
	cl.Eventually(15*time.Second, func() error {
		kv := get(t, back, "during", api.Stale)
		if kv == nil || string(kv.Value) != "3" {
			return fmt.Errorf("restarted node has %+v", kv)
		}
		return nil
	})
}

func TestSnapshotInstallOnLaggingFollower(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{Configure: func(c *node.Config) {
		c.TrailingLogs = 5
		c.WALSegmentSize = 4096
		c.SnapshotThreshold = 1 << 30 // only on demand
	}})
	leader := cl.WaitLeader()
	lag := 1
	if int(leader.ID) == 1 {
		lag = 2
	}
	cl.Stop(lag)
	c := cl.Client(int(leader.ID))
	for i := 0; i < 200; i++ {
		put(t, c, fmt.Sprintf("snap/%03d", i), "v")
	}
	s, err := c.Snapshot(ctxT(t))
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if first := leader.Node.Raft().Metrics().FirstLogIndex; first <= 10 {
		t.Fatalf("leader log starts at %d after snapshot at %d: not compacted", first, s.Index)
	}
	cl.Start(lag)
	cl.WaitApplied(s.Index)
	r, err := cl.Client(lag).Scan(ctxT(t), &api.ScanRequest{Prefix: []byte("snap/"), Consistency: api.Stale})
	if err != nil || len(r.Entries) != 200 {
		t.Fatalf("lagging node scan: %d entries, %v", len(r.Entries), err)
	}
	m, err := cl.Client(lag).Metrics(ctxT(t))
	if err != nil || m.SnapshotIndex < s.Index {
		t.Fatalf("lagging node metrics %+v, %v: want snapshot index >= %d (installed)", m, err, s.Index)
	}
}

func TestWholeClusterRestartKeepsWrites(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	c := cl.Client()
	var revs []uint64
	for i := 0; i < 20; i++ {
		revs = append(revs, put(t, c, fmt.Sprintf("d/%02d", i), fmt.Sprint(i)))
	}
	cl.Close()
	for i := 1; i <= 3; i++ {
		cl.Start(i)
	}
	cl.WaitLeader()
	c = cl.Client()
	for i := 0; i < 20; i++ {
		kv := get(t, c, fmt.Sprintf("d/%02d", i), api.Linearizable)
		if kv == nil || string(kv.Value) != fmt.Sprint(i) || kv.Version != 1 || kv.ModRevision != revs[i] {
			t.Fatalf("after restart d/%02d = %+v; want version 1 at rev %d (applied once)", i, kv, revs[i])
		}
	}
}

func TestMembershipFiveNodes(t *testing.T) {
	cl := clustertest.New(t, 5, clustertest.Options{})
	c := cl.Client()
	put(t, c, "m", "1")
	if _, err := c.ChangeMembership(ctxT(t), &api.ChangeMembershipRequest{Voters: []uint64{1, 2, 3}}); err != nil {
		t.Fatalf("shrink to 3 voters: %v", err)
	}
	st, err := c.Status(ctxT(t))
	if err != nil || len(st.Nodes) != 3 {
		t.Fatalf("status after shrink = %+v, %v", st, err)
	}
	if _, err := c.ChangeMembership(ctxT(t), &api.ChangeMembershipRequest{Voters: []uint64{1, 2, 9}}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("unknown voter: err = %v, want INVALID_ARGUMENT", err)
	}
	if _, err := c.AddLearner(ctxT(t), &api.AddLearnerRequest{NodeID: 6, Addr: "not-an-address"}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("bad address: err = %v, want INVALID_ARGUMENT", err)
	}
	put(t, c, "m", "2")
	if kv := get(t, cl.Client(3), "m", api.Linearizable); kv == nil || string(kv.Value) != "2" {
		t.Fatalf("m = %+v", kv)
	}
}

// TestConcurrentReadsSeeTheirWrites runs many writers that each read their
// own write back linearizably through every node; batched leadership
// confirmations must never serve a read from before it started.
func TestConcurrentReadsSeeTheirWrites(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	clients := []*client.Client{cl.Client(1), cl.Client(2), cl.Client(3)}
	errs := make(chan error, 48)
	for g := 0; g < 48; g++ {
		go func() {
			c := clients[g%3]
			for i := 0; i < 10; i++ {
				k, v := fmt.Sprintf("w/%d", g), fmt.Sprint(i)
				if _, err := c.Put(context.Background(), &api.PutRequest{Key: []byte(k), Value: []byte(v)}); err != nil {
					errs <- err
					return
				}
				r, err := clients[(g+i)%3].Get(context.Background(), &api.GetRequest{Key: []byte(k)})
				if err != nil {
					errs <- err
					return
				}
				if r.KV == nil || string(r.KV.Value) != v {
					errs <- fmt.Errorf("%s: read %+v after writing %s", k, r.KV, v)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 48; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A detached proposal (consensus.ProposeDetached, used by the leader's write
// handlers) gets its outcome: the state machine's result on the leader,
// Raft's refusal, as NOT_LEADER, on a follower.
func TestDetachedProposalOutcomes(t *testing.T) {
	cl := clustertest.New(t, 3, clustertest.Options{})
	leader := cl.WaitLeader()
	var follower *clustertest.Member
	for _, m := range cl.Members {
		if m.ID != leader.ID {
			follower = m
		}
	}
	cmd, err := kv.EncodeCommand(&kv.Command{NowMs: 1, Txn: &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnPut, Key: []byte("detached"), Value: []byte("v")}}}})
	if err != nil {
		t.Fatal(err)
	}
	propose := func(m *clustertest.Member) (any, error) {
		results, failures := make(chan any, 2), make(chan error, 2)
		m.Node.Raft().ProposeDetached(cmd, func(res any) { results <- res }, func(err error) { failures <- err })
		select {
		case res := <-results:
			return res, nil
		case err := <-failures:
			return nil, err
		case <-time.After(10 * time.Second):
			t.Fatalf("node %d: no outcome for a detached proposal", m.ID)
		}
		return nil, nil
	}
	res, err := propose(leader)
	if r, ok := res.(*kv.ApplyResult); err != nil || !ok || r.Err != nil || r.Txn == nil {
		t.Fatalf("on the leader: result %#v, error %v; want an applied transaction", res, err)
	}
	_, err = propose(follower)
	if api.CodeOf(err) != api.CodeNotLeader {
		t.Fatalf("on a follower: error %v; want NOT_LEADER", err)
	}
}
