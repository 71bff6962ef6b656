package coord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/aspen-dev/aspen/api"
)

// A queue NAME lives under PrefixQueue+NAME+":" in many small keys, never
// one record per queue:
//
//	meta            JSON queueMeta (settings)
//	seq             decimal text, last item id handed out (atomic add)
//	item:<id>       JSON queueItem, written once at enqueue
//	inflight:<id>   JSON queueDelivery: the delivery state of an item that
//	                was dequeued at least once (pending while now < deadline)
//	dlq:<id>        JSON queueDead: an item moved to the dead-letter queue
//	dedup:<id>      JSON queueDedup: a dedup id seen in the last 5 minutes
//
// Item ids are %020d so that key order is id order (FIFO).

type queueMeta struct {
	VisibilityTimeoutMs int64 `json:"visibility_timeout_ms"`
	TTLMs               int64 `json:"ttl_ms"`
	MaxAttempts         int64 `json:"max_attempts"` // 0 = unlimited
	CreatedAtMs         int64 `json:"created_at_ms"`
}

type queueItem struct {
	Payload      []byte `json:"payload"`
	Group        string `json:"group,omitempty"`
	DedupID      string `json:"dedup_id,omitempty"`
	EnqueuedAtMs int64  `json:"enqueued_at_ms"`
	ExpiresAtMs  int64  `json:"expires_at_ms,omitempty"` // 0 = never
}

type queueDelivery struct {
	Receipt    string `json:"receipt"`
	Consumer   string `json:"consumer"`
	DeadlineMs int64  `json:"deadline_ms"` // visible again at this time
	Attempts   int64  `json:"attempts"`
	Group      string `json:"group,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

type queueDead struct {
	Item      queueItem `json:"item"`
	Attempts  int64     `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	MovedAtMs int64     `json:"moved_at_ms"`
}

type queueDedup struct {
	ItemID      uint64 `json:"item_id"`
	ExpiresAtMs int64  `json:"expires_at_ms"`
}

// queueKeys builds the keys of one queue.
type queueKeys struct{ base string }

func newQueueKeys(name string) (queueKeys, error) {
	if _, err := recordKey(PrefixQueue, "queue name", name); err != nil {
		return queueKeys{}, err
	}
	if strings.Contains(name, ":") {
		return queueKeys{}, api.Errorf(api.CodeInvalidArgument, "queue name %q contains ':'", name)
	}
	if len(PrefixQueue)+len(name)+40 > api.MaxKeySize {
		return queueKeys{}, api.Errorf(api.CodeInvalidArgument, "queue name is %d bytes; the limit is %d", len(name), api.MaxKeySize-len(PrefixQueue)-40)
	}
	return queueKeys{base: PrefixQueue + name + ":"}, nil
}

func (k queueKeys) meta() []byte          { return []byte(k.base + "meta") }
func (k queueKeys) seq() []byte           { return []byte(k.base + "seq") }
func (k queueKeys) items() []byte         { return []byte(k.base + "item:") }
func (k queueKeys) inflights() []byte     { return []byte(k.base + "inflight:") }
func (k queueKeys) dlqs() []byte          { return []byte(k.base + "dlq:") }
func (k queueKeys) dedups() []byte        { return []byte(k.base + "dedup:") }
func (k queueKeys) item(id uint64) []byte { return fmt.Appendf(nil, "%sitem:%020d", k.base, id) }
func (k queueKeys) inflight(id uint64) []byte {
	return fmt.Appendf(nil, "%sinflight:%020d", k.base, id)
}
func (k queueKeys) dlq(id uint64) []byte   { return fmt.Appendf(nil, "%sdlq:%020d", k.base, id) }
func (k queueKeys) dedup(id string) []byte { return []byte(k.base + "dedup:" + id) }

// idOf parses the id at the end of an item, inflight or dlq key.
func idOf(key []byte) (uint64, error) {
	i := strings.LastIndexByte(string(key), ':')
	return strconv.ParseUint(string(key[i+1:]), 10, 64)
}

