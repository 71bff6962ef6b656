package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/hooks"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Keys of the hook system (reserved: the plain KV API cannot write them).
//
//	_system:hooks:handlers:NAME   CBOR api.HookHandler
//	_system:hooks:cursor          the last event fired: its ID "R-I", or "R"
//	                              for every event of revision R and before
//	_system:hooks:outbox:NN       CBOR api.HookPublishedEvent: node events
//	                              recorded to be fired (overwritten; each
//	                              put is one event of the history)
//	_system:hooks:members         CBOR map of the Raft membership last
//	                              recorded (node ID → suffrage)
//	_system:hooks:urls:SHA256HEX  CBOR hookURLRecord of a hook URL's token
const (
	hookKeyPrefix     = "_system:hooks:"
	hookHandlerPrefix = hookKeyPrefix + "handlers:"
	hookCursorKey     = hookKeyPrefix + "cursor"
	hookOutboxPrefix  = hookKeyPrefix + "outbox:"
	hookMembersKey    = hookKeyPrefix + "members"
	hookURLPrefix     = hookKeyPrefix + "urls:" // + hex SHA-256 of the token → CBOR hookURLRecord
)

// hookPoll is how long the hook loop waits for new revisions before it
// looks at leadership and membership again.
const hookPoll = 200 * time.Millisecond

// hookLeaderCheck is how often a leader checks that it still leads, to
// cancel its deliveries as soon as it does not (well within the time a new
// leader needs to be elected).
const hookLeaderCheck = 25 * time.Millisecond

// hookBatch is the number of history events read per step of the hook loop.
const hookBatch = 256

// hookService fires hook events on the leader and serves the hook.*
// operations. Delivery semantics (see hooks_loop.go and package hooks):
//
//   - Only the leader fires. Every event comes from the replicated history,
//     in revision order, one at a time: KV writes and deletes, and node
//     events recorded in the outbox (leader_elected, membership changes,
//     snapshots, health, blobs; see publishEvent). A slow handler delays
//     later events; its retries are bounded by timeout × (1 + retries)
//     plus backoff.
//   - After each event that reached a handler (or changed one) the leader
//     stores the cursor with a compare-and-swap on its mod_revision; a new
//     leader starts after it; a deposed leader stops. Each event carries a
//     stable ID ("<revision>-<index>"): with no leader crash every event is
//     delivered once; across a crash, the event in flight at that instant
//     may be delivered again, with the same ID. If the cursor is older than
//     the retained history (10 000 revisions by default), the gap is
//     skipped with a warning.
//   - Handler changes (_system:hooks:handlers:*) are applied in the same
//     stream, so an event is matched against the handlers stored at its
//     revision. Other changes of _system:hooks:* keys fire nothing.
//   - TTL expiry is a delete in the history: it fires delete_committed.
//
// Goroutines: run (started by startHooks, stopped by n.ctx) owns the
// leader state (leading, cursor, cursorRev, next, members, membersRev,
// electedTerm, leadCtx); watchLeadership only cancels deliveries (cancelDeliveries, under mu);
// runPublisher owns the publishing side; RPC handlers use d, processed
// and queue only.
type hookService struct {
	n    *Node
	d    *hooks.Dispatcher
	seed []api.HookHandler // from the config file, stored if absent when this node becomes leader

	processed atomic.Uint64 // revision up to which run has dispatched (0 while not leader)

	queue   chan api.HookPublishedEvent // node events waiting to be recorded (publishEvent)
	dropped atomic.Uint64               // node events dropped because queue was full

	mu         sync.Mutex
	leadCancel context.CancelFunc // cancels leadCtx; guarded by mu

	leading     bool
	leadCtx     context.Context // deliveries of this reign; cancelled when it ends
	cursor      position        // last event handled (ahead of the stored one over events that fired nothing)
	cursorRev   uint64          // mod_revision of the stored cursor as this leader last read or wrote it
	next        uint64          // next revision to read
	members     map[raft.ServerID]raft.ServerSuffrage
	membersRev  uint64 // mod_revision of the stored membership as last read or written
	electedTerm uint64 // term whose leader_elected this node recorded
}

