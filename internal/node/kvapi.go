package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/kv"
	"github.com/aspen-dev/aspen/internal/rpc"
)

// registerKV registers the key/value operations. Each one is a thin layer:
// validate at the edge, turn the request into a transaction (writes) or a
// local read behind a read fence (reads), and shape the answer.
func (n *Node) registerKV() {
	rpc.Handle(n.reg, api.OpKVGet, n.kvGet)
	rpc.Handle(n.reg, api.OpKVPut, n.kvPut)
	rpc.Handle(n.reg, api.OpKVDelete, n.kvDelete)
	rpc.Handle(n.reg, api.OpKVCAS, n.kvCAS)
	rpc.Handle(n.reg, api.OpKVCAD, n.kvCAD)
	rpc.Handle(n.reg, api.OpKVScan, n.kvScan)
	rpc.Handle(n.reg, api.OpKVBatchRead, n.kvBatchRead)
	rpc.Handle(n.reg, api.OpKVBatchWrite, n.kvBatchWrite)
	rpc.Handle(n.reg, api.OpKVConditionalBatch, n.kvConditionalBatch)
	rpc.Handle(n.reg, api.OpKVTxn, n.kvTxn)
}

func nowMs() int64 { return time.Now().UnixMilli() }

// stampMs is the time this node stamps commands and serves key/value and
// coordination reads at: its clock (Config.Clock), but never below the
// state machine clock (kv.Store.MaxNowMs) nor a time it handed out before,
// so a clock stepped back cannot revive a key a read already saw expire or
// move a lock deadline backwards.
func (n *Node) stampMs() int64 {
	now := nowMs()
	if n.cfg.Clock != nil {
		now = n.cfg.Clock().UnixMilli()
	}
	return n.stamps.next(max(now, n.store.MaxNowMs()))
}

// stampClock makes a node's stamps monotonic. The zero value is ready.
type stampClock struct{ last atomic.Int64 }

// next returns max(now, every stamp returned before) and records it.
func (c *stampClock) next(now int64) int64 {
	for {
		last := c.last.Load()
		if now <= last {
			return last
		}
		if c.last.CompareAndSwap(last, now) {
			return now
		}
	}
}

// requireInit answers NOT_INITIALIZED until this node knows a membership.
func (n *Node) requireInit() error {
	if !n.raft.Initialized() {
		return api.Errorf(api.CodeNotInitialized, "cluster not initialized: run `aspen-cli cluster init` on one node, or add this node to a cluster")
	}
	return nil
}

// readFence makes a following local read linearizable, unless the request
// asked for a stale read. On a follower it returns NOT_LEADER so the RPC
// layer forwards the read to the leader.
func (n *Node) readFence(ctx context.Context, c api.Consistency) error {
	if err := n.requireInit(); err != nil {
		return err
	}
	switch c {
	case "", api.Linearizable:
		return n.raft.ReadBarrier(ctx)
	case api.Stale:
		return nil
	default:
		return api.Errorf(api.CodeInvalidArgument, "consistency %q: expected %q or %q", c, api.Linearizable, api.Stale)
	}
}

// propose validates a transaction, stamps it with the leader's clock,
// replicates it and returns its result.
func (n *Node) propose(ctx context.Context, txn *api.TxnRequest) (*api.TxnResponse, error) {
	return n.proposeAnswered(ctx, txn, nil)
}

// proposeAnswered is propose that also hands the result to answer on the
// state machine's goroutine as soon as it shows (see n.apply).
func (n *Node) proposeAnswered(ctx context.Context, txn *api.TxnRequest, answer func(*kv.ApplyResult)) (*api.TxnResponse, error) {
	b, err := n.txnCommand(txn)
	if err != nil {
		return nil, err
	}
	res, err := n.applyEncoded(ctx, b, answer)
	if err != nil {
		return nil, err
	}
	return res.Txn, nil
}

// proposeDetached is propose that does not wait: answer gets the result on
// the state machine's goroutine, fail the error if Raft fails the proposal
// (consensus.ProposeDetached). An error returned means nothing was proposed.
func (n *Node) proposeDetached(txn *api.TxnRequest, answer func(*kv.ApplyResult), fail func(error)) error {
	b, err := n.txnCommand(txn)
	if err != nil {
		return err
	}
	start := time.Now()
	n.raft.ProposeDetached(b, func(out any) {
		res, err := applyResult(out)
		if err != nil {
			fail(err)
			return
		}
		n.metrics.commit.Observe(time.Since(start).Seconds())
		answer(res)
	}, fail)
	return nil
}

