package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/hooks"
	"github.com/aspen-dev/aspen/internal/node"
)

// recorder is an in-process handler that keeps the events it receives.
type recorder struct {
	mu  sync.Mutex
	evs []hooks.Event
}

func (r *recorder) fn(_ context.Context, ev *hooks.Event) error {
	r.mu.Lock()
	r.evs = append(r.evs, *ev)
	r.mu.Unlock()
	return nil
}

// find returns the events of type typ whose payload contains every one of
// the fragments.
func (r *recorder) find(typ string, fragments ...string) []hooks.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hooks.Event
outer:
	for _, ev := range r.evs {
		if ev.EventType != typ {
			continue
		}
		for _, f := range fragments {
			if !strings.Contains(string(ev.Payload), f) {
				continue outer
			}
		}
		out = append(out, ev)
	}
	return out
}

func (r *recorder) waitFor(t *testing.T, typ string, fragments ...string) hooks.Event {
	t.Helper()
	var ev hooks.Event
	clustertest.Eventually(t, 30*time.Second, func() error {
		found := r.find(typ, fragments...)
		if len(found) == 0 {
			r.mu.Lock()
			defer r.mu.Unlock()
			return fmt.Errorf("no %s event with %q among %d events (last: %+v)", typ, fragments, len(r.evs), r.evs[max(len(r.evs)-1, 0):])
		}
		ev = found[0]
		return nil
	})
	return ev
}

func payloadIndex(t *testing.T, ev hooks.Event) uint64 {
	t.Helper()
	var p struct{ Index uint64 }
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Errorf("%s payload %s: %v", ev.EventType, ev.Payload, err)
	}
	return p.Index
}

