package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/hooks"
	"github.com/aspen-dev/aspen/internal/kv"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// The hook loop: the leader reads the replicated history in revision order
// and fires every event it holds (KV writes and deletes, and the node
// events recorded under _system:hooks:outbox:), one at a time, advancing a
// cursor stored in the cluster after each event that reached a handler.
//
// Exactly-once across leaders rests on three things:
//   - the cursor write is a compare-and-swap on the cursor's mod_revision as
//     this leader last read or wrote it, so a leader whose reign ended (a
//     newer one has written the cursor) fails its next write and stops;
//   - a deposed leader stops delivering at once: a watcher cancels the
//     context of its deliveries as soon as Raft says it is no longer leader
//     (hashicorp/raft steps a leader down after LeaderLeaseTimeout without
//     a quorum, before the followers' heartbeat timeout lets another be
//     elected);
//   - a new leader starts after the stored cursor, so only the event in
//     flight when the old leader died (delivered, but its cursor write not
//     committed) is delivered again, with the same event ID.

// position is a place in the replicated history: the event at index index
// among the events of revision rev. index wholeRevision stands for "every
// event of rev".
type position struct {
	rev   uint64
	index int
}

const wholeRevision = math.MaxInt32

// String is the stored form: the ID of the event ("R-I"), or "R" for a
// whole revision.
func (p position) String() string {
	if p.index == wholeRevision {
		return strconv.FormatUint(p.rev, 10)
	}
	return hooks.HistoryID(p.rev, p.index)
}

func parsePosition(s string) (position, error) {
	r, i, partial := strings.Cut(s, "-")
	rev, err := strconv.ParseUint(r, 10, 64)
	if err != nil {
		return position{}, fmt.Errorf("hook cursor %q: %w", s, err)
	}
	if !partial {
		return position{rev, wholeRevision}, nil
	}
	idx, err := strconv.Atoi(i)
	if err != nil || idx < 0 || idx >= wholeRevision {
		return position{}, fmt.Errorf("hook cursor %q: bad event index", s)
	}
	return position{rev, idx}, nil
}

// covers reports whether the event at (rev, index) is at or before p.
func (p position) covers(rev uint64, index int) bool {
	return rev < p.rev || rev == p.rev && index <= p.index
}

// from is the first revision that may hold an event after p.
func (p position) from() uint64 {
	if p.index == wholeRevision {
		return p.rev + 1
	}
	return p.rev
}

// errFenced says another leader wrote a hook record this one expected to
// own: this node's reign is over.
var errFenced = errors.New("hooks: the cursor was written by another leader; stopping")

func (s *hookService) run() {
	n := s.n
	defer s.stepDown()
	for {
		if s.leading {
			ctx, cancel := context.WithTimeout(s.leadCtx, hookPoll)
			err := n.store.WaitCommitted(ctx, s.next)
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
		if !n.raft.IsLeader() || s.leading && s.leadCtx.Err() != nil {
			if s.leading {
				n.log.Info("hooks: no longer leader; stopped firing", "cursor", s.cursor.String())
				s.stepDown()
			}
			continue
		}
		if !s.leading {
			if err := s.becomeLeader(); err != nil {
				n.log.Warn("hooks: starting as leader", "err", err)
				s.stepDown()
				continue
			}
		}
		if err := s.checkMembership(); err != nil {
			n.log.Warn("hooks: recording a membership change", "err", err)
		}
		if err := s.step(); err != nil {
			n.log.Warn("hooks: firing events", "cursor", s.cursor.String(), "err", err)
			if errors.Is(err, errFenced) {
				s.stepDown()
			}
		}
	}
}

// stepDown stops this node's deliveries: it cancels the context in-flight
// deliveries run under and forgets the leader state.
func (s *hookService) stepDown() {
	s.cancelDeliveries()
	s.leading = false
	s.processed.Store(0)
}

// cancelDeliveries cancels the context this node's deliveries run under.
func (s *hookService) cancelDeliveries() {
	s.mu.Lock()
	if s.leadCancel != nil {
		s.leadCancel()
		s.leadCancel = nil
	}
	s.mu.Unlock()
}

// watchLeadership cancels the deliveries of this node as soon as Raft says
// it is no longer the leader, without waiting for the loop to notice.
func (s *hookService) watchLeadership() {
	t := time.NewTicker(hookLeaderCheck)
	defer t.Stop()
	for {
		select {
		case <-s.n.ctx.Done():
			return
		case <-t.C:
		}
		if !s.n.raft.IsLeader() {
			s.cancelDeliveries()
		}
	}
}

// becomeLeader loads the cursor, the handlers as of the cursor and the
// last recorded membership, and records leader_elected (fired by the loop
// once it reaches it, after every older event).
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
	kvc, _, err := n.store.Get([]byte(hookCursorKey), n.stampMs())
	if err != nil {
		return err
	}
	if kvc != nil {
		if s.cursor, err = parsePosition(string(kvc.Value)); err != nil {
			return err
		}
		s.cursorRev = kvc.ModRevision
	} else {
		// first leader ever: start at the oldest retained revision; events
		// before the first handler was stored match nothing
		oldest, err := n.store.OldestRevision()
		if err != nil {
			return err
		}
		s.cursor, s.cursorRev = position{oldest - 1, wholeRevision}, 0
	}
	s.next = s.cursor.from()
	// the handlers as of the revision before the stream resumes; later
	// changes come in the stream
	hs, err := s.handlersAt(s.next - 1)
	if err != nil {
		return err
	}
	if err := s.d.SetHandlers(hs); err != nil {
		n.log.Warn("hooks: skipping invalid stored handlers", "err", err)
	}
	if err := s.loadMembers(); err != nil {
		return err
	}
	lctx, lcancel := context.WithCancel(n.ctx)
	s.mu.Lock()
	s.leadCtx, s.leadCancel = lctx, lcancel
	s.mu.Unlock()
	s.leading = true
	if term != s.electedTerm {
		b := fmt.Appendf(nil, `{"node_id":%d,"term":%d}`, n.cfg.NodeID, term)
		if evs := s.wanted([]api.HookPublishedEvent{{EventType: hooks.TypeLeaderElected, Payload: b, NodeID: n.cfg.NodeID, TimeMs: nowMs()}}); len(evs) > 0 {
			if _, err := s.record(lctx, nil, evs); err != nil {
				return fmt.Errorf("recording leader_elected: %w", err)
			}
		}
		s.electedTerm = term
	}
	n.log.Info("hooks: firing as leader", "term", term, "cursor", s.cursor.String(), "handlers", len(hs))
	return nil
}

