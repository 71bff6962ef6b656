package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/quic-go/quic-go"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/hooks"
	"github.com/aspen-dev/aspen/internal/kv"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Keys of the hook system (reserved: the plain KV API cannot write them).
//
//	_system:hooks:handlers:NAME   CBOR api.HookHandler
//	_system:hooks:cursor          decimal revision: every KV event at or
//	                              below it has been fired
//	_system:hooks:urls:SHA256HEX  CBOR hookURLRecord of a hook URL's token
const (
	hookKeyPrefix     = "_system:hooks:"
	hookHandlerPrefix = hookKeyPrefix + "handlers:"
	hookCursorKey     = hookKeyPrefix + "cursor"
	hookURLPrefix     = hookKeyPrefix + "urls:" // + hex SHA-256 of the token → CBOR hookURLRecord
)

// hookPoll is how long the hook loop waits for new revisions before it
// looks at leadership and membership again.
const hookPoll = 200 * time.Millisecond

// hookBatch is the number of KV events read per step of the hook loop.
const hookBatch = 256

// hookService fires hook events on the leader and serves the hook.*
// operations. Delivery semantics:
//
//   - Only the leader fires. KV events are read from the change history in
//     revision order and dispatched one at a time (a slow handler delays
//     later events; its retries are bounded by timeout × (1 + retries) plus
//     backoff).
//   - After each batch that reached a handler (or changed one) the leader proposes the
//     last revision handled to _system:hooks:cursor; a new leader starts
//     after it. Events dispatched after the last cursor write may be fired
//     again by the next leader: KV events are delivered at least once
//     across a failover, exactly once otherwise. If the cursor is older
//     than the retained history (100 000 revisions by default), the gap is
//     skipped with a warning.
//   - Handler changes (_system:hooks:handlers:*) are applied in the same
//     stream, so an event is matched against the handlers stored at its
//     revision. Changes of _system:hooks:* keys fire nothing.
//   - TTL expiry is a delete in the history: it fires delete_committed.
//   - leader_elected (once per term, by the new leader), membership_changed,
//     node_added and node_removed come from Raft, not from the history:
//     they are fired at most once, by the leader that observes them.
//
// Goroutines: run (one, started by startHooks, stopped by n.ctx) owns
// every field but d and processed; RPC handlers use d and processed only.
type hookService struct {
	n    *Node
	d    *hooks.Dispatcher
	seed []api.HookHandler // from the config file, stored if absent when this node becomes leader

	processed atomic.Uint64 // revision up to which run has dispatched (0 while not leader)

	leading bool
	cursor  uint64
	members map[raft.ServerID]raft.ServerSuffrage
	// electedTerm, when non-zero, is a leader_elected event waiting until the
	// loop has caught up with the history, so that it is matched against
	// every handler stored when this node became leader (the handler set
	// rebuilt at election is the one as of the cursor, which may lag).
	electedTerm uint64
	stepDone    bool // the last step read everything there was
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
	s := &hookService{n: n, d: hooks.New(hooks.Options{Logger: n.log.With("service", "hooks")}), seed: seed}
	rpc.Handle(n.reg, api.OpHookList, s.list)
	rpc.Handle(n.reg, api.OpHookAdd, s.add)
	rpc.Handle(n.reg, api.OpHookRemove, s.remove)
	rpc.Handle(n.reg, api.OpHookTrigger, s.trigger)
	rpc.Handle(n.reg, api.OpHookMetrics, s.metrics)
	rpc.Handle(n.reg, api.OpHookCreateURL, s.createURL)
	rpc.Handle(n.reg, api.OpHookTriggerURL, s.triggerURL)
	n.ep.Handle(api.ALPNHook, s.serveURLConn)
	n.goFunc(s.run)
	return nil
}

// ---- the loop ----