func defaultMeta(nowMs int64) queueMeta {
	return queueMeta{VisibilityTimeoutMs: api.DefaultQueueVisibilityMs, MaxAttempts: api.DefaultQueueMaxAttempts, CreatedAtMs: nowMs}
}

func decodeJSON[T any](kv *api.KeyValue) (*T, error) {
	if kv == nil {
		return nil, nil
	}
	var v T
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	return &v, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("coord: marshal %T: %v", v, err)) // plain structs always marshal
	}
	return b
}

func del(key []byte) api.TxnOp { return api.TxnOp{Kind: api.TxnDelete, Key: key} }

// revCompare guards a transaction on key still being at rev (0 = absent).
func revCompare(key []byte, rev uint64) api.Compare {
	return api.Compare{Key: key, Target: api.TargetModRevision, Result: api.Equal, Number: int64(rev)}
}

func modRev(kv *api.KeyValue) uint64 {
	if kv == nil {
		return 0
	}
	return kv.ModRevision
}

// newReceipt returns a receipt handle for delivery attempts of item id:
// "<id>.<attempt>.<random>", unique per delivery.
func newReceipt(id uint64, attempt int64) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d.%d.%s", id, attempt, hex.EncodeToString(b[:]))
}

// receiptID is the item id a receipt handle names.
func receiptID(receipt string) (uint64, error) {
	head, _, ok := strings.Cut(receipt, ".")
	id, err := strconv.ParseUint(head, 10, 64)
	if !ok || err != nil || id == 0 {
		return 0, api.Errorf(api.CodeInvalidArgument, "receipt handle %q is malformed", receipt)
	}
	return id, nil
}

// ---- the dequeue decision ----

// queueCandidate is an item seen by a dequeue scan with its delivery state
// (nil when never delivered).
type queueCandidate struct {
	id       uint64
	item     *queueItem
	itemRev  uint64
	state    *queueDelivery
	stateRev uint64
}

// dequeuePlan decides, item by item in id order, what a dequeue does. It
// is pure: the caller feeds candidates and turns the plan into one
// transaction.
type dequeuePlan struct {
	meta     queueMeta
	consumer string
	max      int
	visMs    int64
	nowMs    int64
	peek     bool // decide what a dequeue would deliver, write nothing

	busy      map[string]bool // groups with an item in flight or delivered by this plan
	deliver   []queueCandidate
	states    []*queueDelivery // new delivery state of deliver[i]
	drop      []queueCandidate // expired by TTL
	dead      []queueCandidate // attempts exhausted: to the DLQ
	receiptFn func(id uint64, attempt int64) string
}

// newDequeuePlan starts a plan given every delivery state of the queue
// (for the groups in flight).
func newDequeuePlan(meta queueMeta, states []*queueDelivery, nowMs int64) *dequeuePlan {
	p := &dequeuePlan{meta: meta, nowMs: nowMs, busy: map[string]bool{}, receiptFn: newReceipt}
	for _, st := range states {
		if st.Group != "" && nowMs < st.DeadlineMs {
			p.busy[st.Group] = true
		}
	}
	return p
}

func (p *dequeuePlan) full() bool { return len(p.deliver) >= p.max }

// consider decides about one candidate, in id order.
func (p *dequeuePlan) consider(c queueCandidate) {
	if p.full() {
		return
	}
	if c.state != nil && p.nowMs < c.state.DeadlineMs {
		return // pending
	}
	if c.item.ExpiresAtMs != 0 && p.nowMs >= c.item.ExpiresAtMs {
		p.drop = append(p.drop, c)
		return
	}
	if c.item.Group != "" && p.busy[c.item.Group] {
		return // per-group FIFO: one in flight
	}
	var attempts int64
	if c.state != nil {
		attempts = c.state.Attempts
	}
	if p.meta.MaxAttempts > 0 && attempts >= p.meta.MaxAttempts {
		p.dead = append(p.dead, c)
		return
	}
	if c.item.Group != "" {
		p.busy[c.item.Group] = true
	}
	st := &queueDelivery{Consumer: p.consumer, DeadlineMs: p.nowMs + p.visMs, Attempts: attempts + 1, Group: c.item.Group}
	if c.state != nil {
		st.LastError = c.state.LastError
	}
	if !p.peek {
		st.Receipt = p.receiptFn(c.id, st.Attempts)
	}
	p.deliver = append(p.deliver, c)
	p.states = append(p.states, st)
}

