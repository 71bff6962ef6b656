package node

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/blob"
	"github.com/aspen-dev/aspen/internal/consensus"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Replication, repair and garbage collection of blobs.
//
// After a client adds a blob, the node that stored it (its replicator
// goroutine) pushes copies to
// other members (blob.ALPN put, marked Replica) until ReplicationFactor
// nodes hold it; each receiver registers itself under
// _system:blob:replica:HASH:NODEID.
//
// The leader runs blobLoop: every RepairIntervalMs it counts, for each
// blob, the registered holders that are members and answer a dial, and
// restores the factor (it fetches the blob itself if it lacks it, then
// pushes to other members). Every GCIntervalMs it deletes the records of
// blobs added more than GCGraceMs ago that carry no tag. Every node runs
// the local half of GC: it deletes files older than GCGraceMs whose blob
// the cluster no longer records. Files still being written live in tmp/
// and are never listed.
//
// The policy is kept in the key/value store under blobPolicyKey, so it is
// the same on every node and can change at run time (blob.policy).

const blobPolicyKey = api.BlobKeyPrefix + "policy"

// Policy defaults (spec 04: GC every 60 s, 300 s grace).
const (
	defaultBlobRepairInterval = 30 * time.Second
	defaultBlobGCInterval     = 60 * time.Second
	defaultBlobGCGrace        = 300 * time.Second
	blobLoopTick              = 250 * time.Millisecond
	blobProbeTimeout          = 2 * time.Second
	blobPushTimeout           = 10 * time.Minute
)

// storedPolicy reads the policy from the local store.
func (b *blobService) storedPolicy() (api.BlobPolicy, error) {
	var p api.BlobPolicy
	kv, _, err := b.n.store.Get([]byte(blobPolicyKey), b.n.stampMs())
	if err != nil || kv == nil {
		return p, err
	}
	if err := rpc.Unmarshal(kv.Value, &p); err != nil {
		return p, api.Errorf(api.CodeInternal, "blob policy record: %v", err)
	}
	return p, nil
}

// effective fills the defaults of p for a cluster of the given voters.
func effectivePolicy(p api.BlobPolicy, voters int) api.BlobPolicy {
	if p.ReplicationFactor == 0 {
		p.ReplicationFactor = max(1, min(3, voters))
	}
	if p.MinReplicas == 0 {
		p.MinReplicas = min(2, p.ReplicationFactor)
	}
	if p.RepairIntervalMs == 0 {
		p.RepairIntervalMs = defaultBlobRepairInterval.Milliseconds()
	}
	if p.GCIntervalMs == 0 {
		p.GCIntervalMs = defaultBlobGCInterval.Milliseconds()
	}
	if p.GCGraceMs == 0 {
		p.GCGraceMs = defaultBlobGCGrace.Milliseconds()
	}
	return p
}

func checkPolicy(p api.BlobPolicy) error {
	f := p.ReplicationFactor
	if f != 0 && (f < api.MinBlobReplicationFactor || f > api.MaxBlobReplicationFactor) {
		return api.Errorf(api.CodeInvalidArgument, "replication_factor %d: must be %d..%d", f, api.MinBlobReplicationFactor, api.MaxBlobReplicationFactor)
	}
	if p.MinReplicas < 0 || p.MinReplicas > api.MaxBlobReplicationFactor || f != 0 && p.MinReplicas > f {
		return api.Errorf(api.CodeInvalidArgument, "min_replicas %d: must be 1..replication_factor", p.MinReplicas)
	}
	if p.RepairIntervalMs < 0 || p.GCIntervalMs < 0 || p.GCGraceMs < 0 {
		return api.Errorf(api.CodeInvalidArgument, "intervals must not be negative")
	}
	return nil
}

// members maps the Raft members' IDs to their addresses and counts voters.
func (b *blobService) members() (map[uint64]transport.NodeAddr, int, error) {
	servers, err := b.n.raft.Servers()
	if err != nil {
		return nil, 0, err
	}
	out := make(map[uint64]transport.NodeAddr, len(servers))
	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		a, err := transport.ParseNodeAddr(string(s.Address))
		if err != nil {
			continue
		}
		out[consensus.ParseServerID(s.ID)] = a
	}
	return out, voters, nil
}

