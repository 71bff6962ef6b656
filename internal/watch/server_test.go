package watch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/kv"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
	"github.com/aspen-dev/aspen/internal/watch"
)

// fixture is one store served by a watch server on a loopback endpoint;
// writes are applied to the store directly, as Raft would.
type fixture struct {
	t     *testing.T
	store *kv.Store
	ep    *transport.Endpoint
	cred  []byte

	mu    sync.Mutex
	index uint64
}

func newFixture(t *testing.T, retention uint64, keepalive time.Duration) *fixture {
	t.Helper()
	st, err := kv.OpenWith(filepath.Join(t.TempDir(), "state.db"), nil, kv.Options{HistoryRetention: retention})
	if err != nil {
		t.Fatal(err)
	}
	id, err := transport.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := transport.Listen(transport.Config{Identity: id, Bind: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: st, ep: ep, cred: []byte("test client credential 32 bytes!")}
	srv := &watch.Server{Store: st, Credential: f.cred, Keepalive: keepalive}
	ep.Handle(api.ALPNWatch, func(ctx context.Context, c *transport.Conn) { srv.ServeConn(ctx, c) })
	ep.Serve()
	t.Cleanup(func() {
		_ = ep.Close()
		_ = st.Close()
	})
	return f
}

func (f *fixture) client(cred []byte) *client.Client {
	f.t.Helper()
	tk := ticket.Ticket{ClusterID: "00112233445566778899aabbccddeeff", Credential: cred,
		Peers: []ticket.Peer{{Key: f.ep.Identity().Public(), Addrs: []string{f.ep.Addr().String()}}}}
	c, err := client.New(client.Config{Ticket: tk.String(), Timeout: 5 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Close() })
	return c
}

// apply applies one transaction of ops at the next index and returns it.
func (f *fixture) apply(ops ...api.TxnOp) uint64 {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	b, err := kv.EncodeCommand(&kv.Command{Txn: &api.TxnRequest{Success: ops}})
	if err != nil {
		f.t.Fatal(err)
	}
	res := f.store.Apply(&raft.Log{Type: raft.LogCommand, Index: f.index, Term: 1, Data: b}).(*kv.ApplyResult)
	if res.Err != nil {
		f.t.Fatalf("apply at %d: %v", f.index, res.Err)
	}
	return f.index
}

func put(k, v string) api.TxnOp {
	return api.TxnOp{Kind: api.TxnPut, Key: []byte(k), Value: []byte(v)}
}

func del(k string) api.TxnOp { return api.TxnOp{Kind: api.TxnDelete, Key: []byte(k)} }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func next(t *testing.T, ch <-chan client.WatchEvent) client.WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return client.WatchEvent{}
}

func text(ev client.WatchEvent) string {
	if ev.Err != nil {
		return "error: " + ev.Err.Error()
	}
	s := fmt.Sprintf("%d:%s:%s", ev.Revision, ev.Type, ev.Key)
	if ev.Type == api.WatchPut {
		s += "=" + string(ev.Value)
	}
	if ev.HasPrevValue {
		s += "<" + string(ev.PrevValue)
	}
	return s
}

func expect(t *testing.T, ch <-chan client.WatchEvent, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := text(next(t, ch)); got != w {
			t.Fatalf("event = %q; want %q", got, w)
		}
	}
}

func TestWatchFromRevisionAndLive(t *testing.T) {
	f := newFixture(t, 0, 100*time.Millisecond)
	f.apply(put("a/1", "x"), put("b", "y"))
	f.apply(put("a/1", "z"))
	f.apply(del("a/1"))
	c := f.client(f.cred)

	ch, err := c.Watch(ctxT(t), []byte("a/"), client.WatchOptions{FromRevision: 1, PrevValue: true})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "1:put:a/1=x", "2:put:a/1=z<x", "3:delete:a/1<z")
	f.apply(put("other", "1"))
	f.apply(put("a/2", "live"))
	expect(t, ch, "5:put:a/2=live")

	// without prev values, from now
	ch2, err := c.Watch(ctxT(t), nil, client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.apply(put("a/2", "again"), put("c", "1"))
	expect(t, ch2, "6:put:a/2=again", "6:put:c=1")
	expect(t, ch, "6:put:a/2=again<live")
}