// startHooks registers the hook.* operations, serves hook URLs on
// api.ALPNHook and starts the hook loop.
// seed are handlers from the node's config file ([[hooks]]); they are
// written to the cluster, unless one of the same name exists, each time
// this node becomes leader. Call it after the registry is built and before
// n.ep.Serve (which fixes the offered ALPNs).
func (n *Node) startHooks(seed []api.HookHandler) error {
	if err := hooks.ValidateAll(seed); err != nil {
		return err
	}
	s := &hookService{n: n, d: hooks.New(hooks.Options{Logger: n.log.With("service", "hooks")}), seed: seed, queue: make(chan api.HookPublishedEvent, hookQueue)}
	rpc.Handle(n.reg, api.OpHookList, s.list)
	rpc.Handle(n.reg, api.OpHookAdd, s.add)
	rpc.Handle(n.reg, api.OpHookRemove, s.remove)
	rpc.Handle(n.reg, api.OpHookTrigger, s.trigger)
	rpc.Handle(n.reg, api.OpHookMetrics, s.metrics)
	rpc.Handle(n.reg, api.OpHookCreateURL, s.createURL)
	rpc.Handle(n.reg, api.OpHookTriggerURL, s.triggerURL)
	rpc.Handle(n.reg, api.OpHookPublish, s.publish)
	n.reg.NodeOnly(api.OpHookPublish) // node events come from nodes; applications use hook.trigger
	n.ep.Handle(api.ALPNHook, s.serveURLConn)
	n.hooks.Store(s)
	n.goFunc(s.run)
	n.goFunc(s.watchLeadership)
	n.goFunc(s.runPublisher)
	return nil
}

// ---- stored handlers ----

// stored reads the handlers stored in the cluster (local read; callers
// fence first).
func (s *hookService) stored() ([]api.HookHandler, error) {
	kvs, err := s.storedKVs()
	if err != nil {
		return nil, err
	}
	out := make([]api.HookHandler, 0, len(kvs))
	for _, e := range kvs {
		var h api.HookHandler
		if err := rpc.Unmarshal(e.Value, &h); err != nil {
			s.n.log.Warn("hooks: undecodable stored handler", "key", string(e.Key), "err", err)
			continue
		}
		out = append(out, h)
	}
	return out, nil
}

func (s *hookService) storedKVs() ([]api.KeyValue, error) {
	kvs, _, _, err := s.n.store.Scan([]byte(hookHandlerPrefix), nil, api.MaxHookHandlers+1, s.n.stampMs())
	return kvs, err
}

// put stores h; without replace an existing handler of that name is a
// CONFLICT.
func (s *hookService) put(ctx context.Context, h api.HookHandler, replace bool) error {
	b, err := rpc.Marshal(h)
	if err != nil {
		return err
	}
	key := []byte(hookHandlerPrefix + h.Name)
	txn := &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnPut, Key: key, Value: b}}}
	if !replace {
		txn.Compares = []api.Compare{{Key: key, Target: api.TargetVersion, Result: api.Equal, Number: 0}}
	}
	res, err := s.n.propose(ctx, txn)
	if err != nil {
		return err
	}
	if !res.Succeeded {
		return api.Errorf(api.CodeConflict, "hook %q exists; remove it first or pass --replace", h.Name)
	}
	return nil
}

// ---- operations ----

func (s *hookService) list(ctx context.Context, _ *api.HookListRequest) (*api.HookListResponse, error) {
	if err := s.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	hs, err := s.stored()
	if err != nil {
		return nil, err
	}
	out := &api.HookListResponse{IsEnabled: true, Handlers: []api.HookHandlerInfo{}}
	for _, h := range hs {
		out.Handlers = append(out.Handlers, hooks.Info(h))
	}
	return out, nil
}

func (s *hookService) add(ctx context.Context, req *api.HookAddRequest) (*api.HookResponse, error) {
	h, err := hooks.Normalize(req.Handler)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	if err := s.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	hs, err := s.stored()
	if err != nil {
		return nil, err
	}
	exists := slices.ContainsFunc(hs, func(o api.HookHandler) bool { return o.Name == h.Name })
	if !exists && len(hs) >= api.MaxHookHandlers {
		return nil, api.Errorf(api.CodeResourceExhausted, "the cluster has %d hook handlers; the limit is %d", len(hs), api.MaxHookHandlers)
	}
	if err := s.put(ctx, h, req.Replace); err != nil {
		return nil, err
	}
	return &api.HookResponse{Name: h.Name, Revision: s.n.store.AppliedIndex()}, nil
}