// txn turns the plan into the operations and compares of one transaction.
func (p *dequeuePlan) txn(k queueKeys) *api.TxnRequest {
	t := &api.TxnRequest{}
	guard := func(c queueCandidate) {
		t.Compares = append(t.Compares, revCompare(k.item(c.id), c.itemRev), revCompare(k.inflight(c.id), c.stateRev))
	}
	for i, c := range p.deliver {
		guard(c)
		t.Success = append(t.Success, put(k.inflight(c.id), mustJSON(p.states[i])))
	}
	for _, c := range p.drop {
		guard(c)
		t.Success = append(t.Success, del(k.item(c.id)), del(k.inflight(c.id)))
	}
	for _, c := range p.dead {
		guard(c)
		d := queueDead{Item: *c.item, Attempts: c.state.Attempts, LastError: c.state.LastError, MovedAtMs: p.nowMs}
		t.Success = append(t.Success, del(k.item(c.id)), del(k.inflight(c.id)), put(k.dlq(c.id), mustJSON(d)))
	}
	return t
}

// ---- handlers ----

// queueScanPage is the page size of item scans (items carry payloads).
const queueScanPage = 64

// queueScanItems bounds the items one dequeue or peek looks at.
const queueScanItems = 4096

// queueMaxInflight bounds the delivery states one dequeue reads.
const queueMaxInflight = api.MaxScanLimit

// readMeta returns the queue's settings and whether it exists.
func (s *Service) readMeta(ctx context.Context, k queueKeys) (queueMeta, *api.KeyValue, error) {
	kv, err := s.b.Read(ctx, k.meta())
	if err != nil {
		return queueMeta{}, nil, err
	}
	m, err := decodeJSON[queueMeta](kv)
	if err != nil || m == nil {
		return defaultMeta(s.b.NowMs()), kv, err
	}
	return *m, kv, nil
}

// scanAll reads every record with prefix, at most limit of them.
func (s *Service) scanAll(ctx context.Context, prefix []byte, page, limit int) ([]api.KeyValue, error) {
	var out []api.KeyValue
	var after []byte
	for len(out) < limit {
		kvs, more, err := s.b.Scan(ctx, prefix, after, min(page, limit-len(out)))
		if err != nil {
			return nil, err
		}
		out = append(out, kvs...)
		if !more || len(kvs) == 0 {
			break
		}
		after = kvs[len(kvs)-1].Key
	}
	return out, nil
}

// readStates returns the delivery states of the queue by item id.
func (s *Service) readStates(ctx context.Context, k queueKeys) (map[uint64]api.KeyValue, []*queueDelivery, error) {
	kvs, err := s.scanAll(ctx, k.inflights(), api.MaxScanLimit, queueMaxInflight)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[uint64]api.KeyValue, len(kvs))
	var states []*queueDelivery
	for i := range kvs {
		id, err := idOf(kvs[i].Key)
		if err != nil {
			return nil, nil, corrupt(kvs[i].Key, err)
		}
		st, err := decodeJSON[queueDelivery](&kvs[i])
		if err != nil {
			return nil, nil, err
		}
		byID[id] = kvs[i]
		states = append(states, st)
	}
	return byID, states, nil
}

// plan runs a dequeue plan over the queue's items in id order.
func (s *Service) plan(ctx context.Context, k queueKeys, p *dequeuePlan, stateKVs map[uint64]api.KeyValue) error {
	var after []byte
	for scanned := 0; scanned < queueScanItems && !p.full(); {
		kvs, more, err := s.b.Scan(ctx, k.items(), after, queueScanPage)
		if err != nil {
			return err
		}
		for i := range kvs {
			id, err := idOf(kvs[i].Key)
			if err != nil {
				return corrupt(kvs[i].Key, err)
			}
			it, err := decodeJSON[queueItem](&kvs[i])
			if err != nil {
				return err
			}
			c := queueCandidate{id: id, item: it, itemRev: kvs[i].ModRevision}
			if skv, ok := stateKVs[id]; ok {
				if c.state, err = decodeJSON[queueDelivery](&skv); err != nil {
					return err
				}
				c.stateRev = skv.ModRevision
			}
			p.consider(c)
		}
		scanned += len(kvs)
		if !more || len(kvs) == 0 {
			break
		}
		after = kvs[len(kvs)-1].Key
	}
	return nil
}