func TestWatchLargeRevisionIsSplit(t *testing.T) {
	f := newFixture(t, 0, time.Second)
	big := strings.Repeat("v", 700<<10) // two of these exceed one frame's budget
	f.apply(put("k1", big), put("k2", big), put("k3", big))
	f.apply(put("k4", "small"))
	ch, err := f.client(f.cred).Watch(ctxT(t), nil, client.WatchOptions{FromRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		ev := next(t, ch)
		if ev.Err != nil || ev.Revision != 1 || string(ev.Key) != fmt.Sprintf("k%d", i) || !bytes.Equal(ev.Value, []byte(big)) {
			t.Fatalf("event %d = rev %d key %q (%d bytes), err %v", i, ev.Revision, ev.Key, len(ev.Value), ev.Err)
		}
	}
	expect(t, ch, "2:put:k4=small")
}

func TestWatchCompactedAtStart(t *testing.T) {
	f := newFixture(t, 3, time.Second)
	for i := range 10 {
		f.apply(put("k", fmt.Sprint(i)))
	}
	c := f.client(f.cred)
	_, err := c.Watch(ctxT(t), nil, client.WatchOptions{FromRevision: 2})
	var ce *api.CompactedError
	if !errors.As(err, &ce) || !errors.Is(err, api.ErrCompacted) || ce.Oldest != 8 || ce.Requested != 2 {
		t.Fatalf("Watch(from 2) error = %v; want a CompactedError with oldest revision 8", err)
	}
	if api.ExitCode(err) != 1 {
		t.Fatalf("exit code of %v = %d; want 1", err, api.ExitCode(err))
	}
	ch, err := c.Watch(ctxT(t), nil, client.WatchOptions{FromRevision: ce.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "8:put:k=7", "9:put:k=8", "10:put:k=9")
}

// TestWatchSlowConsumerGetsCompacted: a consumer that stops reading lags
// without the server buffering for it; once the history passes it, the watch
// ends with COMPACTED.
func TestWatchSlowConsumerGetsCompacted(t *testing.T) {
	f := newFixture(t, 50, 50*time.Millisecond)
	c := f.client(f.cred)
	ch, err := c.Watch(ctxT(t), nil, client.WatchOptions{FromRevision: 1, Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	val := strings.Repeat("x", 64<<10)
	for i := range 400 { // 25 MiB of history, far beyond the stream windows
		f.apply(put(fmt.Sprintf("k%03d", i), val))
	}
	var last uint64
	for {
		ev := next(t, ch)
		if ev.Err != nil {
			if !errors.Is(ev.Err, api.ErrCompacted) {
				t.Fatalf("watch ended with %v; want COMPACTED", ev.Err)
			}
			break
		}
		if ev.Revision != last+1 {
			t.Fatalf("event revision %d after %d", ev.Revision, last)
		}
		last = ev.Revision
	}
	if last >= 400 {
		t.Fatalf("consumer received everything (%d); want it to lag", last)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after the final error")
	}
}

func TestWatchUnauthorized(t *testing.T) {
	f := newFixture(t, 0, time.Second)
	_, err := f.client([]byte("wrong credential")).Watch(ctxT(t), nil, client.WatchOptions{})
	if !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("Watch with a wrong credential: %v; want UNAUTHORIZED", err)
	}
}

func TestWatchCancel(t *testing.T) {
	f := newFixture(t, 0, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := f.client(f.cred).Watch(ctx, nil, client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for ev := range ch {
		if ev.Err == nil {
			continue
		}
		if !errors.Is(ev.Err, context.Canceled) {
			t.Fatalf("final error = %v; want context.Canceled", ev.Err)
		}
	}
}