// step fires the events after the cursor, one batch of revisions. It lists
// the events without their values and reads the values of the few it acts
// on: most writes match no handler.
func (s *hookService) step() error {
	n := s.n
	evs, next, err := n.store.CommittedEventKeys(nil, s.next, hookBatch)
	var ce *kv.CompactedError
	if errors.As(err, &ce) {
		n.log.Warn("hooks: events were compacted before they could fire; skipping them", "from", s.next, "to", ce.Oldest-1)
		s.cursor, s.next = position{ce.Oldest - 1, wholeRevision}, ce.Oldest
		return nil
	}
	if err != nil {
		return err
	}
	var rev uint64
	index := 0
	for i := range evs {
		e := &evs[i]
		if e.Revision != rev {
			rev, index = e.Revision, 0
		} else {
			index++
		}
		if s.cursor.covers(rev, index) {
			if strings.HasPrefix(string(e.Key), hookHandlerPrefix) {
				// the revision started before the cursor: replay its handler changes
				if err := s.applyHandlerEvent(e, index); err != nil {
					return err
				}
			}
			continue
		}
		if s.leadCtx.Err() != nil {
			return nil // deposed: the next leader continues from the stored cursor
		}
		persist, err := s.handle(e, index)
		if err != nil {
			return err
		}
		if s.leadCtx.Err() != nil {
			return nil // deposed during the delivery: it may be redelivered
		}
		s.cursor = position{rev, index}
		if persist {
			if err := s.saveCursor(); err != nil {
				return err
			}
		}
	}
	if next > s.next {
		s.next = next
		if s.cursor.rev < next-1 {
			s.cursor = position{next - 1, wholeRevision}
		}
	}
	s.processed.Store(s.next - 1)
	return nil
}

// handle fires one event of the history; persist says the cursor must be
// stored past it (it reached a handler, or changed one).
func (s *hookService) handle(e *kv.Event, index int) (persist bool, err error) {
	n := s.n
	key := string(e.Key)
	var ev *hooks.Event
	switch {
	case strings.HasPrefix(key, hookHandlerPrefix):
		return true, s.applyHandlerEvent(e, index)
	case strings.HasPrefix(key, hookOutboxPrefix):
		if e.Kind != kv.EventPut {
			return false, nil
		}
		if e, err = s.withValues(e, index); err != nil {
			return false, err
		}
		var rec api.HookPublishedEvent
		if err := rpc.Unmarshal(e.Value, &rec); err != nil {
			n.log.Warn("hooks: undecodable recorded event; skipping it", "revision", e.Revision, "err", err)
			return false, nil
		}
		if ev, err = hooks.NewEvent(rec.EventType, rec.Payload, n.cfg.NodeID); err != nil {
			n.log.Warn("hooks: invalid recorded event; skipping it", "revision", e.Revision, "err", err)
			return false, nil
		}
	case strings.HasPrefix(key, hookKeyPrefix):
		return false, nil
	default:
		typ, kind := hooks.TypeWriteCommitted, "put"
		if e.Kind == kv.EventDelete {
			typ, kind = hooks.TypeDeleteCommitted, "delete"
		}
		// most writes match no handler: building their event (JSON payload
		// and all) cost a third of a node's CPU under batch writes
		subject := hooks.KeySubject(kind, e.Key)
		if topic, _ := hooks.Topic(typ); !s.d.Wants(topic, subject) {
			s.d.Skipped()
			return false, nil
		}
		if e, err = s.withValues(e, index); err != nil {
			return false, err
		}
		if ev, err = hooks.NewEvent(typ, hooks.NewKVPayload(e.Key, e.Value, e.PrevValue, e.HasPrev, e.Revision), n.cfg.NodeID, subject); err != nil {
			return false, err
		}
	}
	ev.ID = hooks.HistoryID(e.Revision, index)
	ev.LogIndex = e.Revision
	return s.d.Dispatch(s.leadCtx, ev).Dispatched > 0, nil
}