func toItem(c queueCandidate, st *queueDelivery) api.QueueItem {
	out := api.QueueItem{ItemID: c.id, Payload: c.item.Payload, Group: c.item.Group, EnqueuedAtMs: c.item.EnqueuedAtMs}
	if st != nil {
		out.ReceiptHandle, out.DeliveryAttempts, out.VisibleAtMs, out.LastError = st.Receipt, st.Attempts, st.DeadlineMs, st.LastError
	}
	return out
}

func checkMax(max, dflt int) (int, error) {
	if max == 0 {
		return dflt, nil
	}
	if max < 1 || max > api.MaxQueueBatch {
		return 0, api.Errorf(api.CodeInvalidArgument, "max is %d; want 1..%d", max, api.MaxQueueBatch)
	}
	return max, nil
}

// QueueCreate creates a queue or updates its settings.
func (s *Service) QueueCreate(ctx context.Context, req *api.QueueCreateRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	m := queueMeta{VisibilityTimeoutMs: req.VisibilityTimeoutMs, TTLMs: req.TTLMs, MaxAttempts: req.MaxAttempts}
	if m.VisibilityTimeoutMs == 0 {
		m.VisibilityTimeoutMs = api.DefaultQueueVisibilityMs
	}
	if err := checkTTL("visibility_timeout_ms", m.VisibilityTimeoutMs); err != nil {
		return nil, err
	}
	if m.TTLMs != 0 {
		if err := checkTTL("ttl_ms", m.TTLMs); err != nil {
			return nil, err
		}
	}
	switch {
	case m.MaxAttempts == 0:
		m.MaxAttempts = api.DefaultQueueMaxAttempts
	case m.MaxAttempts == -1:
		m.MaxAttempts = 0
	case m.MaxAttempts < 0:
		return nil, api.Errorf(api.CodeInvalidArgument, "max_attempts is %d; want -1 (unlimited) or more than 0", m.MaxAttempts)
	}
	err = s.update(ctx, k.meta(), func(kv *api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		old, err := decodeJSON[queueMeta](kv)
		if err != nil {
			return nil, err
		}
		m.CreatedAtMs = nowMs
		if old != nil {
			m.CreatedAtMs = old.CreatedAtMs
		}
		return []api.TxnOp{put(k.meta(), mustJSON(m))}, nil
	})
	if err != nil {
		return nil, err
	}
	return &api.QueueResponse{Operation: "create", Name: req.Name, IsSuccess: true}, nil
}

// QueueDelete deletes a queue with its items, DLQ and dedup ids in one
// transaction. Its id sequence is kept, so a queue created again under the
// same name never reuses an item id (nor a receipt handle).
func (s *Service) QueueDelete(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	out := &api.QueueResponse{Operation: "delete", Name: req.Name}
	_, metaKV, err := s.readMeta(ctx, k)
	if err != nil {
		return nil, err
	}
	if metaKV == nil {
		items, _, err := s.b.Scan(ctx, k.items(), nil, 1)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			out.Error = "queue not found"
			return out, nil
		}
	}
	res, err := s.b.Txn(ctx, &api.TxnRequest{Success: []api.TxnOp{
		{Kind: api.TxnDeleteRange, Key: k.items()},
		{Kind: api.TxnDeleteRange, Key: k.inflights()},
		{Kind: api.TxnDeleteRange, Key: k.dlqs()},
		{Kind: api.TxnDeleteRange, Key: k.dedups()},
		del(k.meta()),
	}})
	if err != nil {
		return nil, err
	}
	out.IsSuccess = true
	if len(res.Results) > 0 {
		out.ItemsDeleted = res.Results[0].Deleted
	}
	return out, nil
}

