package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
)

func intp(i int) *int { return &i }

func newEvent(t *testing.T, typ, payload string, extra ...string) *Event {
	t.Helper()
	ev, err := NewEvent(typ, []byte(payload), 1, extra...)
	if err != nil {
		t.Fatalf("NewEvent(%q): %v", typ, err)
	}
	return ev
}

// TestWebhookRetries: a real HTTP server on 127.0.0.1 fails the first two
// deliveries; the third succeeds, and the event is delivered (accepted)
// exactly once with a valid signature and the same event ID on every
// attempt.
func TestWebhookRetries(t *testing.T) {
	const secret = "s3cret"
	var calls atomic.Int32
	var mu sync.Mutex
	var delivered [][]byte
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !Verify(secret, body, r.Header.Get(HeaderSignature)) {
			t.Errorf("bad signature %q", r.Header.Get(HeaderSignature))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if id := r.Header.Get(HeaderEventID); id != "7-1" {
			t.Errorf("attempt %d carried %s %q; want 7-1 on every attempt", calls.Load()+1, HeaderEventID, id)
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		delivered = append(delivered, body)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	d := New(Options{Backoff: 10 * time.Millisecond})
	if err := d.SetHandlers([]api.HookHandler{{Name: "web", Pattern: "hooks.kv.*", Type: api.HookWebhook, URL: srv.URL + "/hook", Secret: secret}}); err != nil {
		t.Fatal(err)
	}
	ev := newEvent(t, TypeWriteCommitted, `{"key":"k"}`)
	ev.ID = HistoryID(7, 1)
	res := d.Dispatch(context.Background(), ev)
	if res.Dispatched != 1 || len(res.Failures) != 0 {
		t.Fatalf("Dispatch = %+v; want 1 dispatched, no failures", res)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("server saw %d deliveries; want 3", got)
	}
	if len(delivered) != 1 {
		t.Fatalf("accepted %d deliveries; want 1", len(delivered))
	}
	var got Event
	if err := json.Unmarshal(delivered[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Topic != "hooks.kv.write_committed" || string(got.Payload) != `{"key":"k"}` {
		t.Errorf("delivered %+v", got)
	}
	m := d.Metrics("web").Handlers
	if len(m) != 1 || m[0].Fired != 1 || m[0].Succeeded != 1 || m[0].Failed != 0 || m[0].Attempts != 3 {
		t.Errorf("metrics = %+v; want fired 1, succeeded 1, attempts 3", m)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	d := New(Options{Backoff: time.Millisecond})
	d.SetHandlers([]api.HookHandler{{Name: "web", Pattern: ">", Type: api.HookWebhook, URL: srv.URL, RetryCount: intp(1)}})
	res := d.Dispatch(context.Background(), newEvent(t, TypeLeaderElected, ""))
	if len(res.Failures) != 1 || res.Failures[0] != "web" {
		t.Fatalf("Dispatch = %+v; want web to fail", res)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d attempts; want 2 (1 + 1 retry)", got)
	}
	if m := d.Metrics("").Handlers[0]; m.Failed != 1 || !strings.Contains(m.LastError, "500") {
		t.Errorf("metrics = %+v", m)
	}
}

func TestShellHook(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "event.json")
	d := New(Options{})
	err := d.SetHandlers([]api.HookHandler{{
		Name: "sh", Pattern: "kv.put.users.>", Type: api.HookShell,
		Command: `printf '%s' "$ASPEN_HOOK_EVENT" > "` + out + `"; echo "$ASPEN_HOOK_TOPIC $ASPEN_EVENT_SUBJECT $ASPEN_HOOK_EVENT_TYPE" > "` + out + `.env"`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvent(t, TypeWriteCommitted, `{"key":"users/1"}`, KeySubject("put", []byte("users/1")))
	if res := d.Dispatch(context.Background(), ev); res.Dispatched != 1 || len(res.Failures) != 0 {
		t.Fatalf("Dispatch = %+v", res)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got Event
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("file holds %q: %v", b, err)
	}
	if got.EventType != TypeWriteCommitted || string(got.Payload) != `{"key":"users/1"}` {
		t.Errorf("event = %+v", got)
	}
	env, _ := os.ReadFile(out + ".env")
	if want := "hooks.kv.write_committed kv.put.users.1 write_committed\n"; string(env) != want {
		t.Errorf("env = %q; want %q", env, want)
	}
	// an event on another key subject does not match
	other := newEvent(t, TypeWriteCommitted, `{}`, KeySubject("put", []byte("groups/1")))
	if res := d.Dispatch(context.Background(), other); res.Dispatched != 0 {
		t.Errorf("Dispatch of groups/1 = %+v; want 0 dispatched", res)
	}
}

func TestShellHookTimeoutAndOutputCap(t *testing.T) {
	d := New(Options{Backoff: time.Millisecond})
	d.SetHandlers([]api.HookHandler{
		{Name: "slow", Pattern: ">", Type: api.HookShell, Command: "sleep 10", TimeoutMs: 100, RetryCount: intp(0)},
		{Name: "loud", Pattern: ">", Type: api.HookShell, Command: "head -c 200000 /dev/zero | tr '\\0' x; exit 3", RetryCount: intp(0)},
	})
	start := time.Now()
	res := d.Dispatch(context.Background(), newEvent(t, TypeNodeAdded, ""))
	if time.Since(start) > 5*time.Second {
		t.Errorf("Dispatch took %v; the timeout is 100ms", time.Since(start))
	}
	if len(res.Failures) != 2 {
		t.Fatalf("Dispatch = %+v; want both to fail", res)
	}
	for _, m := range d.Metrics("").Handlers {
		if len(m.LastError) > 1024 {
			t.Errorf("%s: error of %d bytes", m.Name, len(m.LastError))
		}
		if m.Name == "slow" && !strings.Contains(m.LastError, "deadline") {
			t.Errorf("slow: %s", m.LastError)
		}
	}
	var c cappedBuffer
	c.Write(make([]byte, api.MaxHookOutputSize+10))
	if c.buf.Len() != api.MaxHookOutputSize || !c.truncated {
		t.Errorf("capped buffer holds %d bytes", c.buf.Len())
	}
}

func TestInProcessAndMetrics(t *testing.T) {
	d := New(Options{Backoff: time.Millisecond})
	var got []string
	var mu sync.Mutex
	if err := d.Subscribe("go", "hooks.cluster.*", func(ctx context.Context, ev *Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev.EventType)
		if ev.EventType == TypeNodeRemoved {
			return errors.New("boom")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d.Dispatch(context.Background(), newEvent(t, TypeLeaderElected, `{"node_id":1,"term":42}`))
	d.Dispatch(context.Background(), newEvent(t, TypeWriteCommitted, ``))
	res := d.Dispatch(context.Background(), newEvent(t, TypeNodeRemoved, ``))
	if len(res.Failures) != 1 {
		t.Errorf("Dispatch = %+v", res)
	}
	// leader_elected once, node_removed 1 + 3 retries
	if strings.Join(got, ",") != "leader_elected,node_removed,node_removed,node_removed,node_removed" {
		t.Errorf("calls = %v", got)
	}
	m := d.Metrics("")
	if m.TotalEventsProcessed != 3 || len(m.Handlers) != 1 || m.Handlers[0].Fired != 2 || m.Handlers[0].Succeeded != 1 || m.Handlers[0].Failed != 1 {
		t.Errorf("metrics = %+v", m)
	}
	// a stored in_process handler without a function fails cleanly
	d.SetHandlers([]api.HookHandler{{Name: "nofunc", Pattern: ">", Type: api.HookInProcess, RetryCount: intp(0)}})
	if res := d.Dispatch(context.Background(), newEvent(t, TypeLeaderElected, ``)); len(res.Failures) != 1 || res.Failures[0] != "nofunc" {
		t.Errorf("Dispatch = %+v", res)
	}
}

func TestNormalize(t *testing.T) {
	bad := map[string]api.HookHandler{
		"no name":       {Pattern: ">", Type: api.HookShell, Command: "true"},
		"bad name":      {Name: "a:b", Pattern: ">", Type: api.HookShell, Command: "true"},
		"bad pattern":   {Name: "a", Pattern: "a..b", Type: api.HookShell, Command: "true"},
		"no type":       {Name: "a", Pattern: ">"},
		"no command":    {Name: "a", Pattern: ">", Type: api.HookShell},
		"bad url":       {Name: "a", Pattern: ">", Type: api.HookWebhook, URL: "ftp://x"},
		"long timeout":  {Name: "a", Pattern: ">", Type: api.HookShell, Command: "true", TimeoutMs: 30_001},
		"many retries":  {Name: "a", Pattern: ">", Type: api.HookShell, Command: "true", RetryCount: intp(6)},
		"secret shell":  {Name: "a", Pattern: ">", Type: api.HookShell, Command: "true", Secret: "x"},
		"negative time": {Name: "a", Pattern: ">", Type: api.HookShell, Command: "true", TimeoutMs: -1},
	}
	for name, h := range bad {
		if _, err := Normalize(h); err == nil {
			t.Errorf("%s: Normalize succeeded", name)
		}
	}
	h, err := Normalize(api.HookHandler{Name: "a", Pattern: ">", Type: api.HookShell, Command: "true"})
	if err != nil || h.TimeoutMs != 5000 || *h.RetryCount != 3 || !*h.Enabled {
		t.Errorf("Normalize = %+v, %v; want defaults 5000 ms, 3 retries, enabled", h, err)
	}
}

func TestParseTOML(t *testing.T) {
	hs, err := ParseTOML([]byte(`
[[hooks]]
name = "audit"
pattern = "hooks.kv.>"
type = "shell"
command = "true"
timeout_ms = 2000

[[hooks]]
name = "web"
pattern = ">"
type = "webhook"
url = "http://127.0.0.1:9/x"
secret = "k"
retry_count = 5
enabled = false
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].TimeoutMs != 2000 || *hs[1].RetryCount != 5 || *hs[1].Enabled {
		t.Errorf("ParseTOML = %+v", hs)
	}
	for name, doc := range map[string]string{
		"unknown field": "[[hooks]]\nname = \"a\"\npattern = \">\"\ntype = \"shell\"\ncommand = \"true\"\ncolour = 1\n",
		"duplicate":     "[[hooks]]\nname = \"a\"\npattern = \">\"\ntype = \"shell\"\ncommand = \"true\"\n[[hooks]]\nname = \"a\"\npattern = \">\"\ntype = \"shell\"\ncommand = \"true\"\n",
		"invalid":       "[[hooks]]\nname = \"a\"\npattern = \"a.>.b\"\ntype = \"shell\"\ncommand = \"true\"\n",
	} {
		if _, err := ParseTOML([]byte(doc)); err == nil {
			t.Errorf("%s: ParseTOML succeeded", name)
		}
	}
}

func TestNewEvent(t *testing.T) {
	if _, err := NewEvent("not_an_event", nil, 1); err == nil {
		t.Error("unknown type accepted")
	}
	if _, err := NewEvent(TypeLeaderElected, []byte("{bad"), 1); err == nil {
		t.Error("bad JSON accepted")
	}
	ev := newEvent(t, TypeLeaderElected, "")
	if string(ev.Payload) != "{}" || ev.Topic != "hooks.cluster.leader_elected" {
		t.Errorf("event = %+v", ev)
	}
}

func TestWants(t *testing.T) {
	d := New(Options{})
	if d.Wants("hooks.kv.write_committed", "kv.put.users.1") {
		t.Error("a dispatcher without handlers wants an event")
	}
	off := false
	if err := d.SetHandlers([]api.HookHandler{
		{Name: "users", Pattern: "kv.put.users.>", Type: api.HookInProcess},
		{Name: "off", Pattern: ">", Type: api.HookInProcess, Enabled: &off},
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		subjects []string
		want     bool
	}{
		{[]string{"hooks.kv.write_committed", "kv.put.users.1"}, true},
		{[]string{"hooks.kv.write_committed", "kv.put.orders.1"}, false}, // the catch-all is disabled
		{[]string{"hooks.kv.delete_committed", "kv.delete.users.1"}, false},
	} {
		if got := d.Wants(c.subjects...); got != c.want {
			t.Errorf("Wants(%v) = %v, want %v", c.subjects, got, c.want)
		}
	}
	d.Skipped()
	if m := d.Metrics(""); m.TotalEventsProcessed != 1 {
		t.Errorf("total after Skipped = %d, want 1", m.TotalEventsProcessed)
	}
}