func (b *blobService) currentPolicy() (api.BlobPolicy, map[uint64]transport.NodeAddr, error) {
	p, err := b.storedPolicy()
	if err != nil {
		return p, nil, err
	}
	ms, voters, err := b.members()
	if err != nil {
		return p, nil, err
	}
	return effectivePolicy(p, voters), ms, nil
}

func (b *blobService) policy(ctx context.Context, req *api.BlobPolicyRequest) (*api.BlobPolicyResponse, error) {
	if req.Set {
		if err := checkPolicy(req.Policy); err != nil {
			return nil, err
		}
		v, err := rpc.Marshal(req.Policy)
		if err != nil {
			return nil, err
		}
		if _, err := b.n.propose(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnPut, Key: []byte(blobPolicyKey), Value: v}}}); err != nil {
			return nil, err
		}
		b.kick()
	} else if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	stored, err := b.storedPolicy()
	if err != nil {
		return nil, err
	}
	_, voters, err := b.members()
	if err != nil {
		return nil, err
	}
	return &api.BlobPolicyResponse{Stored: stored, Effective: effectivePolicy(stored, voters)}, nil
}

// kick asks the leader loop for a repair pass now.
func (b *blobService) kick() {
	select {
	case b.kickc <- struct{}{}:
	default:
	}
}

// replicaRecords lists the registered holders of hex with the time of
// their record.
func (b *blobService) replicaRecords(hex string) (map[uint64]int64, error) {
	kvs, err := b.scanAll(blobReplicaPrefix + hex + ":")
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]int64, len(kvs))
	for _, kv := range kvs {
		id, err := strconv.ParseUint(string(kv.Key[len(blobReplicaPrefix)+len(hex)+1:]), 10, 64)
		if err != nil {
			continue
		}
		var r blobReplica
		_ = rpc.Unmarshal(kv.Value, &r)
		out[id] = r.UpdatedMs
	}
	return out, nil
}

func (b *blobService) replicationStatus(ctx context.Context, req *api.BlobHashRequest) (*api.BlobReplicationStatusResponse, error) {
	h, err := parseBlobHash(req.Hash)
	if err != nil {
		return nil, err
	}
	hex := h.String()
	kv, err := b.readKey(ctx, []byte(blobMetaPrefix+hex))
	if err != nil {
		return nil, err
	}
	p, ms, err := b.currentPolicy()
	if err != nil {
		return nil, err
	}
	out := &api.BlobReplicationStatusResponse{Hash: hex, ReplicaNodes: []uint64{}, ReplicationFactor: p.ReplicationFactor, MinReplicas: p.MinReplicas}
	if kv != nil {
		var m blobMeta
		if err := rpc.Unmarshal(kv.Value, &m); err != nil {
			return nil, api.Errorf(api.CodeInternal, "blob record %q: %v", kv.Key, err)
		}
		out.WasFound, out.SizeBytes, out.UpdatedAt = true, m.SizeBytes, m.CreatedMs
		recs, err := b.replicaRecords(hex)
		if err != nil {
			return nil, err
		}
		for id, at := range recs {
			if _, ok := ms[id]; ok {
				out.ReplicaNodes = append(out.ReplicaNodes, id)
				out.UpdatedAt = max(out.UpdatedAt, at)
			}
		}
		slices.Sort(out.ReplicaNodes)
	}
	n := len(out.ReplicaNodes)
	switch {
	case n == 0:
		out.Status = api.BlobCritical
	case n < p.MinReplicas:
		out.Status = api.BlobUnderReplicated
	case n < p.ReplicationFactor:
		out.Status = api.BlobDegraded
	default:
		out.Status = api.BlobHealthy
	}
	out.ReplicasNeeded = max(0, p.ReplicationFactor-n)
	return out, nil
}