func (s *hookService) run() {
	n := s.n
	for {
		if s.leading {
			ctx, cancel := context.WithTimeout(n.ctx, hookPoll)
			err := n.store.WaitApplied(ctx, s.cursor+1)
			cancel()
			if errors.Is(err, kv.ErrClosed) {
				return
			}
		} else {
			select {
			case <-n.ctx.Done():
			case <-time.After(hookPoll):
			}
		}
		if n.ctx.Err() != nil {
			return
		}
		if !n.raft.IsLeader() {
			if s.leading {
				n.log.Info("hooks: no longer leader; stopped firing", "cursor", s.cursor)
			}
			s.leading = false
			s.processed.Store(0)
			continue
		}
		if !s.leading {
			if err := s.becomeLeader(); err != nil {
				n.log.Warn("hooks: starting as leader", "err", err)
				continue
			}
		}
		s.checkMembership()
		if err := s.step(); err != nil {
			n.log.Warn("hooks: firing KV events", "cursor", s.cursor, "err", err)
		}
		s.fireElected()
	}
}

// becomeLeader loads the handlers and the cursor and fires leader_elected.
func (s *hookService) becomeLeader() error {
	n := s.n
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.raft.ReadBarrier(ctx); err != nil {
		return err
	}
	term := n.raft.Metrics().Term
	for _, h := range s.seed {
		if err := s.put(ctx, h, false); err != nil && !errors.Is(err, api.ErrConflict) {
			return fmt.Errorf("storing hook %q of the config file: %w", h.Name, err)
		}
	}
	kvc, _, err := n.store.Get([]byte(hookCursorKey), nowMs())
	if err != nil {
		return err
	}
	if kvc != nil {
		if s.cursor, err = strconv.ParseUint(string(kvc.Value), 10, 64); err != nil {
			return fmt.Errorf("%s holds %q: %w", hookCursorKey, kvc.Value, err)
		}
	} else {
		// first leader ever: start at the oldest retained revision; events
		// before the first handler was stored match nothing
		oldest, err := n.store.OldestRevision()
		if err != nil {
			return err
		}
		s.cursor = oldest - 1
	}
	// the handlers as of the cursor; later changes come in the stream
	kvs, err := s.storedKVs()
	if err != nil {
		return err
	}
	var hs []api.HookHandler
	for _, e := range kvs {
		if e.ModRevision > s.cursor {
			continue
		}
		var h api.HookHandler
		if err := rpc.Unmarshal(e.Value, &h); err != nil {
			n.log.Warn("hooks: undecodable stored handler", "key", string(e.Key), "err", err)
			continue
		}
		hs = append(hs, h)
	}
	if err := s.d.SetHandlers(hs); err != nil {
		n.log.Warn("hooks: skipping invalid stored handlers", "err", err)
	}
	s.members = s.servers()
	s.leading = true
	s.electedTerm = term
	n.log.Info("hooks: firing as leader", "term", term, "cursor", s.cursor, "handlers", len(hs))
	return nil
}

// fireElected fires a pending leader_elected once the loop caught up.
func (s *hookService) fireElected() {
	if s.electedTerm == 0 || !s.stepDone {
		return
	}
	s.fire(hooks.TypeLeaderElected, map[string]any{"node_id": s.n.cfg.NodeID, "term": s.electedTerm})
	s.electedTerm = 0
}

// step fires the KV events after the cursor, one batch.
func (s *hookService) step() error {
	n := s.n
	evs, next, err := n.store.Events(nil, s.cursor+1, hookBatch)
	s.stepDone = err == nil && len(evs) < hookBatch
	var ce *kv.CompactedError
	if errors.As(err, &ce) {
		n.log.Warn("hooks: events were compacted before they could fire; skipping them", "from", s.cursor+1, "to", ce.Oldest-1)
		s.cursor = ce.Oldest - 1
		return nil
	}
	if err != nil {
		return err
	}
	fired := false
	for i := range evs {
		e := &evs[i]
		if !n.raft.IsLeader() {
			return nil // the next leader continues from the stored cursor
		}
		if bytes.HasPrefix(e.Key, []byte(hookHandlerPrefix)) {
			s.applyHandlerEvent(e)
			fired = true // persist the cursor past handler changes too
			continue
		}
		if bytes.HasPrefix(e.Key, []byte(hookKeyPrefix)) {
			continue
		}
		typ, kind := hooks.TypeWriteCommitted, "put"
		if e.Kind == kv.EventDelete {
			typ, kind = hooks.TypeDeleteCommitted, "delete"
		}
		ev, err := hooks.NewEvent(typ, hooks.NewKVPayload(e.Key, e.Value, e.PrevValue, e.HasPrev, e.Revision), n.cfg.NodeID, hooks.KeySubject(kind, e.Key))
		if err != nil {
			return err
		}
		ev.LogIndex = e.Revision
		if s.d.Dispatch(n.ctx, ev).Dispatched > 0 {
			fired = true
		}
	}
	if next > 0 {
		s.cursor = max(s.cursor, next-1)
	}
	if fired {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		if err := s.saveCursor(ctx); err != nil {
			return err
		}
	}
	s.processed.Store(s.cursor)
	return nil
}