// QueueEnqueue appends items, creating the queue with the defaults if it
// does not exist. Items whose dedup id was seen in the last five minutes
// are not enqueued again: their original id is returned.
func (s *Service) QueueEnqueue(ctx context.Context, req *api.QueueEnqueueRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	if len(req.Items) == 0 || len(req.Items) > api.MaxQueueBatch {
		return nil, api.Errorf(api.CodeInvalidArgument, "%d items; want 1..%d", len(req.Items), api.MaxQueueBatch)
	}
	dedupSeen := map[string]int{}
	for i, it := range req.Items {
		if len(it.Payload) > api.MaxQueuePayload {
			return nil, api.Errorf(api.CodeInvalidArgument, "item %d: payload is %d bytes; the limit is %d", i, len(it.Payload), api.MaxQueuePayload)
		}
		if it.TTLMs != 0 {
			if err := checkTTL("ttl_ms", it.TTLMs); err != nil {
				return nil, err
			}
		}
		if len(it.Group) > api.MaxQueueGroupSize || len(it.DedupID) > api.MaxQueueGroupSize {
			return nil, api.Errorf(api.CodeInvalidArgument, "item %d: group or dedup id longer than %d bytes", i, api.MaxQueueGroupSize)
		}
		if it.DedupID != "" {
			if _, dup := dedupSeen[it.DedupID]; dup {
				return nil, api.Errorf(api.CodeInvalidArgument, "item %d: dedup id %q appears twice in the batch", i, it.DedupID)
			}
			dedupSeen[it.DedupID] = i
		}
	}
	release, err := s.lockStripes(ctx, [][]byte{k.meta()})
	if err != nil {
		return nil, err
	}
	defer release()
	for attempt := 1; ; attempt++ {
		out, done, err := s.enqueueOnce(ctx, k, req)
		if err != nil || done {
			return out, err
		}
		if attempt == maxAttempts {
			return nil, api.Errorf(api.CodeUnavailable, "queue %q: %v (%d attempts lost); retry", req.Name, errContention, attempt)
		}
	}
}

func (s *Service) enqueueOnce(ctx context.Context, k queueKeys, req *api.QueueEnqueueRequest) (*api.QueueResponse, bool, error) {
	meta, metaKV, err := s.readMeta(ctx, k)
	if err != nil {
		return nil, false, err
	}
	nowMs := s.b.NowMs()
	out := &api.QueueResponse{Operation: "enqueue", Name: req.Name, ItemIDs: make([]uint64, len(req.Items))}
	txn := &api.TxnRequest{Compares: []api.Compare{revCompare(k.meta(), modRev(metaKV))}}
	if metaKV == nil {
		txn.Success = append(txn.Success, put(k.meta(), mustJSON(meta)))
	}
	var fresh []int
	for i, it := range req.Items {
		if it.DedupID == "" {
			fresh = append(fresh, i)
			continue
		}
		kv, err := s.b.Read(ctx, k.dedup(it.DedupID))
		if err != nil {
			return nil, false, err
		}
		d, err := decodeJSON[queueDedup](kv)
		if err != nil {
			return nil, false, err
		}
		txn.Compares = append(txn.Compares, revCompare(k.dedup(it.DedupID), modRev(kv)))
		if d != nil && nowMs < d.ExpiresAtMs {
			out.ItemIDs[i] = d.ItemID
			continue
		}
		fresh = append(fresh, i)
	}
	if len(fresh) > 0 {
		// Take the ids first; a lost compare below only leaves a gap.
		res, err := s.b.Txn(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnAdd, Key: k.seq(), Delta: int64(len(fresh))}}})
		if err != nil {
			return nil, false, err
		}
		b, err := addResult(res, 0)
		if err != nil {
			return nil, false, err
		}
		last, err := strconv.ParseUint(string(b), 10, 64)
		if err != nil {
			return nil, false, corrupt(k.seq(), err)
		}
		first := reserveRange(last, uint64(len(fresh)))
		for j, i := range fresh {
			id := first + uint64(j)
			it := req.Items[i]
			out.ItemIDs[i] = id
			rec := queueItem{Payload: it.Payload, Group: it.Group, DedupID: it.DedupID, EnqueuedAtMs: nowMs}
			ttl := it.TTLMs
			if ttl == 0 {
				ttl = meta.TTLMs
			}
			if ttl != 0 {
				rec.ExpiresAtMs = nowMs + ttl
			}
			if rec.Payload == nil {
				rec.Payload = []byte{}
			}
			txn.Success = append(txn.Success, put(k.item(id), mustJSON(rec)))
			if it.DedupID != "" {
				d := queueDedup{ItemID: id, ExpiresAtMs: nowMs + api.QueueDedupWindowMs}
				// The store's TTL only collects the record; the window is
				// checked against ExpiresAtMs on the leader's clock.
				txn.Success = append(txn.Success, api.TxnOp{Kind: api.TxnPut, Key: k.dedup(it.DedupID), Value: mustJSON(d), TTLMs: 2 * api.QueueDedupWindowMs})
			}
		}
	}
	if len(txn.Success) > 0 {
		res, err := s.b.Txn(ctx, txn)
		if err != nil {
			return nil, false, err
		}
		if !res.Succeeded {
			return nil, false, nil
		}
	}
	out.IsSuccess = true
	out.ItemID = out.ItemIDs[0]
	out.Duplicate = len(req.Items) == 1 && len(fresh) == 0
	return out, true, nil
}

