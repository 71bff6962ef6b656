package node

import (
	"context"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/coord"
)

// registerCoord registers the coordination operations (locks, counters,
// sequences, semaphores, rate limiters, read/write locks, queues) on the node's registry.
func (n *Node) registerCoord() {
	coord.New(coordBackend{n}).Register(n.reg)
}

// coordBackend lets the coordination service use the node's write path and
// linearizable reads. Both answer NOT_LEADER on a follower, so every
// coordination request runs on the leader (the RPC layer forwards it).
type coordBackend struct{ n *Node }

var _ coord.Backend = coordBackend{}

func (b coordBackend) Read(ctx context.Context, key []byte) (*api.KeyValue, error) {
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, err
	}
	kv, _, err := b.n.store.Get(key, b.n.stampMs())
	return kv, err
}

func (b coordBackend) Txn(ctx context.Context, txn *api.TxnRequest) (*api.TxnResponse, error) {
	return b.n.propose(ctx, txn)
}

func (b coordBackend) Scan(ctx context.Context, prefix, after []byte, limit int) ([]api.KeyValue, bool, error) {
	if err := b.n.readFence(ctx, api.Linearizable); err != nil {
		return nil, false, err
	}
	kvs, more, _, err := b.n.store.Scan(prefix, after, limit, b.n.stampMs())
	return kvs, more, err
}

func (b coordBackend) NowMs() int64 { return b.n.stampMs() }