func (s *hookService) applyHandlerEvent(e *kv.Event) {
	name := string(e.Key[len(hookHandlerPrefix):])
	if e.Kind == kv.EventDelete {
		s.d.RemoveHandler(name)
		return
	}
	var h api.HookHandler
	if err := rpc.Unmarshal(e.Value, &h); err != nil {
		s.n.log.Warn("hooks: undecodable stored handler", "name", name, "err", err)
		return
	}
	if err := s.d.PutHandler(h); err != nil {
		s.n.log.Warn("hooks: invalid stored handler", "name", name, "err", err)
	}
}

func (s *hookService) saveCursor(ctx context.Context) error {
	_, err := s.n.propose(ctx, &api.TxnRequest{Success: []api.TxnOp{{
		Kind: api.TxnPut, Key: []byte(hookCursorKey), Value: []byte(strconv.FormatUint(s.cursor, 10)),
	}}})
	return err
}

// checkMembership fires membership events when the Raft configuration
// differs from the last one this leader saw.
func (s *hookService) checkMembership() {
	cur := s.servers()
	if cur == nil || s.members == nil {
		s.members = cur
		return
	}
	var added, removed []string
	for id := range cur {
		if _, ok := s.members[id]; !ok {
			added = append(added, string(id))
		}
	}
	for id := range s.members {
		if _, ok := cur[id]; !ok {
			removed = append(removed, string(id))
		}
	}
	changed := len(added) > 0 || len(removed) > 0
	for id, suf := range cur {
		if old, ok := s.members[id]; ok && old != suf {
			changed = true
		}
	}
	s.members = cur
	if !changed {
		return
	}
	slices.Sort(added)
	slices.Sort(removed)
	for _, id := range added {
		s.fire(hooks.TypeNodeAdded, map[string]any{"node_id": id, "voter": cur[raft.ServerID(id)] == raft.Voter})
	}
	for _, id := range removed {
		s.fire(hooks.TypeNodeRemoved, map[string]any{"node_id": id})
	}
	var voters, learners []string
	for id, suf := range cur {
		if suf == raft.Voter {
			voters = append(voters, string(id))
		} else {
			learners = append(learners, string(id))
		}
	}
	slices.Sort(voters)
	slices.Sort(learners)
	s.fire(hooks.TypeMembershipChanged, map[string]any{"voters": voters, "learners": learners, "added": added, "removed": removed})
}

func (s *hookService) servers() map[raft.ServerID]raft.ServerSuffrage {
	ss, err := s.n.raft.Servers()
	if err != nil {
		return nil
	}
	m := make(map[raft.ServerID]raft.ServerSuffrage, len(ss))
	for _, sv := range ss {
		m[sv.ID] = sv.Suffrage
	}
	return m
}

// fire dispatches a cluster event (not from the KV history).
func (s *hookService) fire(typ string, payload map[string]any) {
	b, err := json.Marshal(payload)
	if err == nil {
		var ev *hooks.Event
		if ev, err = hooks.NewEvent(typ, b, s.n.cfg.NodeID); err == nil {
			s.d.Dispatch(s.n.ctx, ev)
			return
		}
	}
	s.n.log.Warn("hooks: building event", "type", typ, "err", err)
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
	kvs, _, _, err := s.n.store.Scan([]byte(hookHandlerPrefix), nil, api.MaxHookHandlers+1, nowMs())
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
	out := &api.HookTriggerResponse{IsSuccess: len(res.Failures) == 0, DispatchedCount: res.Dispatched, HandlerFailures: res.Failures}
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
	kvr, _, err := s.n.store.Get(hookURLKey(req.Token), nowMs())
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