// QueueDequeue delivers up to max visible items to a consumer, in id order,
// at most one in flight per message group. Items whose TTL passed are
// dropped; items out of attempts move to the DLQ. An empty result is a
// success with no items.
func (s *Service) QueueDequeue(ctx context.Context, req *api.QueueDequeueRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	if err := checkHolder(req.Consumer); err != nil {
		return nil, err
	}
	max, err := checkMax(req.Max, 1)
	if err != nil {
		return nil, err
	}
	if req.VisibilityMs != 0 {
		if err := checkTTL("visibility_ms", req.VisibilityMs); err != nil {
			return nil, err
		}
	}
	release, err := s.lockStripes(ctx, [][]byte{k.meta()})
	if err != nil {
		return nil, err
	}
	defer release()
	for attempt := 1; ; attempt++ {
		meta, _, err := s.readMeta(ctx, k)
		if err != nil {
			return nil, err
		}
		stateKVs, states, err := s.readStates(ctx, k)
		if err != nil {
			return nil, err
		}
		p := newDequeuePlan(meta, states, s.b.NowMs())
		p.consumer, p.max, p.visMs = req.Consumer, max, req.VisibilityMs
		if p.visMs == 0 {
			p.visMs = meta.VisibilityTimeoutMs
		}
		if err := s.plan(ctx, k, p, stateKVs); err != nil {
			return nil, err
		}
		out := &api.QueueResponse{Operation: "dequeue", Name: req.Name, IsSuccess: true, Items: []api.QueueItem{}}
		txn := p.txn(k)
		if len(txn.Success) == 0 {
			return out, nil
		}
		res, err := s.b.Txn(ctx, txn)
		if err != nil {
			return nil, err
		}
		if res.Succeeded {
			for i, c := range p.deliver {
				out.Items = append(out.Items, toItem(c, p.states[i]))
			}
			return out, nil
		}
		if attempt == maxAttempts {
			return nil, api.Errorf(api.CodeUnavailable, "queue %q: %v (%d attempts lost); retry", req.Name, errContention, attempt)
		}
	}
}

// QueuePeek shows up to max items a dequeue would deliver now, changing
// nothing.
func (s *Service) QueuePeek(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	max, err := checkMax(req.Max, api.DefaultQueuePeekMax)
	if err != nil {
		return nil, err
	}
	meta, _, err := s.readMeta(ctx, k)
	if err != nil {
		return nil, err
	}
	stateKVs, states, err := s.readStates(ctx, k)
	if err != nil {
		return nil, err
	}
	p := newDequeuePlan(meta, states, s.b.NowMs())
	p.max, p.peek = max, true
	if err := s.plan(ctx, k, p, stateKVs); err != nil {
		return nil, err
	}
	out := &api.QueueResponse{Operation: "peek", Name: req.Name, IsSuccess: true, Items: []api.QueueItem{}}
	for _, c := range p.deliver {
		it := toItem(c, c.state)
		it.ReceiptHandle, it.VisibleAtMs = "", 0
		out.Items = append(out.Items, it)
	}
	return out, nil
}