// ticket issues a blob ticket's content: the members holding the blob and
// a capability to read that blob only (blob.ReadCapability), valid for
// req.TTLMs. A blob no member holds is NOT_FOUND.
func (b *blobService) ticket(ctx context.Context, req *api.BlobTicketRequest) (*api.BlobTicketResponse, error) {
	h, err := parseBlobHash(req.Hash)
	if err != nil {
		return nil, err
	}
	if req.TTLMs < 0 || req.TTLMs > api.MaxBlobTicketTTLMs {
		return nil, api.Errorf(api.CodeInvalidArgument, "ticket lifetime %d ms: must be 0 (no expiry) to %d ms (366 days)", req.TTLMs, int64(api.MaxBlobTicketTTLMs))
	}
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	ids, err := b.replicas(h.String())
	if err != nil {
		return nil, err
	}
	ms, _, err := b.members()
	if err != nil {
		return nil, err
	}
	out := &api.BlobTicketResponse{Hash: h.String(), ClusterID: b.n.keys.ClusterID, Holders: []string{}}
	for _, id := range ids {
		if a, ok := ms[id]; ok && len(out.Holders) < blob.MaxTicketPeers {
			out.Holders = append(out.Holders, a.String())
		}
	}
	if len(out.Holders) == 0 {
		return nil, api.Errorf(api.CodeNotFound, "blob %s: no member holds it", h)
	}
	if req.TTLMs > 0 {
		out.ExpiresMs = time.Now().UnixMilli() + req.TTLMs
	}
	out.Token = blob.ReadCapability(b.n.keys.Capability, h, out.ExpiresMs)
	return out, nil
}

// prober remembers, for one repair pass, which members answered a dial.
type prober struct {
	b    *blobService
	ms   map[uint64]transport.NodeAddr
	seen map[uint64]bool
}

func (b *blobService) newProber(ms map[uint64]transport.NodeAddr) *prober {
	return &prober{b: b, ms: ms, seen: map[uint64]bool{b.n.cfg.NodeID: true}}
}

func (p *prober) alive(ctx context.Context, id uint64) bool {
	if ok, done := p.seen[id]; done {
		return ok
	}
	a, ok := p.ms[id]
	if ok {
		ctx, cancel := context.WithTimeout(ctx, blobProbeTimeout)
		_, err := p.b.n.ep.Dial(ctx, a, blob.ALPN) // a shared, cached connection: not closed here
		cancel()
		ok = err == nil
	}
	p.seen[id] = ok
	return ok
}

// repairOne brings h to factor reachable holders, preferring targets. The
// leader fetches the blob first when it lacks it, then pushes it.
func (b *blobService) repairOne(ctx context.Context, pr *prober, h blob.Hash, factor int, targets []uint64) (ok, failed []uint64, err error) {
	hex := h.String()
	recs, err := b.replicaRecords(hex)
	if err != nil {
		return nil, nil, err
	}
	live := 0
	for id := range recs {
		if pr.alive(ctx, id) {
			live++
		}
	}
	need := factor - live
	if need <= 0 {
		return nil, nil, nil
	}
	self := b.n.cfg.NodeID
	var cands []uint64
	for _, id := range targets {
		if _, member := pr.ms[id]; member && !slices.Contains(cands, id) {
			cands = append(cands, id)
		}
	}
	var rest []uint64
	for id := range pr.ms {
		if !slices.Contains(cands, id) {
			rest = append(rest, id)
		}
	}
	slices.Sort(rest)
	cands = append(cands, rest...)
	local, err := b.store.Has(ctx, h)
	if err != nil {
		return nil, nil, err
	}
	_, selfRec := recs[self]
	switch {
	case !local:
		if err := b.fetch(ctx, h); err != nil {
			return nil, []uint64{self}, err
		}
	case !selfRec:
		info, err := b.store.Stat(ctx, h)
		if err == nil {
			err = b.stored(ctx, blob.PutResult{Hash: h, Size: info.Size}, nil)
		}
		if err != nil {
			return nil, []uint64{self}, err
		}
	}
	if !selfRec {
		need--
		ok = append(ok, self)
	}
	for _, id := range cands {
		if need <= 0 {
			break
		}
		if _, held := recs[id]; held || id == self || !pr.alive(ctx, id) {
			continue
		}
		if err := b.push(ctx, id, h); err != nil {
			b.n.log.Warn("blob: replicating failed", "hash", hex, "node", id, "err", err)
			failed = append(failed, id)
			continue
		}
		ok = append(ok, id)
		need--
	}
	return ok, failed, nil
}

