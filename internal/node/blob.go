package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/blob"
	"github.com/aspen-dev/aspen/internal/consensus"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Blob metadata in the key/value store, all under api.BlobKeyPrefix:
//
//	_system:blob:meta:HASH            CBOR blobMeta (the cluster knows HASH)
//	_system:blob:replica:HASH:NODEID  CBOR blobReplica (NODEID holds the bytes)
//	_system:blob:tag:NAME             HASH (tag NAME, e.g. "user:keep", names HASH)
//	_system:blob:tagged:HASH:NAME     empty (reverse index of the tags of HASH)
//
// HASH is 64 lowercase hex characters, NODEID 20 decimal digits.
const (
	blobMetaPrefix    = api.BlobKeyPrefix + "meta:"
	blobReplicaPrefix = api.BlobKeyPrefix + "replica:"
	blobTagPrefix     = api.BlobKeyPrefix + "tag:"
	blobTaggedPrefix  = api.BlobKeyPrefix + "tagged:"
)

// blobsDir is the blob store's directory inside the data dir.
const blobsDir = "blobs"

// blobFetchWait is how long a get of a blob this node lacks waits for the
// cluster to learn a holder (spec 04: reads wait up to 5 s for replication).
const blobFetchWait = 5 * time.Second

// blobAddedQueue bounds the blobs waiting to be replicated after an add.
const blobAddedQueue = 1024

type blobMeta struct {
	SizeBytes int64 `cbor:"size_bytes"`
	CreatedMs int64 `cbor:"created_ms"`
}

type blobReplica struct {
	UpdatedMs int64 `cbor:"updated_ms"`
}

// blobService serves the blob store of one node: the transfer protocol on
// blob.ALPN and the metadata operations on the registry.
type blobService struct {
	n      *Node
	store  *blob.Store
	kickc  chan struct{}  // asks loop for a repair pass now
	addedc chan blob.Hash // blobs added here, for replicator
	// rejected counts fetches from a peer whose bytes failed verification
	// (aspen_blob_fetch_rejected_total, by peer node ID).
	rejected *prometheus.CounterVec
	// sendFilter, when set (tests only: blob_export_test.go), wraps the
	// stream every get served here writes to, e.g. to tamper with it.
	sendFilter atomic.Pointer[func(io.Writer) io.Writer]
}

// startBlobs opens <data-dir>/blobs, registers the blob.* operations,
// serves blob.ALPN on the endpoint and starts the replication, repair and
// GC loop (blob_replicate.go) with n.goFunc, so Close stops it. It must run
// after the registry exists and before the endpoint serves. Transfers are
// endpoint handlers, which the endpoint's Close waits for.
func (n *Node) startBlobs() error {
	st, err := blob.Open(blob.Config{Dir: filepath.Join(n.cfg.DataDir, blobsDir)})
	if err != nil {
		return err
	}
	b := &blobService{n: n, store: st, kickc: make(chan struct{}, 1), addedc: make(chan blob.Hash, blobAddedQueue)}
	b.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aspen_blob_fetch_rejected_total",
		Help: "Blob fetches from a peer rejected because its bytes failed Bao verification (tampered or corrupt), by peer node ID.",
	}, []string{"peer"})
	if err := n.metrics.reg.Register(b.rejected); err != nil {
		return fmt.Errorf("blob metrics: %w", err)
	}
	n.blobs = b
	rpc.Handle(n.reg, api.OpBlobRegister, b.register)
	rpc.Handle(n.reg, api.OpBlobHas, b.has)
	rpc.Handle(n.reg, api.OpBlobList, b.list)
	rpc.Handle(n.reg, api.OpBlobStatus, b.status)
	rpc.Handle(n.reg, api.OpBlobProtect, b.protect)
	rpc.Handle(n.reg, api.OpBlobUnprotect, b.unprotect)
	rpc.Handle(n.reg, api.OpBlobDelete, b.delete)
	rpc.Handle(n.reg, api.OpBlobReplicationStatus, b.replicationStatus)
	rpc.Handle(n.reg, api.OpBlobRepair, b.repair)
	rpc.Handle(n.reg, api.OpBlobRepairCycle, b.repairCycle)
	rpc.Handle(n.reg, api.OpBlobPolicy, b.policy)
	rpc.Handle(n.reg, api.OpBlobTicket, b.ticket)
	rpc.Handle(n.reg, api.OpBlobForget, b.forget)
	n.reg.NodeOnly(api.OpBlobRegister, api.OpBlobForget) // nodes report the copies they hold
	srv := &blob.Server{
		Store:           st,
		Credentials:     [][]byte{n.keys.Client},
		PeerCredentials: [][]byte{n.keys.Node},
		Served: func(h blob.Hash, off, length int64) {
			n.blobEvent(evBlobDownloaded, true, map[string]any{"hash": h.String(), "offset": off, "length": length, "node_id": n.cfg.NodeID})
		},
		CapabilityKey: n.keys.Capability,
		Fetch:         b.fetch,
		Stored:        b.stored,
		Added:         b.added,
		Corrupt:       b.corrupt,
		Send:          b.send,
		Logger:        n.log,
	}
	n.ep.Handle(blob.ALPN, func(ctx context.Context, c *transport.Conn) { srv.ServeConn(ctx, c) })
	n.goFunc(b.loop)
	n.goFunc(b.replicator)
	return nil
}