// txnCommand checks a transaction and encodes it as a command stamped with
// the leader's clock.
func (n *Node) txnCommand(txn *api.TxnRequest) ([]byte, error) {
	if err := n.requireInit(); err != nil {
		return nil, err
	}
	if err := kv.ValidateTxn(txn); err != nil {
		return nil, err
	}
	return encodeCommand(&kv.Command{NowMs: n.stampMs(), Txn: txn})
}

func encodeCommand(cmd *kv.Command) ([]byte, error) {
	b, err := kv.EncodeCommand(cmd)
	if err != nil {
		return nil, fmt.Errorf("encoding command: %w", err)
	}
	return b, nil
}

// applyResult is the state machine's result of a command.
func applyResult(out any) (*kv.ApplyResult, error) {
	res, ok := out.(*kv.ApplyResult)
	if !ok || res == nil {
		return nil, api.Errorf(api.CodeInternal, "state machine returned %T", out)
	}
	return res, nil
}

// apply replicates cmd and returns its result. When answer is set, the state
// machine's goroutine also hands it the result as soon as it shows, possibly
// before apply returns, or while apply gives up (consensus.ProposeAnswered).
func (n *Node) apply(ctx context.Context, cmd *kv.Command, answer func(*kv.ApplyResult)) (*kv.ApplyResult, error) {
	b, err := encodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	return n.applyEncoded(ctx, b, answer)
}

// applyEncoded is apply of an encoded command.
func (n *Node) applyEncoded(ctx context.Context, b []byte, answer func(*kv.ApplyResult)) (*kv.ApplyResult, error) {
	var onApplied func(any)
	if answer != nil {
		onApplied = func(out any) {
			if res, err := applyResult(out); err == nil {
				answer(res)
			}
		}
	}
	start := time.Now()
	out, err := n.raft.ProposeAnswered(ctx, b, onApplied)
	if err != nil {
		return nil, err
	}
	n.metrics.commit.Observe(time.Since(start).Seconds())
	res, err := applyResult(out)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return api.Errorf(api.CodeInvalidArgument, "key is empty")
	}
	if len(key) > api.MaxKeySize {
		return api.Errorf(api.CodeInvalidArgument, "key is %d bytes; the limit is %d", len(key), api.MaxKeySize)
	}
	return nil
}

func (n *Node) kvGet(ctx context.Context, req *api.GetRequest) (*api.GetResponse, error) {
	if err := checkKey(req.Key); err != nil {
		return nil, err
	}
	if err := n.readFence(ctx, req.Consistency); err != nil {
		return nil, err
	}
	kv, rev, err := n.store.Get(req.Key, n.stampMs())
	if err != nil {
		return nil, err
	}
	return &api.GetResponse{KV: kv, Revision: rev}, nil
}

func (n *Node) kvPut(ctx context.Context, req *api.PutRequest) (*api.PutResponse, error) {
	txn := &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnPut, Key: req.Key, Value: req.Value, TTLMs: req.TTLMs}}}
	return answerUser(ctx, n, txn, func(res *api.TxnResponse) *api.PutResponse {
		return &api.PutResponse{Revision: res.Revision}
	})
}

func (n *Node) kvDelete(ctx context.Context, req *api.DeleteRequest) (*api.DeleteResponse, error) {
	txn := &api.TxnRequest{Success: []api.TxnOp{{Kind: api.TxnDelete, Key: req.Key}}}
	return answerUser(ctx, n, txn, func(res *api.TxnResponse) *api.DeleteResponse {
		return &api.DeleteResponse{Existed: res.Results[0].Deleted > 0, Revision: res.Revision}
	})
}

func (n *Node) kvCAS(ctx context.Context, req *api.CASRequest) (*api.CASResponse, error) {
	cmp := api.Compare{Key: req.Key, Target: api.TargetValue, Result: api.Equal, Value: req.Expected}
	if req.MustNotExist {
		cmp = api.Compare{Key: req.Key, Target: api.TargetVersion, Result: api.Equal, Number: 0}
	}
	return n.compareAnd(ctx, cmp, api.TxnOp{Kind: api.TxnPut, Key: req.Key, Value: req.NewValue})
}

func (n *Node) kvCAD(ctx context.Context, req *api.CADRequest) (*api.CASResponse, error) {
	if len(req.Expected) == 0 {
		return nil, api.Errorf(api.CodeInvalidArgument, "expected value is empty: compare-and-delete needs the value the key must hold")
	}
	cmp := api.Compare{Key: req.Key, Target: api.TargetValue, Result: api.Equal, Value: req.Expected}
	return n.compareAnd(ctx, cmp, api.TxnOp{Kind: api.TxnDelete, Key: req.Key})
}