// deliveryStep runs decide on the delivery state a receipt names, in a
// compare-and-swap step on its inflight key. decide gets the state (nil
// when none) and returns the operations and the answer.
func (s *Service) deliveryStep(ctx context.Context, op string, req *api.QueueReceiptRequest, decide func(k queueKeys, id uint64, st *queueDelivery, nowMs int64) ([]api.TxnOp, api.QueueResponse, error)) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	id, err := receiptID(req.ReceiptHandle)
	if err != nil {
		return nil, err
	}
	var out api.QueueResponse
	err = s.update(ctx, k.inflight(id), func(kv *api.KeyValue, nowMs int64) ([]api.TxnOp, error) {
		st, err := decodeJSON[queueDelivery](kv)
		if err != nil {
			return nil, err
		}
		if st == nil || st.Receipt != req.ReceiptHandle {
			out = api.QueueResponse{Error: "receipt handle is stale or unknown (the item was acked, redelivered or moved)"}
			return nil, nil
		}
		ops, resp, err := decide(k, id, st, nowMs)
		out = resp
		return ops, err
	})
	if err != nil {
		return nil, err
	}
	out.Operation, out.Name = op, req.Name
	return &out, nil
}

// QueueAck deletes a delivered item. A stale receipt fails.
func (s *Service) QueueAck(ctx context.Context, req *api.QueueReceiptRequest) (*api.QueueResponse, error) {
	return s.deliveryStep(ctx, "ack", req, func(k queueKeys, id uint64, _ *queueDelivery, _ int64) ([]api.TxnOp, api.QueueResponse, error) {
		return []api.TxnOp{del(k.item(id)), del(k.inflight(id))}, api.QueueResponse{IsSuccess: true, ItemID: id}, nil
	})
}

// decideNack says whether a nacked delivery goes to the DLQ.
func decideNack(st *queueDelivery, meta queueMeta, toDLQ bool) bool {
	return toDLQ || (meta.MaxAttempts > 0 && st.Attempts >= meta.MaxAttempts)
}

// QueueNack gives a delivered item back: visible again at once, or to the
// DLQ when asked or when it is out of attempts.
func (s *Service) QueueNack(ctx context.Context, req *api.QueueReceiptRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	meta, _, err := s.readMeta(ctx, k)
	if err != nil {
		return nil, err
	}
	return s.deliveryStep(ctx, "nack", req, func(k queueKeys, id uint64, st *queueDelivery, nowMs int64) ([]api.TxnOp, api.QueueResponse, error) {
		lastErr := st.LastError
		if req.Error != "" {
			lastErr = req.Error
		}
		if !decideNack(st, meta, req.ToDLQ) {
			next := *st
			next.DeadlineMs, next.Receipt, next.LastError = nowMs, "", lastErr
			return []api.TxnOp{put(k.inflight(id), mustJSON(next))}, api.QueueResponse{IsSuccess: true, ItemID: id}, nil
		}
		kv, err := s.b.Read(ctx, k.item(id))
		if err != nil {
			return nil, api.QueueResponse{}, err
		}
		it, err := decodeJSON[queueItem](kv)
		if err != nil || it == nil {
			return nil, api.QueueResponse{Error: "item not found"}, err
		}
		d := queueDead{Item: *it, Attempts: st.Attempts, LastError: lastErr, MovedAtMs: nowMs}
		ops := []api.TxnOp{del(k.item(id)), del(k.inflight(id)), put(k.dlq(id), mustJSON(d))}
		return ops, api.QueueResponse{IsSuccess: true, ItemID: id, MovedToDLQ: true}, nil
	})
}