func parseBlobHash(s string) (blob.Hash, error) {
	h, err := blob.ParseHash(s)
	if err != nil {
		return h, api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	return h, nil
}

func checkTag(tag string) error {
	if tag == "" || len(tag) > api.MaxBlobTagSize {
		return api.Errorf(api.CodeInvalidArgument, "tag %q: must be 1 to %d bytes", tag, api.MaxBlobTagSize)
	}
	return nil
}

func replicaKey(h string, node uint64) []byte {
	return fmt.Appendf(nil, "%s%s:%020d", blobReplicaPrefix, h, node)
}

// stored runs after a transfer stored a blob on this node: it records the
// blob, this replica and the tags, through the leader.
func (b *blobService) stored(ctx context.Context, res blob.PutResult, tags []string) error {
	req := &api.BlobRegisterRequest{Hash: res.Hash.String(), SizeBytes: res.Size, NodeID: b.n.cfg.NodeID, Tags: tags}
	_, err := leaderCall(ctx, b.n, api.OpBlobRegister, req, b.register)
	return err
}

// leaderCall runs handler h here, or on the leader when this node is not it.
func leaderCall[Req, Resp any](ctx context.Context, n *Node, op string, req *Req, h func(context.Context, *Req) (*Resp, error)) (*Resp, error) {
	resp, err := h(ctx, req)
	if !errors.Is(err, api.ErrNotLeader) {
		return resp, err
	}
	body, err := rpc.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := n.forward(ctx, &rpc.Request{Op: op, Body: body, Forwarded: true})
	if err != nil {
		return nil, err
	}
	if r.Error != nil {
		return nil, r.Error
	}
	out := new(Resp)
	if len(r.Body) > 0 {
		if err := rpc.Unmarshal(r.Body, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (b *blobService) register(ctx context.Context, req *api.BlobRegisterRequest) (*api.BlobRegisterResponse, error) {
	if _, err := parseBlobHash(req.Hash); err != nil {
		return nil, err
	}
	if req.SizeBytes < 0 || req.SizeBytes > api.MaxBlobSize {
		return nil, api.Errorf(api.CodeInvalidArgument, "size %d: must be 0..%d", req.SizeBytes, api.MaxBlobSize)
	}
	if len(req.Tags) > api.MaxBlobTagsPerBlob {
		return nil, api.Errorf(api.CodeInvalidArgument, "%d tags: the limit is %d", len(req.Tags), api.MaxBlobTagsPerBlob)
	}
	for _, t := range req.Tags {
		if err := checkTag(t); err != nil {
			return nil, err
		}
	}
	now := b.n.stampMs()
	meta, err := rpc.Marshal(blobMeta{SizeBytes: req.SizeBytes, CreatedMs: now})
	if err != nil {
		return nil, err
	}
	rep, err := rpc.Marshal(blobReplica{UpdatedMs: now})
	if err != nil {
		return nil, err
	}
	metaKey := []byte(blobMetaPrefix + req.Hash)
	repPut := api.TxnOp{Kind: api.TxnPut, Key: replicaKey(req.Hash, req.NodeID), Value: rep}
	res, err := b.n.propose(ctx, &api.TxnRequest{
		Compares: []api.Compare{{Key: metaKey, Target: api.TargetVersion, Result: api.Equal, Number: 0}},
		Success:  []api.TxnOp{{Kind: api.TxnPut, Key: metaKey, Value: meta}, repPut},
		Failure:  []api.TxnOp{repPut},
	})
	if err != nil {
		return nil, err
	}
	b.n.blobEvent(evBlobAdded, res.Succeeded, map[string]any{"hash": req.Hash, "size_bytes": req.SizeBytes, "node_id": req.NodeID})
	for _, t := range req.Tags {
		if _, err := b.setTag(ctx, req.Hash, t); err != nil {
			return nil, err
		}
	}
	return &api.BlobRegisterResponse{WasNew: res.Succeeded}, nil
}

// setTag points tag at hash, moving it from the blob it named before, in
// one transaction conditional on what it read. It reports whether anything
// changed.
func (b *blobService) setTag(ctx context.Context, hash, tag string) (bool, error) {
	key := []byte(blobTagPrefix + tag)
	for range 10 {
		old, err := b.readKey(ctx, key)
		if err != nil {
			return false, err
		}
		ops := []api.TxnOp{
			{Kind: api.TxnPut, Key: key, Value: []byte(hash)},
			{Kind: api.TxnPut, Key: []byte(blobTaggedPrefix + hash + ":" + tag), Value: []byte{}},
		}
		cmp := api.Compare{Key: key, Target: api.TargetVersion, Result: api.Equal, Number: 0}
		if old != nil {
			if string(old.Value) == hash {
				return false, nil
			}
			cmp = api.Compare{Key: key, Target: api.TargetValue, Result: api.Equal, Value: old.Value}
			ops = append(ops, api.TxnOp{Kind: api.TxnDelete, Key: []byte(blobTaggedPrefix + string(old.Value) + ":" + tag)})
		}
		res, err := b.n.propose(ctx, &api.TxnRequest{Compares: []api.Compare{cmp}, Success: ops})
		if err != nil {
			return false, err
		}
		if res.Succeeded {
			return true, nil
		}
	}
	return false, api.Errorf(api.CodeConflict, "tag %q changed concurrently 10 times; retry", tag)
}

// dropTag removes tag if it still names hash (any blob when hash is "").
func (b *blobService) dropTag(ctx context.Context, hash, tag string) (bool, error) {
	key := []byte(blobTagPrefix + tag)
	old, err := b.readKey(ctx, key)
	if err != nil || old == nil {
		return false, err
	}
	if hash != "" && string(old.Value) != hash {
		return false, nil
	}
	res, err := b.n.propose(ctx, &api.TxnRequest{
		Compares: []api.Compare{{Key: key, Target: api.TargetValue, Result: api.Equal, Value: old.Value}},
		Success: []api.TxnOp{
			{Kind: api.TxnDelete, Key: key},
			{Kind: api.TxnDelete, Key: []byte(blobTaggedPrefix + string(old.Value) + ":" + tag)},
		},
	})
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

// readKey is a linearizable read of one key (nil when absent).
func (b *blobService) readKey(ctx context.Context, key []byte) (*api.KeyValue, error) {
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	kv, _, err := b.n.store.Get(key, b.n.stampMs())
	return kv, err
}

// scanAll reads every key under prefix from the local store (the caller
// fenced the read when it needs to).
func (b *blobService) scanAll(prefix string) ([]api.KeyValue, error) {
	var out []api.KeyValue
	var after []byte
	for {
		kvs, more, _, err := b.n.store.Scan([]byte(prefix), after, api.MaxScanLimit, b.n.stampMs())
		if err != nil {
			return nil, err
		}
		out = append(out, kvs...)
		if !more || len(kvs) == 0 {
			return out, nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

func (b *blobService) has(ctx context.Context, req *api.BlobHashRequest) (*api.BlobHasResponse, error) {
	if _, err := parseBlobHash(req.Hash); err != nil {
		return nil, err
	}
	kv, err := b.readKey(ctx, []byte(blobMetaPrefix+strings.ToLower(req.Hash)))
	if err != nil {
		return nil, err
	}
	return &api.BlobHasResponse{DoesExist: kv != nil}, nil
}

func (b *blobService) list(ctx context.Context, req *api.BlobListRequest) (*api.BlobListResponse, error) {
	limit := req.MaxResults
	switch {
	case limit == 0:
		limit = api.DefaultBlobList
	case limit < 0 || limit > api.MaxBlobList:
		return nil, api.Errorf(api.CodeInvalidArgument, "max results %d: must be between 1 and %d", limit, api.MaxBlobList)
	}
	var after []byte
	if req.ContinuationToken != "" {
		if _, err := parseBlobHash(req.ContinuationToken); err != nil {
			return nil, api.Errorf(api.CodeInvalidArgument, "continuation token is not from a blob list")
		}
		after = []byte(blobMetaPrefix + req.ContinuationToken)
	}
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	kvs, more, _, err := b.n.store.Scan([]byte(blobMetaPrefix), after, limit, b.n.stampMs())
	if err != nil {
		return nil, err
	}
	out := &api.BlobListResponse{Blobs: []api.BlobListEntry{}, HasMore: more}
	for _, kv := range kvs {
		var m blobMeta
		if err := rpc.Unmarshal(kv.Value, &m); err != nil {
			return nil, api.Errorf(api.CodeInternal, "blob record %q: %v", kv.Key, err)
		}
		out.Blobs = append(out.Blobs, api.BlobListEntry{Hash: string(kv.Key[len(blobMetaPrefix):]), SizeBytes: m.SizeBytes})
	}
	out.Count = len(out.Blobs)
	if more && out.Count > 0 {
		out.ContinuationToken = out.Blobs[out.Count-1].Hash
	}
	return out, nil
}

func (b *blobService) status(ctx context.Context, req *api.BlobHashRequest) (*api.BlobStatusResponse, error) {
	h, err := parseBlobHash(req.Hash)
	if err != nil {
		return nil, err
	}
	hex := h.String()
	kv, err := b.readKey(ctx, []byte(blobMetaPrefix+hex))
	if err != nil {
		return nil, err
	}
	out := &api.BlobStatusResponse{Hash: hex, Tags: []string{}, ReplicaNodes: []uint64{}}
	if kv == nil {
		return out, nil
	}
	var m blobMeta
	if err := rpc.Unmarshal(kv.Value, &m); err != nil {
		return nil, api.Errorf(api.CodeInternal, "blob record %q: %v", kv.Key, err)
	}
	out.WasFound, out.SizeBytes = true, m.SizeBytes
	tagged, err := b.scanAll(blobTaggedPrefix + hex + ":")
	if err != nil {
		return nil, err
	}
	for _, t := range tagged {
		out.Tags = append(out.Tags, string(t.Key[len(blobTaggedPrefix)+len(hex)+1:]))
	}
	out.ReplicaNodes, err = b.replicas(hex)
	if err != nil {
		return nil, err
	}
	out.Complete = len(out.ReplicaNodes) > 0
	return out, nil
}

// replicas lists the nodes registered as holding hash, from the local store.
func (b *blobService) replicas(hex string) ([]uint64, error) {
	kvs, err := b.scanAll(blobReplicaPrefix + hex + ":")
	if err != nil {
		return nil, err
	}
	out := []uint64{}
	for _, kv := range kvs {
		id, err := strconv.ParseUint(string(kv.Key[len(blobReplicaPrefix)+len(hex)+1:]), 10, 64)
		if err == nil {
			out = append(out, id)
		}
	}
	return out, nil
}

func (b *blobService) protect(ctx context.Context, req *api.BlobProtectRequest) (*api.BlobTagResponse, error) {
	h, err := parseBlobHash(req.Hash)
	if err != nil {
		return nil, err
	}
	tag := api.BlobUserTagPrefix + req.Tag
	if err := checkTag(tag); err != nil {
		return nil, err
	}
	kv, err := b.readKey(ctx, []byte(blobMetaPrefix+h.String()))
	if err != nil {
		return nil, err
	}
	if kv == nil {
		return nil, api.Errorf(api.CodeNotFound, "blob %s is not in the cluster: add it first", h)
	}
	changed, err := b.setTag(ctx, h.String(), tag)
	if err != nil {
		return nil, err
	}
	b.n.blobEvent(evBlobProtected, changed, map[string]any{"hash": h.String(), "tag": req.Tag})
	return &api.BlobTagResponse{IsSuccess: true, Changed: changed}, nil
}

func (b *blobService) unprotect(ctx context.Context, req *api.BlobUnprotectRequest) (*api.BlobTagResponse, error) {
	tag := api.BlobUserTagPrefix + req.Tag
	if err := checkTag(tag); err != nil {
		return nil, err
	}
	changed, err := b.dropTag(ctx, "", tag)
	if err != nil {
		return nil, err
	}
	b.n.blobEvent(evBlobUnprotected, changed, map[string]any{"tag": req.Tag})
	return &api.BlobTagResponse{IsSuccess: true, Changed: changed}, nil
}

// delete drops the user tags of a blob. Its bytes stay until garbage
// collection (not built yet) finds it unreferenced.
func (b *blobService) delete(ctx context.Context, req *api.BlobDeleteRequest) (*api.BlobTagResponse, error) {
	h, err := parseBlobHash(req.Hash)
	if err != nil {
		return nil, err
	}
	hex := h.String()
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	tagged, err := b.scanAll(blobTaggedPrefix + hex + ":" + api.BlobUserTagPrefix)
	if err != nil {
		return nil, err
	}
	changed := false
	for _, t := range tagged {
		c, err := b.dropTag(ctx, hex, string(t.Key[len(blobTaggedPrefix)+len(hex)+1:]))
		if err != nil {
			return nil, err
		}
		changed = changed || c
	}
	b.n.blobEvent(evBlobDeleted, changed, map[string]any{"hash": hex})
	return &api.BlobTagResponse{IsSuccess: true, Changed: changed}, nil
}

// fetch pulls a blob this node lacks from a node registered as holding it,
// verifying every chunk group, and registers this node as a holder. It
// waits up to blobFetchWait for a holder to be known.
func (b *blobService) fetch(ctx context.Context, h blob.Hash) error {
	ctx, cancel := context.WithTimeout(ctx, blobFetchWait)
	defer cancel()
	var errs []error
	for {
		holders, err := b.holders(ctx, h)
		if err != nil {
			return err
		}
		for _, id := range holders {
			if id == b.n.cfg.NodeID {
				continue
			}
			err := b.fetchFrom(ctx, id, h)
			if err == nil {
				return nil
			}
			if errors.Is(err, blob.ErrCorrupt) {
				b.rejected.WithLabelValues(strconv.FormatUint(id, 10)).Inc()
				b.n.log.Warn("blob: rejected a peer's copy: it failed verification; trying another holder", "hash", h.String(), "peer", id, "err", err)
			} else {
				b.n.log.Warn("blob: fetch from peer failed", "hash", h.String(), "peer", id, "err", err)
			}
			errs = append(errs, fmt.Errorf("node %d: %w", id, err))
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("blob %s: no node holds it: %w", h, blob.ErrNotFound)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// holders lists the nodes recorded as holding h as the leader knows them
// (this node's copy of the records may lag behind), or, when the leader
// cannot answer, as this node knows them.
func (b *blobService) holders(ctx context.Context, h blob.Hash) ([]uint64, error) {
	st, err := b.clusterStatus(ctx, h)
	if err == nil {
		return st.ReplicaNodes, nil
	}
	return b.replicas(h.String())
}

// clusterStatus is the status of h read on the leader (linearizable),
// whichever node this is.
func (b *blobService) clusterStatus(ctx context.Context, h blob.Hash) (*api.BlobStatusResponse, error) {
	return leaderCall(ctx, b.n, api.OpBlobStatus, &api.BlobHashRequest{Hash: h.String()}, b.status)
}

func (b *blobService) fetchFrom(ctx context.Context, id uint64, h blob.Hash) error {
	to, err := b.memberAddr(id)
	if err != nil {
		return err
	}
	conn, err := b.n.ep.Dial(ctx, to, blob.ALPN)
	if err != nil {
		return err
	}
	exp, err := conn.Exporter()
	if err != nil {
		return err
	}
	req := blob.GetRequest{Hash: h, Length: -1, Proof: auth.Proof(b.n.keys.Node, exp), NoFetch: true}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { // ends when the transfer ends or pr is closed below
		_, err := blob.Get(ctx, conn, req, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	res, err := b.store.PutExpect(ctx, pr, &h)
	pr.CloseWithError(errors.New("fetch finished"))
	if gerr := <-done; err == nil {
		err = gerr
	}
	if err != nil {
		return err
	}
	return b.stored(ctx, res, nil)
}

// send wraps the stream a get served here writes to with sendFilter, when
// a test set one.
func (b *blobService) send(w io.Writer) io.Writer {
	if f := b.sendFilter.Load(); f != nil {
		return (*f)(w)
	}
	return w
}

// memberAddr is the address of member id in the Raft configuration.
func (b *blobService) memberAddr(id uint64) (transport.NodeAddr, error) {
	servers, err := b.n.raft.Servers()
	if err != nil {
		return transport.NodeAddr{}, err
	}
	i := slices.IndexFunc(servers, func(s raft.Server) bool { return consensus.ParseServerID(s.ID) == id })
	if i < 0 {
		return transport.NodeAddr{}, fmt.Errorf("node %d is not a member", id)
	}
	return transport.ParseNodeAddr(string(servers[i].Address))
}