// compareAnd runs op if cmp holds, else reads the key to report it.
func (n *Node) compareAnd(ctx context.Context, cmp api.Compare, op api.TxnOp) (*api.CASResponse, error) {
	txn := &api.TxnRequest{
		Compares: []api.Compare{cmp},
		Success:  []api.TxnOp{op},
		Failure:  []api.TxnOp{{Kind: api.TxnGet, Key: cmp.Key}},
	}
	return answerUser(ctx, n, txn, func(res *api.TxnResponse) *api.CASResponse {
		out := &api.CASResponse{Succeeded: res.Succeeded, Revision: res.Revision}
		if !res.Succeeded && len(res.Results) == 1 && len(res.Results[0].KVs) == 1 {
			kv := res.Results[0].KVs[0]
			out.Actual = &kv
		}
		return out
	})
}

// scanToken is the opaque continuation token: the last key returned.
func scanToken(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

func (n *Node) kvScan(ctx context.Context, req *api.ScanRequest) (*api.ScanResponse, error) {
	if len(req.Prefix) > api.MaxKeySize {
		return nil, api.Errorf(api.CodeInvalidArgument, "prefix is %d bytes; the limit is %d", len(req.Prefix), api.MaxKeySize)
	}
	limit := req.Limit
	switch {
	case limit == 0:
		limit = api.DefaultScanLimit
	case limit < 0 || limit > api.MaxScanLimit:
		return nil, api.Errorf(api.CodeInvalidArgument, "limit %d: must be between 1 and %d", limit, api.MaxScanLimit)
	}
	var after []byte
	if req.ContinuationToken != "" {
		var err error
		after, err = base64.RawURLEncoding.DecodeString(req.ContinuationToken)
		if err != nil || !bytes.HasPrefix(after, req.Prefix) {
			return nil, api.Errorf(api.CodeInvalidArgument, "continuation token is not from a scan of this prefix")
		}
	}
	if err := n.readFence(ctx, req.Consistency); err != nil {
		return nil, err
	}
	entries, more, rev, err := n.store.Scan(req.Prefix, after, limit, n.stampMs())
	if err != nil {
		return nil, err
	}
	out := &api.ScanResponse{Entries: entries, Revision: rev}
	if more && len(entries) > 0 {
		out.ContinuationToken = scanToken(entries[len(entries)-1].Key)
	}
	return out, nil
}

func (n *Node) kvBatchRead(ctx context.Context, req *api.BatchReadRequest) (*api.BatchReadResponse, error) {
	if len(req.Keys) == 0 || len(req.Keys) > api.MaxBatchOps {
		return nil, api.Errorf(api.CodeInvalidArgument, "batch read of %d keys: must be between 1 and %d", len(req.Keys), api.MaxBatchOps)
	}
	for i, k := range req.Keys {
		if err := checkKey(k); err != nil {
			return nil, api.Errorf(api.CodeInvalidArgument, "keys[%d]: %s", i, err.(*api.Error).Message)
		}
	}
	if err := n.readFence(ctx, req.Consistency); err != nil {
		return nil, err
	}
	kvs, rev, err := n.store.BatchGet(req.Keys, n.stampMs())
	if err != nil {
		return nil, err
	}
	out := &api.BatchReadResponse{Revision: rev, Results: make([]api.BatchReadItem, len(req.Keys))}
	for i, k := range req.Keys {
		out.Results[i] = api.BatchReadItem{Key: k, KV: kvs[i]}
	}
	return out, nil
}

// writeOps turns batch writes into transaction operations.
func writeOps(ops []api.WriteOp) ([]api.TxnOp, error) {
	if len(ops) == 0 || len(ops) > api.MaxBatchOps {
		return nil, api.Errorf(api.CodeInvalidArgument, "batch of %d operations: must be between 1 and %d", len(ops), api.MaxBatchOps)
	}
	out := make([]api.TxnOp, len(ops))
	for i, op := range ops {
		switch op.Kind {
		case api.WriteSet:
			out[i] = api.TxnOp{Kind: api.TxnPut, Key: op.Key, Value: op.Value, TTLMs: op.TTLMs}
		case api.WriteDelete:
			out[i] = api.TxnOp{Kind: api.TxnDelete, Key: op.Key}
		default:
			return nil, api.Errorf(api.CodeInvalidArgument, "ops[%d]: unknown kind %q (want %q or %q)", i, op.Kind, api.WriteSet, api.WriteDelete)
		}
	}
	return out, nil
}

func (n *Node) kvBatchWrite(ctx context.Context, req *api.BatchWriteRequest) (*api.BatchWriteResponse, error) {
	ops, err := writeOps(req.Ops)
	if err != nil {
		return nil, err
	}
	return answerUser(ctx, n, &api.TxnRequest{Success: ops}, func(res *api.TxnResponse) *api.BatchWriteResponse {
		return &api.BatchWriteResponse{OperationsApplied: len(ops), Revision: res.Revision}
	})
}

func (n *Node) kvConditionalBatch(ctx context.Context, req *api.ConditionalBatchRequest) (*api.ConditionalBatchResponse, error) {
	ops, err := writeOps(req.Ops)
	if err != nil {
		return nil, err
	}
	if len(req.Conditions) > api.MaxBatchOps {
		return nil, api.Errorf(api.CodeInvalidArgument, "%d conditions: the limit is %d", len(req.Conditions), api.MaxBatchOps)
	}
	cmps := make([]api.Compare, len(req.Conditions))
	for i, c := range req.Conditions {
		switch c.Kind {
		case api.CondValueEquals:
			cmps[i] = api.Compare{Key: c.Key, Target: api.TargetValue, Result: api.Equal, Value: c.Expected}
		case api.CondKeyExists:
			cmps[i] = api.Compare{Key: c.Key, Target: api.TargetVersion, Result: api.Greater, Number: 0}
		case api.CondKeyNotExists:
			cmps[i] = api.Compare{Key: c.Key, Target: api.TargetVersion, Result: api.Equal, Number: 0}
		default:
			return nil, api.Errorf(api.CodeInvalidArgument, "conditions[%d]: unknown kind %q", i, c.Kind)
		}
	}
	return answerUser(ctx, n, &api.TxnRequest{Compares: cmps, Success: ops}, func(res *api.TxnResponse) *api.ConditionalBatchResponse {
		out := &api.ConditionalBatchResponse{ConditionsMet: res.Succeeded, FailedConditionIndex: -1, Revision: res.Revision}
		if res.Succeeded {
			out.OperationsApplied = len(ops)
		} else {
			out.FailedConditionIndex = res.FailedCompare
			c := req.Conditions[res.FailedCompare]
			out.FailedConditionReason = fmt.Sprintf("%s failed for key %q", c.Kind, c.Key)
		}
		return out
	})
}

func (n *Node) kvTxn(ctx context.Context, req *api.TxnRequest) (*api.TxnResponse, error) {
	return answerUser(ctx, n, req, func(res *api.TxnResponse) *api.TxnResponse { return res })
}

// ReservedPrefixes hold system and service state (coordination records,
// ...). The plain KV API may read them but not write them: services write
// them through their own operations.
var ReservedPrefixes = [][]byte{[]byte("__"), []byte("_system:")}

// readsRanges reports whether txn has a range read.
func readsRanges(txn *api.TxnRequest) bool {
	for _, ops := range [][]api.TxnOp{txn.Success, txn.Failure} {
		for _, op := range ops {
			if op.Kind == api.TxnRange {
				return true
			}
		}
	}
	return false
}

// checkUserTxn refuses a plain key/value write into a reserved prefix.
func checkUserTxn(txn *api.TxnRequest) error {
	for _, ops := range [][]api.TxnOp{txn.Success, txn.Failure} {
		for _, op := range ops {
			if op.Kind == api.TxnGet || op.Kind == api.TxnRange {
				continue
			}
			for _, p := range ReservedPrefixes {
				if bytes.HasPrefix(op.Key, p) || (op.Kind == api.TxnDeleteRange && bytes.HasPrefix(p, op.Key)) {
					return api.Errorf(api.CodeInvalidArgument, "key %q is in the reserved prefix %q (system and service state); use the service's own commands", op.Key, p)
				}
			}
		}
	}
	return nil
}

// answerUser proposes a client's transaction and shapes its result into the
// call's answer. Served over QUIC, the call is answered from the state
// machine's goroutine as soon as the result shows (rpc.EarlyAnswer); the
// answers of one applied batch then leave together. On the leader the
// handler does not even wait for it: it returns at once (Answer.Detach), and
// its stream goes on to the caller's next call. A transaction reading ranges
// is answered from here: its answer can be large, and encoding it would hold
// up the state machine.
func answerUser[R any](ctx context.Context, n *Node, txn *api.TxnRequest, shape func(*api.TxnResponse) *R) (*R, error) {
	if err := checkUserTxn(txn); err != nil {
		return nil, err
	}
	var answer func(*kv.ApplyResult)
	if early, ok := rpc.EarlyAnswer(ctx); ok && !readsRanges(txn) {
		answer = func(res *kv.ApplyResult) {
			if res.Err != nil {
				early.Send(nil, res.Err)
				return
			}
			early.Send(shape(res.Txn), nil)
		}
		// a follower's NOT_LEADER is forwarded to the leader by the rpc
		// server, which needs the handler's return
		if n.raft.IsLeader() {
			if err := n.proposeDetached(txn, answer, func(err error) { early.Send(nil, err) }); err != nil {
				return nil, err
			}
			return nil, early.Detach()
		}
	}
	res, err := n.proposeAnswered(ctx, txn, answer)
	if err != nil {
		return nil, err
	}
	return shape(res), nil
}
