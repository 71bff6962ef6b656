package node

import (
	"context"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/coord"
)

// registerCoord registers the coordination operations (locks, lock sets,
// counters, sequences, semaphores, rate limiters, read/write locks, queues,
// barriers, the service registry, leases) on the node's registry and
// starts the lease expiry loop.
func (n *Node) registerCoord() {
	s := coord.New(coordBackend{n}, ReservedPrefixes)
	s.Register(n.reg)
	n.goFunc(func() { n.expireLeases(s) })
}

// coordBackend lets the coordination service use the node's write path and
// linearizable reads. Both answer NOT_LEADER on a follower, so every
// coordination request runs on the leader (the RPC layer forwards it).
type coordBackend struct{ n *Node }

var _ coord.Backend = coordBackend{}

func (b coordBackend) Read(ctx context.Context, key []byte) (*api.KeyValue, error) {
	kvs, err := b.ReadKeys(ctx, [][]byte{key})
	if err != nil {
		return nil, err
	}
	return kvs[0], nil
}

func (b coordBackend) ReadKeys(ctx context.Context, keys [][]byte) ([]*api.KeyValue, error) {
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	now := b.NowMs()
	out := make([]*api.KeyValue, len(keys))
	for i, k := range keys {
		kv, _, err := b.n.store.Get(k, now)
		if err != nil {
			return nil, err
		}
		out[i] = kv
	}
	return out, nil
}

func (b coordBackend) Txn(ctx context.Context, txn *api.TxnRequest) (*api.TxnResponse, error) {
	return b.n.propose(ctx, txn)
}

func (b coordBackend) Scan(ctx context.Context, prefix, after []byte, limit int) ([]api.KeyValue, bool, error) {
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, false, err
	}
	kvs, more, _, err := b.n.store.Scan(prefix, after, limit, b.NowMs())
	return kvs, more, err
}

func (b coordBackend) NowMs() int64 { return b.n.stampMs() }
