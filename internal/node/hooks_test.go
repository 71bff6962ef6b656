package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/hooks"
)

// hookLines reads the events a shell hook appended to path, one JSON
// document per line.
func hookLines(t *testing.T, path string) []hooks.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []hooks.Event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var ev hooks.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("hook output line %q: %v", l, err)
		}
		out = append(out, ev)
	}
	return out
}

func kvKeys(evs []hooks.Event) []string {
	var keys []string
	for _, ev := range evs {
		var p hooks.KVPayload
		json.Unmarshal(ev.Payload, &p)
		keys = append(keys, ev.EventType+":"+p.Key)
	}
	return keys
}

// TestHooksEndToEnd runs the hook system of a 1-node cluster through the
// node wiring: handlers added through the client fire on KV writes and
// deletes (shell and webhook), trigger and metrics work, and after a
// restart the handlers are still stored and already fired events are not
// fired again.
func TestHooksEndToEnd(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{})
	cl := c.Client(1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	list, err := cl.HookList(ctx)
	if err != nil {
		t.Fatalf("hook list: %v", err)
	}
	if len(list.Handlers) != 0 {
		t.Fatalf("hook list on a new cluster = %+v", list)
	}

	out := filepath.Join(t.TempDir(), "events.jsonl")
	if _, err := cl.HookAdd(ctx, &api.HookAddRequest{Handler: api.HookHandler{
		Name: "app-shell", Pattern: "kv.*.app.>", Type: api.HookShell,
		Command: `printf '%s\n' "$ASPEN_HOOK_EVENT" >> "` + out + `"`,
	}}); err != nil {
		t.Fatalf("hook add shell: %v", err)
	}
	const secret = "whsec"
	var mu sync.Mutex
	var webhook []hooks.Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !hooks.Verify(secret, body, r.Header.Get(hooks.HeaderSignature)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev hooks.Event
		json.Unmarshal(body, &ev)
		mu.Lock()
		webhook = append(webhook, ev)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	if _, err := cl.HookAdd(ctx, &api.HookAddRequest{Handler: api.HookHandler{
		Name: "web", Pattern: "hooks.kv.*", Type: api.HookWebhook, URL: srv.URL, Secret: secret,
	}}); err != nil {
		t.Fatalf("hook add webhook: %v", err)
	}
	// same name again: CONFLICT; invalid: INVALID_ARGUMENT
	if _, err := cl.HookAdd(ctx, &api.HookAddRequest{Handler: api.HookHandler{Name: "web", Pattern: ">", Type: api.HookShell, Command: "true"}}); api.CodeOf(err) != api.CodeConflict {
		t.Errorf("adding a duplicate: %v; want CONFLICT", err)
	}
	if _, err := cl.HookAdd(ctx, &api.HookAddRequest{Handler: api.HookHandler{Name: "bad", Pattern: "a.>.b", Type: api.HookShell, Command: "true"}}); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("adding an invalid pattern: %v; want INVALID_ARGUMENT", err)
	}
	if list, err = cl.HookList(ctx); err != nil || len(list.Handlers) != 2 || list.Handlers[1].HasSecret != true || list.Handlers[1].RetryCount != 3 {
		t.Fatalf("hook list = %+v, %v", list, err)
	}

	put := func(k, v string) {
		t.Helper()
		if _, err := cl.Put(ctx, &api.PutRequest{Key: []byte(k), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	put("app/x", "1")
	put("other", "2")
	if _, err := cl.Delete(ctx, &api.DeleteRequest{Key: []byte("app/x")}); err != nil {
		t.Fatal(err)
	}
	want := "write_committed:app/x,delete_committed:app/x"
	clustertest.Eventually(t, 20*time.Second, func() error {
		if got := strings.Join(kvKeys(hookLines(t, out)), ","); got != want {
			return fmt.Errorf("shell hook saw %q; want %q", got, want)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(kvKeys(webhook), ","); got != "write_committed:app/x,write_committed:other,delete_committed:app/x" {
			return fmt.Errorf("webhook saw %q", got)
		}
		return nil
	})
	if ev := hookLines(t, out)[0]; ev.LogIndex == 0 || ev.NodeID != 1 || ev.Topic != "hooks.kv.write_committed" {
		t.Errorf("event = %+v", ev)
	}

	// trigger: a synthetic event goes to the matching handlers only
	tr, err := cl.HookTrigger(ctx, &api.HookTriggerRequest{EventType: "write_committed", Payload: []byte(`{"key":"synthetic"}`)})
	if err != nil || !tr.IsSuccess || tr.DispatchedCount != 1 {
		t.Errorf("hook trigger write_committed = %+v, %v; want 1 dispatched (web)", tr, err)
	}
	if tr, err = cl.HookTrigger(ctx, &api.HookTriggerRequest{EventType: "leader_elected", Payload: []byte(`{"node_id":1,"term":42}`)}); err != nil || tr.DispatchedCount != 0 {
		t.Errorf("hook trigger leader_elected = %+v, %v", tr, err)
	}
	if _, err := cl.HookTrigger(ctx, &api.HookTriggerRequest{EventType: "not_an_event"}); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("hook trigger not_an_event: %v; want INVALID_ARGUMENT", err)
	}
	m, err := cl.HookMetrics(ctx, "web")
	if err != nil || len(m.Handlers) != 1 || m.Handlers[0].Fired != 4 || m.Handlers[0].Succeeded != 4 || m.TotalEventsProcessed < 5 {
		t.Errorf("hook metrics web = %+v, %v; want 4 fired and succeeded", m, err)
	}

	// a hook URL fires its event without a ticket
	cu, err := cl.HookCreateURL(ctx, &api.HookCreateURLRequest{EventType: "write_committed", Payload: []byte(`{"key":"from-url"}`), ExpiresHours: 1})
	if err != nil || !strings.HasPrefix(cu.URL, "aspenhook") || cu.PeerCount != 1 {
		t.Fatalf("hook create-url = %+v, %v", cu, err)
	}
	if tr, err := client.TriggerHookURL(ctx, cu.URL, nil); err != nil || tr.DispatchedCount != 1 || !tr.IsSuccess {
		t.Errorf("trigger-url = %+v, %v; want 1 dispatched", tr, err)
	}
	mu.Lock()
	if last := webhook[len(webhook)-1]; string(last.Payload) != `{"key":"from-url"}` || !last.Synthetic {
		t.Errorf("webhook got %+v from the hook URL", last)
	}
	mu.Unlock()
	forged, _ := hooks.ParseURL(cu.URL, time.Now())
	forged.Token[0] ^= 1
	if _, err := client.TriggerHookURL(ctx, forged.String(), nil); api.CodeOf(err) != api.CodeUnauthorized {
		t.Errorf("trigger-url with a forged token: %v; want UNAUTHORIZED", err)
	}
	if _, err := cl.HookCreateURL(ctx, &api.HookCreateURLRequest{EventType: "ref_updated"}); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("create-url ref_updated: %v; want INVALID_ARGUMENT", err)
	}

	// restart: handlers survive, fired events do not fire again
	c.Restart(1)
	c.WaitLeader()
	cl = c.Client(1)
	if list, err = cl.HookList(ctx); err != nil || len(list.Handlers) != 2 {
		t.Fatalf("hook list after restart = %+v, %v", list, err)
	}
	put("app/y", "3")
	want += ",write_committed:app/y"
	clustertest.Eventually(t, 20*time.Second, func() error {
		if got := strings.Join(kvKeys(hookLines(t, out)), ","); got != want {
			return fmt.Errorf("shell hook saw %q; want %q", got, want)
		}
		return nil
	})

	// remove: no more deliveries
	if _, err := cl.HookRemove(ctx, "app-shell"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.HookRemove(ctx, "app-shell"); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("removing twice: %v; want NOT_FOUND", err)
	}
	put("app/z", "4")
	clustertest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range webhook {
			if strings.Contains(string(ev.Payload), "app/z") {
				return nil
			}
		}
		return errors.New("webhook has not seen app/z")
	})
	if got := strings.Join(kvKeys(hookLines(t, out)), ","); got != want {
		t.Errorf("after remove the shell hook saw %q; want %q", got, want)
	}
}