// TestHooksNodeEvents: events that do not come from KV writes (snapshot,
// blob) are recorded through the leader and fired once, with an ID, to an
// in-process subscription made with Node.Subscribe; unsubscribing stops
// deliveries; hook.publish refuses KV event types and oversized batches.
func TestHooksNodeEvents(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{})
	cl := c.Client(1)
	n := c.Members[0].Node
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := n.Subscribe("bad", "a.>.b", func(context.Context, *hooks.Event) error { return nil }); err == nil {
		t.Error("Subscribe with an invalid pattern succeeded")
	}
	var all, kvOnly recorder
	unsubscribe, err := n.Subscribe("all", "hooks.>", all.fn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Subscribe("kv", "kv.put.>", kvOnly.fn); err != nil {
		t.Fatal(err)
	}

	snap, err := cl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := all.waitFor(t, hooks.TypeSnapshotCreated, `"node_id":1`)
	if p := payloadIndex(t, ev); ev.Topic != "hooks.system.snapshot_created" || ev.ID == "" || ev.LogIndex == 0 || p == 0 || p > snap.Index {
		t.Errorf("snapshot_created event = %+v (%s); want index 1..%d", ev, ev.Payload, snap.Index)
	}

	add, err := cl.BlobAdd(ctx, strings.NewReader("hello hooks"))
	if err != nil {
		t.Fatal(err)
	}
	h := `"hash":"` + add.Hash + `"`
	all.waitFor(t, hooks.TypeBlobAdded, h)
	var got strings.Builder
	if _, err := cl.BlobGet(ctx, add.Hash, &got); err != nil || got.String() != "hello hooks" {
		t.Fatalf("BlobGet = %q, %v", got.String(), err)
	}
	all.waitFor(t, hooks.TypeBlobDownloaded, h, `"length":11`)
	if _, err := cl.BlobProtect(ctx, add.Hash, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.BlobProtect(ctx, add.Hash, "two"); err != nil {
		t.Fatal(err)
	}
	all.waitFor(t, hooks.TypeBlobProtected, h, `"tag":"two"`)
	if _, err := cl.BlobUnprotect(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	all.waitFor(t, hooks.TypeBlobUnprotected, `"tag":"one"`)
	if _, err := cl.BlobDelete(ctx, add.Hash, false); err != nil {
		t.Fatal(err)
	}
	all.waitFor(t, hooks.TypeBlobDeleted, h)
	// adding the same bytes again changes nothing and fires nothing
	if _, err := cl.BlobAdd(ctx, strings.NewReader("hello hooks")); err != nil {
		t.Fatal(err)
	}

	// every event once, with a distinct ID, in the order of the operations
	ids := map[string]bool{}
	var order []string
	all.mu.Lock()
	for _, ev := range all.evs {
		if ids[ev.ID] {
			t.Errorf("ID %s delivered twice", ev.ID)
		}
		ids[ev.ID] = true
		if strings.HasPrefix(ev.EventType, "blob_") {
			order = append(order, ev.EventType)
		}
	}
	all.mu.Unlock()
	want := "blob_added,blob_downloaded,blob_protected,blob_protected,blob_unprotected,blob_deleted"
	if got := strings.Join(order, ","); got != want {
		t.Errorf("blob events %s; want %s", got, want)
	}

	// a key whose TTL passes fires ttl_expired, naming it
	if _, err := cl.Put(ctx, &api.PutRequest{Key: []byte("short-lived"), Value: []byte("x"), TTLMs: 100}); err != nil {
		t.Fatal(err)
	}
	all.waitFor(t, hooks.TypeTTLExpired, `"short-lived"`, `"count":1`)

	// unsubscribed: "all" gets nothing more, "kv" still gets its events
	unsubscribe()
	if _, err := cl.Put(ctx, &api.PutRequest{Key: []byte("after"), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	kvEv := kvOnly.waitFor(t, hooks.TypeWriteCommitted, `"key":"after"`)
	if len(all.find(hooks.TypeWriteCommitted, `"key":"after"`)) != 0 {
		t.Error("an unsubscribed handler received an event")
	}
	if !strings.HasPrefix(kvEv.ID, fmt.Sprint(kvEv.LogIndex)+"-") {
		t.Errorf("KV event ID %q does not start with its revision %d", kvEv.ID, kvEv.LogIndex)
	}

	// hook.publish is reserved to nodes: a client holding the cluster ticket
	// cannot inject node events (it has hook.trigger)
	var resp api.HookPublishResponse
	health := api.HookPublishRequest{Events: []api.HookPublishedEvent{{EventType: hooks.TypeHealthChanged, NodeID: 1, Payload: []byte(`{}`)}}}
	if err := cl.Call(ctx, api.OpHookPublish, &health, &resp); api.CodeOf(err) != api.CodeUnauthorized {
		t.Errorf("a client publishing a node event: %v; want UNAUTHORIZED", err)
	}
	// and a node's request is still checked: node events only, at most 16
	kvEvent := api.HookPublishRequest{Events: []api.HookPublishedEvent{{EventType: hooks.TypeWriteCommitted, NodeID: 1}}}
	if _, err := n.HookPublish(ctx, &kvEvent); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("publishing write_committed: %v; want INVALID_ARGUMENT", err)
	}
	many := api.HookPublishRequest{Events: make([]api.HookPublishedEvent, api.MaxHookPublishEvents+1)}
	for i := range many.Events {
		many.Events[i] = api.HookPublishedEvent{EventType: hooks.TypeHealthChanged, NodeID: 1}
	}
	if _, err := n.HookPublish(ctx, &many); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("publishing %d events: %v; want INVALID_ARGUMENT", len(many.Events), err)
	}
	bad := api.HookPublishRequest{Events: []api.HookPublishedEvent{{EventType: hooks.TypeHealthChanged, Payload: []byte("{bad")}}}
	if _, err := n.HookPublish(ctx, &bad); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("publishing invalid JSON: %v; want INVALID_ARGUMENT", err)
	}
	// blob.register and blob.forget are the nodes' too
	if err := cl.Call(ctx, api.OpBlobRegister, &api.BlobRegisterRequest{Hash: add.Hash, SizeBytes: 11, NodeID: 1}, &struct{}{}); api.CodeOf(err) != api.CodeUnauthorized {
		t.Errorf("a client registering a blob copy: %v; want UNAUTHORIZED", err)
	}
}

// TestHooksSnapshotInstalledOnce: on 3 nodes an in_process handler is
// stored and every node subscribes its function (the embedding pattern); a
// snapshot taken on a
// follower and one installed on a lagging follower are each recorded
// through the leader and delivered once, to one node.
func TestHooksSnapshotInstalledOnce(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(cfg *node.Config) {
		cfg.TrailingLogs = 5
		cfg.WALSegmentSize = 4096 // so a snapshot really drops old log entries
		cfg.SnapshotThreshold = 1 << 30
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var rec recorder
	// the handler is stored in the cluster, so every node (a restarted one
	// too) records system events; every node runs its function
	if _, err := c.Client(1).HookAdd(ctx, &api.HookAddRequest{Handler: api.HookHandler{Name: "sys", Pattern: "hooks.system.>", Type: api.HookInProcess}}); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if _, err := m.Node.Subscribe("sys", "hooks.system.>", rec.fn); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader()
	var follower, lagging int
	for _, m := range c.Members {
		switch {
		case m.ID == leader.ID:
		case follower == 0:
			follower = int(m.ID)
		default:
			lagging = int(m.ID)
		}
	}
	snap, err := c.Client(follower).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := rec.waitFor(t, hooks.TypeSnapshotCreated, fmt.Sprintf(`"node_id":%d`, follower))
	if p := payloadIndex(t, ev); p == 0 || p > snap.Index {
		t.Errorf("snapshot_created payload %s; want index 1..%d", ev.Payload, snap.Index)
	}

	c.Stop(lagging)
	cl := c.Client(int(leader.ID))
	for i := range 100 {
		if _, err := cl.Put(ctx, &api.PutRequest{Key: fmt.Appendf(nil, "lag/%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	c.Start(lagging)
	inst := rec.waitFor(t, hooks.TypeSnapshotInstalled, fmt.Sprintf(`"node_id":%d`, lagging))
	if payloadIndex(t, inst) == 0 {
		t.Errorf("snapshot_installed payload %s", inst.Payload)
	}
	// one more event after it, so the check below sees everything before it
	if _, err := c.Client(follower).Snapshot(ctx); err != nil && api.CodeOf(err) != api.CodeConflict {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	seen := map[string]int{}
	for _, ev := range rec.evs {
		if seen[ev.ID]++; seen[ev.ID] > 1 {
			t.Errorf("event %s (%s) delivered twice", ev.ID, ev.EventType)
		}
	}
}

// TestHooksHealthChanged: a follower cut off from the others loses its
// leader (degraded); once healed it has one again (healthy). Each change
// that held for a second is recorded through the leader when the follower
// can reach it, and fired once, in order.
func TestHooksHealthChanged(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Client(1, 2, 3).HookAdd(ctx, &api.HookAddRequest{Handler: api.HookHandler{Name: "health", Pattern: "hooks.system.health_changed", Type: api.HookInProcess}}); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	for _, m := range c.Members {
		if _, err := m.Node.Subscribe("health", "hooks.system.health_changed", rec.fn); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader()
	f := 1
	if leader.ID == 1 {
		f = 2
	}
	fn := c.Members[f-1].Node
	// a status is reported once it held for a second; the first one that
	// held is the baseline
	holds := func(what string, cond func() bool) {
		t.Helper()
		var since time.Time
		clustertest.Eventually(t, 20*time.Second, func() error {
			if !cond() {
				since = time.Time{}
				return fmt.Errorf("node %d is not %s", f, what)
			}
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) < 1500*time.Millisecond {
				return fmt.Errorf("node %d %s for less than 1.5 s", f, what)
			}
			return nil
		})
	}
	hasLeader := func() bool { _, id := fn.Raft().Leader(); return id != 0 }
	holds("healthy", hasLeader)
	c.Isolate(f)
	holds("degraded", func() bool { return !hasLeader() })
	c.Heal()
	node := fmt.Sprintf(`"node_id":%d`, f)
	rec.waitFor(t, hooks.TypeHealthChanged, node, `"status":"healthy"`, `"previous":"degraded"`)
	evs := rec.find(hooks.TypeHealthChanged, node)
	if len(evs) != 2 || !strings.Contains(string(evs[0].Payload), `"status":"degraded"`) {
		t.Errorf("health events of node %d: %d; want degraded then healthy", f, len(evs))
	}
	for _, ev := range evs {
		t.Logf("%s %s %s", ev.ID, ev.EventType, ev.Payload)
	}
}
