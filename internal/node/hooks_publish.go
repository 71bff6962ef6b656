package node

import (
	"context"
	"encoding/json"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/consensus"
	"github.com/aspen-dev/aspen/internal/hooks"
	"github.com/aspen-dev/aspen/internal/kv"
)

// Node events (snapshots, health, blobs, ...) happen on one node, which is
// not always the leader. publishEvent queues one; the publisher records the
// queue, up to api.MaxHookPublishEvents at a time, in the outbox through
// the leader (hook.publish); the hook loop then fires each one from the
// history like a KV event: by exactly one node, once, with an ID.
//
// An event no handler matches on the observing node (stored handlers as
// its replica has them, or its own in-process subscriptions) is not
// recorded. Not guaranteed: an event still queued when its node stops is
// lost, and one whose hook.publish timed out after reaching the leader may
// be recorded twice (under two IDs). A full queue drops new events
// (counted and logged).

// hookQueue bounds the node events waiting to be recorded.
const hookQueue = 1024

// healthStable is how long a new health status must last before
// health_changed records it, so an election does not fire a burst.
const healthStable = time.Second

// publishEvent queues the node event typ (an event type such as
// hooks.TypeBlobAdded) with payload (encoded as JSON) to be recorded in the
// cluster and fired by the leader. It never blocks; call it from anywhere
// after the state change the event reports has happened.
func (n *Node) publishEvent(typ string, payload any) {
	s := n.hooks.Load()
	if s == nil {
		return // before startHooks (a snapshot restored at start)
	}
	b, err := json.Marshal(payload)
	if err == nil {
		_, err = hooks.NewEvent(typ, b, n.cfg.NodeID)
	}
	if err == nil && len(b) > api.MaxHookPayloadSize {
		err = api.Errorf(api.CodeInvalidArgument, "payload is %d bytes; the limit is %d", len(b), api.MaxHookPayloadSize)
	}
	if err != nil {
		n.log.Warn("hooks: not publishing an invalid event", "type", typ, "err", err)
		return
	}
	select {
	case s.queue <- api.HookPublishedEvent{EventType: typ, Payload: b, NodeID: n.cfg.NodeID, TimeMs: nowMs()}:
	default:
		s.dropped.Add(1)
		n.log.Warn("hooks: event queue full; dropping the event", "type", typ, "dropped", s.dropped.Load())
	}
}

// snapshotObserved is consensus.Config.OnSnapshot.
func (n *Node) snapshotObserved(e consensus.SnapshotEvent) {
	typ := hooks.TypeSnapshotCreated
	if e.Installed {
		typ = hooks.TypeSnapshotInstalled
	}
	n.publishEvent(typ, map[string]any{"node_id": n.cfg.NodeID, "index": e.Index})
}

// publishExpired publishes ttl_expired for the keys an Expire command
// named (the TTL sweeper calls it once the command is applied).
func (n *Node) publishExpired(keys []kv.ExpiredKey, expired int) {
	names := make([]string, 0, len(keys))
	size := 0
	for _, k := range keys {
		if size += len(k.Key) + 3; size > api.MaxHookPayloadSize/2 {
			break
		}
		names = append(names, string(k.Key))
	}
	n.publishEvent(hooks.TypeTTLExpired, map[string]any{"keys": names, "count": expired, "truncated": len(names) < len(keys)})
}

// publish serves hook.publish: it records the events in one revision.
func (s *hookService) publish(ctx context.Context, req *api.HookPublishRequest) (*api.HookPublishResponse, error) {
	switch {
	case len(req.Events) == 0:
		return nil, api.Errorf(api.CodeInvalidArgument, "no events to publish")
	case len(req.Events) > api.MaxHookPublishEvents:
		return nil, api.Errorf(api.CodeInvalidArgument, "%d events; the limit is %d", len(req.Events), api.MaxHookPublishEvents)
	}
	for i, ev := range req.Events {
		if len(ev.Payload) > api.MaxHookPayloadSize {
			return nil, api.Errorf(api.CodeInvalidArgument, "event %d: payload is %d bytes; the limit is %d", i, len(ev.Payload), api.MaxHookPayloadSize)
		}
		if ev.EventType == hooks.TypeWriteCommitted || ev.EventType == hooks.TypeDeleteCommitted {
			return nil, api.Errorf(api.CodeInvalidArgument, "event %d: %s events come from KV writes only", i, ev.EventType)
		}
		if _, err := hooks.NewEvent(ev.EventType, ev.Payload, ev.NodeID); err != nil {
			return nil, api.Errorf(api.CodeInvalidArgument, "event %d: %v", i, err)
		}
	}
	res, err := s.record(ctx, nil, req.Events)
	if err != nil {
		return nil, err
	}
	return &api.HookPublishResponse{Revision: res.Revision}, nil
}

