package consensus

import (
	"context"
	"sync"

	"github.com/aspen-dev/aspen/api"
)

// readRound is one leadership confirmation (a ReadIndex round) shared by
// every linearizable read that joined it before it started. Batching makes
// the cost of confirming leadership — one heartbeat round trip to a quorum —
// independent of the number of concurrent reads.
type readRound struct {
	done chan struct{} // closed when idx and err are set
	idx  uint64        // commit index noted when the round started
	err  error
}

// readBatcher collects reads into rounds; at most one round runs at a time,
// and reads arriving meanwhile wait for the next one (a round that started
// before a read arrived cannot vouch for it).
type readBatcher struct {
	mu      sync.Mutex
	next    *readRound // collecting, not started
	running bool       // a goroutine is running rounds
}

// confirmRead returns a commit index that a read starting now may be served
// at, once leadership was confirmed after the read started.
func (n *Node) confirmRead(ctx context.Context) (uint64, error) {
	b := &n.reads
	b.mu.Lock()
	select {
	case <-n.stop:
		b.mu.Unlock()
		return 0, api.Errorf(api.CodeUnavailable, "node is shutting down")
	default:
	}
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		n.wg.Add(1)
		go n.runReadRounds()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		if r.err != nil {
			return 0, n.mapErr(r.err)
		}
		return r.idx, nil
	case <-ctx.Done():
		return 0, api.Errorf(api.CodeUnavailable, "confirming leadership for a read: %v", ctx.Err())
	}
}

// runReadRounds runs rounds until no read is waiting.
func (n *Node) runReadRounds() {
	defer n.wg.Done()
	b := &n.reads
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.idx = n.raft.CommitIndex()
		r.err = n.verifyLeader()
		close(r.done)
	}
}

// verifyLeader confirms leadership with a quorum, or gives up at shutdown.
func (n *Node) verifyLeader() error {
	return n.await(context.Background(), n.raft.VerifyLeader())
}