// TestHooksFailover: on 3 nodes only the leader fires; after the leader is
// stopped (with nothing in flight) the new one fires leader_elected and
// continues from the stored cursor, so every event fires exactly once;
// removing a node fires node_removed and membership_changed.
func TestHooksFailover(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	cl := c.Client(1, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	kvOut, clusterOut := filepath.Join(dir, "kv.jsonl"), filepath.Join(dir, "cluster.jsonl")
	for name, h := range map[string]api.HookHandler{
		"kv":      {Pattern: "kv.put.f.>", Type: api.HookShell, Command: `printf '%s\n' "$ASPEN_HOOK_EVENT" >> "` + kvOut + `"`},
		"cluster": {Pattern: "hooks.cluster.>", Type: api.HookShell, Command: `printf '%s\n' "$ASPEN_HOOK_EVENT" >> "` + clusterOut + `"`},
	} {
		h.Name = name
		if _, err := cl.HookAdd(ctx, &api.HookAddRequest{Handler: h}); err != nil {
			t.Fatalf("hook add %s: %v", name, err)
		}
	}
	count := func() map[string]int {
		m := map[string]int{}
		for _, k := range kvKeys(hookLines(t, kvOut)) {
			m[k]++
		}
		return m
	}
	waitKeys := func(n int) map[string]int {
		var got map[string]int
		clustertest.Eventually(t, 30*time.Second, func() error {
			got = count()
			for i := 1; i <= n; i++ {
				if got[fmt.Sprintf("write_committed:f/%d", i)] == 0 {
					return fmt.Errorf("f/%d not fired yet; fired %v", i, got)
				}
			}
			return nil
		})
		return got
	}
	var last uint64
	for i := 1; i <= 5; i++ {
		r, err := cl.Put(ctx, &api.PutRequest{Key: []byte(fmt.Sprintf("f/%d", i)), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		last = r.Revision
	}
	for k, n := range waitKeys(5) {
		if n != 1 {
			t.Errorf("%s fired %d times before the failover; want once", k, n)
		}
	}
	// the stored cursor (readable, not writable, through the KV API) is past
	// f/5: nothing is in flight when the leader stops
	clustertest.Eventually(t, 30*time.Second, func() error {
		r, err := cl.Get(ctx, &api.GetRequest{Key: []byte("_system:hooks:cursor")})
		if err != nil || r.KV == nil {
			return fmt.Errorf("hook cursor: %+v, %v", r, err)
		}
		rev, _, _ := strings.Cut(string(r.KV.Value), "-")
		if n, _ := strconv.ParseUint(rev, 10, 64); n < last {
			return fmt.Errorf("hook cursor %s is before revision %d", r.KV.Value, last)
		}
		return nil
	})

	old := c.WaitLeader()
	c.Stop(int(old.ID))
	leader := c.WaitLeader()
	for i := 6; i <= 8; i++ {
		if _, err := cl.Put(ctx, &api.PutRequest{Key: []byte(fmt.Sprintf("f/%d", i)), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	got := waitKeys(8)
	for i := 1; i <= 8; i++ {
		k := fmt.Sprintf("write_committed:f/%d", i)
		if n := got[k]; n != 1 {
			t.Errorf("%s fired %d times", k, n)
		}
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, ev := range hookLines(t, clusterOut) {
			if ev.EventType == hooks.TypeLeaderElected && ev.NodeID == leader.ID {
				return nil
			}
		}
		return fmt.Errorf("no leader_elected from node %d", leader.ID)
	})

	if _, err := cl.Remove(ctx, &api.RemoveRequest{NodeID: old.ID}); err != nil {
		t.Fatalf("remove %d: %v", old.ID, err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		var types []string
		for _, ev := range hookLines(t, clusterOut) {
			types = append(types, ev.EventType)
		}
		s := strings.Join(types, ",")
		if !strings.Contains(s, "node_removed,membership_changed") {
			return fmt.Errorf("cluster events %s; want node_removed,membership_changed", s)
		}
		return nil
	})

	// a hook URL sent to a follower is forwarded to the leader
	cu, err := cl.HookCreateURL(ctx, &api.HookCreateURLRequest{EventType: "node_added"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := hooks.ParseURL(cu.URL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leader = c.WaitLeader()
	for i, p := range u.Peers {
		if p.Key != leader.Key {
			u.Peers[0], u.Peers[i] = u.Peers[i], u.Peers[0]
			break
		}
	}
	if u.Peers[0].Key == leader.Key {
		t.Fatal("no follower in the hook URL")
	}
	if tr, err := client.TriggerHookURL(ctx, u.String(), []byte(`{"via":"follower"}`)); err != nil || tr.DispatchedCount != 1 {
		t.Errorf("trigger-url through a follower = %+v, %v; want 1 dispatched", tr, err)
	}
}