func (s *hookService) remove(ctx context.Context, req *api.HookRemoveRequest) (*api.HookResponse, error) {
	if req.Name == "" {
		return nil, api.Errorf(api.CodeInvalidArgument, "hook name is empty")
	}
	res, err := s.n.propose(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnDelete, Key: []byte(hookHandlerPrefix + req.Name)}}})
	if err != nil {
		return nil, err
	}
	if len(res.Results) == 0 || res.Results[0].Deleted == 0 {
		return nil, api.Errorf(api.CodeNotFound, "no hook named %q", req.Name)
	}
	return &api.HookResponse{Name: req.Name, Revision: res.Revision}, nil
}

// caughtUp waits (bounded by ctx) until the loop has applied every handler
// change committed before the call, so trigger sees a hook just added.
func (s *hookService) caughtUp(ctx context.Context) error {
	target := s.n.store.AppliedIndex()
	for s.processed.Load() < target {
		select {
		case <-ctx.Done():
			return api.Errorf(api.CodeUnavailable, "the hook loop has not caught up with revision %d; retry", target)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (s *hookService) trigger(ctx context.Context, req *api.HookTriggerRequest) (*api.HookTriggerResponse, error) {
	if len(req.Payload) > api.MaxHookPayloadSize {
		return nil, api.Errorf(api.CodeInvalidArgument, "payload is %d bytes; the limit is %d", len(req.Payload), api.MaxHookPayloadSize)
	}
	ev, err := hooks.NewEvent(req.EventType, req.Payload, s.n.cfg.NodeID)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	ev.Synthetic = true
	ev.ID = "t-" + rand.Text()
	if err := s.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = s.caughtUp(wctx)
	cancel()
	if err != nil {
		return nil, err
	}
	res := s.d.Dispatch(ctx, ev)
	out := &api.HookTriggerResponse{IsSuccess: len(res.Failures) == 0, DispatchedCount: res.Dispatched, HandlerFailures: res.Failures, EventID: ev.ID}
	if out.HandlerFailures == nil {
		out.HandlerFailures = []string{}
	}
	return out, nil
}

func (s *hookService) metrics(ctx context.Context, req *api.HookMetricsRequest) (*api.HookMetricsResponse, error) {
	if err := s.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	m := s.d.Metrics(req.Handler)
	if req.Handler != "" && len(m.Handlers) == 0 {
		return nil, api.Errorf(api.CodeNotFound, "no hook named %q has metrics on the leader", req.Handler)
	}
	return &m, nil
}

// ---- hook URLs ----

// hookURLRecord is what the cluster keeps of a hook URL: only a hash of its
// token (the key), so a reader of the KV store cannot forge the URL.
type hookURLRecord struct {
	EventType string `cbor:"ev"`
	Payload   []byte `cbor:"pl,omitempty"`
	Expires   int64  `cbor:"exp,omitempty"` // unix seconds; 0 = never
}

func hookURLKey(token []byte) []byte {
	sum := sha256.Sum256(token)
	return []byte(hookURLPrefix + hex.EncodeToString(sum[:]))
}

func (s *hookService) createURL(ctx context.Context, req *api.HookCreateURLRequest) (*api.HookCreateURLResponse, error) {
	switch {
	case !hooks.IsCoreEventType(req.EventType):
		return nil, api.Errorf(api.CodeInvalidArgument, "event type %q: a hook URL fires only a core event type: %s", req.EventType, strings.Join(hooks.CoreEventTypes, ", "))
	case len(req.Payload) > api.MaxHookPayloadSize:
		return nil, api.Errorf(api.CodeInvalidArgument, "payload is %d bytes; the limit is %d", len(req.Payload), api.MaxHookPayloadSize)
	case len(req.Payload) > 0 && !json.Valid(req.Payload):
		return nil, api.Errorf(api.CodeInvalidArgument, "payload is not valid JSON")
	case req.ExpiresHours < 0 || req.ExpiresHours > 24*365*100:
		return nil, api.Errorf(api.CodeInvalidArgument, "expires %d hours: want 0 (never) to %d", req.ExpiresHours, 24*365*100)
	}
	tk, err := ticket.Parse(s.n.Ticket())
	if err != nil {
		return nil, err
	}
	u := hooks.URL{ClusterID: tk.ClusterID, Peers: tk.Peers, EventType: req.EventType, Payload: req.Payload, Relay: req.RelayURL, Token: make([]byte, hooks.TokenSize)}
	if len(u.Peers) > hooks.MaxURLPeers {
		u.Peers = u.Peers[:hooks.MaxURLPeers]
	}
	if _, err := rand.Read(u.Token); err != nil {
		return nil, err
	}
	if req.ExpiresHours > 0 {
		u.Expires = time.Now().Add(time.Duration(req.ExpiresHours) * time.Hour).Unix()
	}
	rec, err := rpc.Marshal(hookURLRecord{EventType: u.EventType, Payload: u.Payload, Expires: u.Expires})
	if err != nil {
		return nil, err
	}
	if _, err := s.n.propose(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnPut, Key: hookURLKey(u.Token), Value: rec}}}); err != nil {
		return nil, err
	}
	return &api.HookCreateURLResponse{URL: u.String(), EventType: u.EventType, Expires: u.Expires, ClusterID: u.ClusterID, PeerCount: len(u.Peers)}, nil
}