// handlersAt returns the handlers stored as of revision rev: the stored
// ones, corrected by the history after rev, where the first change of each
// handler key carries its value at rev (or none: it did not exist). So a
// leader that resumes from an older cursor matches the events after it
// against the handlers of their time, even those changed or removed since.
// If that history is compacted, the current handlers of the keys changed
// after rev stand in for their past versions.
func (s *hookService) handlersAt(rev uint64) ([]api.HookHandler, error) {
	n := s.n
	kvs, err := s.storedKVs()
	if err != nil {
		return nil, err
	}
	at := make(map[string][]byte, len(kvs))
	for _, e := range kvs {
		at[string(e.Key)] = e.Value
	}
	applied := n.store.AppliedIndex()
	seen := map[string]bool{}
	for from := rev + 1; from <= applied; {
		evs, next, err := n.store.Events([]byte(hookHandlerPrefix), from, hookBatch)
		if errors.Is(err, kv.ErrCompacted) {
			n.log.Warn("hooks: handler history compacted; using current handlers", "from", from)
			break
		}
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			k := string(e.Key)
			if seen[k] {
				continue
			}
			seen[k] = true
			if e.HasPrev {
				at[k] = e.PrevValue
			} else {
				delete(at, k)
			}
		}
		if next <= from {
			break
		}
		from = next
	}
	hs := make([]api.HookHandler, 0, len(at))
	for k, v := range at {
		var h api.HookHandler
		if err := rpc.Unmarshal(v, &h); err != nil {
			n.log.Warn("hooks: undecodable stored handler", "key", k, "err", err)
			continue
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// withValues returns the listed event e, the index-th of its revision, with
// its values.
func (s *hookService) withValues(e *kv.Event, index int) (*kv.Event, error) {
	full, err := s.n.store.CommittedEvent(e.Revision, index)
	if err != nil {
		return nil, err
	}
	return &full, nil
}

// applyHandlerEvent applies a change of a stored handler, the listed event
// e, the index-th of its revision. Only a failure to read the event is
// returned: a bad handler is logged and skipped.
func (s *hookService) applyHandlerEvent(e *kv.Event, index int) error {
	name := string(e.Key[len(hookHandlerPrefix):])
	if e.Kind == kv.EventDelete {
		s.d.RemoveHandler(name)
		return nil
	}
	e, err := s.withValues(e, index)
	if err != nil {
		return err
	}
	var h api.HookHandler
	if err := rpc.Unmarshal(e.Value, &h); err != nil {
		s.n.log.Warn("hooks: undecodable stored handler", "name", name, "err", err)
		return nil
	}
	if err := s.d.PutHandler(h); err != nil {
		s.n.log.Warn("hooks: invalid stored handler", "name", name, "err", err)
	}
	return nil
}

// fencedPut is a put of key that succeeds only while the key's
// mod_revision is still rev (0: absent).
func fencedPut(key string, rev uint64, value []byte) ([]api.Compare, api.TxnOp) {
	return []api.Compare{{Key: []byte(key), Target: api.TargetModRevision, Result: api.Equal, Number: int64(rev)}},
		api.TxnOp{Kind: api.TxnPut, Key: []byte(key), Value: value}
}

// saveCursor stores the cursor, fenced by its mod_revision.
func (s *hookService) saveCursor() error {
	ctx, cancel := context.WithTimeout(s.leadCtx, 5*time.Second)
	defer cancel()
	cmp, op := fencedPut(hookCursorKey, s.cursorRev, []byte(s.cursor.String()))
	res, err := s.n.propose(ctx, &api.TxnRequest{Compares: cmp, Success: []api.TxnOp{op}})
	if err != nil {
		return fmt.Errorf("storing the hook cursor %s: %w", s.cursor, err)
	}
	if !res.Succeeded {
		return errFenced
	}
	s.cursorRev = res.Revision
	return nil
}

// record stores events in the outbox, in one revision, with extra
// compares and ops (the fenced membership record); the loop fires them
// when it reaches that revision.
func (s *hookService) record(ctx context.Context, extra *api.TxnRequest, evs []api.HookPublishedEvent) (*api.TxnResponse, error) {
	txn := &api.TxnRequest{}
	if extra != nil {
		txn.Compares, txn.Success = extra.Compares, slices.Clone(extra.Success)
	}
	for i, ev := range evs {
		b, err := rpc.Marshal(ev)
		if err != nil {
			return nil, err
		}
		txn.Success = append(txn.Success, api.TxnOp{Kind: api.TxnPut, Key: fmt.Appendf(nil, "%s%02d", hookOutboxPrefix, i), Value: b})
	}
	return s.n.propose(ctx, txn)
}

// ---- membership ----

// loadMembers reads the membership last recorded; when none is (hooks
// never recorded a membership event), the current one is the baseline,
// kept in memory only.
func (s *hookService) loadMembers() error {
	kvm, _, err := s.n.store.Get([]byte(hookMembersKey), s.n.stampMs())
	if err != nil {
		return err
	}
	if kvm != nil {
		var m map[string]string
		if err := rpc.Unmarshal(kvm.Value, &m); err != nil {
			return fmt.Errorf("%s: %w", hookMembersKey, err)
		}
		s.members, s.membersRev = map[raft.ServerID]raft.ServerSuffrage{}, kvm.ModRevision
		for id, suf := range m {
			s.members[raft.ServerID(id)] = raft.Voter
			if suf != raft.Voter.String() {
				s.members[raft.ServerID(id)] = raft.Nonvoter
			}
		}
		return nil
	}
	if s.members = s.servers(); s.members == nil {
		return errors.New("reading the raft configuration")
	}
	s.membersRev = 0
	return nil
}

// saveMembers records cur as the last membership, with evs, fenced by the
// membership record's mod_revision.
func (s *hookService) saveMembers(ctx context.Context, cur map[raft.ServerID]raft.ServerSuffrage, evs []api.HookPublishedEvent) (*api.TxnResponse, error) {
	m := make(map[string]string, len(cur))
	for id, suf := range cur {
		m[string(id)] = suf.String()
	}
	b, err := rpc.Marshal(m)
	if err != nil {
		return nil, err
	}
	cmp, op := fencedPut(hookMembersKey, s.membersRev, b)
	res, err := s.record(ctx, &api.TxnRequest{Compares: cmp, Success: []api.TxnOp{op}}, evs)
	if err != nil {
		return nil, err
	}
	if !res.Succeeded {
		return nil, errFenced
	}
	s.members, s.membersRev = cur, res.Revision
	return res, nil
}

// checkMembership records node_added, node_removed and membership_changed
// when the Raft configuration differs from the last one recorded (by this
// leader or a previous one, so a change is recorded once even when the
// leader that made it died before recording it). While no handler wants
// them and none was ever recorded, the membership is only tracked in
// memory, so a cluster without hooks stores nothing.
func (s *hookService) checkMembership() error {
	cur := s.servers()
	if cur == nil {
		return nil
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
	if !changed {
		return nil
	}
	slices.Sort(added)
	slices.Sort(removed)
	var evs []api.HookPublishedEvent
	add := func(typ string, payload string) {
		evs = append(evs, api.HookPublishedEvent{EventType: typ, Payload: []byte(payload), NodeID: s.n.cfg.NodeID, TimeMs: nowMs()})
	}
	for _, id := range added {
		add(hooks.TypeNodeAdded, fmt.Sprintf(`{"node_id":%q,"voter":%t}`, id, cur[raft.ServerID(id)] == raft.Voter))
	}
	for _, id := range removed {
		add(hooks.TypeNodeRemoved, fmt.Sprintf(`{"node_id":%q}`, id))
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
	b, err := json.Marshal(map[string]any{"voters": voters, "learners": learners, "added": added, "removed": removed})
	if err != nil {
		return err
	}
	add(hooks.TypeMembershipChanged, string(b))
	if len(evs) > api.MaxHookPublishEvents {
		evs = evs[len(evs)-api.MaxHookPublishEvents:] // membership_changed, which lists every change, stays
	}
	ctx, cancel := context.WithTimeout(s.leadCtx, 5*time.Second)
	defer cancel()
	if evs = s.wanted(evs); len(evs) == 0 && s.membersRev == 0 {
		s.members = cur
		return nil
	}
	_, err = s.saveMembers(ctx, cur, evs)
	return err
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