// push sends the local copy of h to member id, which stores and registers it.
func (b *blobService) push(ctx context.Context, id uint64, h blob.Hash) error {
	to, err := b.memberAddr(id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, blobPushTimeout)
	defer cancel()
	conn, err := b.n.ep.Dial(ctx, to, blob.ALPN)
	if err != nil {
		return err
	}
	exp, err := conn.Exporter()
	if err != nil {
		return err
	}
	r, err := b.store.Open(ctx, h)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = blob.PutReplica(ctx, conn, auth.Proof(b.n.keys.Node, exp), r, h)
	return err
}

// added runs after a client added a blob through this node: it queues the
// blob for replicator. When the queue is full the blob waits for the
// leader's next repair pass instead.
func (b *blobService) added(res blob.PutResult) {
	select {
	case b.addedc <- res.Hash:
	default:
		b.n.log.Debug("blob: replication queue full; leaving it to the repair loop", "hash", res.Hash.String())
	}
}

// replicator runs on every node until it stops: it pushes each blob added
// here to other members until the replication factor is reached.
func (b *blobService) replicator() {
	for {
		var h blob.Hash
		select {
		case <-b.n.ctx.Done():
			return
		case h = <-b.addedc:
		}
		ctx, cancel := context.WithTimeout(b.n.ctx, blobPushTimeout)
		p, ms, err := b.currentPolicy()
		if err == nil {
			_, _, err = b.repairOne(ctx, b.newProber(ms), h, p.ReplicationFactor, nil)
		}
		cancel()
		if err != nil {
			b.n.log.Warn("blob: replicating after add", "hash", h.String(), "err", err)
		}
	}
}

// checkLocal runs on every node: a blob the cluster records as held here
// whose file is missing (a node that rejoined with a lost or wiped disk)
// is fetched again from another holder.
func (b *blobService) checkLocal() {
	self := fmt.Sprintf(":%020d", b.n.cfg.NodeID)
	recs, err := b.scanAll(blobReplicaPrefix)
	if err != nil {
		return
	}
	for _, kv := range recs {
		k := string(kv.Key)
		if !strings.HasSuffix(k, self) || b.n.ctx.Err() != nil {
			continue
		}
		h, err := blob.ParseHash(k[len(blobReplicaPrefix) : len(k)-len(self)])
		if err != nil {
			continue
		}
		if ok, err := b.store.Has(b.n.ctx, h); err != nil || ok {
			continue
		}
		b.n.log.Warn("blob: recorded here but missing on disk; fetching it again", "hash", h.String())
		if err := b.fetch(b.n.ctx, h); err != nil {
			b.n.log.Warn("blob: re-fetching a missing blob", "hash", h.String(), "err", err)
		}
	}
}

// corrupt drops this node's corrupt copy of h and its replica record, then
// fetches a good copy from another holder.
func (b *blobService) corrupt(_ context.Context, h blob.Hash) error {
	b.n.log.Warn("blob: local copy is corrupt; replacing it", "hash", h.String())
	ctx, cancel := context.WithTimeout(b.n.ctx, blobFetchWait+blobPushTimeout)
	defer cancel()
	if err := b.store.Delete(ctx, h); err != nil {
		return err
	}
	req := &api.BlobForgetRequest{Hash: h.String(), NodeID: b.n.cfg.NodeID}
	if _, err := leaderCall(ctx, b.n, api.OpBlobForget, req, b.forget); err != nil {
		return fmt.Errorf("blob %s: dropping the replica record: %w", h, err)
	}
	return b.fetch(ctx, h)
}