// QueueExtend moves the visibility deadline of a pending delivery later by
// add_ms. An expired delivery cannot be extended.
func (s *Service) QueueExtend(ctx context.Context, req *api.QueueReceiptRequest) (*api.QueueResponse, error) {
	if err := checkTTL("add_ms", req.AddMs); err != nil {
		return nil, err
	}
	return s.deliveryStep(ctx, "extend", req, func(k queueKeys, id uint64, st *queueDelivery, nowMs int64) ([]api.TxnOp, api.QueueResponse, error) {
		if nowMs >= st.DeadlineMs {
			return nil, api.QueueResponse{ItemID: id, Error: fmt.Sprintf("visibility timeout passed %d ms ago", nowMs-st.DeadlineMs)}, nil
		}
		next := *st
		next.DeadlineMs += req.AddMs
		return []api.TxnOp{put(k.inflight(id), mustJSON(next))}, api.QueueResponse{IsSuccess: true, ItemID: id, VisibleAtMs: next.DeadlineMs}, nil
	})
}

// QueueStatus counts visible, pending and dead-lettered items. It reads
// the whole queue, page by page.
func (s *Service) QueueStatus(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	_, metaKV, err := s.readMeta(ctx, k)
	if err != nil {
		return nil, err
	}
	out := &api.QueueResponse{Operation: "status", Name: req.Name}
	if metaKV == nil {
		out.Error = "queue not found"
		return out, nil
	}
	nowMs := s.b.NowMs()
	_, states, err := s.readStates(ctx, k)
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		if nowMs < st.DeadlineMs {
			out.PendingCount++
		}
	}
	items, err := s.countKeys(ctx, k.items())
	if err != nil {
		return nil, err
	}
	out.VisibleCount = items - out.PendingCount
	if out.DLQCount, err = s.countKeys(ctx, k.dlqs()); err != nil {
		return nil, err
	}
	out.IsSuccess = true
	return out, nil
}

// countKeys counts the keys with prefix.
func (s *Service) countKeys(ctx context.Context, prefix []byte) (int64, error) {
	var n int64
	var after []byte
	for {
		kvs, more, err := s.b.Scan(ctx, prefix, after, queueScanPage)
		if err != nil {
			return 0, err
		}
		n += int64(len(kvs))
		if !more || len(kvs) == 0 {
			return n, nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

// QueueDLQ lists up to max dead-lettered items, oldest id first.
func (s *Service) QueueDLQ(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	max, err := checkMax(req.Max, api.DefaultQueuePeekMax)
	if err != nil {
		return nil, err
	}
	kvs, _, err := s.b.Scan(ctx, k.dlqs(), nil, max)
	if err != nil {
		return nil, err
	}
	out := &api.QueueResponse{Operation: "dlq", Name: req.Name, IsSuccess: true, Items: []api.QueueItem{}}
	for i := range kvs {
		id, err := idOf(kvs[i].Key)
		if err != nil {
			return nil, corrupt(kvs[i].Key, err)
		}
		d, err := decodeJSON[queueDead](&kvs[i])
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, api.QueueItem{ItemID: id, Payload: d.Item.Payload, DeliveryAttempts: d.Attempts,
			Group: d.Item.Group, EnqueuedAtMs: d.Item.EnqueuedAtMs, LastError: d.LastError})
	}
	return out, nil
}

// QueueRedrive moves a dead-lettered item back to the queue under its id,
// with its attempts reset. Redriving an item not in the DLQ succeeds and
// does nothing.
func (s *Service) QueueRedrive(ctx context.Context, req *api.QueueRequest) (*api.QueueResponse, error) {
	k, err := newQueueKeys(req.Name)
	if err != nil {
		return nil, err
	}
	if req.ItemID == 0 {
		return nil, api.Errorf(api.CodeInvalidArgument, "item_id is 0")
	}
	out := &api.QueueResponse{Operation: "redrive", Name: req.Name, ItemID: req.ItemID, IsSuccess: true}
	err = s.update(ctx, k.dlq(req.ItemID), func(kv *api.KeyValue, _ int64) ([]api.TxnOp, error) {
		d, err := decodeJSON[queueDead](kv)
		if err != nil || d == nil {
			return nil, err
		}
		return []api.TxnOp{del(k.dlq(req.ItemID)), del(k.inflight(req.ItemID)), put(k.item(req.ItemID), mustJSON(d.Item))}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