func (s *hookService) triggerURL(ctx context.Context, req *api.HookTriggerURLRequest) (*api.HookTriggerResponse, error) {
	if len(req.Token) != hooks.TokenSize {
		return nil, api.Errorf(api.CodeUnauthorized, "invalid hook URL token")
	}
	if err := s.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	kvr, _, err := s.n.store.Get(hookURLKey(req.Token), s.n.stampMs())
	if err != nil {
		return nil, err
	}
	if kvr == nil {
		return nil, api.Errorf(api.CodeUnauthorized, "unknown hook URL: it was not created by this cluster")
	}
	var rec hookURLRecord
	if err := rpc.Unmarshal(kvr.Value, &rec); err != nil {
		return nil, fmt.Errorf("hook URL record: %w", err)
	}
	if rec.Expires != 0 && time.Now().Unix() >= rec.Expires {
		return nil, api.Errorf(api.CodeUnauthorized, "hook URL expired at %s", time.Unix(rec.Expires, 0).UTC().Format(time.RFC3339))
	}
	payload := req.Payload
	if len(payload) == 0 {
		payload = rec.Payload
	}
	return s.trigger(ctx, &api.HookTriggerRequest{EventType: rec.EventType, Payload: payload})
}

// serveURLConn serves hook URL calls: unauthenticated (the token is the
// authority) and limited to api.OpHookTriggerURL, one stream at a time per
// connection. A follower forwards the call to the leader.
func (s *hookService) serveURLConn(ctx context.Context, c *transport.Conn) {
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		s.serveURLStream(ctx, st)
	}
}

func (s *hookService) serveURLStream(ctx context.Context, st *quic.Stream) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req rpc.Request
	out := &rpc.Response{}
	if err := rpc.ReadFrame(st, &req); err != nil {
		st.CancelRead(0)
		out.Error = api.Errorf(api.CodeInvalidArgument, "bad request frame: %v", err)
		_ = rpc.WriteFrame(st, out)
		return
	}
	st.CancelRead(0)
	if req.Op != api.OpHookTriggerURL {
		out.Error = api.Errorf(api.CodeUnauthorized, "%s serves only %s", api.ALPNHook, api.OpHookTriggerURL)
		_ = rpc.WriteFrame(st, out)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := s.n.server.Invoke(ctx, req.Op, func(v any) error { return rpc.Unmarshal(req.Body, v) })
	if err == nil {
		out.Body, err = rpc.Marshal(resp)
	}
	if err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) {
			ae = api.Errorf(api.CodeInternal, "%s: %v", req.Op, err)
		}
		out.Error, out.Body = ae, nil
	}
	_ = rpc.WriteFrame(st, out)
}