// forget removes the replica record of a node that no longer holds a blob.
func (b *blobService) forget(ctx context.Context, req *api.BlobForgetRequest) (*api.BlobTagResponse, error) {
	if _, err := parseBlobHash(req.Hash); err != nil {
		return nil, err
	}
	res, err := b.n.propose(ctx, &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnDelete, Key: replicaKey(strings.ToLower(req.Hash), req.NodeID)}}})
	if err != nil {
		return nil, err
	}
	return &api.BlobTagResponse{IsSuccess: true, Changed: res.Succeeded}, nil
}

func (b *blobService) repair(ctx context.Context, req *api.BlobRepairRequest) (*api.BlobRepairResponse, error) {
	h, err := parseBlobHash(req.Hash)
	if err != nil {
		return nil, err
	}
	if !b.n.raft.IsLeader() {
		return nil, api.ErrNotLeader
	}
	if req.ReplicationFactor < 0 || req.ReplicationFactor > api.MaxBlobReplicationFactor {
		return nil, api.Errorf(api.CodeInvalidArgument, "replication factor %d: must be %d..%d", req.ReplicationFactor, api.MinBlobReplicationFactor, api.MaxBlobReplicationFactor)
	}
	kv, err := b.readKey(ctx, []byte(blobMetaPrefix+h.String()))
	if err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, api.Errorf(api.CodeNotFound, "blob %s is not in the cluster", h)
	}
	start := time.Now()
	p, ms, err := b.currentPolicy()
	if err != nil {
		return nil, err
	}
	factor := p.ReplicationFactor
	if req.ReplicationFactor > 0 {
		factor = req.ReplicationFactor
	}
	ok, failed, err := b.repairOne(ctx, b.newProber(ms), h, factor, req.Targets)
	if err != nil && len(ok) == 0 {
		return nil, err
	}
	return &api.BlobRepairResponse{SuccessfulNodes: orEmpty(ok), FailedNodes: orEmpty(failed), DurationMs: time.Since(start).Milliseconds()}, nil
}

func orEmpty(s []uint64) []uint64 {
	if s == nil {
		return []uint64{}
	}
	return s
}

func (b *blobService) repairCycle(_ context.Context, _ *struct{}) (*api.BlobRepairCycleResponse, error) {
	if !b.n.raft.IsLeader() {
		return nil, api.ErrNotLeader
	}
	b.kick()
	return &api.BlobRepairCycleResponse{IsSuccess: true}, nil
}

// loop runs on every node until it stops: repair and the cluster half of
// GC while it leads; the check of its own recorded copies and the local
// half of GC always.
func (b *blobService) loop() {
	t := time.NewTicker(blobLoopTick)
	defer t.Stop()
	var lastRepair, lastGC, lastLocalGC, lastCheck time.Time
	for {
		kicked := false
		select {
		case <-b.n.ctx.Done():
			return
		case <-t.C:
		case <-b.kickc:
			kicked = true
		}
		if !b.n.raft.Initialized() {
			continue
		}
		p, ms, err := b.currentPolicy()
		if err != nil {
			continue
		}
		now := time.Now()
		leader := b.n.raft.IsLeader()
		if leader && (kicked || now.Sub(lastRepair) >= time.Duration(p.RepairIntervalMs)*time.Millisecond) {
			lastRepair = now
			b.repairPass(p, ms)
		}
		gcEvery := time.Duration(p.GCIntervalMs) * time.Millisecond
		if leader && now.Sub(lastGC) >= gcEvery {
			lastGC = now
			b.collectRecords(p)
		}
		if now.Sub(lastCheck) >= time.Duration(p.RepairIntervalMs)*time.Millisecond {
			lastCheck = now
			b.checkLocal()
		}
		if now.Sub(lastLocalGC) >= gcEvery {
			lastLocalGC = now
			b.collectFiles(p)
		}
	}
}