// wanted returns the events of evs some handler would fire for: an
// enabled handler stored in the cluster (as this node's replica has them)
// or an in-process subscription of this node matches its topic. Recording
// the others would cost a Raft write for nothing (and show in watches of
// the whole key space).
func (s *hookService) wanted(evs []api.HookPublishedEvent) []api.HookPublishedEvent {
	stored, err := s.stored()
	if err != nil {
		s.n.log.Warn("hooks: reading the stored handlers; recording every event", "err", err)
		return evs
	}
	out := evs[:0:0]
	for _, ev := range evs {
		topic, err := hooks.Topic(ev.EventType)
		if err == nil && s.d.Matches([]string{topic}, stored) {
			out = append(out, ev)
		}
	}
	return out
}

// runPublisher records queued node events through the leader, retrying
// with backoff while there is none, and watches this node's health.
func (s *hookService) runPublisher() {
	n := s.n
	tick := time.NewTicker(hookPoll)
	defer tick.Stop()
	var h healthWatch
	for {
		var batch []api.HookPublishedEvent
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
			if ev, ok := h.observe(n); ok {
				batch = append(batch, ev)
			}
		case ev := <-s.queue:
			batch = append(batch, ev)
		}
	drain:
		for len(batch) > 0 && len(batch) < api.MaxHookPublishEvents {
			select {
			case ev := <-s.queue:
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		if batch = s.wanted(batch); len(batch) > 0 {
			s.recordBatch(batch)
		}
	}
}

// recordBatch records batch through the leader, retrying until it succeeds,
// is refused, or the node stops.
func (s *hookService) recordBatch(batch []api.HookPublishedEvent) {
	n := s.n
	wait := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		_, err := leaderCall(ctx, n, api.OpHookPublish, &api.HookPublishRequest{Events: batch}, s.publish)
		cancel()
		switch {
		case err == nil:
			return
		case api.CodeOf(err) == api.CodeInvalidArgument:
			n.log.Warn("hooks: event refused; dropping it", "type", batch[0].EventType, "err", err)
			return
		}
		n.log.Debug("hooks: recording events; retrying", "events", len(batch), "err", err)
		select {
		case <-n.ctx.Done():
			n.log.Warn("hooks: node stopping; events not recorded", "events", len(batch))
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// healthWatch turns this node's health status (cluster.health) into
// health_changed events: a status that held for healthStable and differs
// from the last one reported. The first status that holds for healthStable
// is the baseline (a node starting up is briefly without a leader).
type healthWatch struct {
	reported string    // last status reported (or the baseline)
	seen     string    // status seen at the last observation
	since    time.Time // when seen was first seen
}

func (h *healthWatch) observe(n *Node) (api.HookPublishedEvent, bool) {
	resp, err := n.clusterHealth(n.ctx, nil)
	if err != nil || !resp.Initialized {
		return api.HookPublishedEvent{}, false
	}
	now := time.Now()
	if resp.Status != h.seen {
		h.seen, h.since = resp.Status, now
	}
	if h.seen == h.reported || now.Sub(h.since) < healthStable {
		return api.HookPublishedEvent{}, false
	}
	prev := h.reported
	h.reported = h.seen
	if prev == "" {
		return api.HookPublishedEvent{}, false
	}
	b, _ := json.Marshal(map[string]any{"node_id": n.cfg.NodeID, "status": h.seen, "previous": prev, "leader_id": resp.LeaderID})
	return api.HookPublishedEvent{EventType: hooks.TypeHealthChanged, Payload: b, NodeID: n.cfg.NodeID, TimeMs: nowMs()}, true
}

// Blob event types, for the single-line calls in blob.go.
const (
	evBlobAdded       = hooks.TypeBlobAdded
	evBlobDeleted     = hooks.TypeBlobDeleted
	evBlobProtected   = hooks.TypeBlobProtected
	evBlobUnprotected = hooks.TypeBlobUnprotected
	evBlobDownloaded  = hooks.TypeBlobDownloaded
)

// blobEvent publishes the blob event typ with payload when changed is set
// (an operation that changed nothing fires nothing).
func (n *Node) blobEvent(typ string, changed bool, payload map[string]any) {
	if changed {
		n.publishEvent(typ, payload)
	}
}