// repairPass repairs every known blob, most endangered first.
func (b *blobService) repairPass(p api.BlobPolicy, ms map[uint64]transport.NodeAddr) {
	ctx, cancel := context.WithCancel(b.n.ctx)
	defer cancel()
	metas, err := b.scanAll(blobMetaPrefix)
	if err != nil {
		return
	}
	pr := b.newProber(ms)
	type item struct {
		h    blob.Hash
		live int
	}
	var todo []item
	for _, kv := range metas {
		h, err := blob.ParseHash(string(kv.Key[len(blobMetaPrefix):]))
		if err != nil {
			continue
		}
		recs, err := b.replicaRecords(h.String())
		if err != nil {
			return
		}
		live := 0
		for id := range recs {
			if pr.alive(ctx, id) {
				live++
			}
		}
		if live < p.ReplicationFactor {
			todo = append(todo, item{h, live})
		}
	}
	slices.SortStableFunc(todo, func(a, b item) int { return a.live - b.live })
	for _, it := range todo {
		if ctx.Err() != nil || !b.n.raft.IsLeader() {
			return
		}
		ok, failed, err := b.repairOne(ctx, pr, it.h, p.ReplicationFactor, nil)
		if err != nil || len(failed) > 0 {
			b.n.log.Warn("blob: repair incomplete", "hash", it.h.String(), "copied_to", ok, "failed", failed, "err", err)
		}
	}
}

// collectRecords deletes the records of untagged blobs older than the grace
// period; each deletion is conditional on the record being unchanged.
func (b *blobService) collectRecords(p api.BlobPolicy) {
	ctx, cancel := context.WithTimeout(b.n.ctx, time.Minute)
	defer cancel()
	metas, err := b.scanAll(blobMetaPrefix)
	if err != nil {
		return
	}
	cutoff := b.n.stampMs() - p.GCGraceMs
	for _, kv := range metas {
		hex := string(kv.Key[len(blobMetaPrefix):])
		var m blobMeta
		if err := rpc.Unmarshal(kv.Value, &m); err != nil || m.CreatedMs > cutoff {
			continue
		}
		tagged, err := b.scanAll(blobTaggedPrefix + hex + ":")
		if err != nil || len(tagged) > 0 {
			continue
		}
		recs, err := b.scanAll(blobReplicaPrefix + hex + ":")
		if err != nil {
			continue
		}
		ops := []api.TxnOp{{Kind: api.TxnDelete, Key: kv.Key}}
		for _, r := range recs {
			ops = append(ops, api.TxnOp{Kind: api.TxnDelete, Key: r.Key})
		}
		_, err = b.n.propose(ctx, &api.TxnRequest{
			Compares: []api.Compare{{Key: kv.Key, Target: api.TargetModRevision, Result: api.Equal, Number: int64(kv.ModRevision)}},
			Success:  ops,
		})
		if err != nil {
			b.n.log.Debug("blob gc: deleting records", "hash", hex, "err", err)
		}
	}
}

// collectFiles deletes local blob files older than the grace period that
// the cluster no longer records.
func (b *blobService) collectFiles(p api.BlobPolicy) {
	ctx := b.n.ctx
	cutoff := time.Now().Add(-time.Duration(p.GCGraceMs) * time.Millisecond)
	var after *blob.Hash
	for {
		infos, more, err := b.store.List(ctx, after, 1000)
		if err != nil {
			return
		}
		for _, in := range infos {
			if in.ModTime.After(cutoff) {
				continue
			}
			kv, _, err := b.n.store.Get([]byte(blobMetaPrefix+in.Hash.String()), b.n.stampMs())
			if err != nil || kv != nil {
				continue
			}
			if err := b.store.Delete(ctx, in.Hash); err != nil {
				b.n.log.Warn("blob gc: deleting file", "hash", in.Hash.String(), "err", err)
			}
		}
		if !more || len(infos) == 0 {
			return
		}
		after = &infos[len(infos)-1].Hash
	}
}
